//! TLS trust for vCenter connections: verify against system roots (plus an
//! optional CA file), pin a thumbprint, or — only when the user opts out —
//! accept any certificate. The same verifier serves the up-front probe (which
//! turns a failed handshake into a precise error with the server's
//! thumbprints) and the HTTP client that `vim_rs` and the tagging REST client use.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};

/// How the server's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Verify the chain against the system roots and, if given, a CA file.
    Verify {
        /// Extra PEM CA bundle.
        ca_file: Option<PathBuf>,
    },
    /// Accept exactly the certificate with this SHA-1 or SHA-256 thumbprint.
    Pinned(Thumbprint),
    /// Accept any certificate (user opted out of verification).
    Insecure,
}

/// A certificate fingerprint, SHA-1 (20 bytes) or SHA-256 (32 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprint(Vec<u8>);

impl Thumbprint {
    /// Parse hex with or without colons, any case.
    pub fn parse(text: &str) -> Result<Self> {
        let hex: String = text
            .chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .collect();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .filter(|b| b.len() == 20 || b.len() == 32)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "`{text}` is not a certificate thumbprint: expected 20 (SHA-1) or 32 (SHA-256) hex bytes"
                ))
            })?;
        Ok(Thumbprint(bytes))
    }

    fn matches(&self, cert: &[u8]) -> bool {
        if self.0.len() == 20 {
            Sha1::digest(cert).as_slice() == self.0.as_slice()
        } else {
            Sha256::digest(cert).as_slice() == self.0.as_slice()
        }
    }
}

impl std::fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&colon_hex(&self.0))
    }
}

/// The certificate a server presented, with its fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// SHA-256 fingerprint, colon-separated upper-case hex.
    pub sha256: String,
    /// SHA-1 fingerprint, as govc and the vSphere client show it.
    pub sha1: String,
}

impl PeerCertificate {
    fn of(der: &[u8]) -> Self {
        PeerCertificate {
            sha256: colon_hex(&Sha256::digest(der)),
            sha1: colon_hex(&Sha1::digest(der)),
        }
    }
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Why a presented chain was refused.
#[derive(Debug, Clone)]
enum Refusal {
    Untrusted(String),
    Mismatch,
}

/// Verifies per [`TlsPolicy`], remembering the last chain it saw and why it refused it.
#[derive(Debug)]
struct PolicyVerifier {
    policy: TlsPolicy,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    /// The probe accepts everything and judges afterwards, so it can report thumbprints.
    judge_later: bool,
    seen: Mutex<Option<(Vec<u8>, Option<Refusal>)>>,
}

impl PolicyVerifier {
    fn new(policy: &TlsPolicy, judge_later: bool) -> Result<Self> {
        let provider = provider();
        let webpki = match policy {
            TlsPolicy::Verify { ca_file } => {
                let mut roots = RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if let Some(path) = ca_file {
                    let ca_error = |problem: String| Error::CaFile {
                        path: path.display().to_string(),
                        problem,
                    };
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| ca_error(e.to_string()))?
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| ca_error(e.to_string()))?;
                    if certs.is_empty() {
                        return Err(ca_error("it contains no PEM certificate".into()));
                    }
                    for cert in certs {
                        roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
                    }
                }
                // An empty store (no system roots, no CA file) trusts nothing; the refusal says so.
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .ok()
            }
            _ => None,
        };
        Ok(PolicyVerifier {
            policy: policy.clone(),
            webpki,
            provider,
            judge_later,
            seen: Mutex::new(None),
        })
    }

    fn judge(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Option<Refusal> {
        match &self.policy {
            TlsPolicy::Insecure => None,
            TlsPolicy::Pinned(t) => (!t.matches(end_entity)).then_some(Refusal::Mismatch),
            TlsPolicy::Verify { .. } => match &self.webpki {
                None => Some(Refusal::Untrusted(
                    "no trusted root certificates are configured".into(),
                )),
                Some(v) => v
                    .verify_server_cert(end_entity, intermediates, server_name, &[], now)
                    .err()
                    .map(|e| Refusal::Untrusted(describe_rustls(&e))),
            },
        }
    }
}

fn describe_rustls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "issued by an unknown authority".into()
        }
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => "expired".into(),
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "not valid for this host name".into()
        }
        other => other.to_string(),
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let refusal = self.judge(end_entity, intermediates, server_name, now);
        let outcome = match (&refusal, self.judge_later) {
            (None, _) | (Some(_), true) => Ok(ServerCertVerified::assertion()),
            (Some(_), false) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        };
        *self.seen.lock().expect("verifier lock") = Some((end_entity.to_vec(), refusal));
        outcome
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client_config(verifier: Arc<PolicyVerifier>) -> Result<rustls::ClientConfig> {
    let provider = verifier.provider.clone();
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Connect once, complete a TLS handshake, and judge the server's certificate
/// against `policy`. Turns every failure into a precise error (refused,
/// unreachable, untrusted with thumbprints, mismatch). Safe to retry.
pub async fn probe(
    endpoint: &Endpoint,
    policy: &TlsPolicy,
    timeout: Duration,
) -> Result<PeerCertificate> {
    let address = endpoint.address();
    let addrs: Vec<_> = tokio::time::timeout(timeout, tokio::net::lookup_host(address.clone()))
        .await
        .map_err(|_| Error::UnknownHost {
            host: endpoint.host.clone(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "name resolution timed out"),
        })?
        .map_err(|source| Error::UnknownHost {
            host: endpoint.host.clone(),
            source,
        })?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {
                last_error = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ))
            }
        }
    }
    let stream = match (stream, last_error) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(connect_error(address, e)),
        (None, None) => {
            return Err(Error::UnknownHost {
                host: endpoint.host.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            })
        }
    };
    let verifier = Arc::new(PolicyVerifier::new(policy, true)?);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(verifier.clone())?));
    let server_name = ServerName::try_from(endpoint.host.clone()).map_err(|_| {
        Error::Invalid(format!(
            "`{}` is not a valid TLS server name",
            endpoint.host
        ))
    })?;
    tokio::time::timeout(timeout, connector.connect(server_name, stream))
        .await
        .map_err(|_| Error::Tls {
            address: address.clone(),
            detail: format!(
                "timed out: no answer within {}",
                crate::session::human(timeout)
            ),
        })?
        .map_err(|e| Error::Tls {
            address: address.clone(),
            detail: e.to_string(),
        })?;
    let (der, refusal) = verifier
        .seen
        .lock()
        .expect("verifier lock")
        .take()
        .ok_or_else(|| Error::Tls {
            address: address.clone(),
            detail: "the server sent no certificate".into(),
        })?;
    let peer = PeerCertificate::of(&der);
    match refusal {
        None => Ok(peer),
        Some(Refusal::Untrusted(reason)) => Err(Error::UntrustedCertificate {
            host: address,
            reason,
            sha256: peer.sha256,
            sha1: peer.sha1,
        }),
        Some(Refusal::Mismatch) => Err(Error::ThumbprintMismatch {
            host: address,
            expected: match policy {
                TlsPolicy::Pinned(t) => t.to_string(),
                _ => String::new(),
            },
            sha256: peer.sha256,
            sha1: peer.sha1,
        }),
    }
}

/// Classify a failed TCP connect.
fn connect_error(address: String, source: std::io::Error) -> Error {
    match source.kind() {
        std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused { address },
        _ => Error::Unreachable { address, source },
    }
}

/// An HTTP client that enforces `policy` on every connection, keeps cookies
/// (the SOAP session lives in one) and never waits forever: vkube's own
/// deadline ends a request after `timeouts.request` with a clear error;
/// this client's limit, a little later, is the backstop (and the limit of
/// REST calls).
pub fn http_client(
    policy: &TlsPolicy,
    connect_timeout: Duration,
    timeouts: crate::session::Timeouts,
) -> Result<reqwest::Client> {
    let verifier = Arc::new(PolicyVerifier::new(policy, false)?);
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(verifier)?)
        .cookie_store(true)
        .connect_timeout(connect_timeout)
        .timeout(timeouts.request + Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))
}

/// Like [`http_client`], for transfers that take as long as they take
/// (image uploads): no limit on the whole request, no cookies.
pub fn transfer_client(policy: &TlsPolicy, connect_timeout: Duration) -> Result<reqwest::Client> {
    let verifier = Arc::new(PolicyVerifier::new(policy, false)?);
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(verifier)?)
        .connect_timeout(connect_timeout)
        .read_timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_in_govc_and_plain_forms() {
        let sha1 = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01";
        assert_eq!(Thumbprint::parse(sha1).unwrap().to_string(), sha1);
        assert_eq!(
            Thumbprint::parse(&sha1.replace(':', "").to_lowercase())
                .unwrap()
                .to_string(),
            sha1
        );
        assert!(Thumbprint::parse(&"00".repeat(32)).is_ok());
        for bad in ["", "zz", "AB:CD", &"00".repeat(21)] {
            let err = Thumbprint::parse(bad).unwrap_err().to_string();
            assert!(err.contains("not a certificate thumbprint"), "{bad}: {err}");
        }
    }

    #[test]
    fn connect_failures_are_classified() {
        use std::io::{Error as IoError, ErrorKind};
        let refused = connect_error("h:1".into(), IoError::from(ErrorKind::ConnectionRefused));
        assert!(matches!(refused, Error::ConnectionRefused { .. }));
        for kind in [
            ErrorKind::HostUnreachable,
            ErrorKind::NetworkUnreachable,
            ErrorKind::TimedOut,
        ] {
            let err = connect_error("h:1".into(), IoError::from(kind));
            assert!(matches!(err, Error::Unreachable { .. }), "{kind:?}");
            assert_eq!(err.to_string(), "host `h:1` is unreachable");
        }
    }

    #[test]
    fn fingerprints_match_their_own_certificate() {
        let der = b"not really a certificate, but bytes to hash";
        let peer = PeerCertificate::of(der);
        assert!(Thumbprint::parse(&peer.sha256).unwrap().matches(der));
        assert!(Thumbprint::parse(&peer.sha1).unwrap().matches(der));
        assert!(!Thumbprint::parse(&peer.sha1).unwrap().matches(b"other"));
    }
}
