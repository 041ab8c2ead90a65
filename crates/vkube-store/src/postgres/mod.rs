//! [`PgStore`]: the state in a PostgreSQL database, shared by several vkube
//! processes or server replicas.
//!
//! # Isolation
//!
//! Transactions run at PostgreSQL's default READ COMMITTED, and every
//! read-check-write locks the rows its decision depends on first, in one
//! global order so two writers never deadlock:
//!
//! 1. the cluster's `apply_locks` row: `FOR SHARE` by fenced writes (the
//!    fence check), `FOR UPDATE` by lock changes and cluster removal;
//! 2. the `clusters` row: `FOR NO KEY UPDATE` by writes that read the
//!    cluster's rows and then change them (versions, node clashes, secret
//!    compare-and-set), `FOR UPDATE` by removal, `FOR KEY SHARE` by writes
//!    that only need it to exist (intents, events);
//! 3. `ip_pools` rows `FOR UPDATE`, in name order, by allocation and
//!    release (allocation is one pool's read-check-write).
//!
//! SERIALIZABLE would need every transaction retried on serialization
//! failures, and allocation (every allocator reads the same lease range)
//! would fail often under load; explicit row locks make writers queue
//! instead, with no retry loop and the same answers SQLite gives. Reads
//! that look at several tables run REPEATABLE READ, READ ONLY: one
//! snapshot, no locks.
//!
//! # TLS
//!
//! Loopback hosts (`localhost`, 127.0.0.0/8, `::1`) and Unix sockets get
//! plain connections by default: the traffic never leaves the machine, the
//! same trust boundary as a SQLite file beside vkube. Any other host gets
//! TLS (rustls on aws-lc-rs; no OpenSSL), with the certificate verified in
//! full against the CA file in `sslrootcert=` (or `PGSSLROOTCERT`), else
//! the system's roots. The URL's `sslmode` overrides: `disable` for plain
//! text (a deliberate choice, e.g. on an already encrypted link), `require`,
//! `verify-ca` or `verify-full` for TLS, always verified in full (see
//! `tls.rs`).

mod cluster;
mod ipam;
mod journal;
mod lock;
pub(crate) mod migrations;
mod secrets;
mod tls;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::IsolationLevel;

use crate::backend::{BackendKind, StateBackend};
use crate::error::{Error, Result};
use crate::path::default_state_path;
use crate::sealing::{Sealer, STATE_KEY_ENV};

/// Environment variable with the password when the URL has none (libpq's).
pub const PASSWORD_ENV: &str = "PGPASSWORD";

/// Connections one store keeps open at most.
const POOL_SIZE: usize = 16;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(60);

/// The state in a PostgreSQL database. Cheap to clone and share between
/// tasks (a pool of connections); every replica opens its own.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    location: String,
    sealer: std::sync::Arc<Sealer>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("key_file", &self.sealer.path())
            .finish_non_exhaustive()
    }
}

/// Whether `state` names a PostgreSQL database (`postgres://…` or
/// `postgresql://…`) rather than a file.
pub fn is_postgres_url(state: &str) -> bool {
    ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| state.starts_with(scheme))
}

impl PgStore {
    /// Connects to the database at `url`
    /// (`postgres://user[:password]@host[:port]/database[?options]`; the
    /// password may come from `PGPASSWORD` instead) and migrates its
    /// schema. Safe to call from several processes at once. Secrets are
    /// sealed with the key file [`key_path_for_url`] names.
    pub async fn connect(url: &str) -> Result<Self> {
        let key = key_path_for_url(url)?;
        Self::connect_with_key(url, key).await
    }

    /// Like [`connect`](Self::connect), with the key file given.
    pub async fn connect_with_key(url: &str, key_file: impl AsRef<Path>) -> Result<Self> {
        let settings = parse_url(url)?;
        let location = redacted(&settings.config);
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match settings.tls {
            Tls::Off => {
                Manager::from_config(settings.config, tokio_postgres::NoTls, manager_config())
            }
            Tls::Verified { roots } => Manager::from_config(
                settings.config,
                tls::RustlsConnect::new(roots.as_deref())?,
                manager_config(),
            ),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|error| Error::Invalid {
                field: "state",
                problem: format!("cannot set up connections to `{location}`: {error}"),
            })?;
        let store = PgStore {
            pool,
            location,
            sealer: std::sync::Arc::new(Sealer::new(key_file.as_ref().to_owned())),
        };
        migrations::migrate(&store).await?;
        secrets::seal_plain_rows(&store).await?;
        Ok(store)
    }

    /// The newest schema version this build knows.
    pub fn latest_schema_version() -> u32 {
        migrations::latest()
    }

    /// A pooled connection.
    async fn client(&self, action: &str) -> Result<Object> {
        self.pool.get().await.map_err(|error| {
            Error::database(
                format!("{action} (connecting to `{}`)", self.location),
                error,
            )
        })
    }
}

#[async_trait]
impl StateBackend for PgStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn key_file(&self) -> &Path {
        self.sealer.path()
    }

    async fn schema_version(&self) -> Result<u32> {
        migrations::current(self).await
    }
}

/// The key file for the database at `url`: `VKUBE_STATE_KEY` when set and
/// non-empty, else `postgres-<host>-<port>-<database>.key` in vkube's data
/// directory. Every process or replica sharing the database must use the
/// same key file (a mounted secret, named by `VKUBE_STATE_KEY`).
pub fn key_path_for_url(url: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(STATE_KEY_ENV).filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let config = parse_url(url)?.config;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    let name: String = format!("postgres-{host}-{port}-{database}.key")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    let state = default_state_path().ok_or(Error::NoStatePath)?;
    Ok(state.with_file_name(name))
}

/// Environment variable naming the CA file when the URL has no
/// `sslrootcert` (libpq's).
pub const ROOT_CERT_ENV: &str = "PGSSLROOTCERT";

/// How to secure connections.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tls {
    /// Plain TCP or a Unix socket.
    Off,
    /// TLS, the server verified against the CA file (or the system roots).
    Verified { roots: Option<PathBuf> },
}

/// What [`parse_url`] makes of a URL (`Config`'s `Debug` hides the
/// password).
#[derive(Debug)]
struct Settings {
    config: tokio_postgres::Config,
    tls: Tls,
}

/// The connection settings of `url`: the password from `PGPASSWORD` when
/// the URL has none, and TLS as the module docs say.
fn parse_url(url: &str) -> Result<Settings> {
    let invalid = |problem: String| Error::Invalid {
        field: "state",
        problem,
    };
    if !is_postgres_url(url) {
        return Err(invalid(
            "a PostgreSQL URL starts with `postgres://`".to_owned(),
        ));
    }
    // `sslmode` and `sslrootcert` are ours (tokio-postgres knows neither
    // libpq's verify modes nor root files); the rest goes to its parser.
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut sslmode = None;
    let mut root_cert = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => sslmode = Some(percent_decoded(value)),
            Some(("sslrootcert", value)) => root_cert = Some(PathBuf::from(percent_decoded(value))),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    // The parser's message may quote the URL, password and all.
    let mut config = tokio_postgres::Config::from_str(&url).map_err(|_| {
        invalid(
            "is not a valid PostgreSQL URL (postgres://user[:password]@host[:port]/database)"
                .into(),
        )
    })?;
    if config.get_user().is_none() {
        return Err(invalid(
            "PostgreSQL URL names no user (postgres://user@host/database)".into(),
        ));
    }
    if config.get_dbname().is_none() {
        return Err(invalid(
            "PostgreSQL URL names no database (postgres://user@host/database)".into(),
        ));
    }
    if config.get_password().is_none() {
        if let Some(password) = std::env::var_os(PASSWORD_ENV).filter(|value| !value.is_empty()) {
            config.password(password.as_encoded_bytes());
        }
    }
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    let all_local = config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => is_loopback(name),
        Host::Unix(_) => true,
    });
    let verified = || Tls::Verified {
        roots: root_cert.clone().or_else(|| {
            std::env::var_os(ROOT_CERT_ENV)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        }),
    };
    let tls = match sslmode.as_deref() {
        Some("disable") => Tls::Off,
        Some("require" | "verify-ca" | "verify-full") => verified(),
        None | Some("prefer" | "allow") if all_local => Tls::Off,
        None | Some("prefer" | "allow") => verified(),
        Some(other) => {
            return Err(invalid(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            )))
        }
    };
    config.ssl_mode(match tls {
        Tls::Off => SslMode::Disable,
        Tls::Verified { .. } => SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("vkube");
    }
    Ok(Settings { config, tls })
}

/// `%XX` escapes decoded (a path in a query string); malformed escapes
/// are kept as they are.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `localhost`, or an address in 127.0.0.0/8 or `::1`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// `postgres://user@host:port/database`: the URL without password or
/// options, for messages and `vkube state show`.
fn redacted(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) if host.contains(':') => format!("[{host}]"),
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or_default(),
        config.get_dbname().unwrap_or_default()
    )
}

/// `url` without its password, for messages: `postgres://user@host:port/db`
/// when it parses, else the text with everything between `://` and `@`
/// after the user cut.
pub(crate) fn redact_url(url: &str) -> String {
    if let Ok(config) = tokio_postgres::Config::from_str(url) {
        return redacted(&config);
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Maps a PostgreSQL error to the store's, naming what was being done.
fn pg(action: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let action = action.into();
    move |source| Error::database(action, source)
}

/// A READ COMMITTED write transaction.
async fn write<'a>(client: &'a mut Object, action: &str) -> Result<Transaction<'a>> {
    client.transaction().await.map_err(pg(action))
}

/// A REPEATABLE READ, READ ONLY transaction: one snapshot for reads that
/// look at several rows or tables.
async fn read<'a>(client: &'a mut Object, action: &str) -> Result<Transaction<'a>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg(action))
}

/// Commits `transaction`.
async fn commit(transaction: Transaction<'_>, action: &str) -> Result<()> {
    transaction.commit().await.map_err(pg(action))
}

/// A BIGINT parameter from an unsigned count (versions, generations).
fn bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An unsigned value read from a BIGINT column.
fn unsigned(value: i64, what: impl FnOnce() -> String) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Corrupt {
        what: what(),
        problem: format!("{value} is negative"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_need_no_tls_and_others_get_it_verified() {
        for url in [
            "postgres://vkube@127.0.0.1:5432/state",
            "postgres://vkube@localhost/state",
            "postgres://vkube@[::1]:6000/state",
            "postgresql://vkube@%2Frun%2Fpostgresql/state",
            "postgres://vkube@db.example.com/state?sslmode=disable",
        ] {
            let settings = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(settings.tls, Tls::Off, "{url}");
            assert_eq!(settings.config.get_ssl_mode(), SslMode::Disable, "{url}");
        }
        for url in [
            "postgres://vkube@db.example.com/state",
            "postgres://vkube@db.example.com/state?sslmode=prefer",
            "postgres://vkube@127.0.0.1/state?sslmode=require",
            "postgres://vkube@localhost/state?sslmode=verify-full&application_name=x",
        ] {
            let settings = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(matches!(settings.tls, Tls::Verified { .. }), "{url}");
            assert_eq!(settings.config.get_ssl_mode(), SslMode::Require, "{url}");
        }
        let settings = parse_url(
            "postgres://u@db/state?sslrootcert=%2Fetc%2Fvkube%2Fca.pem&sslmode=verify-ca",
        )
        .unwrap();
        assert_eq!(
            settings.tls,
            Tls::Verified {
                roots: Some("/etc/vkube/ca.pem".into())
            }
        );
        assert!(parse_url("postgres://u@db/state?sslmode=sometimes").is_err());
    }

    #[test]
    fn urls_need_user_and_database_and_never_leak_the_password() {
        assert!(parse_url("postgres://127.0.0.1/state").is_err());
        assert!(parse_url("postgres://vkube@127.0.0.1").is_err());
        let error = parse_url("postgres://vkube:hunter2@127.0.0.1:notaport/x").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let config = parse_url("postgres://vkube:hunter2@127.0.0.1:6543/state")
            .unwrap()
            .config;
        assert_eq!(redacted(&config), "postgres://vkube@127.0.0.1:6543/state");
        assert_eq!(config.get_password(), Some(&b"hunter2"[..]));
    }

    #[test]
    fn key_file_defaults_per_database() {
        let path = key_path_for_url("postgres://vkube@127.0.0.1:6543/state").unwrap();
        if std::env::var_os(STATE_KEY_ENV).is_none() {
            assert!(
                path.ends_with("vkube/postgres-127.0.0.1-6543-state.key"),
                "{}",
                path.display()
            );
        }
    }
}
