//! [`MemoryStore`]: every store trait held in this process's memory, for
//! tests of the code above the store (the runtime, front ends) that need
//! the real store's answers without a file or a database, plus what such
//! tests need around it: faults injected at chosen calls and snapshots of
//! the state.
//!
//! It gives the answers [`SqliteStore`](crate::SqliteStore) and
//! [`PgStore`](crate::PgStore) give (the conformance suite runs against
//! all three): the same rules (`crate::rules`: compare-and-set, fences,
//! lock decisions, removal's force rules), the same address choice
//! (lowest free, `vkube_core::ipam::next_free`), the same orders and
//! errors. One mutex around the state makes every call one transaction
//! (the lock is never held across an `await`; no call awaits anything),
//! and every write decides first and changes the state only once nothing
//! can fail, so an error (or an injected fault) leaves the state as it was.
//!
//! # Secrets
//!
//! Secrets are sealed as in the other stores, so what the traits show
//! (rotation's key ids and counts, a value that does not open in another
//! row) is the same. [`MemoryStore::new`] keeps its key in memory with the
//! state: [`key_file`](crate::StateBackend::key_file) is empty, nothing
//! touches the disk, and [`rotate_key`](crate::CredentialStore::rotate_key)
//! re-seals every value under a new in-memory key (its `key_file` empty
//! too). [`MemoryStore::with_key_file`] seals under a key file exactly as
//! the other stores do (created 0600 on first use, rotated through
//! `<key file>.next`).
//!
//! # Handles
//!
//! - `clone()`: the same handle (cheap), e.g. one per task.
//! - [`reopen`](MemoryStore::reopen): another handle on the same state, as
//!   a second process opening the same database gets: it reads the key
//!   file afresh and seals values found in plain text.
//! - [`snapshot`](MemoryStore::snapshot): a new, independent state with the
//!   same contents: "the process was killed here; restart from what was
//!   stored".
//!
//! # Faults
//!
//! Every call of a writing trait method counts as a write
//! ([`write_count`](MemoryStore::write_count),
//! [`write_log`](MemoryStore::write_log)), and [`inject`](MemoryStore::inject)
//! makes a chosen call fail (see [`Fault`]), deterministically: a crash
//! test runs a scenario once to count its writes, then once per write with
//! that write failing, and restarts each from a snapshot.

mod cluster;
mod dump;
mod faults;
mod ipam;
mod journal;
mod lock;
mod secrets;
mod state;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::backend::{BackendKind, StateBackend};
use crate::error::Result;
use crate::sealing::Sealer;
use crate::sqlite::SqliteStore;

pub use faults::{Fault, InjectedFault, Operation};

use faults::{FaultPlan, Verdict};
use state::State;

/// The state in this process's memory. `Send + Sync`; clones share it.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Mutex<Shared>>,
    /// Per handle, as per process for the other stores: with a key file,
    /// each reads it itself; with keys in memory, handles on one state
    /// share this one.
    sealer: Arc<Sealer>,
}

/// What the handles of one state share.
#[derive(Debug, Default)]
struct Shared {
    state: State,
    faults: FaultPlan,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("key_file", &self.sealer.path())
            .field("writes", &self.write_count())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty state, its secrets sealed under a key kept in memory.
    pub fn new() -> Self {
        Self::with_sealer(Sealer::in_memory())
    }

    /// An empty state, its secrets sealed under the key file `key_file`
    /// as [`SqliteStore`](crate::SqliteStore) and
    /// [`PgStore`](crate::PgStore) seal theirs (created 0600 when the
    /// first secret is stored).
    pub fn with_key_file(key_file: impl AsRef<Path>) -> Self {
        Self::with_sealer(Sealer::new(key_file.as_ref().to_owned()))
    }

    fn with_sealer(sealer: Sealer) -> Self {
        MemoryStore {
            shared: Arc::new(Mutex::new(Shared::default())),
            sealer: Arc::new(sealer),
        }
    }

    /// Another handle on this state, as a second process opening the same
    /// database would get: it shares the data, the faults and the write
    /// count, reads the key file afresh (with keys in memory, shares
    /// them), and seals any secret value found in plain text (see
    /// [`write_raw_secret`](Self::write_raw_secret)), as opening an older
    /// state does.
    pub fn reopen(&self) -> Result<Self> {
        // Keys in memory belong to the state; a key file is each process's
        // own reading.
        let sealer = if self.sealer.is_in_memory() {
            Arc::clone(&self.sealer)
        } else {
            Arc::new(self.sealer.duplicate())
        };
        self.reopen_with(sealer)
    }

    /// Like [`reopen`](Self::reopen), sealing with the key file `key_file`
    /// instead (as a process pointing `VKUBE_STATE_KEY` elsewhere).
    pub fn reopen_with_key_file(&self, key_file: impl AsRef<Path>) -> Result<Self> {
        self.reopen_with(Arc::new(Sealer::new(key_file.as_ref().to_owned())))
    }

    fn reopen_with(&self, sealer: Arc<Sealer>) -> Result<Self> {
        let handle = MemoryStore {
            shared: Arc::clone(&self.shared),
            sealer,
        };
        secrets::seal_plain_values(&mut handle.lock().state, &handle.sealer)?;
        Ok(handle)
    }

    /// A new, independent state with this one's contents, as a process
    /// restarted from what was stored would find it: no faults pending,
    /// write count 0, secrets sealed under the same key (the same key file,
    /// read afresh, or a copy of the in-memory key).
    pub fn snapshot(&self) -> Self {
        let state = self.lock().state.clone();
        MemoryStore {
            shared: Arc::new(Mutex::new(Shared {
                state,
                faults: FaultPlan::default(),
            })),
            sealer: Arc::new(self.sealer.duplicate()),
        }
    }

    /// Plans a failure (see [`Fault`]); several may be pending.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.inject(fault);
    }

    /// Makes the `n`th write from now (1: the next) fail, changing nothing.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn fail_at_write(&self, n: u64) {
        self.inject(Fault::at_write(n));
    }

    /// Makes the next call of `operation` fail, changing nothing.
    pub fn fail_next(&self, operation: Operation) {
        self.inject(Fault::next(operation));
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Calls of writing methods so far on this state (by any handle),
    /// whether they succeeded, failed or were refused by a fault.
    pub fn write_count(&self) -> u64 {
        self.lock().faults.write_count()
    }

    /// The operations of those writes, in order.
    pub fn write_log(&self) -> Vec<Operation> {
        self.lock().faults.write_log().to_vec()
    }

    /// The newest schema version, whose tables [`dump`](Self::dump) mirrors.
    pub fn latest_schema_version() -> u32 {
        SqliteStore::latest_schema_version()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Writes change the state only after every check passed, so a
        // panic while holding the lock cannot leave half a change.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one writing call: counts it, applies the fault due (if any),
    /// and runs `work` under the lock.
    fn write<T>(
        &self,
        operation: Operation,
        work: impl FnOnce(&mut State, &Sealer) -> Result<T>,
    ) -> Result<T> {
        let mut shared = self.lock();
        match shared.faults.on_call(operation) {
            Verdict::Proceed => work(&mut shared.state, &self.sealer),
            Verdict::Refuse(error) => Err(error),
            Verdict::LoseAnswer(error) => {
                // Whatever the call decided is kept; only the answer is lost.
                let _ = work(&mut shared.state, &self.sealer);
                Err(error)
            }
        }
    }

    /// Runs one reading call under the lock, unless a fault is due for it.
    fn read<T>(
        &self,
        operation: Operation,
        work: impl FnOnce(&State, &Sealer) -> Result<T>,
    ) -> Result<T> {
        let mut shared = self.lock();
        match shared.faults.on_call(operation) {
            Verdict::Proceed => work(&shared.state, &self.sealer),
            Verdict::Refuse(error) | Verdict::LoseAnswer(error) => Err(error),
        }
    }
}

#[async_trait]
impl StateBackend for MemoryStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Memory
    }

    /// `memory:`.
    fn location(&self) -> String {
        "memory:".to_owned()
    }

    fn key_file(&self) -> &Path {
        self.sealer.path()
    }

    async fn schema_version(&self) -> Result<u32> {
        self.read(Operation::SchemaVersion, |_, _| {
            Ok(Self::latest_schema_version())
        })
    }
}
