//! Issue 9 end to end: a cluster whose nodes get everything they need to
//! come up — key material the ecosystem's parsers accept, the add-ons (CNI,
//! CPI, CSI, StorageClasses per zone) with the cluster's own vCenter user —
//! read back from the simulator's guestinfo as a guest would, checked with
//! the real tools; the cloud user's privileges checked before any VM; and,
//! against a stand-in Kubernetes API serving recorded responses, add-on
//! updates and renewed bootstrap tokens.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::cluster_env::{
    decode, loopback_spec, ok, two_az_spec, Env, CLOUD_PASSWORD, CLOUD_USER,
};
use serde_yaml::Value;
use vkube_test_support::kube_api::{StandIn, StandInOptions};

/// Zones on the simulator's two compute clusters, in one region.
const TOPOLOGY: &str = "\
regions:
  - { name: region-a, datacenter: DC0 }
zones:
  - { name: az-a, region: region-a, computeCluster: DC0_C0 }
  - { name: az-b, region: region-a, computeCluster: DC0_C1 }
";

const ADDONS_DIR: &str = "/etc/kubernetes/vkube/addons/";

/// A node's cloud-init `write_files`, by path.
fn written_files(userdata: &str) -> BTreeMap<String, String> {
    let doc: Value = serde_yaml::from_str(userdata).expect("user-data is YAML");
    doc["write_files"]
        .as_sequence()
        .expect("write_files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The documents of a YAML stream.
fn documents(stream: &str) -> Vec<Value> {
    stream
        .split("\n---")
        .filter_map(|d| serde_yaml::from_str::<Value>(d).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn secret_value(secret: &Value, key: &str) -> String {
    use base64::Engine as _;
    let data = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

/// Runs an external tool; `None` (with a note) when it is not installed and
/// `VKUBE_REQUIRE_<TOOL>` is not 1.
fn tool(name: &str, require: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(name).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let required = std::env::var(require).is_ok_and(|v| v == "1");
            assert!(!required, "{require}=1 but `{name}` is not installed");
            eprintln!("note: `{name}` not installed, check skipped");
            None
        }
        Err(e) => panic!("cannot run {name}: {e}"),
    }
}

fn kubernetes_validate(path: &std::path::Path) {
    if let Some(out) = tool(
        "kubernetes-validate",
        "VKUBE_REQUIRE_KUBERNETES_VALIDATE",
        &["--strict", "-k", "1.30.0", path.to_str().unwrap()],
    ) {
        assert!(
            out.status.success(),
            "kubernetes-validate rejected {}:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn set_up_zones(env: &Env) {
    let topology = env.spec_file("topology.yaml", TOPOLOGY);
    ok(&env.vkube(&["zones", "setup", "-f", &topology]));
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_get_addons_with_the_cloud_user_and_keys_the_tools_accept() {
    let env = Env::start(&[]);
    set_up_zones(&env);
    let spec = env.spec_file("t1.yaml", &two_az_spec());
    ok(&env.vkube(&["cluster", "apply", "-f", &spec]));
    let vms = env.vms("t1").await;

    // Every guestinfo value fits what a guest can read (open-vm-tools reads
    // at most 64 KiB per value).
    for (name, vm) in &vms {
        for (key, value) in vm
            .extra_config
            .iter()
            .filter(|(k, _)| k.starts_with("guestinfo."))
        {
            assert!(
                value.len() <= 64 * 1024,
                "{name}: {key} is {} bytes",
                value.len()
            );
        }
    }
    // The first control-plane node carries the add-ons.
    let files = written_files(&decode(&vms["t1-cp-0"], "guestinfo.userdata"));
    let addon_files: Vec<&String> = files.keys().filter(|p| p.starts_with(ADDONS_DIR)).collect();
    assert_eq!(
        addon_files,
        [
            "/etc/kubernetes/vkube/addons/20-cni-cilium.yaml",
            "/etc/kubernetes/vkube/addons/30-cpi.yaml",
            "/etc/kubernetes/vkube/addons/40-csi.yaml",
            "/etc/kubernetes/vkube/addons/50-storage-classes.yaml",
        ]
    );
    for path in &addon_files {
        let local = env.dir.path().join(path.rsplit('/').next().unwrap());
        std::fs::write(&local, &files[*path]).unwrap();
        kubernetes_validate(&local);
    }

    // CSI and CPI run as the cluster's own user, never vkube's login.
    let csi = documents(&files["/etc/kubernetes/vkube/addons/40-csi.yaml"]);
    let conf = secret_value(
        find(&csi, "Secret", "vsphere-config-secret"),
        "csi-vsphere.conf",
    );
    assert!(conf.contains(&format!("user = \"{CLOUD_USER}\"")), "{conf}");
    assert!(
        conf.contains(&format!("password = \"{CLOUD_PASSWORD}\"")),
        "{conf}"
    );
    assert!(
        conf.contains("topology-categories = \"k8s-region,k8s-zone\""),
        "{conf}"
    );
    assert!(conf.contains("[VirtualCenter \"127.0.0.1\"]"), "{conf}");
    let cpi = documents(&files["/etc/kubernetes/vkube/addons/30-cpi.yaml"]);
    let cpi_secret = find(&cpi, "Secret", "vsphere-cloud-secret");
    let keys: Vec<&str> = cpi_secret["data"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["127.0.0.1.password", "127.0.0.1.username"]);
    assert_eq!(secret_value(cpi_secret, "127.0.0.1.username"), CLOUD_USER);
    let vkube_login = format!("\"{}\"", env.sim.username());
    for text in [&conf, &files["/etc/kubernetes/vkube/addons/30-cpi.yaml"]] {
        assert!(!text.contains(&vkube_login) && !text.contains(env.sim.password()));
    }
    let cpi_conf: Value = serde_yaml::from_str(
        find(&cpi, "ConfigMap", "vsphere-cloud-config")["data"]["vsphere.conf"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cpi_conf["labels"]["region"], "k8s-region");
    assert_eq!(cpi_conf["labels"]["zone"], "k8s-zone");

    // One StorageClass per zone, pinned to it, and a default on the datastore URL.
    let classes = documents(&files["/etc/kubernetes/vkube/addons/50-storage-classes.yaml"]);
    for zone in ["az-a", "az-b"] {
        let class = find(&classes, "StorageClass", &format!("vsphere-{zone}"));
        assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
        let terms = &class["allowedTopologies"][0]["matchLabelExpressions"];
        assert_eq!(terms[0]["key"], "topology.csi.vmware.com/k8s-zone");
        assert_eq!(terms[0]["values"][0], zone);
        assert_eq!(terms[1]["values"][0], "region-a");
    }
    let default = find(&classes, "StorageClass", "vsphere");
    assert_eq!(
        default["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert!(default["parameters"]["datastoreurl"]
        .as_str()
        .unwrap()
        .starts_with("ds:///vmfs/volumes/"));

    // Key material: every private key parses with OpenSSL.
    for (path, content) in files.iter().filter(|(p, _)| p.ends_with(".key")) {
        let local = env
            .dir
            .path()
            .join(path.trim_start_matches('/').replace('/', "_"));
        std::fs::write(&local, content).unwrap();
        if let Some(out) = tool(
            "openssl",
            "VKUBE_REQUIRE_OPENSSL",
            &["pkey", "-noout", "-in", local.to_str().unwrap()],
        ) {
            assert!(
                out.status.success(),
                "{path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // The user-data is cleared in the guest after cloud-init reads it.
    let metadata: Value =
        serde_yaml::from_str(&decode(&vms["t1-cp-0"], "guestinfo.metadata")).unwrap();
    assert_eq!(metadata["redact"][0], "userdata");

    // Workers get neither the add-ons' credentials nor CA keys.
    let worker = decode(&vms["t1-workers-0"], "guestinfo.userdata");
    assert!(!worker.contains(CLOUD_PASSWORD) && !worker.contains("PRIVATE KEY"));

    // What was delivered, and the redacted configs.
    let listed = env.vkube(&["cluster", "addons", "t1", "-o", "json"]);
    ok(&listed);
    let records: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let addons: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["addon"].as_str().unwrap(),
                r["delivery"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        addons,
        [
            ("cni", "Bootstrap"),
            ("cpi", "Bootstrap"),
            ("csi", "Bootstrap"),
            ("storage-classes", "Bootstrap")
        ]
    );
    assert!(records
        .iter()
        .all(|r| r["node"] == "t1-cp-0" && !r["version"].as_str().unwrap().is_empty()));
    let redacted = env.vkube(&["cluster", "cloud-config", "t1"]);
    ok(&redacted);
    assert!(
        redacted.stdout.contains("<redacted>") && !redacted.stdout.contains(CLOUD_PASSWORD),
        "{}",
        redacted.stdout
    );
    assert!(
        redacted.stdout.contains("csi-vsphere.conf") && redacted.stdout.contains("vsphere.conf")
    );
    let shown = env.vkube(&["cluster", "cloud-config", "t1", "--csi", "--show-secrets"]);
    ok(&shown);
    assert!(shown.stdout.contains(CLOUD_PASSWORD) && !shown.stdout.contains("vSphere CPI"));

    // A second apply changes nothing, add-ons included.
    let again = env.vkube(&["cluster", "apply", "-f", &spec]);
    ok(&again);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);

    // The admin kubeconfig loads in kubectl: connecting fails, parsing does
    // not. It is pointed at a closed loopback port: tests never send traffic
    // to the spec's VIP.
    let kubeconfig = env.dir.path().join("t1.kubeconfig");
    ok(&env.vkube(&[
        "cluster",
        "kubeconfig",
        "t1",
        "--out",
        kubeconfig.to_str().unwrap(),
    ]));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains("server: https://10.20.0.5:6443"), "{text}");
    std::fs::write(
        &kubeconfig,
        text.replace("https://10.20.0.5:6443", &format!("https://{closed}")),
    )
    .unwrap();
    if let Some(out) = tool(
        "kubectl",
        "VKUBE_REQUIRE_KUBECTL",
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "--raw",
            "/",
            "--request-timeout=2s",
        ],
    ) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        for parse_error in ["failed to parse", "error loading config", "tls: "] {
            assert!(!stderr.contains(parse_error), "{stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_user_without_csi_privileges_is_refused_before_any_vm() {
    let env = Env::start(&[]);
    // Another user, granted only what the CPI needs.
    env.set_credentials("weak-cloud", "weak@vsphere.local", "weak-pass");
    env.grant(
        "vsphere-cpi",
        "weak@vsphere.local",
        &[
            "datacenter=/DC0",
            "compute-cluster=/DC0/host/DC0_C0",
            "compute-cluster=/DC0/host/DC0_C1",
            "vm-folder=/DC0/vm",
        ],
    );
    let spec = env.edited_spec(
        "weak.yaml",
        "cloudCredentials: demo-cloud",
        "cloudCredentials: weak-cloud",
    );
    let refused = env.vkube(&["cluster", "apply", "-f", &spec]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    for needle in [
        "weak@vsphere.local",
        "Datastore.FileManagement on `/DC0/datastore/LocalDS_0`",
        "vsphere-csi",
        "Cns.Searchable",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}: {}",
            refused.stderr
        );
    }
    assert!(env.vm_list("t1").await.is_empty(), "no VM may be created");

    // Credentials that were never stored: named, with the command that stores them.
    let unknown = env.edited_spec(
        "unknown.yaml",
        "cloudCredentials: demo-cloud",
        "cloudCredentials: nobody",
    );
    let refused = env.vkube(&["cluster", "apply", "-f", &unknown]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("vkube cluster credentials set nobody"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_stand_in_api_serving_recorded_responses_addon_updates_and_new_tokens_reach_the_cluster(
) {
    let env = Env::start(&[]);
    let (text, vip) = loopback_spec(&env);
    let text = text.replace("      replicas: 3\n", "      replicas: 0\n");
    let spec = env.spec_file("t1.yaml", &text);
    // Tokens that expire at once: the next joining node needs a new one.
    ok(&env.vkube(&["cluster", "apply", "-f", &spec, "--token-ttl", "1"]));

    // The cluster's API server, played by the stand-in with the cluster CA.
    let pki = env.cluster_pki("t1").await;
    let api = StandIn::start(
        StandInOptions::with_ca(&pki.ca.pair.cert_pem, &pki.ca.pair.key_pem)
            .listen(format!("{vip}:6443").parse().unwrap()),
    );

    // New credentials: the CPI and CSI secrets are updated through the API.
    env.set_credentials("demo-cloud", CLOUD_USER, "N3w-Pa55!");
    let applied = env.vkube(&["cluster", "apply", "-f", &spec]);
    ok(&applied);
    assert!(
        applied.stdout.contains("add-on csi") && applied.stdout.contains(": applied"),
        "{}",
        applied.stdout
    );
    let objects = api.applied_objects();
    let csi_secret = objects
        .iter()
        .find(|o| o.kind == "Secret" && o.name == "vsphere-config-secret")
        .expect("CSI secret applied");
    assert_eq!(csi_secret.namespace.as_deref(), Some("vmware-system-csi"));
    let conf = secret_value(
        &serde_yaml::to_value(&csi_secret.body).unwrap(),
        "csi-vsphere.conf",
    );
    assert!(conf.contains("password = \"N3w-Pa55!\""), "{conf}");
    assert!(
        !objects
            .iter()
            .any(|o| o.kind == "DaemonSet" && o.name == "cilium"),
        "unchanged add-ons are not re-applied"
    );
    let admin = &api.client_certificates()[0];
    assert_eq!(admin.organizations, ["kubeadm:cluster-admins"]);
    let listed = env.vkube(&["cluster", "addons", "t1", "-o", "json"]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["addon"] == "csi" && r["delivery"] == "Applied"),
        "{records:?}"
    );

    // A worker created after the token expired joins with a new token that
    // vkube created in the cluster first.
    ok(&env.scale("workers", 1, &[]));
    let token = api
        .applied_objects()
        .into_iter()
        .find(|o| o.kind == "Secret" && o.name.starts_with("bootstrap-token-"))
        .expect("a bootstrap token Secret");
    assert_eq!(token.namespace.as_deref(), Some("kube-system"));
    let id = token.name.trim_start_matches("bootstrap-token-").to_owned();
    let vms = env.vms("t1").await;
    let worker = written_files(&decode(&vms["t1-workers-0"], "guestinfo.userdata"));
    let join = &worker[vkube_core::cluster::bootstrap::content::KUBEADM_TEMPLATE_PATH];
    assert!(join.contains(&format!("token: {id}.")), "{join}");
    let init = written_files(&decode(&vms["t1-cp-0"], "guestinfo.userdata"));
    assert!(
        !init[vkube_core::cluster::bootstrap::content::KUBEADM_TEMPLATE_PATH]
            .contains(&format!("token: {id}."))
    );

    // Without an API server, an update waits and says so.
    drop(api);
    env.set_credentials("demo-cloud", CLOUD_USER, "N3wer-Pa55!");
    let waiting = env.vkube(&["cluster", "apply", "-f", &spec]);
    ok(&waiting);
    assert!(
        waiting.stderr.contains("wait for the API server"),
        "{}",
        waiting.stderr
    );
    let listed = env.vkube(&["cluster", "addons", "t1", "-o", "json"]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["addon"] == "csi" && r["delivery"] == "Pending" && r["message"].is_string()),
        "{records:?}"
    );
}
