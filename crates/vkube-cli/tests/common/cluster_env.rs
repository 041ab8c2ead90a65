//! A simulator, a state file and the cloud user the example specs name:
//! what every `vkube cluster` test starts from.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::vm::ObservedVm;
use vkube_vsphere::{
    ConnectOptions, Endpoint, Inventory, Secret, Session, TlsPolicy, TransportChoice,
};

use super::{vkube, Run};

/// `examples/cluster-two-az.yaml`, renamed `t1`.
pub fn two_az_spec() -> String {
    include_str!("../../../../examples/cluster-two-az.yaml").replacen("name: two-az", "name: t1", 1)
}
/// The vCenter user the example specs' `demo-cloud` credentials name.
pub const CLOUD_USER: &str = "k8s-demo@vsphere.local";
pub const CLOUD_PASSWORD: &str = "Cl0ud-Pa55!";
/// Where the cloud user's CPI/CSI roles are granted: every object the
/// example specs use (node VMs through the folder they are created in).
pub const CLOUD_BINDS: &[&str] = &[
    "datacenter=/DC0",
    "compute-cluster=/DC0/host/DC0_C0",
    "compute-cluster=/DC0/host/DC0_C1",
    "datastore=/DC0/datastore/LocalDS_0",
    "datastore=/DC0/datastore/LocalDS_1",
    "vm-folder=/DC0/vm",
];

pub struct Env {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    /// Where the state is (`VKUBE_STATE`, and `VKUBE_STATE_KEY` when set):
    /// `state.db` in `dir` unless started with [`Env::start_with_state`].
    state: Vec<(String, String)>,
}

impl Env {
    pub fn start(delays: &[(&str, u64)]) -> Env {
        Env::start_with(SimulatorConfig {
            method_delays: delays.iter().map(|(m, d)| (m.to_string(), *d)).collect(),
            ..Default::default()
        })
    }

    /// [`Env::start`] with the state at `url` (e.g. a `postgres://` URL),
    /// its key file in the test's directory.
    pub fn start_with_state(delays: &[(&str, u64)], url: Option<String>) -> Env {
        Env::start_on(
            SimulatorConfig {
                method_delays: delays.iter().map(|(m, d)| (m.to_string(), *d)).collect(),
                ..Default::default()
            },
            url,
        )
    }

    /// Like [`Env::start`], on a simulator with `config`'s behaviour (its
    /// inventory shape is always what the example specs name).
    pub fn start_with(config: SimulatorConfig) -> Env {
        Env::start_on(config, None)
    }

    fn start_on(config: SimulatorConfig, url: Option<String>) -> Env {
        let sim = Simulator::start(SimulatorConfig {
            clusters: 2,
            datastores: 2,
            ..config
        });
        let env = Env::on(sim, url);
        let pools = env.vkube(&[
            "ippool",
            "import",
            "-f",
            &repo_file("examples/ippools.yaml"),
        ]);
        assert_eq!(pools.code, 0, "{}", pools.stderr);
        env.set_up_cloud_user(CLOUD_BINDS);
        env
    }

    /// A bare environment on `sim`: no pools, no cloud user; the state at
    /// `url`, else a state file in the test's directory.
    pub fn on(sim: Simulator, url: Option<String>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let state = match url {
            None => vec![(
                "VKUBE_STATE".to_owned(),
                dir.path().join("state.db").display().to_string(),
            )],
            Some(url) => vec![
                ("VKUBE_STATE".to_owned(), url),
                (
                    "VKUBE_STATE_KEY".to_owned(),
                    dir.path().join("state.key").display().to_string(),
                ),
            ],
        };
        Env { sim, dir, state }
    }

    /// Stores the `demo-cloud` credentials the example specs name and grants
    /// their user the `vsphere-cloud` roles (CPI and CSI) on `binds`.
    pub fn set_up_cloud_user(&self, binds: &[&str]) {
        self.set_credentials("demo-cloud", CLOUD_USER, CLOUD_PASSWORD);
        self.grant("vsphere-cloud", CLOUD_USER, binds);
    }

    /// The two-domain example spec with `from` replaced by `to`, written to
    /// the file `name`; returns its path.
    pub fn edited_spec(&self, name: &str, from: &str, to: &str) -> String {
        let text = two_az_spec();
        assert!(text.contains(from), "the example spec has no `{from}`");
        self.spec_file(name, &text.replace(from, to))
    }

    /// `vkube cluster credentials set NAME` with `user` and `password`.
    pub fn set_credentials(&self, name: &str, user: &str, password: &str) {
        let file = self.spec_file(&format!("{name}.password"), &format!("{password}\n"));
        ok(&self.vkube(&[
            "cluster",
            "credentials",
            "set",
            name,
            "--username",
            user,
            "--password-file",
            &file,
        ]));
    }

    /// `vkube roles apply PROFILE --principal USER --bind …`.
    pub fn grant(&self, profile: &str, user: &str, binds: &[&str]) {
        let mut args = vec!["roles", "apply", profile, "--principal", user];
        for bind in binds {
            args.extend(["--bind", bind]);
        }
        ok(&self.vkube(&args));
    }

    pub fn vars(&self) -> Vec<(String, String)> {
        let mut vars = self.sim.vkube_env();
        vars.extend(self.state.iter().cloned());
        // The simulator's clusters have no Kubernetes: their API server
        // never answers, so applies wait for the VMs only.
        vars.push(("VKUBE_WAIT".into(), "created".into()));
        vars
    }

    pub fn vkube(&self, args: &[&str]) -> Run {
        vkube(&self.vars(), args)
    }

    /// `vkube cluster scale t1 --pool POOL --replicas N EXTRA…`.
    pub fn scale(&self, pool: &str, replicas: u32, extra: &[&str]) -> Run {
        let replicas = replicas.to_string();
        let mut args = vec![
            "cluster",
            "scale",
            "t1",
            "--pool",
            pool,
            "--replicas",
            &replicas,
        ];
        args.extend_from_slice(extra);
        self.vkube(&args)
    }

    pub fn spec_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    pub async fn session(&self) -> Session {
        Session::connect(ConnectOptions {
            endpoint: Endpoint::parse(self.sim.url()).unwrap(),
            username: self.sim.username().into(),
            password: Secret::new(self.sim.password()),
            tls: TlsPolicy::Insecure,
            transport: TransportChoice::Soap,
            wire_log: false,
            connect_timeout: Duration::from_secs(5),
            timeouts: Default::default(),
        })
        .await
        .unwrap()
    }

    /// The cluster folder's VMs, read through the vSphere API.
    pub async fn vms(&self, cluster: &str) -> BTreeMap<String, ObservedVm> {
        self.vm_list(cluster)
            .await
            .into_iter()
            .map(|v| (v.name.clone(), v))
            .collect()
    }

    /// The same, as a list (duplicates would show).
    pub async fn vm_list(&self, cluster: &str) -> Vec<ObservedVm> {
        let session = self.session().await;
        let inventory = Inventory::load(&session).await.unwrap();
        let vms = match inventory.resolve(&format!("/DC0/vm/{cluster}"), "folder") {
            Ok(folder) => vkube_vsphere::vm::observe_folder(&session, folder.moref())
                .await
                .unwrap(),
            Err(_) => Vec::new(),
        };
        session.close().await;
        vms
    }

    pub fn allocations(&self) -> Vec<serde_json::Value> {
        let run = self.vkube(&["ippool", "allocations", "nodes", "-o", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str::<Vec<serde_json::Value>>(&run.stdout).unwrap()
    }
}

/// A loopback network for the VIP, so the stand-in API can listen on it:
/// `127.<pid>.<100 + n>.0/24`, a new one per call, so tests running at
/// once (in one process or several) never share an address.
pub fn loopback_pool(env: &Env) -> (String, String) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let net = format!("127.{}.{}", std::process::id() % 250 + 1, 100 + n % 150);
    let pools = format!(
        "pools:\n  - name: loop\n    range: {{ start: {net}.10, end: {net}.60 }}\n    prefix: 24\n    gateway: {net}.1\n    nameServers: [{net}.2]\n"
    );
    ok(&env.vkube(&[
        "ippool",
        "import",
        "-f",
        &env.spec_file("loop.yaml", &pools),
    ]));
    (format!("{net}.5"), "loop".into())
}

/// `two_az_spec()` with its VIP and node addresses on a new loopback
/// network ([`loopback_pool`]); returns the spec and the VIP.
pub fn loopback_spec(env: &Env) -> (String, String) {
    let (vip, pool) = loopback_pool(env);
    let text = two_az_spec()
        .replace("address: 10.20.0.5", &format!("address: {vip}"))
        .replace("ipPool: nodes", &format!("ipPool: {pool}"));
    (text, vip)
}

impl Env {
    /// The key material the state holds for `cluster` (the stand-in API
    /// and the test etcd serve with its CAs).
    pub async fn cluster_pki(&self, cluster: &str) -> vkube_core::cluster::ClusterPki {
        let store = vkube_store::SqliteStore::open(self.dir.path().join("state.db"))
            .await
            .unwrap();
        vkube_runtime::access::cluster_pki(&store, cluster)
            .await
            .unwrap()
    }
}

pub fn repo_file(path: &str) -> String {
    vkube_test_support::repo_root()
        .join(path)
        .display()
        .to_string()
}

pub fn ok(run: &Run) {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

/// A guestinfo value as the guest reads it, by its `.encoding` key
/// (`base64` or `gzip+base64`).
pub fn decode(vm: &ObservedVm, key: &str) -> String {
    use std::io::Read;
    let raw = vm
        .extra_config
        .get(key)
        .unwrap_or_else(|| panic!("{} lacks {key}", vm.name));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap();
    let encoding = vm.extra_config.get(&format!("{key}.encoding"));
    match encoding.map(String::as_str) {
        Some("gzip+base64") => {
            let mut text = String::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_string(&mut text)
                .unwrap();
            text
        }
        Some("base64") => String::from_utf8(bytes).unwrap(),
        other => panic!("{}: {key} has encoding {other:?}", vm.name),
    }
}
