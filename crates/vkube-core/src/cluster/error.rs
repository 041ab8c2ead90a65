//! Errors of the cluster module: spec problems (all reported together),
//! YAML syntax, and failures while rendering bootstrap data or key material.
//!
//! Leaves out vSphere, store and I/O errors: those belong to the crates
//! that do the I/O.

use std::fmt;

/// One thing wrong with a cluster spec, naming the field like
/// `spec.nodePools[1].placementDomains[0]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Path of the offending field, e.g. `spec.controlPlane.replicas`.
    pub field: String,
    /// What is wrong, starting lowercase, e.g. `unknown domain "az3"`.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Errors from parsing, validating, planning or rendering a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec is invalid; every problem found is listed, not just the first.
    #[error("{}", render_problems(problems))]
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

fn render_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => format!("invalid cluster spec: {one}"),
        many => {
            let mut text = format!("invalid cluster spec: {} problems", many.len());
            for problem in many {
                text.push_str("\n  ");
                text.push_str(&problem.to_string());
            }
            text
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
