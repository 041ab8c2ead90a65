//! vkube's persistent state behind narrow traits: IP pools and leases
//! ([`Store`]), clusters and node records ([`ClusterStore`]), the operation
//! journal and event log ([`Journal`]), and per-cluster apply locks
//! ([`ApplyLocks`]), and named cloud credentials ([`CredentialStore`]).
//! Every secret is sealed at rest with a key kept outside the database
//! (see [`key_path_for`]).
//!
//! [`SqliteStore`] implements all of them in one SQLite file and is safe
//! for many processes sharing that file. A PostgreSQL implementation for
//! several vkube replicas can follow behind the same traits.
//!
//! # How the apply loop uses it
//!
//! 1. [`ApplyLocks::acquire_apply_lock`] keeps two appliers apart; renew it
//!    between steps, and stop on `LockLost`.
//! 2. [`ClusterStore::create_cluster`] or
//!    [`update_cluster_spec`](ClusterStore::update_cluster_spec) records the
//!    desired spec; every cluster write compares `version`.
//! 3. Before each vCenter change: take the lease, upsert the node record,
//!    [`Journal::record_intent`]; after it: complete the intent, update the
//!    node, [`Journal::append_event`]. After a crash,
//!    [`Journal::open_intents`] names what may be half-done.
//! 4. Deletion: [`ClusterStore::mark_deleting`], delete each VM,
//!    [`ClusterStore::delete_node`] (releasing its leases) once the VM is
//!    observed gone, then [`ClusterStore::remove_cluster`].
//!
//! The store is vkube's record of what it has done, not the truth about
//! vCenter: every pass still observes vCenter and plans from that.
//!
//! # Time
//!
//! The store never reads a clock: every write takes `now` as a
//! [`Timestamp`] (Unix seconds), so tests control time and all replicas
//! agree on the rules given the same inputs.
//!
//! # PostgreSQL notes
//!
//! The schema sticks to SQL both accept (TEXT and BIGINT columns, composite
//! keys, partial indexes, `INSERT … ON CONFLICT … DO UPDATE`,
//! `INSERT … RETURNING`), and every compare-and-set is in the `WHERE`
//! clause of the write itself. What a PostgreSQL store would do
//! differently:
//!
//! - Ids: `INTEGER PRIMARY KEY AUTOINCREMENT` becomes
//!   `BIGINT GENERATED ALWAYS AS IDENTITY`; intent `detail` becomes JSONB.
//! - Serialization: SQLite's `BEGIN IMMEDIATE` serializes all writers, so
//!   read-check-write sequences cannot interleave. Under PostgreSQL's READ
//!   COMMITTED, lock the rows read: `SELECT … FOR UPDATE` on the cluster row
//!   (cluster writes, removal) and on the pool row (allocation), or run
//!   those transactions SERIALIZABLE and retry on serialization failures.
//!   Apply lock acquisition becomes one
//!   `INSERT … ON CONFLICT (cluster) DO UPDATE … WHERE holder IS NULL OR
//!   holder = $holder OR expires_at <= $now RETURNING …`; no row back means
//!   `Locked`.
//! - Migrations: run under `pg_advisory_xact_lock` instead of relying on
//!   `BEGIN IMMEDIATE` to make concurrent first opens migrate once.
//! - Clocks: lock expiry compares callers' clocks, so replicas need NTP;
//!   a PostgreSQL store could use `now()` from the server instead.
#![deny(missing_docs)]

#[macro_use]
mod text_enum;

mod backend;
mod cluster;
mod credentials;
mod error;
mod journal;
mod lock;
mod open;
mod path;
mod postgres;
mod rows;
mod rules;
mod sealing;
mod sqlite;
mod store;
mod time;

pub use backend::{BackendKind, StateBackend, StateStore};
pub use cluster::{
    AddonDelivery, AddonRecord, ClusterPhase, ClusterRecord, ClusterStore, ForceDelete, Node,
    NodePhase, NodeRecord, RemovedCluster, RemovedNode, FORCE_DELETE_AFTER,
};
pub use credentials::{CredentialStore, CredentialsSummary, StoredCredentials};
pub use error::{Error, Result};
pub use journal::{Event, EventLevel, Intent, IntentAction, IntentId, IntentOutcome, Journal};
pub use lock::{ApplyLock, ApplyLocks, Fence};
pub use open::{open, StateLocation};
pub use path::{default_state_path, resolve_state_path, STATE_ENV};
pub use postgres::{is_postgres_url, key_path_for_url, PgStore, PASSWORD_ENV};
pub use sealing::{key_path_for, Rotation, STATE_KEY_ENV};
pub use sqlite::SqliteStore;
pub use store::{LeaseFilter, PoolRecord, Store};
pub use time::Timestamp;
