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
//! A new state file appears with its schema in place (built under a
//! temporary name, then linked), so a file without one is never fresh: an
//! existing file that is empty (truncated to 0 bytes) or holds no vkube
//! schema is refused with `StateWithoutSchema`, since using it as a new
//! state would let the next apply duplicate every cluster it held.
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
        prepare_directory(&path)?;
        if !exists(&path)? {
            create_state_file(&path)?;
        }
        // Every state file vkube makes has its schema from the moment it
        // appears (see `create_state_file`): one without is not a fresh
        // state but an emptied one, and must not quietly become fresh. It
        // is looked at before anything is written to it.
        if let Some(problem) = missing_schema(&path)? {
            return Err(Error::StateWithoutSchema { path, problem });
        }
        let mut connection = connect(&path)?;
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

/// Creates missing parent directories (0700) before SQLite would, with
/// the process umask.
fn prepare_directory(path: &Path) -> Result<()> {
    let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    else {
        return Ok(());
    };
    if parent.exists() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(io(parent))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { path, source }
}

/// Whether something (a file, or a dangling link SQLite would follow) is at `path`.
fn exists(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io(path)(error)),
    }
}

/// Opens the SQLite database at `path` as the store uses it: WAL (readers
/// never block the writer), a busy timeout, `synchronous=FULL`, foreign keys.
fn connect(path: &Path) -> Result<Connection> {
    let database = |action: &'static str| {
        let path = path.display().to_string();
        move |source| Error::database(format!("{action} `{path}`"), source)
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(database("opening"))?;
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
    Ok(connection)
}

/// Creates the state file at `path` with its schema already in place, so
/// no process ever sees it without one: the database is built and
/// migrated under a temporary name beside it (0600; SQLite gives its
/// `-wal` and `-shm` files the same mode) and then hard-linked to `path`,
/// which fails if the name is taken. A process that loses that race opens
/// the winner's file. Where the file system has no hard links, the file
/// is renamed into place instead, unless `path` appeared meanwhile.
fn create_state_file(path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.db".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let staging = path.with_file_name(format!(".{name}.new-{}-{nanos}", std::process::id()));
    let built = (|| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)
            .map_err(io(&staging))?;
        let mut connection = connect(&staging)?;
        migrations::migrate(&mut connection, &staging)?;
        // Closing checkpoints the WAL into the file and removes it.
        connection.close().map_err(|(_, source)| {
            Error::database(format!("closing `{}`", staging.display()), source)
        })
    })();
    let placed = built.and_then(|()| match std::fs::hard_link(&staging, path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) if !exists(path)? => std::fs::rename(&staging, path).map_err(io(path)),
        Err(_) => Ok(()),
    });
    let _ = std::fs::remove_file(&staging);
    placed
}

/// What is wrong with the existing state file at `path`, if it lacks
/// vkube's schema: read before anything is written to it (SQLite writes
/// its header when WAL is turned on).
fn missing_schema(path: &Path) -> Result<Option<String>> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.len() == 0 {
        return Ok(Some("is empty (0 bytes): it was truncated".into()));
    }
    let reading = |source| {
        Error::database(
            format!("reading the schema of `{}`", path.display()),
            source,
        )
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(reading)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(reading)?;
    let tables: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .map_err(reading)?;
    Ok((tables == 0).then(|| {
        "holds no vkube schema (it is another SQLite database, or its tables were removed)"
            .to_owned()
    }))
}

fn database(action: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let action = action.into();
    move |source| Error::database(action, source)
}
