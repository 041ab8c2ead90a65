//! Errors of the etcd client, each naming the endpoint or the member; never key material.

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The connection settings cannot be used (no endpoint, bad URL, unreadable PEM, key not
    /// matching the certificate).
    #[error("invalid etcd access settings: {reason}")]
    InvalidAccess {
        /// Why; never contains key material.
        reason: String,
    },
    /// No TCP connection or no answer in time.
    #[error("etcd at {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The endpoint URL.
        endpoint: String,
        /// Connection refused, no answer within the timeout, …
        reason: String,
    },
    /// The TLS handshake failed (server not signed by the etcd CA, client certificate
    /// refused).
    #[error("TLS with etcd at {endpoint} failed: {reason}")]
    Tls {
        /// The endpoint URL.
        endpoint: String,
        /// The handshake failure.
        reason: String,
    },
    /// None of the endpoints answered.
    #[error("no etcd endpoint answered: {}", .failures.join("; "))]
    NoEndpointAnswered {
        /// Each endpoint's failure.
        failures: Vec<String>,
    },
    /// etcd answered with an error (`{"error": …, "code": …}`, a gRPC status code).
    #[error("{what} at {endpoint}: etcd answered HTTP {status}: {message}")]
    Api {
        /// The endpoint URL.
        endpoint: String,
        /// The operation.
        what: String,
        /// HTTP status.
        status: u16,
        /// etcd's message, e.g. `etcdserver: unhealthy cluster`.
        message: String,
    },
    /// A success answer that is not what the gateway documents.
    #[error("{what} at {endpoint}: unreadable answer: {reason}")]
    Decode {
        /// The endpoint URL.
        endpoint: String,
        /// The operation.
        what: String,
        /// The decoding failure.
        reason: String,
    },
    /// No member has this ID or name.
    #[error("etcd has no member {member}")]
    NoSuchMember {
        /// The ID (hex) or name asked for.
        member: String,
    },
    /// The removal would leave etcd without a member or without a healthy quorum.
    #[error("refusing to remove etcd member {member}: {reason}")]
    RemovalRefused {
        /// The member, `name (id)`.
        member: String,
        /// Why it is unsafe.
        reason: String,
    },
}

impl EtcdError {
    /// Whether retrying later may succeed without any change on vkube's side.
    pub fn is_transient(&self) -> bool {
        match self {
            EtcdError::Unreachable { .. } | EtcdError::NoEndpointAnswered { .. } => true,
            EtcdError::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
