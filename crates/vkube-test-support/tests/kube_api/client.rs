//! A minimal blocking HTTPS client with a client certificate (rustls with aws-lc-rs), enough
//! to drive the stand-in from synchronous tests without a Kubernetes client.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use vkube_test_support::kube_api::Issued;

/// One answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A client trusting `ca_pem` and authenticating with `client`.
pub struct Client {
    config: Arc<ClientConfig>,
    addr: SocketAddr,
}

impl Client {
    pub fn new(addr: SocketAddr, ca_pem: &str, client: &Issued) -> Client {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from(client.cert_der.clone())],
                PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        Client {
            config: Arc::new(config),
            addr,
        }
    }

    pub fn get(&self, path: &str) -> io::Result<Answer> {
        self.send("GET", path, None, b"")
    }

    /// A server-side apply of `body` (JSON) as `manager`.
    pub fn apply(&self, path: &str, manager: &str, body: &serde_json::Value) -> Answer {
        let path = format!("{path}?fieldManager={manager}&force=true");
        self.send(
            "PATCH",
            &path,
            Some("application/apply-patch+yaml"),
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    /// One request on a fresh connection (`Connection: close`).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<Answer> {
        let name = ServerName::IpAddress(self.addr.ip().into());
        let connection =
            ClientConnection::new(Arc::clone(&self.config), name).map_err(io::Error::other)?;
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut tls = StreamOwned::new(connection, tcp);
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        tls.write_all(head.as_bytes())?;
        tls.write_all(body)?;
        tls.flush()?;
        let mut raw = Vec::new();
        if let Err(e) = tls.read_to_end(&mut raw) {
            // A server that closes without close_notify still sent a whole answer.
            if e.kind() != io::ErrorKind::UnexpectedEof || raw.is_empty() {
                return Err(e);
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| io::Error::other(format!("no HTTP answer: {text:?}")))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no status line: {head:?}")))?;
        Ok(Answer {
            status,
            body: body.to_string(),
        })
    }
}
