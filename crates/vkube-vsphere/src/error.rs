//! The vSphere layer's error type: every failure names the object, path or
//! privilege it concerns. Raw SOAP/JSON never leaks into a message; `vim_rs`
//! faults are translated here, in one place.

use std::sync::Arc;

use vim_rs::core::client::Error as VimClientError;
use vim_rs::core::error::{Error as VimError, ErrorKind as VimErrorKind};
use vim_rs::types::structs::MethodFault;

use crate::fault::Fault;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to vCenter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL given is not usable.
    #[error("invalid vCenter URL `{url}`: {problem}")]
    InvalidUrl {
        /// What the user gave.
        url: String,
        /// Why it is unusable.
        problem: String,
    },
    /// DNS did not resolve the host name.
    #[error("cannot resolve host `{host}`")]
    UnknownHost {
        /// Host name.
        host: String,
        /// Resolver error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing listens on the port.
    #[error("connection to `{address}` refused")]
    ConnectionRefused {
        /// host:port.
        address: String,
    },
    /// No route, or no answer within the connect timeout.
    #[error("host `{address}` is unreachable")]
    Unreachable {
        /// host:port.
        address: String,
        /// Socket error.
        #[source]
        source: std::io::Error,
    },
    /// The server's certificate does not chain to a trusted root.
    #[error("the TLS certificate of `{host}` is not trusted ({reason})")]
    UntrustedCertificate {
        /// host:port.
        host: String,
        /// What the verifier said.
        reason: String,
        /// SHA-256 fingerprint of the leaf certificate.
        sha256: String,
        /// SHA-1 fingerprint (what govc and vCenter show).
        sha1: String,
    },
    /// A thumbprint was pinned and the server presented another certificate.
    #[error("the TLS certificate of `{host}` does not match the pinned thumbprint `{expected}`")]
    ThumbprintMismatch {
        /// host:port.
        host: String,
        /// The pinned thumbprint.
        expected: String,
        /// SHA-256 fingerprint actually presented.
        sha256: String,
        /// SHA-1 fingerprint actually presented.
        sha1: String,
    },
    /// The TLS handshake failed for a reason other than trust.
    #[error("TLS handshake with `{address}` failed: {detail}")]
    Tls {
        /// host:port.
        address: String,
        /// Handshake error.
        detail: String,
    },
    /// A CA file could not be used.
    #[error("cannot use CA file `{path}`: {problem}")]
    CaFile {
        /// File path.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// vCenter rejected the credentials.
    #[error("login as `{user}` to `{host}` failed: wrong user name or password")]
    InvalidLogin {
        /// User name.
        user: String,
        /// host:port.
        host: String,
    },
    /// The server answered, but not as a vCenter does.
    #[error("`{url}` is not a vCenter: {detail}")]
    NotVcenter {
        /// The SDK URL.
        url: String,
        /// What the server answered instead.
        detail: String,
    },
    /// An inventory path does not resolve.
    #[error("{kind} `{path}` not found: `{parent}` has no `{missing}`")]
    NotFound {
        /// What was looked for (VM, datastore, inventory path...).
        kind: String,
        /// The full path given.
        path: String,
        /// The deepest prefix that exists.
        parent: String,
        /// The first segment that does not exist.
        missing: String,
    },
    /// The session lacks a privilege.
    #[error("permission denied on `{object}`: missing privilege `{privilege}`")]
    PermissionDenied {
        /// Object the call was made on.
        object: String,
        /// The privilege vCenter named.
        privilege: String,
    },
    /// Any other fault vCenter raised for a call.
    #[error("{operation}: vCenter raised `{fault}`{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Fault {
        /// What vkube was doing.
        operation: String,
        /// The fault, e.g. [`Fault::DuplicateName`]; never
        /// [`Fault::NoPermission`], which is [`Error::PermissionDenied`].
        fault: Fault,
        /// vCenter's message, when it sent one.
        message: Option<String>,
    },
    /// Transport failure after connecting (reset, timeout, HTTP error).
    #[error("{operation}: request to vCenter failed: {detail}")]
    Transport {
        /// What vkube was doing.
        operation: String,
        /// Transport detail.
        detail: String,
    },
    /// The answer did not have the expected shape.
    #[error("{operation}: unexpected answer from vCenter: {detail}")]
    Protocol {
        /// What vkube was doing.
        operation: String,
        /// What was unexpected.
        detail: String,
    },
    /// vCenter did not answer a request within its deadline (hung,
    /// overloaded, or the network drops packets).
    #[error("{operation}: vCenter `{host}` did not answer {call} within {}", crate::session::human(*waited))]
    NoAnswer {
        /// What vkube was doing.
        operation: String,
        /// host:port.
        host: String,
        /// The request, e.g. "`CloneVM_Task` on `vm-42`".
        call: String,
        /// How long vkube waited.
        waited: std::time::Duration,
    },
    /// A vSphere task's state and progress stopped changing for longer than
    /// the stall limit.
    #[error("{operation}: vCenter `{host}` reported no progress of task `{task}` for {} (it is {state})", crate::session::human(*waited))]
    TaskStalled {
        /// What vkube was doing.
        operation: String,
        /// host:port.
        host: String,
        /// The task's id, e.g. `task-42`.
        task: String,
        /// How long it has not changed.
        waited: std::time::Duration,
        /// Where it stands, e.g. "running at 40 %".
        state: String,
    },
    /// The caller asked for something the input cannot satisfy.
    #[error("{0}")]
    Invalid(String),
    /// vCenter's REST (vAPI) endpoint answered a call with an error.
    #[error(
        "{operation}: vCenter answered HTTP {status}{}{}",
        error_type.as_ref().map(|t| format!(" `{t}`")).unwrap_or_default(),
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    RestFault {
        /// What vkube was doing.
        operation: String,
        /// HTTP status.
        status: u16,
        /// vAPI error type, e.g. `ALREADY_EXISTS`, `NOT_FOUND`.
        error_type: Option<String>,
        /// vCenter's message, when it sent one.
        message: Option<String>,
    },
}

impl Error {
    /// A next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::UntrustedCertificate { sha256, .. } => Some(format!(
                "if you trust this server, pin its certificate with `--thumbprint {sha256}`, pass its CA with `--ca-file`, or skip verification with `--insecure`"
            )),
            Error::ThumbprintMismatch { sha256, .. } => Some(format!(
                "the server now presents `{sha256}`; if the certificate was replaced on purpose, pin the new thumbprint"
            )),
            Error::InvalidLogin { .. } => Some(
                "check `--username` and the password (`--password-file`, `VKUBE_PASSWORD` or `GOVC_PASSWORD`)".into(),
            ),
            Error::ConnectionRefused { .. } => {
                Some("check the port in `--url`; vCenter serves its API on 443".into())
            }
            Error::PermissionDenied { object, privilege } => Some(format!(
                "grant `{privilege}` on `{object}` to this user (see `vkube roles check`)"
            )),
            Error::NotVcenter { .. } => Some("vkube needs a vCenter Server, not an ESXi host or another service".into()),
            Error::NoAnswer { host, .. } | Error::TaskStalled { host, .. } => Some(format!(
                "vCenter `{host}` may be hung or overloaded: check it and the network, then run the command again (it is safe to repeat); `--request-timeout` and `--task-stall-timeout` wait longer"
            )),
            _ => None,
        }
    }

    /// Whether the session expired and a new login may fix the call.
    pub(crate) fn is_not_authenticated(err: &VimClientError) -> bool {
        matches!(err, VimClientError::MethodFault(f) if fault_of(f) == Fault::NotAuthenticated)
    }

    /// The error for `fault` raised while doing `operation`: a missing
    /// privilege becomes [`Error::PermissionDenied`], anything else
    /// [`Error::Fault`].
    pub fn raised(operation: &str, fault: Fault, message: Option<String>) -> Self {
        match fault {
            Fault::NoPermission { privilege, object } => Error::PermissionDenied {
                object: if object == "unknown" {
                    operation.to_owned()
                } else {
                    object
                },
                privilege,
            },
            fault => Error::Fault {
                operation: operation.into(),
                fault,
                message,
            },
        }
    }

    /// Whether vCenter stopped answering (a request or a task): waiting
    /// again right away is unlikely to help.
    pub fn is_no_answer(&self) -> bool {
        matches!(self, Error::NoAnswer { .. } | Error::TaskStalled { .. })
    }

    /// Translate a `vim_rs` client error raised while doing `operation`.
    pub fn from_client(operation: &str, err: VimClientError) -> Self {
        if let Some(no_answer) = crate::session::NoAnswer::decode(&err) {
            return no_answer.into_error(operation);
        }
        match err {
            VimClientError::MethodFault(fault) => Self::from_fault(operation, &fault),
            VimClientError::ReqwestError(e) => Error::Transport {
                operation: operation.into(),
                detail: describe_reqwest(&e),
            },
            VimClientError::ParseError(detail) => Error::Protocol {
                operation: operation.into(),
                detail: first_line(&detail),
            },
            other => Error::Protocol {
                operation: operation.into(),
                detail: first_line(&other.to_string()),
            },
        }
    }

    /// Translate a `vim_rs` property-collector or task error.
    pub fn from_vim(operation: &str, err: VimError) -> Self {
        if let Some(fault) = err.task_fault() {
            return Self::from_fault(operation, fault);
        }
        if let Some(client) = err.client_error() {
            return Self::from_client(operation, client.clone());
        }
        match err.kind() {
            VimErrorKind::TaskCancelled => Error::raised(
                operation,
                Fault::RequestCanceled,
                Some("the task was cancelled".into()),
            ),
            _ => Error::Protocol {
                operation: operation.into(),
                detail: first_line(&err.to_string()),
            },
        }
    }

    /// Translate a vSphere `MethodFault`.
    pub fn from_fault(operation: &str, fault: &MethodFault) -> Self {
        Error::raised(operation, fault_of(fault), fault_message(fault))
    }

    /// Whether a REST call failed because the name is taken (a create raced
    /// another, or the object exists).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::RestFault { error_type: Some(t), .. } if t == "ALREADY_EXISTS")
    }

    /// The vSphere fault, if this error is one ([`Error::PermissionDenied`]
    /// is [`Fault::NoPermission`]).
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Error::Fault { fault, .. } => Some(fault.clone()),
            Error::PermissionDenied { object, privilege } => {
                Some(Fault::no_permission(privilege, object))
            }
            _ => None,
        }
    }

    /// Whether this error is the fault `fault` (for fault kinds without fields).
    pub fn is(&self, fault: &Fault) -> bool {
        matches!(self, Error::Fault { fault: f, .. } if f == fault)
    }
}

/// The fault a `MethodFault` is, with the privilege and object of a
/// `NoPermission`.
pub(crate) fn fault_of(fault: &MethodFault) -> Fault {
    let name = fault
        .type_
        .map(|t| t.as_str().to_string())
        .unwrap_or_else(|| "MethodFault".into());
    match Fault::from_name(&name) {
        Fault::NoPermission { .. } => Fault::no_permission(
            extra_str(fault, "privilegeId").unwrap_or_else(|| "unknown".into()),
            extra_str(fault, "object").unwrap_or_else(|| "unknown".into()),
        ),
        other => other,
    }
}

/// A readable message from the fault's localized messages and well-known fields.
fn fault_message(fault: &MethodFault) -> Option<String> {
    let mut parts: Vec<String> = fault
        .fault_message
        .iter()
        .flatten()
        .filter_map(|m| m.message.clone())
        .filter(|m| !m.is_empty())
        .collect();
    for key in [
        "invalidProperty",
        "name",
        "text",
        "reason",
        "msg",
        "propertyPath",
    ] {
        if let Some(v) = extra_str(fault, key) {
            parts.push(format!("{key} `{v}`"));
        }
    }
    if let Some(cause) = &fault.fault_cause {
        parts.push(format!("caused by `{}`", fault_of(cause)));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn extra_str(fault: &MethodFault, key: &str) -> Option<String> {
    use miniserde::json::Value;
    match fault.extra_fields_.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("value").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        }),
        _ => None,
    }
}

pub(crate) fn describe_reqwest(e: &Arc<reqwest::Error>) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if let Some(status) = e.status() {
        return format!("HTTP {status}");
    }
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e.as_ref());
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    detail
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    // SOAP bodies sometimes end up in parse errors; never show markup.
    if line.starts_with('<') {
        "the response was not a valid vSphere API answer".into()
    } else {
        line.chars().take(300).collect()
    }
}
