//! [`SqliteStore`]: the state in one SQLite file, shared safely by many
//! processes.
//!
//! Opening sets WAL mode (readers never block the writer), a busy timeout
//! (writers queue instead of failing) and `synchronous=FULL` (a committed
//! lease survives power loss, since a VM may already be using it). Every
//! write runs in a `BEGIN IMMEDIATE` transaction, which takes the file's
//! single write lock up front, so read-check-write sequences such as
//! allocation cannot interleave between processes.
//!
//! rusqlite is synchronous: every trait method moves its (owned) arguments
//! onto tokio's blocking pool and runs there against the one connection,
//! so a busy file never stalls the async executor. A caller that drops the
//! future does not cancel the work: the transaction still commits or rolls
//! back as a whole, like an answer lost on the wire.

mod cluster;
mod ipam;
mod journal;
mod lock;
pub(crate) mod migrations;
mod secrets;

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::backend::{BackendKind, StateBackend};
use crate::error::{Error, Result};
use crate::sealing::{key_path_for, Sealer};

/// How long a writer waits for another process's transaction before
/// failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The state in one SQLite file. Cheap to clone and share between tasks
/// (one connection behind a mutex, used from the blocking pool); for
/// several processes, each opens its own.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// The open file: what the blocking work runs against.
#[derive(Debug)]
struct Inner {
    path: PathBuf,
    connection: Mutex<Connection>,
    sealer: Sealer,
}

impl SqliteStore {
    /// Opens (creating if needed) the state file at `path` and migrates its
    /// schema. New directories are created `0700` and a new file `0600`
    /// (SQLite gives its `-wal` and `-shm` files the same mode). Safe to
    /// call from several processes at once. Secrets are sealed with the
    /// key file [`key_path_for`] names (created, 0600, on first use).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let key = key_path_for(path.as_ref());
        Self::open_with_key(path, key).await
    }

    /// Like [`open`](Self::open), with the key file given.
    pub async fn open_with_key(path: impl AsRef<Path>, key_file: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let key_file = key_file.as_ref().to_owned();
        let action = format!("opening `{}`", path.display());
        let inner = blocking(action, move || Inner::open(path, key_file)).await?;
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The newest schema version this build knows.
    pub fn latest_schema_version() -> u32 {
        migrations::latest()
    }

    /// Runs `work` on the blocking pool against the open file.
    async fn run<T, F>(&self, action: impl Into<String>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(action, move || work(&inner)).await
    }
}

#[async_trait]
impl StateBackend for SqliteStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn location(&self) -> String {
        self.inner.path.display().to_string()
    }

    fn key_file(&self) -> &Path {
        self.inner.sealer.path()
    }

    async fn schema_version(&self) -> Result<u32> {
        self.run("reading the schema version", Inner::schema_version)
            .await
    }
}

/// Runs `work` on tokio's blocking pool; a panic there resumes here.
async fn blocking<T, F>(action: impl Into<String>, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(Error::database(action, error)),
    }
}

impl Inner {
    fn open(path: PathBuf, key_file: PathBuf) -> Result<Inner> {
        prepare_file(&path)?;
        let database = |action: &'static str| {
            let path = path.display().to_string();
            move |source| Error::database(format!("{action} `{path}`"), source)
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut connection =
            Connection::open_with_flags(&path, flags).map_err(database("opening"))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(database("configuring"))?;
        // journal_mode answers with a row, so it cannot go through execute_batch.
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(database("enabling WAL on"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // e.g. on file systems without shared memory; still correct, just slower.
            connection
                .execute_batch("PRAGMA journal_mode = DELETE")
                .map_err(database("configuring"))?;
        }
        connection
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(database("configuring"))?;
        migrations::migrate(&mut connection, &path)?;
        let inner = Inner {
            path,
            connection: Mutex::new(connection),
            sealer: Sealer::new(key_file),
        };
        secrets::seal_plain_rows(&inner)?;
        Ok(inner)
    }

    fn schema_version(&self) -> Result<u32> {
        self.lock()
            .query_row("SELECT MAX(version) FROM schema_version", [], |row| {
                row.get(0)
            })
            .map_err(database("reading the schema version"))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction, committing on `Ok`
    /// and rolling back on `Err`.
    fn write<T>(
        &self,
        action: &str,
        work: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut connection = self.lock();
        let database = |source| Error::database(action, source);
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(database)?;
        let value = work(&transaction)?;
        transaction.commit().map_err(database)?;
        Ok(value)
    }

    /// Runs `work` in a read transaction (one consistent snapshot).
    fn read<T>(&self, action: &str, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut connection = self.lock();
        let database = |source| Error::database(action, source);
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(database)?;
        let value = work(&transaction)?;
        transaction.commit().map_err(database)?;
        Ok(value)
    }
}

/// Creates missing parent directories (0700) and the file itself (0600)
/// before SQLite does, since SQLite would use the process umask.
fn prepare_file(path: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        if !parent.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io(parent))?;
        }
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        // Another process created it first, or it existed: keep its mode.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io(path)(error)),
    }
}

fn database(action: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let action = action.into();
    move |source| Error::database(action, source)
}
