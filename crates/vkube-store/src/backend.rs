//! [`StateStore`]: every store trait in one, so front ends hold one
//! `Arc<dyn StateStore>` whichever backend `--state` chose, and
//! [`StateBackend`], what a store is and where.

use std::path::Path;

use async_trait::async_trait;
use serde::Serialize;

use crate::cluster::ClusterStore;
use crate::credentials::CredentialStore;
use crate::error::Result;
use crate::journal::Journal;
use crate::lock::ApplyLocks;
use crate::store::Store;

/// Which engine holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BackendKind {
    /// One SQLite file ([`SqliteStore`](crate::SqliteStore)).
    Sqlite,
    /// A PostgreSQL database ([`PgStore`](crate::PgStore)).
    Postgres,
    /// This process's memory ([`MemoryStore`](crate::MemoryStore)), for
    /// tests: gone when the process ends.
    Memory,
}

impl BackendKind {
    /// `sqlite`, `postgres` or `memory`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
            BackendKind::Memory => "memory",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a store is and where, for `vkube state show`.
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// The engine.
    fn kind(&self) -> BackendKind;

    /// The state file, or the PostgreSQL URL without its password.
    fn location(&self) -> String;

    /// The key file secrets are sealed with (empty for a
    /// [`MemoryStore`](crate::MemoryStore) that keeps its key in memory).
    fn key_file(&self) -> &Path;

    /// The schema version of the open state (the newest this build knows,
    /// once opened).
    async fn schema_version(&self) -> Result<u32>;
}

/// Every store trait: what the runtime and the CLI hold, as
/// `Arc<dyn StateStore>`.
pub trait StateStore:
    Store + ClusterStore + Journal + ApplyLocks + CredentialStore + StateBackend
{
}

impl<T> StateStore for T where
    T: Store + ClusterStore + Journal + ApplyLocks + CredentialStore + StateBackend
{
}
