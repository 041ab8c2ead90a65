//! How to reach and authenticate to a cluster's API server: endpoint, the cluster CA that the
//! server certificate must chain to, and a client certificate with its key — what vkube's admin
//! kubeconfig holds. Validated up front so that a bad PEM or a key that does not belong to the
//! certificate is reported as such, not as a failed handshake later.

use std::time::Duration;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// Connection settings for one cluster's API server.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// API server URL, e.g. `https://10.20.0.5:6443` (the control-plane VIP).
    pub endpoint: String,
    /// PEM of the cluster CA (one or more certificates); the only trust anchors used.
    pub ca_pem: String,
    /// PEM of the client certificate (optionally followed by intermediates).
    pub client_cert_pem: String,
    /// PEM of the client's private key: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or
    /// PKCS#1 (`RSA PRIVATE KEY`).
    pub client_key_pem: String,
    /// Bound for connecting (TCP and TLS) and for each request's answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_tls_access(
            f,
            "ClusterAccess",
            ("endpoint", &self.endpoint),
            [&self.ca_pem, &self.client_cert_pem],
            self.timeout,
        )
    }
}

/// Debug output of TLS client settings: where to, the sizes of the CA and
/// certificate PEMs, never the private key.
pub(crate) fn debug_tls_access(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    target: (&str, &dyn std::fmt::Debug),
    [ca_pem, client_cert_pem]: [&String; 2],
    timeout: Duration,
) -> std::fmt::Result {
    f.debug_struct(name)
        .field(target.0, target.1)
        .field("ca_pem", &format_args!("<{} bytes>", ca_pem.len()))
        .field(
            "client_cert_pem",
            &format_args!("<{} bytes>", client_cert_pem.len()),
        )
        .field("client_key_pem", &format_args!("<redacted>"))
        .field("timeout", &timeout)
        .finish()
}

/// The access settings turned into what kube's client needs, after validation.
pub(crate) struct ValidatedAccess {
    pub(crate) endpoint: String,
    pub(crate) config: kube::Config,
}

impl ClusterAccess {
    /// Check every part and build the kube client configuration.
    pub(crate) fn validate(&self) -> Result<ValidatedAccess> {
        let endpoint = self.endpoint.trim().trim_end_matches('/').to_string();
        let uri = parse_endpoint(&endpoint)?;
        if self.timeout.is_zero() {
            return Err(invalid("the timeout must be greater than zero"));
        }
        let roots = certificates(&self.ca_pem, "cluster CA")?;
        let client_chain = certificates(&self.client_cert_pem, "client certificate")?;
        let key = private_key(&self.client_key_pem)?;
        // Normalised PEM: kube's loader refuses PEM sections it does not know, such as the
        // `EC PARAMETERS` block that `openssl ecparam -genkey` writes before the key.
        let key_pem = key_to_pem(&key);
        check_key_matches_certificate(client_chain.clone(), key)?;

        let mut config = kube::Config::new(uri);
        config.root_cert = Some(roots.iter().map(|c| c.to_vec()).collect());
        config.connect_timeout = Some(self.timeout);
        config.read_timeout = Some(self.timeout);
        config.write_timeout = Some(self.timeout);
        config.auth_info.client_certificate_data =
            Some(base64_std(&certificates_to_pem(&client_chain)));
        config.auth_info.client_key_data = Some(base64_std(&key_pem).into());
        Ok(ValidatedAccess { endpoint, config })
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidAccess {
        reason: reason.into(),
    }
}

/// An `https://host[:port]` endpoint.
pub(crate) fn parse_endpoint(endpoint: &str) -> Result<http::Uri> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| invalid(format!("endpoint `{endpoint}` is not a URL: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid(format!(
            "endpoint `{endpoint}` must be an https:// URL (client certificates need TLS)"
        )));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(format!("endpoint `{endpoint}` names no host")));
    }
    Ok(uri)
}

/// The private key of a client key PEM; the error never shows the key.
pub(crate) fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        invalid(
            "the client key PEM holds no private key (expected `PRIVATE KEY` (PKCS#8), \
             `EC PRIVATE KEY` (SEC1) or `RSA PRIVATE KEY` (PKCS#1))",
        )
    })
}

/// Every certificate of a PEM; at least one.
pub(crate) fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("the {what} PEM is unreadable: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "the {what} PEM holds no CERTIFICATE block"
        )));
    }
    Ok(certs)
}

/// Refuses a key that is not the certificate's.
pub(crate) fn check_key_matches_certificate(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<()> {
    let provider = crate::tls::provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map(|_| ())
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                invalid("the client key does not belong to the client certificate")
            }
            other => invalid(format!("the client key cannot be used: {other}")),
        })
}

fn key_to_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem_block(label, key.secret_der())
}

fn certificates_to_pem(chain: &[CertificateDer<'_>]) -> String {
    chain.iter().map(|c| pem_block("CERTIFICATE", c)).collect()
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn base64_std(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> ClusterAccess {
        ClusterAccess {
            endpoint: "https://10.20.0.5:6443".into(),
            ca_pem: String::new(),
            client_cert_pem: String::new(),
            client_key_pem: "-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n"
                .into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let text = format!("{:?}", access());
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(text.contains("https://10.20.0.5:6443"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn plain_http_and_hostless_endpoints_are_refused() {
        for endpoint in ["http://10.20.0.5:6443", "10.20.0.5:6443", "https://"] {
            let err = parse_endpoint(endpoint).unwrap_err();
            assert!(
                matches!(err, Error::InvalidAccess { .. }),
                "{endpoint}: {err:?}"
            );
        }
        assert!(parse_endpoint("https://[fd00::5]:6443").is_ok());
    }

    #[test]
    fn missing_pem_blocks_are_named_and_the_key_is_never_echoed() {
        let err = access().validate().err().expect("empty CA must fail");
        assert!(
            err.to_string()
                .contains("cluster CA PEM holds no CERTIFICATE"),
            "{err}"
        );

        let err = PrivateKeyDer::from_pem_slice(access().client_key_pem.as_bytes());
        assert!(err.is_err(), "the garbage key is not a key");
    }

    #[test]
    fn pem_blocks_wrap_at_64_columns() {
        let pem = pem_block("CERTIFICATE", &[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        let body: String = lines[1..lines.len() - 1].concat();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
            vec![7u8; 100]
        );
    }
}
