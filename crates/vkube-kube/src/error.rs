//! Errors of the Kubernetes client, each naming the endpoint or the object it concerns.
//!
//! Transport failures are classified by walking the error's source chain (connection refused,
//! timeouts, TLS alerts); API failures by the HTTP status and the `Status` body the API server
//! sends. Messages never contain key material: the client key is never formatted anywhere, and
//! values of Secrets being applied are scrubbed from server messages (see [`Redactor`]).

use std::time::Duration;

use crate::drain::{BlockedEviction, PodRef};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to a Kubernetes API server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection settings cannot be used (bad endpoint URL, unreadable PEM, key not
    /// matching the certificate, no Tokio runtime).
    #[error("invalid Kubernetes API access settings: {reason}")]
    InvalidAccess {
        /// Why; never contains key material.
        reason: String,
    },
    /// No TCP connection or no answer in time.
    #[error("the Kubernetes API at {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The API server URL.
        endpoint: String,
        /// Connection refused, no answer within the timeout, DNS failure, …
        reason: String,
    },
    /// The TLS handshake failed: the server's certificate is not signed by the cluster CA or
    /// does not name the endpoint, or the server refused the client certificate.
    #[error("TLS with the Kubernetes API at {endpoint} failed: {reason}")]
    Tls {
        /// The API server URL.
        endpoint: String,
        /// The handshake failure.
        reason: String,
    },
    /// 401: the API server does not accept the client credentials.
    #[error(
        "the Kubernetes API at {endpoint} does not accept the client credentials \
         (401 Unauthorized); is the client certificate expired or from another cluster?"
    )]
    Unauthorized {
        /// The API server URL.
        endpoint: String,
    },
    /// 403: authenticated, but not allowed (RBAC), or the namespace is terminating.
    #[error("forbidden: {what}: {message}")]
    Forbidden {
        /// The operation and object, e.g. `apply of ClusterRole cilium (document 4)`.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// 404 for an object or resource that was expected to exist.
    #[error("not found: {what}: {message}")]
    NotFound {
        /// The operation and object.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// 409: a field-manager conflict or a concurrent modification.
    #[error("conflict: {what}: {message}")]
    Conflict {
        /// The operation and object.
        what: String,
        /// The API server's message (for apply conflicts it names the fields and managers).
        message: String,
    },
    /// 422 (or 400): the API server refused the object as invalid.
    #[error("rejected as invalid: {what}: {message}")]
    Rejected {
        /// The operation and object.
        what: String,
        /// The API server's message, naming the offending fields.
        message: String,
    },
    /// A document of a manifest stream is not a usable Kubernetes object.
    #[error("manifest {location}: {reason}")]
    InvalidManifest {
        /// 1-based number of the document in the stream (counting empty documents).
        document: usize,
        /// Where in the stream, e.g. `document 3` or `document 3, item 2` for a `List`.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The API server serves no resource for a document's `apiVersion` and `kind`.
    #[error(
        "manifest {location} ({object}): the API server serves no kind {kind} in {api_version}; \
         is its CustomResourceDefinition installed?"
    )]
    UnknownKind {
        /// 1-based number of the document in the stream.
        document: usize,
        /// Where in the stream.
        location: String,
        /// The object, e.g. `CiliumNetworkPolicy kube-system/default-deny`.
        object: String,
        /// The document's `apiVersion`.
        api_version: String,
        /// The document's `kind`.
        kind: String,
    },
    /// Any other non-success answer (429, 5xx, …).
    #[error("{what}: the API server answered {status}: {message}")]
    Api {
        /// The operation and object.
        what: String,
        /// HTTP status code.
        status: u16,
        /// The API server's message.
        message: String,
    },
    /// A success answer whose body is not what the API documents.
    #[error("{what}: unreadable answer from the API server: {reason}")]
    Decode {
        /// The operation and object.
        what: String,
        /// The decoding failure.
        reason: String,
    },
    /// An argument is not acceptable (bad token id, empty field manager, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A drain did not finish within its timeout: evictions still refused (naming the
    /// PodDisruptionBudgets that select each pod) or evicted pods still terminating.
    #[error("{}", crate::drain::timeout_message(.node, *.timeout, .blocked, .terminating))]
    DrainTimedOut {
        /// The node.
        node: String,
        /// The drain's timeout.
        timeout: Duration,
        /// Evictions the API server still refused.
        blocked: Vec<BlockedEviction>,
        /// Pods evicted but not gone.
        terminating: Vec<PodRef>,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed without any change on vkube's side:
    /// the API is not up yet, overloaded (429) or failing (5xx). First-boot add-on delivery and
    /// readiness waits retry these until their deadline; everything else is final.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The `Status` object an API server sends with a failure (only the fields used here).
#[derive(Debug, Default, serde::Deserialize)]
struct StatusBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
}

/// Map a non-success HTTP answer to an error about `what`.
pub(crate) fn from_status(
    endpoint: &str,
    what: &str,
    status: u16,
    body: &[u8],
    redactor: &Redactor,
) -> Error {
    let parsed: StatusBody = serde_json::from_slice(body).unwrap_or_default();
    let message = if parsed.message.is_empty() {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            parsed.reason.clone()
        } else {
            text.chars().take(500).collect()
        }
    } else {
        parsed.message
    };
    let message = redactor.scrub(&message);
    let what = what.to_string();
    match status {
        401 => Error::Unauthorized {
            endpoint: endpoint.to_string(),
        },
        403 => Error::Forbidden { what, message },
        404 => Error::NotFound { what, message },
        409 => Error::Conflict { what, message },
        400 | 422 => Error::Rejected { what, message },
        _ => Error::Api {
            what,
            status,
            message,
        },
    }
}

/// Map a transport failure (no HTTP answer) to [`Error::Unreachable`] or [`Error::Tls`].
pub(crate) fn from_transport(endpoint: &str, err: &(dyn std::error::Error + 'static)) -> Error {
    match transport_failure(err, "cluster CA") {
        TransportFailure::Tls(reason) => Error::Tls {
            endpoint: endpoint.to_string(),
            reason,
        },
        TransportFailure::Unreachable(reason) => Error::Unreachable {
            endpoint: endpoint.to_string(),
            reason,
        },
    }
}

/// A request that got no HTTP answer, classified, with a one-line reason.
pub(crate) enum TransportFailure {
    /// The TLS handshake failed.
    Tls(String),
    /// No connection, or it broke.
    Unreachable(String),
}

/// Classifies a transport failure by its source chain; `ca_name` names the CA the server
/// certificate must chain to (`cluster CA`, `etcd CA`).
pub(crate) fn transport_failure(
    err: &(dyn std::error::Error + 'static),
    ca_name: &str,
) -> TransportFailure {
    let chain = source_chain(err);
    if let Some(tls) = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return TransportFailure::Tls(one_line(&describe_tls(tls, ca_name)));
    }
    let reason = chain
        .iter()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .map(describe_io)
        .unwrap_or_else(|| {
            // The innermost message is the most specific one (e.g. the DNS resolver's).
            chain.last().map(|e| e.to_string()).unwrap_or_default()
        });
    TransportFailure::Unreachable(one_line(&reason))
}

/// `text` on one line: an unreachable API is reported in one line next to other output.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The error raised when a whole request outlives its deadline.
pub(crate) fn timed_out(endpoint: &str, timeout: Duration) -> Error {
    Error::Unreachable {
        endpoint: endpoint.to_string(),
        reason: format!("no answer within {}", humanize(timeout)),
    }
}

/// A duration as people write it: `2m`, `5s`, `1.5s`, `300ms`.
pub(crate) fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match (seconds, duration.subsec_millis()) {
        (0, millis) => format!("{millis}ms"),
        (s, 0) if s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        _ => format!("{:.1}s", duration.as_secs_f64()),
    }
}

/// Every error in the chain, including the payload of `io::Error`s (whose `source()` skips
/// the wrapped error itself, which is where tokio-rustls puts the `rustls::Error`).
fn source_chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(err);
    while let Some(current) = next {
        chain.push(current);
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        next = inner.or_else(|| current.source());
    }
    chain
}

fn describe_io(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::TimedOut => "connection timed out".to_string(),
        ErrorKind::ConnectionReset => "connection reset by the server".to_string(),
        ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
        _ => err.to_string(),
    }
}

fn describe_tls(err: &rustls::Error, ca_name: &str) -> String {
    use rustls::{AlertDescription, CertificateError};
    match err {
        // kubeadm names every cluster CA `kubernetes`, so another cluster's certificate at the
        // same address fails on the signature rather than on the issuer's name.
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!("the server certificate is not signed by the {ca_name}"),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the server certificate does not name the endpoint's host or address".to_string()
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the server certificate has expired".to_string()
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied),
        ) => format!(
            "the server refused the client certificate ({alert:?}); \
             is it signed by the {ca_name}?"
        ),
        other => other.to_string(),
    }
}

/// Scrubs secret values (those of a Secret being applied, a bootstrap token's secret) from
/// messages that the API server may echo back.
#[derive(Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these values, also in the Go-quoted form field errors print (`\n` as
    /// two characters) and line by line (a long value may be cut short in a message); pieces
    /// shorter than 4 characters are not secrets worth garbling every message for.
    pub(crate) fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values
            .into_iter()
            .flat_map(|value| {
                let mut forms = vec![go_quoted(&value)];
                if value.contains('\n') {
                    forms.extend(value.lines().map(|line| line.trim().to_string()));
                }
                forms.push(value);
                forms
            })
            .filter(|v| v.len() >= 4)
            .collect();
        secrets.dedup();
        // Longest first, so a value containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |acc, secret| {
            acc.replace(secret.as_str(), "<redacted>")
        })
    }
}

/// The inside of Go's `%q` rendering of `value` for the characters that matter in configs.
fn go_quoted(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORBIDDEN: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"clusterroles.rbac.authorization.k8s.io \"cilium\" is forbidden: User \"ops\" cannot patch resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope","reason":"Forbidden","details":{"name":"cilium","group":"rbac.authorization.k8s.io","kind":"clusterroles"},"code":403}"#;

    #[test]
    fn status_403_becomes_forbidden_with_the_servers_message() {
        let err = from_status(
            "https://10.0.0.1:6443",
            "apply of ClusterRole cilium",
            403,
            FORBIDDEN.as_bytes(),
            &Redactor::default(),
        );
        match &err {
            Error::Forbidden { what, message } => {
                assert_eq!(what, "apply of ClusterRole cilium");
                assert!(message.contains("cannot patch resource \"clusterroles\""));
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        assert!(!err.is_transient());
    }

    #[test]
    fn status_without_json_body_keeps_the_text_and_5xx_is_transient() {
        let err = from_status(
            "e",
            "GET /version",
            503,
            b"service unavailable\n",
            &Redactor::default(),
        );
        assert!(err.is_transient());
        assert!(
            err.to_string().contains("503: service unavailable"),
            "{err}"
        );
    }

    #[test]
    fn redactor_scrubs_secret_values_from_server_messages() {
        let redactor = Redactor::new(["s3cr3t-pass".to_string(), "abc".to_string()]);
        let err = from_status(
            "e",
            "apply of Secret kube-system/vsphere-config-secret",
            422,
            br#"{"kind":"Status","message":"data[password]: Invalid value: \"s3cr3t-pass\": abc"}"#,
            &redactor,
        );
        let text = err.to_string();
        assert!(!text.contains("s3cr3t-pass"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(text.ends_with("abc"), "short values are left alone: {text}");
    }

    #[test]
    fn redactor_scrubs_quoted_and_partial_multi_line_values() {
        let redactor = Redactor::new(["[Global]\nuser = u\npassword = hunter2-pass\n".to_string()]);
        let quoted = r#"Invalid value: "[Global]\nuser = u\npassword = hunter2-pass\n""#;
        assert!(
            !redactor.scrub(quoted).contains("hunter2"),
            "{}",
            redactor.scrub(quoted)
        );
        let cut = r#"Invalid value: "...password = hunter2-pass...""#;
        assert!(
            !redactor.scrub(cut).contains("hunter2"),
            "{}",
            redactor.scrub(cut)
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let cases = [
            (120_000, "2m"),
            (5_000, "5s"),
            (1_500, "1.5s"),
            (300, "300ms"),
        ];
        for (millis, text) in cases {
            assert_eq!(humanize(Duration::from_millis(millis)), text);
        }
    }

    #[test]
    fn io_error_payloads_are_part_of_the_chain() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let err = from_transport("https://10.0.0.1:6443", &io);
        assert!(
            matches!(&err, Error::Tls { reason, .. } if reason.contains("not signed by the cluster CA")),
            "{err:?}"
        );
    }
}
