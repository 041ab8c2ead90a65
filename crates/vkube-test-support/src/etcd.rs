//! A real etcd cluster for a test: one `etcd` process per member (Debian's `etcd-server`,
//! or `VKUBE_ETCD_BIN`), each on a loopback address of its own with free client and peer
//! ports, serving and peering over TLS with the certificates the test issued from its etcd
//! CA and requiring client certificates from that CA (`--client-cert-auth`,
//! `--peer-client-cert-auth`), as kubeadm runs etcd. Data lives in a temporary directory;
//! every process is stopped and the directory removed when the [`EtcdCluster`] is dropped.
//!
//! [`EtcdCluster::start`] returns `None` (after a note) when etcd is not installed, unless
//! `VKUBE_REQUIRE_ETCD=1` makes that a failure.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::external_tool::ETCD;

/// How long a cluster may take to elect a leader and serve.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Randomness for test key material (vkube-core takes randomness from its
/// caller): distinct keys, not secret ones.
pub fn test_random() -> impl FnMut(&mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut counter = 0u64;
    move |dest: &mut [u8]| {
        for chunk in dest.chunks_mut(8) {
            counter += 1;
            let mut hasher = state.build_hasher();
            hasher.write_u64(counter);
            chunk.copy_from_slice(&hasher.finish().to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Loopback addresses no other test process uses: `127.<pid>.<n>` (every 127.0.0.0/8
/// address is local on Linux), `n` counting up per call.
pub fn loopback_ips(count: usize) -> Vec<IpAddr> {
    static NEXT: AtomicU8 = AtomicU8::new(10);
    let pid = std::process::id();
    (0..count)
        .map(|_| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            IpAddr::V4(Ipv4Addr::new(127, (pid >> 8) as u8, pid as u8, n))
        })
        .collect()
}

/// One member to run: its name, address, and serving certificate (also its peer
/// certificate: server and client authentication, the address as IP SAN).
#[derive(Clone)]
pub struct MemberSpec {
    /// `--name`, e.g. `demo-cp-0`.
    pub name: String,
    /// The loopback address it listens on.
    pub ip: IpAddr,
    /// Certificate PEM, from the etcd CA.
    pub cert_pem: String,
    /// Its key, PEM.
    pub key_pem: String,
}

impl MemberSpec {
    /// Members named `names`, each on a loopback address of its own
    /// ([`loopback_ips`]), serving with the certificate and key (PEM) that
    /// `issue(name, ip)` returns.
    pub fn on_loopback(
        names: &[&str],
        mut issue: impl FnMut(&str, IpAddr) -> (String, String),
    ) -> Vec<MemberSpec> {
        names
            .iter()
            .zip(loopback_ips(names.len()))
            .map(|(name, ip)| {
                let (cert_pem, key_pem) = issue(name, ip);
                MemberSpec {
                    name: name.to_string(),
                    ip,
                    cert_pem,
                    key_pem,
                }
            })
            .collect()
    }
}

impl std::fmt::Debug for MemberSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSpec")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

/// The cluster to run.
#[derive(Clone, Debug)]
pub struct EtcdClusterSpec {
    /// The etcd CA, PEM: what members trust for clients and peers.
    pub ca_pem: String,
    /// The members.
    pub members: Vec<MemberSpec>,
    /// A client certificate and key from the CA, for waiting until the members serve.
    pub client_cert_pem: String,
    /// Its key.
    pub client_key_pem: String,
}

struct RunningMember {
    name: String,
    client_url: String,
    child: Option<Child>,
    log: PathBuf,
}

/// A running etcd cluster; stopped on drop.
pub struct EtcdCluster {
    members: Vec<RunningMember>,
    /// The CA file every member trusts.
    ca: PathBuf,
    /// The test's client, for health checks and member changes.
    probe: HealthProbe,
    token: String,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts every member and waits until each one's `/health` is true. `None` when etcd is
    /// not installed (a note, or a panic with `VKUBE_REQUIRE_ETCD=1`); panics with the
    /// members' logs when they do not come up.
    pub fn start(spec: &EtcdClusterSpec) -> Option<EtcdCluster> {
        // A binary named by VKUBE_ETCD_BIN must run; else etcd on PATH, if installed.
        if std::env::var_os("VKUBE_ETCD_BIN").is_none() && !ETCD.available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory for etcd");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write etcd key material");
            path
        };
        let ca = write("ca.crt", &spec.ca_pem);
        let ports: Vec<(u16, u16)> = spec
            .members
            .iter()
            .map(|m| (free_port(m.ip), free_port(m.ip)))
            .collect();
        let url = |ip: IpAddr, port: u16| format!("https://{}", SocketAddr::new(ip, port));
        let initial_cluster: Vec<String> = spec
            .members
            .iter()
            .zip(&ports)
            .map(|(m, (_, peer))| format!("{}={}", m.name, url(m.ip, *peer)))
            .collect();
        let token = format!("vkube-test-{}-{}", std::process::id(), ports[0].0);
        let mut members = Vec::new();
        for (member, (client, peer)) in spec.members.iter().zip(&ports) {
            let launch = Launch {
                dir: dir.path(),
                ca: &ca,
                initial_cluster: &initial_cluster.join(","),
                state: "new",
                token: &token,
            };
            members.push(launch.spawn(member, url(member.ip, *client), url(member.ip, *peer)));
        }
        let mut cluster = EtcdCluster {
            members,
            ca,
            probe: HealthProbe::new(spec),
            token,
            dir,
        };
        cluster.wait_until_healthy();
        Some(cluster)
    }

    /// Adds `member` to the running cluster as `kubeadm join --control-plane`
    /// does: `member add` through a running member, then its process starts
    /// with the cluster's current members (`--initial-cluster-state
    /// existing`). Returns once it is healthy.
    pub fn add_member(&mut self, member: &MemberSpec) {
        let (client, peer) = (free_port(member.ip), free_port(member.ip));
        let url = |port: u16| format!("https://{}", SocketAddr::new(member.ip, port));
        let (client_url, peer_url) = (url(client), url(peer));
        let via = self
            .running_urls()
            .into_iter()
            .find(|url| self.probe.healthy(url))
            .expect("a healthy member to add through");
        // etcd refuses reconfiguration for a few seconds after its members
        // (re)connect (`unhealthy cluster`); kubeadm retries, and so does this.
        let deadline = Instant::now() + START_TIMEOUT;
        let answer = loop {
            let answer = self
                .probe
                .post(
                    &via,
                    "/v3/cluster/member/add",
                    &format!("{{\"peerURLs\":[\"{peer_url}\"]}}"),
                )
                .unwrap_or_else(|e| panic!("member add through {via}: {e}"));
            if !answer.contains("unhealthy cluster") || Instant::now() > deadline {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let listed: serde_json::Value = serde_json::from_str(body.trim())
            .unwrap_or_else(|e| panic!("member add answered {answer:?}: {e}"));
        let initial_cluster: Vec<String> = listed["members"]
            .as_array()
            .unwrap_or_else(|| panic!("member add answered {answer:?}"))
            .iter()
            .flat_map(|m| {
                let name = m["name"].as_str().filter(|n| !n.is_empty());
                let name = name.unwrap_or(&member.name).to_owned();
                m["peerURLs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str())
                    .map(move |u| format!("{name}={u}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        let launch = Launch {
            dir: self.dir.path(),
            ca: &self.ca,
            initial_cluster: &initial_cluster.join(","),
            state: "existing",
            token: &self.token,
        };
        let running = launch.spawn(member, client_url, peer_url);
        self.members.push(running);
        self.wait_until_healthy();
    }

    /// The names of the cluster's members, as a running member lists them
    /// (a member added but not started has an empty name).
    pub fn member_names(&mut self) -> Vec<String> {
        let running = self.running_urls();
        for url in running {
            let Ok(answer) = self.probe.post(&url, "/v3/cluster/member/list", "{}") else {
                continue;
            };
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
            let Ok(listed) = serde_json::from_str::<serde_json::Value>(body.trim()) else {
                continue;
            };
            let mut names: Vec<String> = listed["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            names.sort();
            return names;
        }
        Vec::new()
    }

    /// The client URLs of the members whose process runs (a member removed
    /// from the cluster stops its own).
    fn running_urls(&mut self) -> Vec<String> {
        self.members
            .iter_mut()
            .filter_map(|m| {
                let alive = m
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                alive.then(|| m.client_url.clone())
            })
            .collect()
    }

    /// Whether member `name` answers `/health` true.
    pub fn is_healthy(&self, name: &str) -> bool {
        self.probe.healthy(&self.member(name).client_url)
    }

    /// Waits until every running member answers healthy.
    fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        for url in self.running_urls() {
            while !self.probe.healthy(&url) {
                if Instant::now() > deadline {
                    panic!(
                        "etcd member at {url} did not become healthy within {START_TIMEOUT:?}:\n{}",
                        self.logs()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The client URL of member `name`, e.g. `https://127.1.2.10:40123`.
    pub fn client_url(&self, name: &str) -> String {
        self.member(name).client_url.clone()
    }

    /// Every member's client URL, in the order given.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Kills member `name` (SIGKILL), as when its VM is powered off.
    pub fn kill(&mut self, name: &str) {
        let member = self.member_mut(name);
        if let Some(mut child) = member.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether member `name`'s process still runs (a removed member stops itself).
    pub fn is_running(&mut self, name: &str) -> bool {
        let member = self.member_mut(name);
        match member.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                member.child = None;
                false
            }
            None => false,
        }
    }

    /// Member `name`'s log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(&self.member(name).log).unwrap_or_default()
    }

    /// Every member's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.name, self.log(&m.name)))
            .collect()
    }

    fn member(&self, name: &str) -> &RunningMember {
        self.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no etcd member {name}"))
    }

    fn member_mut(&mut self, name: &str) -> &mut RunningMember {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no etcd member {name}"))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        // SIGKILL: the data directory is thrown away, and a clean stop (SIGTERM) makes each
        // member try to hand leadership to peers that are stopping too, for seconds.
        for mut child in self.members.iter_mut().filter_map(|m| m.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a member process starts: where its files go, the CA, and the
/// cluster it joins (`new` at first, `existing` when added later).
struct Launch<'a> {
    dir: &'a Path,
    ca: &'a Path,
    initial_cluster: &'a str,
    state: &'a str,
    token: &'a str,
}

impl Launch<'_> {
    /// Writes `member`'s key material and starts its process.
    fn spawn(&self, member: &MemberSpec, client_url: String, peer_url: String) -> RunningMember {
        let write = |name: String, text: &str| {
            let path = self.dir.join(name);
            std::fs::write(&path, text).expect("write etcd key material");
            path
        };
        let cert = write(format!("{}.crt", member.name), &member.cert_pem);
        let key = write(format!("{}.key", member.name), &member.key_pem);
        let log = self.dir.join(format!("{}.log", member.name));
        let child = etcd_command()
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.join(format!("{}.data", member.name)))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", self.initial_cluster])
            .args(["--initial-cluster-state", self.state])
            .args(["--initial-cluster-token", self.token])
            .args(tls_flags("", &cert, &key, self.ca))
            .args(tls_flags("peer-", &cert, &key, self.ca))
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("an etcd log file"))
            .spawn()
            .expect("spawn etcd");
        RunningMember {
            name: member.name.clone(),
            client_url,
            child: Some(child),
            log,
        }
    }
}

fn etcd_command() -> Command {
    match std::env::var_os("VKUBE_ETCD_BIN") {
        Some(path) => Command::new(path),
        None => ETCD.command(),
    }
}

fn tls_flags(prefix: &str, cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    vec![
        format!("--{prefix}cert-file={}", cert.display()),
        format!("--{prefix}key-file={}", key.display()),
        format!("--{prefix}trusted-ca-file={}", ca.display()),
        format!("--{prefix}client-cert-auth"),
    ]
}

/// A port free on `ip` now (bound, then released for etcd to bind).
fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
        .port()
}

/// `GET /health` with the test's client certificate, blocking.
struct HealthProbe {
    config: Arc<ClientConfig>,
}

impl HealthProbe {
    fn new(spec: &EtcdClusterSpec) -> HealthProbe {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(spec.ca_pem.as_bytes()) {
            roots
                .add(cert.expect("the etcd CA is PEM"))
                .expect("a usable etcd CA");
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(spec.client_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("the client certificate is PEM");
        let key = PrivateKeyDer::from_pem_slice(spec.client_key_pem.as_bytes())
            .expect("the client key is PEM");
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("a usable client certificate");
        HealthProbe {
            config: Arc::new(config),
        }
    }

    fn healthy(&self, url: &str) -> bool {
        self.get_health(url)
            .is_ok_and(|answer| answer.contains("\"health\":\"true\""))
    }

    fn get_health(&self, url: &str) -> std::io::Result<String> {
        self.exchange(
            url,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        )
    }

    /// `POST path` with a JSON `body` (etcd's JSON gateway), blocking; the
    /// whole answer, headers included.
    fn post(&self, url: &str, path: &str, body: &str) -> std::io::Result<String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {{addr}}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        self.exchange(url, &request)
    }

    /// Send `request` (`{addr}` stands for the member's address) and read the answer.
    fn exchange(&self, url: &str, request: &str) -> std::io::Result<String> {
        let addr: SocketAddr = url
            .trim_start_matches("https://")
            .parse()
            .map_err(std::io::Error::other)?;
        let name = ServerName::IpAddress(addr.ip().into());
        let connection =
            ClientConnection::new(Arc::clone(&self.config), name).map_err(std::io::Error::other)?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut tls = StreamOwned::new(connection, tcp);
        tls.write_all(request.replace("{addr}", &addr.to_string()).as_bytes())?;
        let mut answer = Vec::new();
        // etcd may close without close_notify; what arrived is the answer.
        let _ = tls.read_to_end(&mut answer);
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
}
