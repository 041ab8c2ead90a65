//! Errors of the cluster module: spec problems (all reported together),
//! YAML syntax, and failures while rendering bootstrap data or key material.
//!
//! Leaves out vSphere, store and I/O errors: those belong to the crates
//! that do the I/O.

use std::fmt;

pub use crate::problem::Problem;

/// Errors from parsing, validating, planning or rendering a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec is invalid; every problem found is listed, not just the first.
    #[error("{}", crate::problem::render("cluster spec", problems))]
    Invalid {
        /// All problems found, in field order.
        problems: Vec<Problem>,
    },
    /// The YAML could not be read at all.
    #[error("reading cluster spec YAML")]
    Yaml {
        /// The parser's error, with line, column and field path.
        #[source]
        source: serde_yaml::Error,
    },
    /// A node needs an address but its lease is missing (static allocation).
    #[error("node `{node}` has no address lease (static IP allocation)")]
    MissingLease {
        /// The node without a lease.
        node: String,
    },
    /// A node's bootstrap data cannot be rendered from what was passed in
    /// (a malformed MAC address, a zero token TTL).
    #[error("cannot render bootstrap data for node `{node}`: {reason}")]
    Bootstrap {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A node's bootstrap data, read back from its VM, is not what vkube
    /// wrote (the VM was edited).
    #[error("cannot read back the bootstrap data of node `{node}`: {reason}")]
    Recovery {
        /// The node.
        node: String,
        /// What is unreadable.
        reason: String,
    },
    /// Key material handed in could not be used.
    #[error("invalid key material for `{what}`: {reason}")]
    KeyMaterial {
        /// Which key, e.g. `ca.key`.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// Building a certificate failed.
    #[error("building certificate `{what}`")]
    Certificate {
        /// Which certificate, e.g. `admin`.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
}

impl Error {
    /// The problems if this is [`Error::Invalid`], else an empty slice.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

/// Collects problems while validating; every check pushes and carries on.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(&mut self, field: impl fmt::Display, message: impl fmt::Display) {
        self.list.push(Problem {
            field: field.to_string(),
            message: message.to_string(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
