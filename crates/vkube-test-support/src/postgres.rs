//! A real PostgreSQL for tests: Debian's server binaries
//! (`/usr/lib/postgresql/<version>/bin`, the newest installed), a fresh
//! cluster in a temporary directory, listening on a free loopback port and
//! a socket directory of its own, stopped on drop.
//!
//! As root (CI, the dev machines) the server runs as the `postgres` system
//! user, since `initdb` refuses root: the temporary directory is handed to
//! it. The superuser `postgres` needs a password over TCP
//! (`scram-sha-256`), so tests exercise the password path the store uses.
//! The server also speaks TLS, with a certificate for `127.0.0.1` from a
//! test CA ([`PostgresServer::ca_file`]); the superuser [`TLS_ONLY_USER`]
//! (same password) is refused without TLS, so a test can prove its
//! connection was encrypted.
//!
//! One server per test binary ([`PostgresServer::shared`], stopped when the
//! process exits) with a database per test ([`PostgresServer::database`])
//! keeps tests independent at the cost of one `initdb` per binary. Without
//! PostgreSQL installed, [`PostgresServer::shared`] prints a note and
//! returns `None`, unless `VKUBE_REQUIRE_POSTGRES=1`, which makes it fail.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Set to `1` to fail, instead of skip, when PostgreSQL is not installed.
pub const REQUIRE_ENV: &str = "VKUBE_REQUIRE_POSTGRES";

/// Overrides where the server binaries are (`initdb`, `postgres`, `psql`).
pub const BIN_DIR_ENV: &str = "VKUBE_POSTGRES_BIN_DIR";

/// The superuser of test clusters.
pub const SUPERUSER: &str = "postgres";

/// A second superuser, refused on connections without TLS.
pub const TLS_ONLY_USER: &str = "tls_only";

const INSTALL: &str = "apt-get install -y postgresql";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory holding `initdb` and `postgres`: [`BIN_DIR_ENV`], else the
/// newest `/usr/lib/postgresql/<version>/bin` that has both.
pub fn bin_dir() -> Option<PathBuf> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir)).filter(|dir| usable(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| usable(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// Whether PostgreSQL is installed. If not: a note and `false`, or a panic
/// when `VKUBE_REQUIRE_POSTGRES=1`.
pub fn available() -> bool {
    if bin_dir().is_some() {
        return true;
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|value| value == "1");
    assert!(
        !required,
        "{REQUIRE_ENV}=1 but no PostgreSQL server binaries were found in /usr/lib/postgresql/*/bin ({INSTALL})"
    );
    eprintln!("note: PostgreSQL is not installed, skipping its tests ({INSTALL})");
    false
}

/// The unprivileged user the server runs as, when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl RunAs {
    /// `postgres` when running as root, else nobody (run as ourselves).
    fn needed() -> io::Result<Option<RunAs>> {
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            return Ok(None);
        }
        let name = std::ffi::CString::new(SUPERUSER).expect("no NUL");
        // SAFETY: getpwnam returns NULL or a pointer to static storage,
        // read before any other call that could overwrite it.
        let entry = unsafe { libc::getpwnam(name.as_ptr()) };
        if entry.is_null() {
            return Err(io::Error::other(format!(
                "running as root, but there is no `{SUPERUSER}` user to run PostgreSQL as ({INSTALL} creates it)"
            )));
        }
        // SAFETY: checked non-null above.
        let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
        Ok(Some(RunAs { uid, gid }))
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
    }

    /// Makes `command` drop to this user before it executes.
    fn apply(self, command: &mut Command) {
        let RunAs { uid, gid } = self;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// A running PostgreSQL; stopped (fast shutdown, then SIGKILL) and its
/// directory removed on drop.
pub struct PostgresServer {
    bin: PathBuf,
    port: u16,
    password: String,
    ca_file: PathBuf,
    child: Mutex<Option<Child>>,
    dir: Mutex<Option<tempfile::TempDir>>,
    log: PathBuf,
    databases: AtomicU32,
    /// Dropped last: ends the thread the server was started from, whose
    /// exit sends the server SIGQUIT (its parent-death signal) should the
    /// test process die without dropping it.
    _keeper: Mutex<mpsc::Sender<()>>,
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("bin", &self.bin)
            .finish_non_exhaustive()
    }
}

impl PostgresServer {
    /// The server of this test binary, started on first use and stopped
    /// when the process exits; `None` (after a note) when PostgreSQL is not
    /// installed and not required. Panics when it cannot start.
    pub fn shared() -> Option<&'static PostgresServer> {
        static SHARED: OnceLock<Option<PostgresServer>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                if !available() {
                    return None;
                }
                let server = PostgresServer::start()
                    .unwrap_or_else(|error| panic!("starting PostgreSQL: {error}"));
                extern "C" fn stop_shared() {
                    if let Some(Some(server)) = SHARED.get() {
                        server.stop();
                    }
                }
                // SAFETY: registers a plain function; statics are never
                // dropped, so this is how the shared server is stopped.
                unsafe {
                    libc::atexit(stop_shared);
                }
                Some(server)
            })
            .as_ref()
    }

    /// Starts a new cluster (initdb, then the server) and waits until it
    /// accepts connections. Fails when PostgreSQL is not installed.
    pub fn start() -> io::Result<PostgresServer> {
        let bin = bin_dir()
            .ok_or_else(|| io::Error::other(format!("PostgreSQL is not installed ({INSTALL})")))?;
        let run_as = RunAs::needed()?;
        let dir = tempfile::Builder::new().prefix("vkube-pg-").tempdir()?;
        let data = dir.path().join("data");
        let password = format!("pw-{}-{}", std::process::id(), nanos());
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, &password)?;
        if let Some(run_as) = run_as {
            run_as.chown(dir.path())?;
            run_as.chown(&password_file)?;
        }

        let log = dir.path().join("initdb.log");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--no-locale"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display()))
            .args(["--no-sync", "--no-instructions"])
            .stdout(File::create(&log)?)
            .stderr(File::create(&log)?);
        if let Some(run_as) = run_as {
            run_as.apply(&mut initdb);
        }
        let status = initdb.status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "initdb failed ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )));
        }
        let ca_file = write_tls_files(dir.path(), &data, run_as)?;

        let mut last_error = None;
        // A port found free may be taken before the server binds it: retry.
        for _ in 0..3 {
            let port = free_port()?;
            let log = dir.path().join(format!("server-{port}.log"));
            let (child, keeper) = spawn_server(&bin, &data, dir.path(), port, &log, run_as)?;
            let server = PostgresServer {
                bin: bin.clone(),
                port,
                password: password.clone(),
                ca_file: ca_file.clone(),
                child: Mutex::new(Some(child)),
                dir: Mutex::new(None),
                log,
                databases: AtomicU32::new(0),
                _keeper: Mutex::new(keeper),
            };
            let ready = server.wait_until_ready().and_then(|()| {
                server.psql(
                    "postgres",
                    &format!(
                        "CREATE ROLE {TLS_ONLY_USER} LOGIN SUPERUSER PASSWORD '{}'",
                        server.password
                    ),
                )
            });
            match ready {
                Ok(_) => {
                    *server.dir.lock().unwrap() = Some(dir);
                    return Ok(server);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("three attempts"))
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA file (PEM) the server's certificate chains to.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A URL for database `database` as the superuser, password included.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A new, empty database with a name unique to this process.
    pub fn database(&'static self) -> PostgresDatabase {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("vkube_test_{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|error| panic!("creating database {name}: {error}"));
        PostgresDatabase { server: self, name }
    }

    /// Runs `sql` with `psql` in `database` as the superuser; returns its
    /// unaligned, tuples-only output (one row per line, `|` between fields).
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", database, "-c", sql])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(io::Error::other(format!(
                "psql {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                return Err(io::Error::other(format!(
                    "postgres exited ({status}):\n{}",
                    self.log_text()
                )));
            }
            match self.psql("postgres", "SELECT 1") {
                Ok(_) => return Ok(()),
                Err(error) if Instant::now() > deadline => {
                    self.stop();
                    return Err(io::Error::other(format!(
                        "postgres did not accept connections within {START_TIMEOUT:?}: {error}\n{}",
                        self.log_text()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Stops the server (fast shutdown, SIGKILL after 10 s) and removes
    /// its directory. Idempotent.
    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // SAFETY: signals a child we started and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.dir.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One test's database on a [`PostgresServer`]; dropped (with its
/// connections) on drop.
#[derive(Debug)]
pub struct PostgresDatabase {
    server: &'static PostgresServer,
    name: String,
}

impl PostgresDatabase {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL, password included.
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    /// Its URL as `user`, password included, with `query` (e.g.
    /// `sslmode=verify-full`) appended.
    pub fn url_for(&self, user: &str, query: &str) -> String {
        format!(
            "postgres://{user}:{}@127.0.0.1:{}/{}?{query}",
            self.server.password, self.server.port, self.name
        )
    }

    /// Its URL without the password (for `PGPASSWORD` tests).
    pub fn url_without_password(&self) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.server.port, self.name
        )
    }

    /// The server.
    pub fn server(&self) -> &'static PostgresServer {
        self.server
    }

    /// Runs `sql` in this database (see [`PostgresServer::psql`]); panics
    /// on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.server
            .psql(&self.name, sql)
            .unwrap_or_else(|error| panic!("psql in {}: {error}", self.name))
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = self.server.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Starts `postgres` from a thread that lives until the returned sender is
/// dropped: the server's parent-death signal (SIGQUIT, immediate shutdown)
/// fires when that thread ends, so a test process that dies without
/// stopping the server does not leave it running.
fn spawn_server(
    bin: &Path,
    data: &Path,
    socket_dir: &Path,
    port: u16,
    log: &Path,
    run_as: Option<RunAs>,
) -> io::Result<(Child, mpsc::Sender<()>)> {
    let mut command = Command::new(bin.join("postgres"));
    command
        .arg("-D")
        .arg(data)
        .arg("-k")
        .arg(socket_dir)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        // A throwaway cluster: durability off for speed.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
        .args([
            "-c",
            "shared_buffers=32MB",
            "-c",
            "log_min_messages=warning",
        ])
        // TLS too, for the store's verified connections (see `write_tls_files`).
        .args(["-c", "ssl=on", "-c", "ssl_cert_file=server.crt"])
        .args(["-c", "ssl_key_file=server.key"])
        .stdin(Stdio::null())
        .stdout(File::create(log)?)
        .stderr(File::create(log)?);
    if let Some(run_as) = run_as {
        run_as.apply(&mut command);
    }
    // SAFETY: prctl is async-signal-safe; set after the user change, which
    // would clear it.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (started_tx, started_rx) = mpsc::channel();
    let (keep_tx, keep_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("postgres-{port}"))
        .spawn(move || {
            let _ = started_tx.send(command.spawn());
            // Until the server is dropped (or the process exits).
            let _ = keep_rx.recv();
        })?;
    let child = started_rx
        .recv()
        .map_err(|_| io::Error::other("the thread starting postgres died"))??;
    Ok((child, keep_tx))
}

/// A test CA, and a server certificate for 127.0.0.1 from it in the data
/// directory (the key 0600, as PostgreSQL insists); `pg_hba.conf` refuses
/// [`TLS_ONLY_USER`] without TLS. Returns the CA file.
fn write_tls_files(dir: &Path, data: &Path, run_as: Option<RunAs>) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ca = crate::kube_api::TestCa::new("vkube test PostgreSQL CA");
    let server = ca.server_certificate(&[std::net::IpAddr::from([127, 0, 0, 1])]);
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem)?;
    let cert = data.join("server.crt");
    let key = data.join("server.key");
    std::fs::write(&cert, &server.cert_pem)?;
    std::fs::write(&key, &server.key_pem)?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let hba = data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba)?;
    std::fs::write(
        &hba,
        format!(
            "hostnossl all {TLS_ONLY_USER} 0.0.0.0/0 reject\nhostnossl all {TLS_ONLY_USER} ::/0 reject\n{rules}"
        ),
    )?;
    if let Some(run_as) = run_as {
        for file in [&cert, &key, &hba] {
            run_as.chown(file)?;
        }
    }
    Ok(ca_file)
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
