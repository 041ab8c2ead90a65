//! How to reach etcd: the member endpoints, the etcd CA their server certificates chain to,
//! and a client certificate the etcd CA signed. Validated up front into a rustls
//! configuration with aws-lc-rs.

use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};

use super::error::EtcdError;
use crate::access::{certificates, check_key_matches_certificate, parse_endpoint, private_key};
use crate::error::Error;

/// Connection settings for one cluster's etcd.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdAccess {
    /// Client URLs of members to ask first, e.g. `https://10.20.0.11:2379` (a control-plane
    /// node's address); more than one so that one member down does not matter. Per-member
    /// checks use each member's advertised client URL.
    pub endpoints: Vec<String>,
    /// PEM of the etcd CA; the only trust anchor.
    pub ca_pem: String,
    /// PEM of a client certificate signed by the etcd CA.
    pub client_cert_pem: String,
    /// PEM of its private key.
    pub client_key_pem: String,
    /// Bound for connecting and for each request.
    pub timeout: Duration,
}

impl std::fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::access::debug_tls_access(
            f,
            "EtcdAccess",
            ("endpoints", &self.endpoints),
            [&self.ca_pem, &self.client_cert_pem],
            self.timeout,
        )
    }
}

impl EtcdAccess {
    /// The endpoints without trailing slashes, and the TLS configuration.
    pub(crate) fn validate(&self) -> Result<(Vec<String>, ClientConfig), EtcdError> {
        if self.endpoints.is_empty() {
            return Err(invalid("no etcd endpoint given".into()));
        }
        if self.timeout.is_zero() {
            return Err(invalid("the timeout must be greater than zero".into()));
        }
        let endpoints = self
            .endpoints
            .iter()
            .map(|endpoint| {
                let endpoint = endpoint.trim().trim_end_matches('/').to_string();
                parse_endpoint(&endpoint).map_err(from_access)?;
                Ok(endpoint)
            })
            .collect::<Result<Vec<_>, EtcdError>>()?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(&self.ca_pem, "etcd CA").map_err(from_access)? {
            roots
                .add(cert)
                .map_err(|e| invalid(format!("the etcd CA is not usable: {e}")))?;
        }
        let chain =
            certificates(&self.client_cert_pem, "client certificate").map_err(from_access)?;
        let key = private_key(&self.client_key_pem).map_err(from_access)?;
        check_key_matches_certificate(chain.clone(), key.clone_key()).map_err(from_access)?;
        let config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_root_certificates(Arc::new(roots))
            .with_client_auth_cert(chain, key)
            .map_err(|e| invalid(format!("the client certificate cannot be used: {e}")))?;
        Ok((endpoints, config))
    }
}

fn invalid(reason: String) -> EtcdError {
    EtcdError::InvalidAccess { reason }
}

fn from_access(error: Error) -> EtcdError {
    match error {
        Error::InvalidAccess { reason } => invalid(reason),
        other => invalid(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> EtcdAccess {
        EtcdAccess {
            endpoints: vec!["https://10.20.0.11:2379".into()],
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
        assert!(
            !text.contains("TOPSECRET") && text.contains("<redacted>"),
            "{text}"
        );
    }

    #[test]
    fn unusable_settings_are_named() {
        let err = |access: EtcdAccess| access.validate().err().unwrap().to_string();
        assert!(err(EtcdAccess {
            endpoints: vec![],
            ..access()
        })
        .contains("no etcd endpoint"));
        assert!(err(EtcdAccess {
            endpoints: vec!["http://10.20.0.11:2379".into()],
            ..access()
        })
        .contains("must be an https:// URL"));
        let text = err(access());
        assert!(text.contains("etcd CA PEM holds no CERTIFICATE"), "{text}");
        assert!(!text.contains("TOPSECRET"));
    }
}
