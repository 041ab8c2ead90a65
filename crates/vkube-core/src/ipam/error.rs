//! Errors of the IPAM module: validation problems, overlaps and YAML syntax.

use std::fmt;

use super::address::AddressRange;
use super::pool::PoolName;

pub use crate::problem::Problem;

/// Errors from parsing or validating IP pools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The definition is invalid; every problem found is listed, not just the first.
    #[error("{}", crate::problem::render("IP pool", problems))]
    Invalid {
        /// All problems found, in field order.
        problems: Vec<Problem>,
    },
    /// Two pools share addresses, and overlapping was not allowed.
    #[error("pool `{pool}` overlaps pool `{other}` at {addresses} (pass `--allow-overlap` if this is intended)")]
    Overlap {
        /// The pool being added.
        pool: PoolName,
        /// The pool it collides with.
        other: PoolName,
        /// The addresses both pools hold.
        addresses: AddressRange,
    },
    /// The YAML could not be read at all.
    #[error("reading IP pools YAML")]
    Yaml {
        /// The parser's error, with line and column.
        #[source]
        source: serde_yaml::Error,
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

/// Collects problems under a field prefix such as `pools[2].`.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    prefix: String,
    pub(crate) list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn new(prefix: &str) -> Self {
        Problems {
            prefix: prefix.to_owned(),
            list: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, field: impl fmt::Display, problem: impl fmt::Display) {
        self.list.push(Problem {
            field: format!("{}{}", self.prefix, field),
            message: problem.to_string(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
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
