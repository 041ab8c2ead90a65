//! Errors of the topology module: an invalid topology file (every problem
//! listed, each naming its field like `zones[1].computeCluster`), YAML
//! syntax, and zones the resolver does not know.

use std::fmt;

pub use crate::problem::Problem;

/// Everything that can go wrong in this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The YAML is malformed, has a wrong type or an unknown field.
    #[error("cannot read topology file `{file}`{}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Syntax {
        /// Source name (path) of the file.
        file: String,
        /// Line reported by the YAML parser.
        line: Option<usize>,
        /// The parser's own message.
        #[source]
        source: serde_yaml::Error,
    },
    /// The topology is invalid, or does not match the inventory; every
    /// problem found is listed, not just the first.
    #[error("{}", crate::problem::render("topology", problems))]
    Invalid {
        /// All problems found, in field order.
        problems: Vec<Problem>,
    },
    /// A zone asked for is not tagged anywhere.
    #[error("unknown zone `{zone}`{}", known_list(known))]
    UnknownZone {
        /// The zone asked for.
        zone: String,
        /// The zones that exist.
        known: Vec<String>,
    },
    /// Two zones map to the same StorageClass name.
    #[error("zones `{first}` and `{second}` both render as StorageClass `{name}`")]
    StorageClassClash {
        /// First zone.
        first: String,
        /// Second zone.
        second: String,
        /// The shared name.
        name: String,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (no zones are tagged)".into()
    } else {
        format!(
            " (known: {})",
            known
                .iter()
                .map(|z| format!("`{z}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Collects problems; turns into [`Error::Invalid`] when any were found.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(&mut self, field: impl fmt::Display, problem: impl fmt::Display) {
        self.list.push(Problem {
            field: field.to_string(),
            message: problem.to_string(),
        });
    }

    pub(crate) fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, Error> {
        if self.list.is_empty() {
            Ok(value())
        } else {
            Err(Error::Invalid {
                problems: self.list,
            })
        }
    }
}
