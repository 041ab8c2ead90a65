//! The store's error type. Variants name the pool, cluster or file involved;
//! causes stay in `#[source]`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use vkube_core::ipam::{AddressRange, PoolName};

use crate::journal::IntentId;
use crate::time::human;

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
    /// The pool cannot lease this exact address to this node.
    #[error("address {address} of pool `{pool}` cannot be leased to node `{node}`: {reason}")]
    AddressUnavailable {
        /// The pool.
        pool: PoolName,
        /// The address asked for.
        address: IpAddr,
        /// The node it was asked for.
        node: String,
        /// Why not: outside the pool, leased to another node, ….
        reason: String,
    },
    /// The cluster lives in another vCenter than the one connected to.
    #[error("cluster `{cluster}` lives in vCenter {recorded}, but this connection is to vCenter {connected}: vkube never applies a cluster's state to another vCenter (after a vCenter rebuild its VM ids mean other VMs); connect to the cluster's vCenter, or forget the cluster with `vkube cluster delete {cluster} --force --now`")]
    VcenterMismatch {
        /// The cluster.
        cluster: String,
        /// The vCenter instance UUID recorded with the cluster.
        recorded: String,
        /// The vCenter connected to: its instance UUID, and how it was reached.
        connected: String,
    },
    /// The state file exists but holds no vkube schema: emptied (a
    /// truncated file is 0 bytes) or not vkube's.
    #[error("state file `{}` exists but {problem}, so it is not used as a fresh state (that would duplicate every cluster it held); restore it from a backup, or move it aside and take each cluster's VMs over again with `vkube cluster adopt -f SPEC`; remove it only if it never held a cluster", path.display())]
    StateWithoutSchema {
        /// The file.
        path: PathBuf,
        /// What is wrong: `is empty (0 bytes)`, ….
        problem: String,
    },
    /// No cluster has this name.
    #[error("cluster `{cluster}` not found")]
    ClusterNotFound {
        /// The name asked for.
        cluster: String,
    },
    /// A cluster with this name (and another uid) already exists.
    #[error("cluster `{cluster}` already exists")]
    ClusterExists {
        /// The name.
        cluster: String,
    },
    /// The cluster changed since the caller read it.
    #[error("cluster `{cluster}` was changed by another writer (expected version {expected_version}, found {actual}); read it again and retry")]
    Conflict {
        /// The cluster.
        cluster: String,
        /// The version the caller read.
        expected_version: u64,
        /// The version stored now.
        actual: u64,
    },
    /// The cluster is being deleted, so its spec and phase can only move
    /// towards deletion.
    #[error("cluster `{cluster}` is being deleted; it cannot become `{requested}`")]
    ClusterDeleting {
        /// The cluster.
        cluster: String,
        /// What the caller asked for: a phase, or `an updated spec`.
        requested: String,
    },
    /// Another applier holds the cluster's apply lock.
    #[error("cluster `{cluster}` is being applied by `{holder}` (its lock expires in {}); wait for it to finish or retry later", human(*.expires_in))]
    Locked {
        /// The cluster.
        cluster: String,
        /// The current holder.
        holder: String,
        /// Time left until the holder's lock expires.
        expires_in: Duration,
    },
    /// The caller's apply lock expired and was taken over, or released.
    #[error("apply lock of cluster `{cluster}` is no longer held by `{holder}`{}; stop applying", match .now_held_by { Some(other) => format!(" (now held by `{other}`)"), None => String::new() })]
    LockLost {
        /// The cluster.
        cluster: String,
        /// The holder that lost it.
        holder: String,
        /// Who holds it now, if anyone.
        now_held_by: Option<String>,
    },
    /// Node records remain and removal was not forced.
    #[error("cluster `{cluster}` still has {} node record(s) ({}) whose VMs may exist; finish deleting it, or pass `--force`", .nodes.len(), quoted_list(.nodes))]
    ClusterHasNodes {
        /// The cluster.
        cluster: String,
        /// The nodes still recorded.
        nodes: Vec<String>,
    },
    /// Forced removal asked for before deletion had been stuck long enough.
    #[error("{}", not_stuck(.cluster, *.stuck_for, *.required))]
    DeletionNotStuck {
        /// The cluster.
        cluster: String,
        /// How long deletion has been running; `None` if it never started.
        stuck_for: Option<Duration>,
        /// How long it must have been running.
        required: Duration,
    },
    /// Two node records of one cluster would share a VM or a pool index.
    #[error(
        "node `{node}` of cluster `{cluster}` cannot have {shared}: node `{other}` already has it"
    )]
    NodeClash {
        /// The cluster.
        cluster: String,
        /// The node being written.
        node: String,
        /// The node already holding it.
        other: String,
        /// What they would share, e.g. "VM `vm-42`".
        shared: String,
    },
    /// No intent has this id (or its cluster was removed).
    #[error("intent {id} not found")]
    IntentNotFound {
        /// The id asked for.
        id: IntentId,
    },
    /// A name or value given to the store is unusable.
    #[error("{field} {problem}")]
    Invalid {
        /// What it is: `cluster`, `node`, `holder`, `event kind`, ….
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The state was written by a newer vkube.
    #[error("state `{state}` has schema version {found}, but this vkube only knows up to {supported}; upgrade vkube")]
    SchemaTooNew {
        /// The state file, or the PostgreSQL URL without its password.
        state: String,
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
    /// A secret could not be sealed or opened (wrong or damaged key file,
    /// tampered value).
    #[error("secrets at rest: {problem}")]
    Sealing {
        /// What went wrong, naming the secret or key file.
        problem: String,
    },
    /// Reading or writing the key file failed.
    #[error("key file `{}`", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No stored cloud credentials have this name.
    #[error("no cloud credentials named `{name}`; store them with `vkube cluster credentials set {name} --username USER --password-file FILE`")]
    CredentialsNotFound {
        /// The name asked for.
        name: String,
    },
    /// Creating the state file or its directory failed.
    #[error("preparing state file `{}`", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database failed (SQLite or PostgreSQL).
    #[error("state database error while {action}")]
    Database {
        /// What the store was doing, e.g. "allocating from pool `lab`".
        action: String,
        /// The cause: a `rusqlite::Error` or a `tokio_postgres::Error`.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// A database failure while doing `action`.
    pub(crate) fn database(
        action: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Database {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// `` `a`, `b`, `c` `` (the first five, then "and N more").
fn quoted_list(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(5)
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}

fn not_stuck(cluster: &str, stuck_for: Option<Duration>, required: Duration) -> String {
    let rule = format!(
        "`--force` is allowed once deletion has been stuck for {}",
        human(required)
    );
    match stuck_for {
        None => format!(
            "deletion of cluster `{cluster}` has not started; run `vkube cluster delete {cluster}` first ({rule}), or pass `--force --now`"
        ),
        Some(stuck_for) => format!(
            "deletion of cluster `{cluster}` has been running for {}; {rule} ({} from now), or pass `--force --now`",
            human(stuck_for),
            human(required.saturating_sub(stuck_for))
        ),
    }
}
