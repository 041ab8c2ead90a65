//! Starting and stopping one simulator process.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Inventory shape and behaviour of a simulator. `Default` is vcsim's VPX
/// default: 1 datacenter, 1 cluster of 3 hosts, 1 standalone host, 2 VMs per
/// resource pool, 1 datastore, 1 port group.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Datacenters.
    pub datacenters: u32,
    /// Clusters per datacenter.
    pub clusters: u32,
    /// Hosts per cluster.
    pub hosts_per_cluster: u32,
    /// Standalone hosts per datacenter.
    pub standalone_hosts: u32,
    /// VMs per resource pool.
    pub vms: u32,
    /// Datastores.
    pub datastores: u32,
    /// Distributed port groups per datacenter.
    pub portgroups: u32,
    /// Datastore clusters per datacenter.
    pub datastore_clusters: u32,
    /// Extra resource pools per cluster.
    pub resource_pools: u32,
    /// Per-method latency in ms, e.g. `("CloneVM_Task", 3000)`.
    pub method_delays: Vec<(String, u64)>,
    /// Sessions idle longer than this are dropped.
    pub session_idle_timeout: Option<Duration>,
    /// Every vSphere API (SOAP) session is ended this often, busy or idle,
    /// with the container views it owns (`-expire-sessions-every`).
    pub expire_sessions_every: Option<Duration>,
    /// Serve HTTPS (the default) or plain HTTP.
    pub tls: bool,
    /// The only user name accepted.
    pub username: String,
    /// The only password accepted.
    pub password: String,
    /// Extra command-line flags, for harness features without a field here.
    pub extra_args: Vec<String>,
    /// Register the vSphere 7/8 privilege ids vkube knows (`catalogs/privileges`);
    /// off, the simulator knows only its own vSphere 6.5 ids, like an old vCenter.
    pub modern_privileges: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            datacenters: 1,
            clusters: 1,
            hosts_per_cluster: 3,
            standalone_hosts: 1,
            vms: 2,
            datastores: 1,
            portgroups: 1,
            datastore_clusters: 0,
            resource_pools: 0,
            method_delays: Vec::new(),
            session_idle_timeout: None,
            expire_sessions_every: None,
            tls: true,
            username: "vkube-admin".into(),
            password: "s3cret-Pa55".into(),
            extra_args: Vec::new(),
            modern_privileges: true,
        }
    }
}

/// A running simulator; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Simulator {
    child: Child,
    url: String,
    config: SimulatorConfig,
    log: tempfile::NamedTempFile,
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Path of the simulator binary, building it first if needed (once per process).
pub fn vcsim_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Ok(path) = std::env::var("VKUBE_VCSIM_BIN") {
                return PathBuf::from(path);
            }
            let script = repo_root().join("scripts/build-vcsim.sh");
            let out = Command::new("bash")
                .arg(&script)
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/build-vcsim.sh");
            assert!(out.status.success(), "scripts/build-vcsim.sh failed");
            let stdout = String::from_utf8_lossy(&out.stdout);
            PathBuf::from(stdout.lines().last().expect("binary path").trim())
        })
        .clone()
}

impl Simulator {
    /// Start a simulator with the default inventory.
    pub fn start_default() -> Simulator {
        Simulator::start(SimulatorConfig::default())
    }

    /// Start a simulator and wait until it serves. Panics (failing the test)
    /// with the simulator's own log when it cannot start.
    pub fn start(config: SimulatorConfig) -> Simulator {
        let log = tempfile::NamedTempFile::new().expect("simulator log file");
        let mut cmd = Command::new(vcsim_binary());
        cmd.args(["-listen", "127.0.0.1:0"])
            .arg(format!("-tls={}", config.tls))
            .args(["-username", &config.username, "-password", &config.password])
            .args(["-dc", &config.datacenters.to_string()])
            .args(["-cluster", &config.clusters.to_string()])
            .args(["-host", &config.hosts_per_cluster.to_string()])
            .args(["-standalone-host", &config.standalone_hosts.to_string()])
            .args(["-vm", &config.vms.to_string()])
            .args(["-ds", &config.datastores.to_string()])
            .args(["-pg", &config.portgroups.to_string()])
            .args(["-pod", &config.datastore_clusters.to_string()])
            .args(["-pool", &config.resource_pools.to_string()]);
        for file in ["vsphere-8.txt", "vsphere-extra.txt"] {
            let path = repo_root().join("catalogs/privileges").join(file);
            if config.modern_privileges && path.exists() {
                cmd.arg("-privileges").arg(path);
            }
        }
        if !config.method_delays.is_empty() {
            let delays: Vec<String> = config
                .method_delays
                .iter()
                .map(|(m, ms)| format!("{m}={ms}"))
                .collect();
            cmd.args(["-method-delay", &delays.join(",")]);
        }
        if let Some(timeout) = config.session_idle_timeout {
            cmd.args([
                "-session-idle-timeout",
                &format!("{}ms", timeout.as_millis()),
            ]);
        }
        if let Some(every) = config.expire_sessions_every {
            cmd.args([
                "-expire-sessions-every",
                &format!("{}ms", every.as_millis()),
            ]);
        }
        cmd.args(&config.extra_args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log handle"))
            .spawn()
            .expect("spawn the simulator");
        let stdout = child.stdout.take().expect("simulator stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the simulator never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let mut sim = Simulator {
            child,
            url: line.trim().to_string(),
            config,
            log,
        };
        if !sim.url.contains("://") {
            let log = sim.log_text();
            panic!(
                "the simulator did not start: first line {:?}; log:\n{log}",
                sim.url
            );
        }
        sim.wait_until_listening();
        sim
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.address()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the simulator at {} does not accept connections", self.url);
    }

    /// The SDK URL, e.g. `https://127.0.0.1:41234/sdk` (no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        let rest = self.url.split("://").nth(1).unwrap_or("");
        rest.split('/').next().unwrap_or("").to_string()
    }

    /// The accepted user name.
    pub fn username(&self) -> &str {
        &self.config.username
    }

    /// The accepted password.
    pub fn password(&self) -> &str {
        &self.config.password
    }

    /// Environment for running the `vkube` binary against this simulator
    /// (the simulator's certificate is self-signed, hence insecure).
    pub fn vkube_env(&self) -> Vec<(String, String)> {
        vec![
            ("VKUBE_URL".into(), self.url.clone()),
            ("VKUBE_USERNAME".into(), self.config.username.clone()),
            ("VKUBE_PASSWORD".into(), self.config.password.clone()),
            ("VKUBE_INSECURE".into(), "true".into()),
        ]
    }

    /// What the simulator wrote to stderr so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = self.log.reopen() {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The process id (to send signals in tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freeze the simulator (SIGSTOP): connections stay open and the kernel
    /// still accepts new ones, but nothing answers — a hung vCenter. Undo
    /// with [`Simulator::resume`]; dropping a paused simulator resumes it first.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Let a paused simulator run again (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signal {signal} to the simulator failed");
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // SIGTERM lets the simulator remove its temporary datastore directories;
        // SIGCONT first, so a paused simulator can act on it.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGCONT);
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
