//! HTTPS with client certificates required: the accept loop, one task per connection, and the
//! translation of each HTTP request into a [`Recorded`] answered from the shared state.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::cluster::Cluster;
use super::pki::Issued;
use super::reply::{Overrides, Reply};
use super::request::{ClientCertificate, Recorded};
use super::x509;

/// Everything the connections share with the test.
pub(crate) struct Shared {
    pub(crate) requests: Vec<Recorded>,
    pub(crate) client_certificates: Vec<ClientCertificate>,
    pub(crate) handshake_failures: usize,
    pub(crate) overrides: Overrides,
    pub(crate) answer_everything: Option<Reply>,
    pub(crate) cluster: Cluster,
}

impl Shared {
    pub(crate) fn new(crd_establish_polls: u32) -> Shared {
        let mut cluster = Cluster::new();
        cluster.crd_establish_polls = crd_establish_polls;
        Shared {
            requests: Vec::new(),
            client_certificates: Vec::new(),
            handshake_failures: 0,
            overrides: Overrides::default(),
            answer_everything: None,
            cluster,
        }
    }

    /// Answers `request` (the test's answer first, then the emulated cluster's) and records
    /// it with the status.
    fn answer(&mut self, mut request: Recorded) -> Reply {
        let reply = match &self.answer_everything {
            Some(reply) => reply.clone(),
            None => match self.overrides.answer(&request) {
                Some(reply) => reply,
                None => self.cluster.answer(&request),
            },
        };
        request.status = reply.status;
        self.requests.push(request);
        reply
    }
}

/// TLS presenting `server`, requiring client certificates issued by a CA in `client_ca_pem`;
/// HTTP/1.1 only, with aws-lc-rs.
pub(crate) fn tls_config(server: &Issued, client_ca_pem: &str) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the client CA is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the client CA is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the client CA PEM holds no certificate".into());
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
        .map_err(|e| format!("the server key is not PEM: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(server.cert_der.clone())], key)
        .map_err(|e| format!("the server certificate is not usable: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts connections until cancelled; dropping the future aborts every connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Mutex<Shared>>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                connections.spawn(serve_connection(acceptor.clone(), tcp, Arc::clone(&shared)));
            }
            // Reap finished connections so the set does not grow for the whole test.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    shared: Arc<Mutex<Shared>>,
) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(_) => {
            lock(&shared).handshake_failures += 1;
            return;
        }
    };
    let client = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| client_certificate(der));
    if let Some(client) = &client {
        lock(&shared).client_certificates.push(client.clone());
    }
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        let client = client.clone();
        async move { Ok::<_, Infallible>(handle(shared, client, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

fn client_certificate(der: &[u8]) -> ClientCertificate {
    let (common_name, organizations) = match x509::parse(der) {
        Ok(parsed) => x509::user_and_groups(&parsed.subject),
        // rustls verified it, so it parses; an unreadable subject is simply not reported.
        Err(_) => (None, Vec::new()),
    };
    ClientCertificate {
        der: der.to_vec(),
        common_name,
        organizations,
    }
}

async fn handle(
    shared: Arc<Mutex<Shared>>,
    client: Option<ClientCertificate>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
        client,
        status: 0,
    };
    let reply = lock(&shared).answer(recorded);
    Response::builder()
        .status(reply.status)
        .header(http::header::CONTENT_TYPE, reply.content_type)
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| {
            let mut response = Response::new(Full::new(Bytes::from_static(b"invalid status")));
            *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
}

/// The shared state; a panic in a test's handler poisons nothing the test still needs.
pub(crate) fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
