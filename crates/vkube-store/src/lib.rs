//! vkube's persistent state behind narrow async traits: IP pools and
//! leases ([`Store`]), clusters and node records ([`ClusterStore`]), the
//! operation journal and event log ([`Journal`]), per-cluster apply locks
//! ([`ApplyLocks`]), and named cloud credentials ([`CredentialStore`]);
//! [`StateStore`] is all of them (plus [`StateBackend`], what and where
//! the store is), so front ends hold one `Arc<dyn StateStore>`. Every
//! secret is sealed at rest with a key kept outside the database (see
//! [`key_path_for`]).
//!
//! Three backends implement every trait, with the same answers (one
//! conformance suite runs against all three):
//!
//! - [`SqliteStore`]: one file, safe for many processes on one machine.
//!   rusqlite is synchronous, so its work runs on tokio's blocking pool.
//! - [`PgStore`]: a PostgreSQL database, for several vkube processes or
//!   server replicas on several machines.
//! - [`MemoryStore`]: this process's memory, for tests of the code above
//!   the store (always compiled, no extra dependency): faults injected at
//!   the Nth write or the next call of an [`Operation`] ([`Fault`]), a
//!   write counter, and [`snapshot`](MemoryStore::snapshot)s for "killed
//!   after write N, restarted from what was stored". Not offered by
//!   [`open`]: its state ends with the process.
//!
//! [`open`] picks one from what `--state` / `VKUBE_STATE` says: a
//! `postgres://user[:password]@host[:port]/database` URL (password also from
//! `PGPASSWORD`) or a file path.
//!
//! # How the apply loop uses it
//!
//! 1. [`ApplyLocks::acquire_apply_lock`] keeps two appliers apart; renew it
//!    between steps, and stop on `LockLost`. Its [`Fence`]
//!    ([`ApplyLock::fence`]) goes with every write the apply makes to the
//!    cluster's record, and the store refuses those writes (`LockLost`) once
//!    the lock changed hands, so a holder that stalled past its TTL cannot
//!    write over its successor (see [`Fence`] for the list of fenced
//!    writes).
//! 2. [`ClusterStore::create_cluster`] or
//!    [`update_cluster_spec`](ClusterStore::update_cluster_spec) records the
//!    desired spec, [`set_cluster_vcenter`](ClusterStore::set_cluster_vcenter)
//!    the vCenter it lives in (once; another is `VcenterMismatch`); every
//!    cluster write compares `version`. The apply ends with
//!    [`set_cluster_status`](ClusterStore::set_cluster_status): `Ready`, or
//!    `Degraded` with the error that stopped it.
//! 3. Before each vCenter change: take the lease, upsert the node record,
//!    [`Journal::record_intent`] (fenced: a holder that lost the lock learns
//!    it before touching vCenter); after it: complete the intent, update
//!    the node, [`Journal::append_event`]. After a crash,
//!    [`Journal::open_intents`] names what may be half-done.
//! 4. Deletion: [`ClusterStore::mark_deleting`], delete each VM,
//!    [`ClusterStore::delete_node`] (releasing its leases; fenced, so
//!    deletion holds the apply lock too) once the VM is observed gone,
//!    then [`ClusterStore::remove_cluster`].
//!
//! The store is vkube's record of what it has done, not the truth about
//! vCenter: every pass still observes vCenter and plans from that.
//!
//! # Time
//!
//! The store never reads a clock: every write takes `now` as a
//! [`Timestamp`] (Unix seconds), so tests control time and all replicas
//! agree on the rules given the same inputs. Lock expiry compares callers'
//! clocks, so replicas need NTP; choose TTLs well above the skew.
//!
//! # One schema, two engines
//!
//! Both backends apply the same numbered migrations (same versions and
//! descriptions, a test holds them together), and the rules (compare-and-set,
//! lock decisions, address choice, removal's force rules) live once, in
//! backend-free code; each backend only reads and writes rows. How each
//! keeps read-check-write sequences apart:
//!
//! - SQLite: every write is one `BEGIN IMMEDIATE` transaction, which holds
//!   the file's single write lock; migrations run inside one too.
//! - Memory (no schema, the same rules): one mutex around the state, each
//!   write deciding before it changes anything.
//! - PostgreSQL: READ COMMITTED, with the rows a decision depends on locked
//!   first (`SELECT … FOR UPDATE` / `FOR NO KEY UPDATE` / `FOR SHARE`) in one
//!   global order; apply-lock acquisition is one
//!   `INSERT … ON CONFLICT (cluster) DO UPDATE … WHERE free, ours or expired
//!   … RETURNING`; migrations run under `pg_advisory_xact_lock`; ids are
//!   `BIGINT GENERATED ALWAYS AS IDENTITY`, intent detail JSONB. See
//!   [`PgStore`] for why not SERIALIZABLE, and for TLS.
#![deny(missing_docs)]

#[macro_use]
mod text_enum;

mod backend;
mod cluster;
mod credentials;
mod error;
mod journal;
mod lock;
mod memory;
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
    NodePhase, NodeRecord, RemovedCluster, RemovedNode, FORCE_DELETE_AFTER, LAST_ERROR_MAX,
};
pub use credentials::{CredentialStore, CredentialsSummary, StoredCredentials};
pub use error::{Error, Result};
pub use journal::{Event, EventLevel, Intent, IntentAction, IntentId, IntentOutcome, Journal};
pub use lock::{ApplyLock, ApplyLocks, Fence};
pub use memory::{Fault, InjectedFault, MemoryStore, Operation};
pub use open::{open, StateLocation};
pub use path::{default_state_path, resolve_state_path, STATE_ENV};
pub use postgres::{is_postgres_url, key_path_for_url, PgStore, PASSWORD_ENV, ROOT_CERT_ENV};
pub use sealing::{key_path_for, Rotation, STATE_KEY_ENV};
pub use sqlite::SqliteStore;
pub use store::{LeaseFilter, PoolRecord, Store};
pub use time::Timestamp;
