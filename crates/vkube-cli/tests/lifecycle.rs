//! Issue 12 end to end through the CLI: the simulator plays vCenter, a
//! stand-in API server serving recorded real responses plays the cluster's
//! kube-apiserver (Nodes, etcd static pods, pods, a PodDisruptionBudget,
//! the Eviction API), and a REAL etcd (Debian's `etcd-server`, three members
//! on loopback with TLS from the etcd CA vkube generated) plays the control
//! plane's etcd. vkube reaches etcd at the client URLs kubeadm's etcd static
//! pods advertise. Skipped with a note without etcd, unless
//! `VKUBE_REQUIRE_ETCD=1`.

mod common;

use std::time::{Duration, SystemTime};

use common::cluster_env::{loopback_spec, ok, Env};
use serde_json::{json, Value};
use vkube_core::cluster::ClusterPki;
use vkube_test_support::etcd::{test_random, EtcdCluster, EtcdClusterSpec, MemberSpec};
use vkube_test_support::kube_api::{fixtures, StandIn, StandInOptions};

const CONTROL_PLANE: [&str; 3] = ["t1-cp-0", "t1-cp-1", "t1-cp-2"];
const WORKERS: [&str; 2] = ["t1-workers-0", "t1-workers-1"];

/// A member's serving certificate and key (PEM) from the cluster's etcd CA,
/// as kubeadm issues it.
fn serving(pki: &ClusterPki, name: &str, ip: std::net::IpAddr) -> (String, String) {
    let served = pki
        .etcd_server_certificate(
            name,
            &[ip],
            SystemTime::now(),
            Duration::from_secs(24 * 3600),
            &mut test_random(),
        )
        .unwrap();
    (served.cert_pem, served.key_pem)
}

/// The control plane's etcd: three real members with serving certificates
/// from the cluster's etcd CA, as kubeadm would have issued them.
fn start_etcd(pki: &ClusterPki) -> Option<EtcdCluster> {
    let members = MemberSpec::on_loopback(&CONTROL_PLANE, |name, ip| serving(pki, name, ip));
    let client = pki
        .etcd_client_certificate(
            "test",
            SystemTime::now(),
            Duration::from_secs(3600),
            &mut test_random(),
        )
        .unwrap();
    EtcdCluster::start(&EtcdClusterSpec {
        ca_pem: pki.etcd_ca.pair.cert_pem.clone(),
        members,
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
    })
}

/// The first item of a recorded list whose name is `name`.
fn recorded(list: &str, name: &str) -> Value {
    let list: Value = serde_json::from_str(list).unwrap();
    let mut item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} is recorded"))
        .clone();
    let kind = list["kind"].as_str().unwrap().trim_end_matches("List");
    item["apiVersion"] = list["apiVersion"].clone();
    item["kind"] = json!(kind);
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        item["metadata"].as_object_mut().unwrap().remove(field);
    }
    item
}

/// The recorded Ready node, renamed `name` with address `ip`.
fn node_object(name: &str, ip: &str) -> Value {
    let mut node = recorded(fixtures::NODE_LIST, "demo-cp-0");
    node["metadata"]["name"] = json!(name);
    node["metadata"]["labels"]["kubernetes.io/hostname"] = json!(name);
    if !name.contains("-cp-") {
        let labels = node["metadata"]["labels"].as_object_mut().unwrap();
        labels.remove("node-role.kubernetes.io/control-plane");
        node["spec"].as_object_mut().unwrap().remove("taints");
    }
    node["status"]["addresses"] = json!([
        {"type": "InternalIP", "address": ip},
        {"type": "Hostname", "address": name},
    ]);
    node
}

/// The recorded etcd static pod, on `node`, advertising `client_url`.
fn etcd_pod(node: &str, client_url: &str) -> Value {
    let mut pod = recorded(fixtures::POD_LIST, "etcd-demo-cp-0");
    pod["metadata"]["name"] = json!(format!("etcd-{node}"));
    pod["metadata"]["annotations"]["kubeadm.kubernetes.io/etcd.advertise-client-urls"] =
        json!(client_url);
    pod["spec"]["nodeName"] = json!(node);
    pod
}

/// A simulator cluster of three control-plane nodes and two workers on a
/// loopback network, and its spec file.
struct Cluster {
    env: Env,
    spec: String,
    vip: String,
    pki: ClusterPki,
}

impl Cluster {
    async fn create() -> Cluster {
        let env = Env::start(&[]);
        let (text, vip) = loopback_spec(&env);
        let text = text
            .replace("    replicas: 1\n", "    replicas: 3\n")
            .replace("      replicas: 3\n", "      replicas: 2\n");
        let spec = env.spec_file("t1.yaml", &text);
        ok(&env.vkube(&["cluster", "apply", "-f", &spec, "--wait", "created"]));
        let pki = env.cluster_pki("t1").await;
        Cluster {
            env,
            spec,
            vip,
            pki,
        }
    }

    /// A cluster, its etcd, and its stand-in API serving every node Ready;
    /// `None` without etcd.
    async fn serving() -> Option<(Cluster, EtcdCluster, StandIn)> {
        let cluster = Cluster::create().await;
        let etcd = start_etcd(&cluster.pki)?;
        let api = cluster.serve(&etcd);
        Some((cluster, etcd, api))
    }

    /// The stand-in API server on the VIP, with the cluster CA.
    fn api(&self) -> StandIn {
        StandIn::start(
            StandInOptions::with_ca(&self.pki.ca.pair.cert_pem, &self.pki.ca.pair.key_pem)
                .listen(format!("{}:6443", self.vip).parse().unwrap()),
        )
    }

    /// Every node's address, from the state.
    fn addresses(&self) -> Vec<(String, String)> {
        let listed = self
            .env
            .vkube(&["ippool", "allocations", "loop", "-o", "json"]);
        ok(&listed);
        serde_json::from_str::<Vec<Value>>(&listed.stdout)
            .unwrap()
            .into_iter()
            .filter(|a| a["node"].as_str().is_some_and(|n| n.starts_with("t1-")))
            .filter(|a| !a["node"].as_str().unwrap().contains("vip"))
            .map(|a| {
                (
                    a["node"].as_str().unwrap().to_owned(),
                    a["address"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The stand-in API of a cluster whose every node is registered and
    /// Ready, with an etcd static pod per control-plane node advertising
    /// `etcd`'s members.
    fn serve(&self, etcd: &EtcdCluster) -> StandIn {
        let api = self.api();
        self.register(
            &api,
            &[CONTROL_PLANE.as_slice(), WORKERS.as_slice()].concat(),
        );
        for (node, url) in CONTROL_PLANE.iter().zip(etcd.client_urls()) {
            api.put_object(etcd_pod(node, &url));
        }
        api
    }

    /// Register the nodes in `names` with the stand-in, Ready.
    fn register(&self, api: &StandIn, names: &[&str]) {
        for (node, ip) in self.addresses() {
            if names.contains(&node.as_str()) {
                api.put_object(node_object(&node, &ip));
            }
        }
    }

    fn apply(&self, extra: &[&str]) -> common::Run {
        let mut args = vec!["cluster", "apply", "-f", &self.spec];
        args.extend_from_slice(extra);
        self.env.vkube(&args)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn against_the_stand_in_api_and_a_real_etcd_scale_down_drains_first_a_pdb_stops_it_and_etcd_guards_the_control_plane(
) {
    let Some((cluster, mut etcd, api)) = Cluster::serving().await else {
        return;
    };
    // A web pod on the second worker, behind a budget that allows no disruption.
    let mut web = recorded(fixtures::POD_LIST, "web-6d4cf56db6-t9w4c");
    web["spec"]["nodeName"] = json!("t1-workers-1");
    api.put_object(web);
    let budget = api.put_object(recorded(fixtures::PDB_LIST, "web"));

    // Every node registered and Ready: `--wait ready` is satisfied, and the
    // nodes are recorded as known to Kubernetes.
    ok(&cluster.apply(&["--wait", "ready", "--timeout", "1m"]));
    let described = cluster
        .env
        .vkube(&["cluster", "describe", "t1", "-o", "json"]);
    ok(&described);
    let view: Value = serde_json::from_str(&described.stdout).unwrap();
    assert_eq!(view["api"], "ready", "{view}");
    for node in view["nodes"].as_array().unwrap() {
        assert_eq!(node["powerState"], "poweredOn", "{node}");
        assert_eq!(node["kubernetes"]["registered"], true, "{node}");
        assert_eq!(node["kubernetes"]["ready"], "True", "{node}");
        assert_eq!(node["kubernetes"]["kubeletVersion"], "v1.30.4", "{node}");
    }
    let table = cluster.env.vkube(&["cluster", "describe", "t1"]);
    assert!(
        table.stdout.contains("API:       ready"),
        "{}",
        table.stdout
    );

    // Scale-down: the budget refuses the eviction; the drain fails naming it
    // and the worker's VM stays.
    let scale = || cluster.env.scale("workers", 1, &["--drain-timeout", "2s"]);
    let refused = scale();
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("default/web"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("t1-workers-1"),
        "{}",
        refused.stderr
    );
    assert!(cluster.env.vms("t1").await.contains_key("t1-workers-1"));
    assert!(api.object("/api/v1/nodes/t1-workers-1").is_some());

    // Without the budget: evicted, Node deleted, then the VM destroyed.
    api.remove_object(&budget);
    ok(&scale());
    assert!(!cluster.env.vms("t1").await.contains_key("t1-workers-1"));
    let requests = api.requests();
    let at = |method: &str, path: &str| {
        requests
            .iter()
            .rposition(|r| r.method == method && r.path.starts_with(path))
            .unwrap_or_else(|| panic!("no {method} {path}"))
    };
    let eviction = at(
        "POST",
        "/api/v1/namespaces/default/pods/web-6d4cf56db6-t9w4c/eviction",
    );
    let deletion = at("DELETE", "/api/v1/nodes/t1-workers-1");
    assert!(eviction < deletion, "evicted before the Node was deleted");
    assert!(api.object("/api/v1/nodes/t1-workers-1").is_none());

    // etcd guards the control plane: with one member down, a control-plane
    // change starts nothing and times out naming that member.
    etcd.kill("t1-cp-1");
    let bigger = std::fs::read_to_string(&cluster.spec)
        .unwrap()
        .replace("      replicas: 2\n", "      replicas: 1\n")
        .replacen("    cpu: 2\n", "    cpu: 4\n", 1);
    std::fs::write(&cluster.spec, bigger).unwrap();
    let held = cluster.apply(&["--wait", "created", "--timeout", "3s"]);
    assert_eq!(held.code, 1, "{}", held.stderr);
    assert!(held.stderr.contains("still waiting"), "{}", held.stderr);
    assert!(held.stderr.contains("t1-cp-1"), "{}", held.stderr);
    let vms = cluster.env.vms("t1").await;
    assert_eq!(
        vms.keys().filter(|n| n.contains("-cp-")).count(),
        3,
        "no surge node"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn against_the_stand_in_api_wait_ready_times_out_naming_the_nodes_that_never_registered() {
    let cluster = Cluster::create().await;
    let api = cluster.api();
    cluster.register(&api, &CONTROL_PLANE);
    let waited = cluster.apply(&["--wait", "ready", "--timeout", "2s"]);
    assert_eq!(waited.code, 1, "{}", waited.stderr);
    let error = waited.stderr;
    assert!(
        error.contains("never registered with Kubernetes: `t1-workers-0`, `t1-workers-1`"),
        "{error}"
    );
    assert!(!error.contains("`t1-cp-0`"), "{error}");

    // The API server gone: one line says so, and `--wait created` still works.
    drop(api);
    let described = cluster.env.vkube(&["cluster", "describe", "t1"]);
    ok(&described);
    assert!(
        described.stdout.contains("API:       unreachable"),
        "{}",
        described.stdout
    );
    assert!(
        described.stdout.contains("t1-workers-1"),
        "{}",
        described.stdout
    );
    ok(&cluster.apply(&["--wait", "created"]));
    let waited = cluster.apply(&[
        "--wait",
        "ready",
        "--timeout",
        "2s",
        "--poll-interval",
        "1s",
    ]);
    assert_eq!(waited.code, 1, "{}", waited.stderr);
    for node in ["t1-cp-0", "t1-workers-0", "t1-workers-1"] {
        assert!(
            waited.stderr.contains(&format!("`{node}`")),
            "{}",
            waited.stderr
        );
    }
    assert!(
        waited.stderr.contains("the API server did not answer"),
        "{}",
        waited.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn against_the_stand_in_api_an_unhealthy_worker_is_replaced_within_max_unhealthy() {
    let cluster = Cluster::create().await;
    let text = std::fs::read_to_string(&cluster.spec).unwrap().replacen(
        "      cpu: 4\n",
        "      cpu: 4\n      healthCheck: {unhealthyConditions: [{type: Ready, status: \"False\", timeout: 5m}], maxUnhealthy: 1}\n",
        1,
    );
    std::fs::write(&cluster.spec, text).unwrap();
    let api = cluster.api();
    cluster.register(&api, &CONTROL_PLANE);
    // The recorded node that has been Ready=False since 2024, as both workers.
    let not_ready = |name: &str, ip: &str| {
        let mut node = recorded(fixtures::NODE_LIST, "demo-workers-2");
        node["metadata"]["name"] = json!(name);
        node["status"]["addresses"] = json!([{"type": "InternalIP", "address": ip}]);
        node
    };
    let addresses = cluster.addresses();
    let ip = |name: &str| addresses.iter().find(|(n, _)| n == name).unwrap().1.clone();
    for worker in WORKERS {
        api.put_object(not_ready(worker, &ip(worker)));
    }
    let Some(etcd) = start_etcd(&cluster.pki) else {
        return;
    };
    for (node, url) in CONTROL_PLANE.iter().zip(etcd.client_urls()) {
        api.put_object(etcd_pod(node, &url));
    }
    // Two unhealthy of two is more than `maxUnhealthy: 1` allows: none is
    // replaced, and the wait says why (this first look through the API
    // also records the nodes as known to Kubernetes).
    let held = cluster.apply(&[
        "--wait",
        "ready",
        "--timeout",
        "2s",
        "--poll-interval",
        "1s",
    ]);
    assert_eq!(held.code, 1, "{}", held.stderr);
    assert!(held.stderr.contains("maxUnhealthy"), "{}", held.stderr);
    assert_eq!(cluster.env.vms("t1").await.len(), 5, "nothing replaced");

    // One unhealthy: drained, its Node deleted, its VM replaced.
    api.put_object(node_object("t1-workers-0", &ip("t1-workers-0")));
    ok(&cluster.apply(&[
        "--wait",
        "created",
        "--timeout",
        "1m",
        "--poll-interval",
        "1s",
    ]));
    let vms = cluster.env.vms("t1").await;
    assert!(!vms.contains_key("t1-workers-1"), "{:?}", vms.keys());
    assert!(vms.contains_key("t1-workers-2"), "{:?}", vms.keys());
    assert!(api.object("/api/v1/nodes/t1-workers-1").is_none());
    let events = cluster.env.vkube(&["cluster", "events", "t1"]);
    assert!(events.stdout.contains("unhealthy"), "{}", events.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn against_the_stand_in_api_and_a_real_etcd_a_control_plane_cpu_change_replaces_one_node_at_a_time(
) {
    let Some((cluster, mut etcd, api)) = Cluster::serving().await else {
        return;
    };
    ok(&cluster.apply(&["--wait", "ready", "--timeout", "1m"]));

    let bigger =
        std::fs::read_to_string(&cluster.spec)
            .unwrap()
            .replacen("    cpu: 2\n", "    cpu: 4\n", 1);
    std::fs::write(&cluster.spec, bigger).unwrap();
    let mut apply = common::vkube_command()
        .args(["cluster", "apply", "-f", &cluster.spec])
        .args([
            "--wait",
            "ready",
            "--timeout",
            "5m",
            "--poll-interval",
            "1s",
        ])
        .envs(cluster.env.vars())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vkube");

    // What kubeadm and the kubelets do, played by the test: a new
    // control-plane VM joins etcd and registers its Node, Ready; a destroyed
    // one's etcd process stops.
    let mut joined: Vec<String> = CONTROL_PLANE.iter().map(|n| n.to_string()).collect();
    let mut most_vms = 0;
    let started = std::time::Instant::now();
    while apply.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(300), "apply hangs");
        let vms = cluster.env.vms("t1").await;
        let control_plane: Vec<&String> = vms.keys().filter(|n| n.contains("-cp-")).collect();
        most_vms = most_vms.max(control_plane.len());
        let addresses = cluster.addresses();
        for name in control_plane {
            let on = vms[name].power_state == "poweredOn";
            if !on || joined.contains(name) {
                continue;
            }
            let Some((_, ip)) = addresses.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let (cert_pem, key_pem) = serving(&cluster.pki, name, ip);
            etcd.add_member(&MemberSpec {
                name: name.clone(),
                ip,
                cert_pem,
                key_pem,
            });
            api.put_object(etcd_pod(name, &etcd.client_url(name)));
            api.put_object(node_object(name, &ip.to_string()));
            joined.push(name.clone());
        }
        for name in &joined {
            if !vms.contains_key(name) && etcd.is_running(name) {
                etcd.kill(name);
            }
        }
        // Quorum is never lost, and an old node's Node object goes only
        // after its member did and its replacement was Ready.
        let members = etcd.member_names();
        assert!(members.len() >= 3, "{members:?}");
        for (k, old) in CONTROL_PLANE.iter().enumerate() {
            if api.object(&format!("/api/v1/nodes/{old}")).is_none() {
                assert!(!members.contains(&old.to_string()), "{old}: {members:?}");
                assert!(joined.len() > 3 + k, "{old} went before its replacement");
            }
            if !vms.contains_key(*old) {
                assert!(
                    api.object(&format!("/api/v1/nodes/{old}")).is_none(),
                    "{old}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let output = apply.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{}", etcd.logs());
    assert_eq!(most_vms, 4, "one surge node at a time");
    let vms = cluster.env.vms("t1").await;
    let control_plane: Vec<(String, i32)> = vms
        .iter()
        .filter(|(n, _)| n.contains("-cp-"))
        .map(|(n, vm)| (n.clone(), vm.num_cpus))
        .collect();
    let expected = ["t1-cp-3", "t1-cp-4", "t1-cp-5"];
    let resized: Vec<(String, i32)> = expected.iter().map(|n| (n.to_string(), 4)).collect();
    assert_eq!(control_plane, resized);
    assert_eq!(etcd.member_names(), expected);
    for old in CONTROL_PLANE {
        assert!(
            api.object(&format!("/api/v1/nodes/{old}")).is_none(),
            "{old}"
        );
    }
}
