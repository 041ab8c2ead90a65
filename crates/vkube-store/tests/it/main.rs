//! Integration tests for `vkube-store`: one binary.
//!
//! The conformance suite (`ipam`, `clusters`, `journal`, `locks`,
//! `secrets`, `concurrency`) runs every test against every backend: each
//! test is an `async fn(Backend)`, and [`conformance!`] makes
//! `<module>::sqlite::<test>` (a temp state file),
//! `<module>::postgres::<test>` (a fresh database on the binary's
//! PostgreSQL server, see `vkube_test_support::postgres`) and
//! `<module>::memory::<test>` (a fresh `MemoryStore` sealing under a temp
//! key file) of it. Tests after `; across processes:` start other OS
//! processes on the same state, which an in-memory state cannot have: they
//! run on SQLite and PostgreSQL only (`memory` checks the same stories
//! with snapshots instead). Without PostgreSQL installed the `postgres`
//! tests print a note and pass, unless `VKUBE_REQUIRE_POSTGRES=1`.
//! `concurrency` holds what only matters with several connections; `open`,
//! `migrate` and `multi_process` are SQLite's own (file modes, WAL,
//! processes sharing a file), `postgres` PostgreSQL's (URLs, passwords),
//! `memory` the memory store's (faults, snapshots, handles).

/// `conformance!(a, b; across processes: c)`: tests `sqlite::a`,
/// `postgres::a`, `memory::a`, …, `sqlite::c`, `postgres::c`, each running
/// `async fn a(backend: Backend)` of the enclosing module.
macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        conformance!($($test),+ ; across processes:);
    };
    ($($test:ident),+ ; across processes: $($shared:ident),* $(,)?) => {
        mod sqlite {
            backend_tests!(Some(crate::Backend::sqlite()); $($test,)+ $($shared),*);
        }
        mod postgres {
            backend_tests!(crate::Backend::postgres(); $($test,)+ $($shared),*);
        }
        mod memory {
            backend_tests!(Some(crate::Backend::memory()); $($test),+);
        }
    };
}

/// One `#[tokio::test]` per test, on the backend `$backend` gives (`None`:
/// not available here, the test passes after a note).
macro_rules! backend_tests {
    ($backend:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                if let Some(backend) = $backend {
                    super::$test(backend).await
                }
            }
        )*
    };
}

mod clusters;
mod concurrency;
mod ipam;
mod journal;
mod locks;
mod memory;
mod memory_sql;
mod migrate;
mod multi_process;
mod open;
mod postgres;
mod secrets;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use vkube_core::ipam::{IpPool, RawIpPool, RawRange};
use vkube_store::{
    Fence, MemoryStore, Node, NodePhase, PgStore, SqliteStore, StateBackend, StateStore, Timestamp,
};
use vkube_test_support::postgres::{PostgresDatabase, PostgresServer};

/// What every test holds: either backend behind the one trait object the
/// runtime uses.
pub type AnyStore = Arc<dyn StateStore>;

/// A temp directory holding a fresh state file; removed on drop.
pub struct TestState {
    pub dir: TempDir,
}

#[allow(clippy::new_without_default)]
impl TestState {
    pub fn new() -> Self {
        TestState {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub async fn open(&self) -> SqliteStore {
        SqliteStore::open(self.path()).await.expect("open state")
    }
}

/// One test's state on one backend.
pub enum Backend {
    /// A fresh SQLite file (its key file beside it).
    Sqlite(TestState),
    /// A fresh PostgreSQL database, its key file in `keys`.
    Postgres {
        database: PostgresDatabase,
        keys: TempDir,
    },
    /// A fresh in-memory state, its key file in `keys`.
    Memory { store: MemoryStore, keys: TempDir },
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite(TestState::new())
    }

    /// `None` (after a note) when PostgreSQL is not installed.
    pub fn postgres() -> Option<Backend> {
        let server = PostgresServer::shared()?;
        Some(Backend::Postgres {
            database: server.database(),
            keys: tempfile::tempdir().expect("temp dir"),
        })
    }

    pub fn memory() -> Backend {
        let keys = tempfile::tempdir().expect("temp dir");
        Backend::Memory {
            store: MemoryStore::with_key_file(keys.path().join("state.key")),
            keys,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres { .. })
    }

    /// Opens (another connection to) the state, as a new process would.
    pub async fn open(&self) -> AnyStore {
        match self {
            Backend::Sqlite(state) => Arc::new(state.open().await),
            Backend::Postgres { database, keys } => Arc::new(
                PgStore::connect_with_key(&database.url(), keys.path().join("state.key"))
                    .await
                    .expect("connect to PostgreSQL"),
            ),
            Backend::Memory { store, .. } => Arc::new(store.reopen().expect("reopen the state")),
        }
    }

    /// Opens the state with another key file.
    pub async fn open_with_key(&self, key: &std::path::Path) -> AnyStore {
        match self {
            Backend::Sqlite(state) => Arc::new(
                SqliteStore::open_with_key(state.path(), key)
                    .await
                    .expect("open state"),
            ),
            Backend::Postgres { database, .. } => Arc::new(
                PgStore::connect_with_key(&database.url(), key)
                    .await
                    .expect("connect to PostgreSQL"),
            ),
            Backend::Memory { store, .. } => {
                Arc::new(store.reopen_with_key_file(key).expect("reopen the state"))
            }
        }
    }

    /// What `--state` would say: the file path, or the URL.
    pub fn location(&self) -> String {
        match self {
            Backend::Sqlite(state) => state.path().display().to_string(),
            Backend::Postgres { database, .. } => database.url(),
            Backend::Memory { store, .. } => store.location(),
        }
    }

    /// The directory the key file is in.
    pub fn key_dir(&self) -> &std::path::Path {
        match self {
            Backend::Sqlite(state) => state.dir.path(),
            Backend::Postgres { keys, .. } | Backend::Memory { keys, .. } => keys.path(),
        }
    }

    /// The key file the store seals with.
    pub fn key_file(&self) -> PathBuf {
        self.key_dir().join("state.key")
    }

    /// The first column of every row `sql` returns, as text, read around
    /// the store (rusqlite, psql, or the memory store's dump).
    pub fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Backend::Sqlite(state) => {
                let connection = rusqlite::Connection::open(state.path()).unwrap();
                let mut statement = connection.prepare(sql).unwrap();
                let rows = statement
                    .query_map([], |row| {
                        let value: rusqlite::types::Value = row.get(0)?;
                        Ok(match value {
                            rusqlite::types::Value::Text(text) => text,
                            rusqlite::types::Value::Integer(n) => n.to_string(),
                            other => format!("{other:?}"),
                        })
                    })
                    .unwrap();
                rows.map(Result::unwrap).collect()
            }
            Backend::Postgres { database, .. } => database
                .psql(sql)
                .lines()
                .map(|line| line.split('|').next().unwrap_or_default().to_owned())
                .collect(),
            Backend::Memory { store, .. } => memory_sql::select(&store.dump(), sql),
        }
    }

    /// Whether `text` appears anywhere in the stored bytes: the SQLite
    /// file after a checkpoint, the database's files and the WAL of the
    /// PostgreSQL cluster after a `CHECKPOINT`, or every stored value of
    /// the memory store.
    pub fn stored_bytes_contain(&self, text: &str) -> bool {
        let files: Vec<PathBuf> = match self {
            Backend::Memory { store, .. } => return store.dump().to_string().contains(text),
            Backend::Sqlite(state) => {
                let connection = rusqlite::Connection::open(state.path()).unwrap();
                // The WAL holds recent pages: checkpoint so the main file has them.
                connection
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
                vec![state.path()]
            }
            Backend::Postgres { database, .. } => {
                database.psql("CHECKPOINT");
                let data = PathBuf::from(database.psql("SHOW data_directory").trim());
                let oid =
                    database.psql("SELECT oid FROM pg_database WHERE datname = current_database()");
                [data.join("base").join(oid.trim()), data.join("pg_wal")]
                    .iter()
                    .flat_map(|dir| std::fs::read_dir(dir).unwrap())
                    .map(|entry| entry.unwrap().path())
                    .filter(|path| path.is_file())
                    .collect()
            }
        };
        let needle = text.as_bytes();
        files.iter().any(|file| {
            std::fs::read(file)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle)
        })
    }

    /// Runs `sql` around the store (for the memory store, its equivalent:
    /// see `memory_sql`).
    pub fn execute(&self, sql: &str) {
        match self {
            Backend::Sqlite(state) => {
                rusqlite::Connection::open(state.path())
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            Backend::Postgres { database, .. } => {
                database.psql(sql);
            }
            Backend::Memory { store, .. } => memory_sql::execute(store, sql),
        }
    }
}

/// The holder the tests' own writes are fenced with.
pub const TESTER: &str = "tester";

/// The fence of [`TESTER`]'s lock on `cluster`, taking it (or renewing it:
/// the same holder again) for a century from t=0.
/// Records cluster `name` with `uid` (spec [`SPEC`]-like text, `hash`) under
/// the tester's lock, panicking on failure.
pub async fn create(
    store: &AnyStore,
    name: &str,
    uid: &str,
    spec: &str,
    hash: &str,
    now: vkube_store::Timestamp,
) -> vkube_store::ClusterRecord {
    store
        .create_cluster(&fence(store, name).await, uid, spec, hash, now)
        .await
        .unwrap_or_else(|e| panic!("creating cluster `{name}`: {e}"))
}

pub async fn fence(store: &AnyStore, cluster: &str) -> Fence {
    store
        .acquire_apply_lock(
            cluster,
            TESTER,
            at(0),
            Duration::from_secs(100 * 365 * 24 * 3600),
        )
        .await
        .expect("the tester's apply lock")
        .fence()
}

/// A range pool `start..=end` in `10.0.<third>.0/24`, gateway `.1`.
pub fn range_pool(name: &str, third: u8, start: u8, end: u8) -> IpPool {
    RawIpPool {
        name: name.into(),
        range: Some(RawRange {
            start: format!("10.0.{third}.{start}"),
            end: format!("10.0.{third}.{end}"),
        }),
        prefix: Some(24),
        gateway: Some(format!("10.0.{third}.1")),
        name_servers: vec!["192.0.2.53".into()],
        search_domains: vec!["lab.example.com".into()],
        ..RawIpPool::default()
    }
    .validate()
    .expect("valid test pool")
}

/// A subnet pool.
pub fn subnet_pool(name: &str, subnet: &str, gateway: &str) -> IpPool {
    RawIpPool {
        name: name.into(),
        subnet: Some(subnet.into()),
        gateway: Some(gateway.into()),
        name_servers: vec!["192.0.2.53".into()],
        ..RawIpPool::default()
    }
    .validate()
    .expect("valid test pool")
}

/// `seconds` after the epoch: tests pass time in, the store never reads it.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds)
}

/// A planned node `name`, index `index` of pool `pool`.
pub fn node(name: &str, pool: &str, index: u32) -> Node {
    Node {
        name: name.into(),
        pool: pool.into(),
        index,
        domain: None,
        vm_id: None,
        ip: None,
        phase: NodePhase::Planned,
        spec_hash: "h1".into(),
    }
}

/// Re-executes this test binary running only `test` (a child-side test
/// that does nothing unless `env` is set), with `env=value`.
pub fn spawn_child(test: &str, env: &str, value: String) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What follows `marker` on each stdout line that has it. The harness
/// prints `test … ... ` without a newline before a child's first line, so
/// the marker may be mid-line.
pub fn marked_lines(stdout: &[u8], marker: &str) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| line.split_once(marker).map(|(_, rest)| rest.to_owned()))
        .collect()
}
