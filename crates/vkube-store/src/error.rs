//! The store's error type. Variants name the pool, cluster or file involved;
//! causes stay in `#[source]`.

use std::path::PathBuf;

use vkube_core::ipam::{AddressRange, PoolName};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No pool has this name.
    #[error("IP pool `{pool}` not found")]
    PoolNotFound {
        /// The name asked for.
        pool: String,
    },
    /// A pool with this name already exists.
    #[error("IP pool `{pool}` already exists")]
    PoolExists {
        /// The name.
        pool: PoolName,
    },
    /// Every allocatable address of the pool is leased.
    #[error("pool `{pool}` is full: {used} of {total} in use")]
    PoolFull {
        /// The pool.
        pool: PoolName,
        /// Addresses leased.
        used: u128,
        /// Addresses the pool can hand out.
        total: u128,
    },
    /// The pool is restricted to the first cluster that used it, and that is
    /// another cluster.
    #[error("pool `{pool}` is restricted to cluster `{owner}`; cluster `{requested}` cannot allocate from it")]
    PoolRestricted {
        /// The pool.
        pool: PoolName,
        /// The cluster that owns it.
        owner: String,
        /// The cluster that asked.
        requested: String,
    },
    /// The pool still has leases and deletion was not forced.
    #[error(
        "pool `{pool}` has {allocated} allocated address(es); release them first or pass `--force`"
    )]
    PoolInUse {
        /// The pool.
        pool: PoolName,
        /// Leases it holds.
        allocated: u64,
    },
    /// The new pool shares addresses with an existing one.
    #[error("pool `{pool}` overlaps pool `{other}` at {addresses} (pass `--allow-overlap` if this is intended)")]
    Overlap {
        /// The pool being created.
        pool: PoolName,
        /// The existing pool.
        other: PoolName,
        /// The shared addresses.
        addresses: AddressRange,
    },
    /// A cluster or node name is unusable.
    #[error("{field} {problem}")]
    Invalid {
        /// `cluster` or `node`.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The state file was written by a newer vkube.
    #[error("state file `{}` has schema version {found}, but this vkube only knows up to {supported}; upgrade vkube", path.display())]
    SchemaTooNew {
        /// The state file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// Stored data does not parse; the file was edited or damaged.
    #[error("state file holds an unreadable {what}: {problem}")]
    Corrupt {
        /// What was being read, e.g. "definition of pool `lab`".
        what: String,
        /// Why it did not parse.
        problem: String,
    },
    /// No state path was given and no data directory could be found.
    #[error(
        "cannot find a data directory for the state file; pass `--state` or set `VKUBE_STATE`"
    )]
    NoStatePath,
    /// Creating the state file or its directory failed.
    #[error("preparing state file `{}`", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("state database error while {action}")]
    Database {
        /// What the store was doing, e.g. "allocating from pool `lab`".
        action: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
}
