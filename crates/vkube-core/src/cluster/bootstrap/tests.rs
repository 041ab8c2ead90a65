//! Bootstrap rendering tests. What a node reads is checked with the tools
//! the node (or Kubernetes) would use where they exist here: `cloud-init
//! schema` on the user-data, `cloud-init devel net-convert` on the
//! metadata's network config, `kubernetes-validate --strict` on the
//! kube-vip pod for every supported minor, containerd's own config loader
//! and Python's TOML parser on the registry files. kubeadm is not
//! installable here: its configs are checked field by field against the
//! documented v1beta3/v1beta4 shapes. The shell is in `script_tests`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::kubeadm::{ClusterConfiguration, InitConfiguration, JoinConfiguration};
use super::token::BootstrapToken;
use super::*;
use crate::addons::{Addon, Manifest, SUPPORTED_MINORS};
use crate::cluster::pki::tests::pki;
use crate::cluster::spec_tests::{example, EXAMPLE_POOLS, TEST_CA_PEM};
use crate::cluster::{RawClusterSpec, RawProxy, RawRegistry};
use crate::ipam::{parse_pools_yaml, validate_pools, Lease};

pub(crate) const MAC: &str = "00:50:56:AB:CD:EF";

pub(crate) fn lease(node: &str, last: u8) -> Lease {
    let pools = validate_pools(&parse_pools_yaml(EXAMPLE_POOLS).unwrap(), false).unwrap();
    Lease::new(
        &pools[0],
        format!("10.20.0.{last}").parse().unwrap(),
        "demo",
        node,
    )
}

fn vip() -> IpAddr {
    "10.20.0.5".parse().unwrap()
}

fn token() -> BootstrapToken {
    "abcdef.0123456789abcdef".parse().unwrap()
}

pub(crate) fn spec_with(edit: impl FnOnce(&mut RawClusterSpec)) -> ClusterSpec {
    let mut raw = example().to_raw();
    edit(&mut raw);
    raw.validate().unwrap()
}

/// Two add-ons as the add-on renderers would hand them over.
pub(crate) fn addons() -> Vec<Manifest> {
    let manifest = |addon, component: &str, file_name: &str, secret: bool| {
        Manifest {
        addon,
        component: component.into(),
        version: "v1.0.0".into(),
        file_name: file_name.into(),
        yaml: format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {component}, namespace: kube-system}}\n"),
        has_secrets: secret,
        images: Vec::new(),
    }
    };
    // Out of order on purpose: the node applies them by file name.
    vec![
        manifest(Addon::Cpi, "vsphere-cpi", "30-cpi.yaml", true),
        manifest(Addon::Cni, "cilium", "20-cni-cilium.yaml", false),
    ]
}

/// One node to render.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub name: &'a str,
    pub group: &'a str,
    pub role: NodeRole,
    pub lease: Option<&'a Lease>,
}

pub(crate) fn init_node(lease: Option<&Lease>) -> Node<'_> {
    Node {
        name: "demo-cp-0",
        group: "cp",
        role: NodeRole::Init,
        lease,
    }
}

/// Renders with `f` for `node` of `spec`; the init node gets [`addons`].
pub(crate) fn with_input<T>(
    spec: &ClusterSpec,
    node: Node<'_>,
    f: impl FnOnce(&NodeBootstrap<'_>) -> T,
) -> T {
    with_input_addons(spec, node, &addons(), f)
}

/// Like [`with_input`], with the given add-on manifests.
pub(crate) fn with_input_addons<T>(
    spec: &ClusterSpec,
    node: Node<'_>,
    addons: &[Manifest],
    f: impl FnOnce(&NodeBootstrap<'_>) -> T,
) -> T {
    let pki = pki();
    let token = token();
    let input = NodeBootstrap {
        spec,
        node: node.name,
        group: node.group,
        role: node.role,
        mac_address: MAC,
        lease: node.lease,
        vip: vip(),
        token: &token,
        token_ttl: Duration::from_secs(24 * 3600),
        pki: &pki,
        addons,
    };
    f(&input)
}

/// `render` for the init node, a joining control-plane node and a worker of
/// each `(label, spec, static addressing)`, named `<label>-<node>`.
pub(crate) fn node_variants(
    specs: &[(&str, &ClusterSpec, bool)],
    render: impl Fn(&NodeBootstrap<'_>) -> String,
) -> Vec<(String, String)> {
    let leases = [
        lease("demo-cp-0", 10),
        lease("demo-cp-1", 11),
        lease("demo-workers-0", 12),
    ];
    let mut variants = Vec::new();
    for &(label, spec, static_ip) in specs {
        for ((name, group, role), lease) in [
            (("demo-cp-0", "cp", NodeRole::Init), &leases[0]),
            (("demo-cp-1", "cp", NodeRole::ControlPlane), &leases[1]),
            (("demo-workers-0", "workers", NodeRole::Worker), &leases[2]),
        ] {
            let node = Node {
                name,
                group,
                role,
                lease: static_ip.then_some(lease),
            };
            variants.push((format!("{label}-{name}"), with_input(spec, node, &render)));
        }
    }
    variants
}

/// Whether cloud-init can run (required under `VKUBE_REQUIRE_CLOUD_INIT`).
pub(crate) fn have_cloud_init() -> bool {
    tool(
        "cloud-init",
        &["--version"],
        Some("VKUBE_REQUIRE_CLOUD_INIT"),
        "apt-get install -y cloud-init",
    )
}

/// Whether `program` can run; when it cannot, a note (or a failure when
/// `require` names a set `VKUBE_REQUIRE_*=1`).
pub(crate) fn tool(program: &str, probe: &[&str], require: Option<&str>, install: &str) -> bool {
    let required = require.is_some_and(|var| std::env::var(var).is_ok_and(|v| v == "1"));
    if Command::new(program).args(probe).output().is_ok() {
        return true;
    }
    assert!(
        !required,
        "{} is set but `{program}` is not installed ({install})",
        require.unwrap_or_default()
    );
    eprintln!("note: `{program}` not installed, skipping its checks ({install})");
    false
}

/// A scratch directory removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("vkube-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Output of a command that must succeed.
pub(crate) fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

/// The node's files by path.
fn node_files(input: &NodeBootstrap<'_>) -> BTreeMap<String, content::File> {
    content::render(input)
        .unwrap()
        .files
        .into_iter()
        .map(|f| (f.path.clone(), f))
        .collect()
}

fn version(spec: &ClusterSpec, minor: u64) -> ClusterSpec {
    let text = format!("v1.{minor}.3");
    let mut raw = spec.to_raw();
    raw.spec.kubernetes_version = text;
    raw.validate().unwrap()
}

fn yaml_docs(text: &str) -> Vec<serde_yaml::Value> {
    text.split("---\n")
        .map(|doc| serde_yaml::from_str(doc).unwrap())
        .collect()
}

/// Every key path of `value` (`a.b[].c`), for comparing against the
/// documented config fields.
fn key_paths(value: &serde_yaml::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, child) in map {
                let key = key.as_str().unwrap();
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(path.clone());
                key_paths(child, &path, out);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Fields of the kubeadm config types vkube uses, per API version, from
/// the kubeadm configuration reference (v1beta3 and v1beta4). Extra
/// arguments are maps in v1beta3 (their keys are flag names) and lists of
/// `{name, value}` in v1beta4.
fn documented_field(api: &str, path: &str) -> bool {
    const COMMON: &[&str] = &[
        "apiVersion",
        "kind",
        "bootstrapTokens",
        "bootstrapTokens[].token",
        "bootstrapTokens[].description",
        "bootstrapTokens[].ttl",
        "bootstrapTokens[].groups",
        "bootstrapTokens[].usages",
        "localAPIEndpoint",
        "localAPIEndpoint.advertiseAddress",
        "localAPIEndpoint.bindPort",
        "nodeRegistration",
        "nodeRegistration.name",
        "nodeRegistration.criSocket",
        "nodeRegistration.taints",
        "nodeRegistration.taints[].key",
        "nodeRegistration.taints[].value",
        "nodeRegistration.taints[].effect",
        "nodeRegistration.ignorePreflightErrors",
        "nodeRegistration.kubeletExtraArgs",
        "clusterName",
        "kubernetesVersion",
        "controlPlaneEndpoint",
        "imageRepository",
        "dns",
        "dns.imageRepository",
        "networking",
        "networking.podSubnet",
        "networking.serviceSubnet",
        "networking.dnsDomain",
        "apiServer",
        "apiServer.certSANs",
        "apiServer.extraArgs",
        "controllerManager",
        "controllerManager.extraArgs",
        "discovery",
        "discovery.bootstrapToken",
        "discovery.bootstrapToken.apiServerEndpoint",
        "discovery.bootstrapToken.token",
        "discovery.bootstrapToken.caCertHashes",
        "controlPlane",
        "controlPlane.localAPIEndpoint",
        "controlPlane.localAPIEndpoint.advertiseAddress",
        "controlPlane.localAPIEndpoint.bindPort",
    ];
    if COMMON.contains(&path) {
        return true;
    }
    let extra_args = [
        "nodeRegistration.kubeletExtraArgs",
        "apiServer.extraArgs",
        "controllerManager.extraArgs",
    ];
    extra_args.iter().any(|field| match api {
        kubeadm::V1BETA3 => path
            .strip_prefix(&format!("{field}."))
            .is_some_and(|flag| !flag.contains('.')),
        _ => path == format!("{field}[].name") || path == format!("{field}[].value"),
    })
}

fn check_documented(api: &str, text: &str) {
    for doc in yaml_docs(text) {
        assert_eq!(doc["apiVersion"], api, "{text}");
        let mut paths = Vec::new();
        key_paths(&doc, "", &mut paths);
        for path in paths {
            assert!(
                documented_field(api, &path),
                "`{path}` is not a {api} field:\n{text}"
            );
        }
    }
}

#[test]
fn kubeadm_init_documents_parse_back() {
    let spec = example();
    let lease = lease("demo-cp-0", 10);
    let text = with_input(&spec, init_node(Some(&lease)), |i| {
        kubeadm::render(i).unwrap()
    });
    let docs: Vec<&str> = text.split("---\n").collect();
    assert_eq!(docs.len(), 2, "{text}");
    let init: InitConfiguration = serde_yaml::from_str(docs[0]).unwrap();
    assert_eq!(init.api_version, "kubeadm.k8s.io/v1beta3");
    assert_eq!(init.kind, "InitConfiguration");
    assert_eq!(init.bootstrap_tokens[0].token, "abcdef.0123456789abcdef");
    assert_eq!(init.bootstrap_tokens[0].ttl, "24h0m0s");
    assert_eq!(
        init.local_api_endpoint.advertise_address.as_deref(),
        Some("10.20.0.10")
    );
    assert_eq!(init.node_registration.name, "demo-cp-0");
    let kubelet = &init.node_registration.kubelet_extra_args;
    assert_eq!(kubelet.get("cloud-provider"), Some("external"));
    assert_eq!(kubelet.get("node-ip"), Some("10.20.0.10"));
    assert_eq!(
        init.node_registration.taints, None,
        "kubeadm's control-plane taint stays"
    );
    let cluster: ClusterConfiguration = serde_yaml::from_str(docs[1]).unwrap();
    assert_eq!(cluster.kind, "ClusterConfiguration");
    assert_eq!(cluster.control_plane_endpoint, "10.20.0.5:6443");
    assert_eq!(cluster.kubernetes_version, "v1.30.2");
    assert_eq!(cluster.cluster_name, "demo");
    assert_eq!(cluster.networking.pod_subnet, "10.244.0.0/16");
    assert_eq!(cluster.api_server.cert_sans, ["10.20.0.5"]);
    assert_eq!(
        cluster
            .controller_manager
            .extra_args
            .as_ref()
            .and_then(|a| a.get("cloud-provider")),
        Some("external")
    );
    assert_eq!(cluster.image_repository, None);
    assert_eq!(cluster.dns, None);
    // Raw key spelling kubeadm expects.
    assert!(
        docs[0].contains("localAPIEndpoint:") && docs[1].contains("certSANs:"),
        "{text}"
    );
}

#[test]
fn kubeadm_api_follows_the_minor_for_every_supported_version() {
    let lease_cp = lease("demo-cp-1", 11);
    let lease_worker = lease("demo-infra-0", 20);
    for minor in SUPPORTED_MINORS {
        let spec = version(&example(), minor);
        let api = if minor <= 30 {
            kubeadm::V1BETA3
        } else {
            kubeadm::V1BETA4
        };
        assert_eq!(kubeadm::api_version(spec.kubernetes_version()), api);
        let lease_init = lease("demo-cp-0", 10);
        for node in [
            init_node(Some(&lease_init)),
            Node {
                name: "demo-cp-1",
                group: "cp",
                role: NodeRole::ControlPlane,
                lease: Some(&lease_cp),
            },
            Node {
                name: "demo-infra-0",
                group: "infra",
                role: NodeRole::Worker,
                lease: Some(&lease_worker),
            },
        ] {
            let text = with_input(&spec, node, |i| kubeadm::render(i).unwrap());
            check_documented(api, &text);
            let first = &yaml_docs(&text)[0];
            let kubelet = &first["nodeRegistration"]["kubeletExtraArgs"];
            if api == kubeadm::V1BETA3 {
                assert_eq!(kubelet["cloud-provider"], "external", "{text}");
                assert!(kubelet["node-ip"].is_string(), "{text}");
            } else {
                let args = kubelet.as_sequence().expect("v1beta4 lists extra args");
                let find = |name: &str| {
                    args.iter()
                        .find(|a| a["name"] == name)
                        .map(|a| a["value"].as_str().unwrap().to_owned())
                };
                assert_eq!(find("cloud-provider").as_deref(), Some("external"));
                assert!(find("node-ip").is_some(), "{text}");
            }
            if node.role == NodeRole::Worker {
                let labels = match api {
                    kubeadm::V1BETA3 => kubelet["node-labels"].as_str().unwrap().to_owned(),
                    _ => kubelet
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .find(|a| a["name"] == "node-labels")
                        .unwrap()["value"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                };
                assert_eq!(labels, "node.kubernetes.io/pool=infra");
            }
        }
    }
}

#[test]
fn kubeadm_join_for_control_plane_and_workers() {
    let spec = example();
    let cp_lease = lease("demo-cp-1", 11);
    let node = Node {
        name: "demo-cp-1",
        group: "cp",
        role: NodeRole::ControlPlane,
        lease: Some(&cp_lease),
    };
    let text = with_input(&spec, node, |i| kubeadm::render(i).unwrap());
    let join: JoinConfiguration = serde_yaml::from_str(&text).unwrap();
    assert_eq!(join.kind, "JoinConfiguration");
    assert_eq!(
        join.discovery.bootstrap_token.api_server_endpoint,
        "10.20.0.5:6443"
    );
    assert_eq!(
        join.discovery.bootstrap_token.ca_cert_hashes,
        [pki().ca.cert_hash().unwrap()]
    );
    let control_plane = join.control_plane.expect("control-plane join");
    assert_eq!(
        control_plane
            .local_api_endpoint
            .advertise_address
            .as_deref(),
        Some("10.20.0.11")
    );
    assert!(join
        .node_registration
        .ignore_preflight_errors
        .contains(&"DirAvailable--etc-kubernetes-manifests".to_owned()));

    let worker_lease = lease("demo-infra-0", 20);
    let worker = Node {
        name: "demo-infra-0",
        group: "infra",
        role: NodeRole::Worker,
        lease: Some(&worker_lease),
    };
    let text = with_input(&spec, worker, |i| kubeadm::render(i).unwrap());
    let join: JoinConfiguration = serde_yaml::from_str(&text).unwrap();
    assert!(join.control_plane.is_none());
    let kubelet = &join.node_registration.kubelet_extra_args;
    assert_eq!(
        kubelet.get("node-labels"),
        Some("node.kubernetes.io/pool=infra")
    );
    assert_eq!(kubelet.get("node-ip"), Some("10.20.0.20"));
    let taints = join.node_registration.taints.unwrap();
    assert_eq!(
        (taints[0].key.as_str(), taints[0].value.as_deref()),
        ("dedicated", Some("infra"))
    );
    assert!(text.contains("effect: NoSchedule"), "{text}");
}

#[test]
fn dhcp_nodes_get_their_address_filled_in_at_boot() {
    let spec = spec_with(|r| r.spec.ip_allocation = Some("dhcp".into()));
    let text = with_input(&spec, init_node(None), |i| kubeadm::render(i).unwrap());
    let init: InitConfiguration =
        serde_yaml::from_str(text.split("---\n").next().unwrap()).unwrap();
    assert_eq!(
        init.local_api_endpoint.advertise_address.as_deref(),
        Some(NODE_IP_PLACEHOLDER)
    );
    assert_eq!(
        init.node_registration.kubelet_extra_args.get("node-ip"),
        Some(NODE_IP_PLACEHOLDER)
    );
    let script = with_input(&spec, init_node(None), |i| script::bootstrap(i).unwrap());
    assert!(
        script.contains("node_ip=$(vkube_node_ip \"$nic\" \"$vip\")")
            && script.contains("vkube_render /etc/kubernetes/vkube/kubeadm.yaml.in /etc/kubernetes/vkube/kubeadm.yaml 0600 \"VKUBE_NODE_IP=$node_ip\""),
        "{script}"
    );
    // Static: the lease's address, no detection.
    let lease = lease("demo-cp-0", 10);
    let script = with_input(&example(), init_node(Some(&lease)), |i| {
        script::bootstrap(i).unwrap()
    });
    assert!(script.contains("  node_ip='10.20.0.10'\n"), "{script}");
    assert!(!script.contains("vkube_node_ip"), "{script}");
}

#[test]
fn token_ttl_is_a_go_duration_and_never_zero() {
    for (seconds, text) in [
        (24 * 3600, "24h0m0s"),
        (90 * 60, "1h30m0s"),
        (120, "2m0s"),
        (45, "45s"),
        (3 * 86400 + 61, "72h1m1s"),
    ] {
        assert_eq!(kubeadm::go_duration(Duration::from_secs(seconds)), text);
    }
    let spec = example();
    let lease = lease("demo-cp-0", 10);
    let pki = pki();
    let token = token();
    let input = NodeBootstrap {
        spec: &spec,
        node: "demo-cp-0",
        group: "cp",
        role: NodeRole::Init,
        mac_address: MAC,
        lease: Some(&lease),
        vip: vip(),
        token: &token,
        token_ttl: Duration::from_millis(300),
        pki: &pki,
        addons: &[],
    };
    assert_eq!(
        guestinfo::render(&input).unwrap_err().to_string(),
        "cannot render bootstrap data for node `demo-cp-0`: the bootstrap token TTL must be at least one second (`0s` would never expire)"
    );
    let bad_mac = NodeBootstrap {
        mac_address: "",
        token_ttl: Duration::from_secs(60),
        ..input
    };
    assert_eq!(
        guestinfo::render(&bad_mac).unwrap_err().to_string(),
        "cannot render bootstrap data for node `demo-cp-0`: MAC address `` is not six hex pairs like `00:50:56:ab:cd:ef`"
    );
}

#[test]
fn static_allocation_needs_a_lease() {
    let spec = example();
    let error = with_input(&spec, init_node(None), |i| {
        guestinfo::render(i).unwrap_err()
    });
    assert_eq!(
        error.to_string(),
        "node `demo-cp-0` has no address lease (static IP allocation)"
    );
}

#[test]
fn kube_vip_does_not_depend_on_host_aliases() {
    let lease = lease("demo-cp-0", 10);
    let validate = tool(
        "kubernetes-validate",
        &["--version"],
        Some("VKUBE_REQUIRE_KUBERNETES_VALIDATE"),
        "pip install kubernetes-validate",
    );
    let dir = TempDir::new("kube-vip");
    for minor in SUPPORTED_MINORS {
        let spec = version(&example(), minor);
        for node in [
            init_node(Some(&lease)),
            Node {
                name: "demo-cp-1",
                group: "cp",
                role: NodeRole::ControlPlane,
                lease: Some(&lease),
            },
        ] {
            let (template, files) =
                with_input(&spec, node, |i| (kube_vip::manifest(i), node_files(i)));
            assert_eq!(
                files[content::KUBE_VIP_TEMPLATE_PATH].content,
                template,
                "the node gets the template"
            );
            assert_eq!(files[kube_vip::HOSTS_PATH].content, kube_vip::HOSTS);
            assert!(kube_vip::HOSTS.starts_with("127.0.0.1 localhost kubernetes\n"));
            // What the bootstrap script installs, NIC filled in.
            let manifest = template.replace(NIC_PLACEHOLDER, "eth0");
            let pod: serde_yaml::Value = serde_yaml::from_str(&manifest).unwrap();
            let pod_spec = &pod["spec"];
            assert!(pod_spec.get("hostAliases").is_none(), "{manifest}");
            let mounts = pod_spec["containers"][0]["volumeMounts"]
                .as_sequence()
                .unwrap();
            let hosts_mount = mounts
                .iter()
                .find(|m| m["mountPath"] == "/etc/hosts")
                .unwrap();
            let volume = pod_spec["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|v| v["name"] == hosts_mount["name"])
                .unwrap();
            assert_eq!(volume["hostPath"]["path"], kube_vip::HOSTS_PATH);
            assert_eq!(volume["hostPath"]["type"], "File");
            let env: BTreeMap<String, String> = pod_spec["containers"][0]["env"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_owned(),
                        e["value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(env["vip_interface"], "eth0");
            assert_eq!(env["address"], "10.20.0.5");
            assert_eq!(
                (
                    env["vip_leaseduration"].as_str(),
                    env["vip_renewdeadline"].as_str(),
                    env["vip_retryperiod"].as_str()
                ),
                ("15", "10", "2")
            );
            let kubeconfig = pod_spec["volumes"][0]["hostPath"]["path"].as_str().unwrap();
            let expected = if node.role == NodeRole::Init && minor >= 29 {
                "/etc/kubernetes/super-admin.conf"
            } else {
                "/etc/kubernetes/admin.conf"
            };
            assert_eq!(kubeconfig, expected, "1.{minor} {:?}", node.role);
            if validate {
                let path = dir.write(&format!("kube-vip-{minor}-{}.yaml", node.name), &manifest);
                run(Command::new("kubernetes-validate")
                    .args(["--strict", "-k", &format!("1.{minor}.0")])
                    .arg(&path));
            }
        }
    }
}

#[test]
fn registry_mirror_reaches_kubeadm_kube_vip_and_containerd() {
    let spec = spec_with(|r| {
        r.spec.registry = Some(RawRegistry {
            mirror: "harbor.example.com/k8s".into(),
            ca_bundle: Some(TEST_CA_PEM.into()),
            insecure_skip_verify: false,
        });
        r.spec.proxy = Some(RawProxy {
            http_proxy: Some("http://proxy.example.com:3128".into()),
            https_proxy: None,
            no_proxy: Vec::new(),
        });
    });
    let lease = lease("demo-cp-0", 10);
    let (kubeadm_text, files, script) = with_input(&spec, init_node(Some(&lease)), |i| {
        (
            kubeadm::render(i).unwrap(),
            node_files(i),
            script::bootstrap(i).unwrap(),
        )
    });
    let cluster: ClusterConfiguration =
        serde_yaml::from_str(kubeadm_text.split("---\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        cluster.image_repository.as_deref(),
        Some("harbor.example.com/k8s")
    );
    // kubeadm pulls `<dns.imageRepository>/coredns:<tag>` from a mirror.
    assert_eq!(
        format!("{}/coredns:v1.11.1", cluster.dns.unwrap().image_repository),
        crate::addons::image(
            Some("harbor.example.com/k8s"),
            "registry.k8s.io/coredns/coredns:v1.11.1"
        )
    );
    let kube_vip = &files[content::KUBE_VIP_TEMPLATE_PATH].content;
    assert!(
        kube_vip.contains("image: harbor.example.com/k8s/kube-vip/kube-vip:v0.8.0\n"),
        "{kube_vip}"
    );
    assert!(
        script.contains("vkube_containerd_certs_d\n  systemctl restart containerd\n"),
        "{script}"
    );
    let restart = script.find("systemctl restart containerd").unwrap();
    assert!(restart < script.find("kubeadm init").unwrap());
    let environment = &files["/etc/environment"].content;
    assert!(
        environment.contains(",.svc,.cluster.local,harbor.example.com\"\n"),
        "{environment}"
    );

    // hosts.toml: parsed by Python's TOML parser, checked key by key.
    let hosts: Vec<&content::File> = files
        .values()
        .filter(|f| f.path.ends_with("/hosts.toml"))
        .collect();
    let dirs: Vec<&str> = hosts
        .iter()
        .map(|f| {
            f.path
                .strip_prefix("/etc/containerd/certs.d/")
                .unwrap()
                .strip_suffix("/hosts.toml")
                .unwrap()
        })
        .collect();
    assert_eq!(
        dirs,
        [
            "docker.io",
            "ghcr.io",
            "harbor.example.com",
            "quay.io",
            "registry.k8s.io"
        ]
    );
    assert_eq!(
        files[containerd::MIRROR_CA_PATH].content,
        TEST_CA_PEM,
        "the CA file"
    );
    if tool("python3", &["--version"], None, "apt-get install python3") {
        let dir = TempDir::new("hosts-toml");
        for file in &hosts {
            let path = dir.write(&file.path.replace('/', "_"), &file.content);
            let json = run(Command::new("python3").arg("-c").arg(
                "import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))",
            ).arg(&path));
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            if file.path.contains("/harbor.example.com/") {
                assert_eq!(parsed["server"], "https://harbor.example.com");
                assert_eq!(parsed["ca"], containerd::MIRROR_CA_PATH);
                continue;
            }
            let host = &parsed["host"]["https://harbor.example.com/v2/k8s"];
            assert_eq!(host["override_path"], true, "{}", file.content);
            assert_eq!(host["capabilities"], serde_json::json!(["pull", "resolve"]));
            assert_eq!(host["ca"], containerd::MIRROR_CA_PATH);
            assert!(host.get("skip_verify").is_none());
            let server = if file.path.contains("/docker.io/") {
                "https://registry-1.docker.io".to_owned()
            } else {
                format!("https://{}", dirs_of(&file.path))
            };
            assert_eq!(parsed["server"], server.as_str());
        }
    }

    // No path, insecure: the standard `/v2` layout and skip_verify.
    let insecure = spec_with(|r| {
        r.spec.registry = Some(RawRegistry {
            mirror: "10.0.0.9:5000".into(),
            ca_bundle: None,
            insecure_skip_verify: true,
        })
    });
    let files = with_input(&insecure, init_node(Some(&lease)), node_files);
    let quay = &files["/etc/containerd/certs.d/quay.io/hosts.toml"].content;
    assert_eq!(
        quay,
        "# vkube: pull quay.io images through the mirror 10.0.0.9:5000
server = \"https://quay.io\"

[host.\"https://10.0.0.9:5000\"]
  capabilities = [\"pull\", \"resolve\"]
  skip_verify = true
"
    );
    assert!(!files.contains_key(containerd::MIRROR_CA_PATH));
    // A mirror on an upstream does not redirect that upstream into itself.
    let on_ghcr = spec_with(|r| {
        r.spec.registry = Some(RawRegistry {
            mirror: "ghcr.io/acme/mirror".into(),
            ca_bundle: None,
            insecure_skip_verify: false,
        })
    });
    let files = with_input(&on_ghcr, init_node(Some(&lease)), node_files);
    assert!(!files["/etc/containerd/certs.d/ghcr.io/hosts.toml"]
        .content
        .contains("[host."));
    assert!(files["/etc/containerd/certs.d/quay.io/hosts.toml"]
        .content
        .contains("[host.\"https://ghcr.io/v2/acme/mirror\"]"));
}

fn dirs_of(path: &str) -> &str {
    path.trim_start_matches("/etc/containerd/certs.d/")
        .trim_end_matches("/hosts.toml")
}

#[test]
fn metadata_matches_the_nic_by_mac_and_redacts_the_user_data() {
    let spec = example();
    let lease = lease("demo-workers-0", 12);
    let worker = Node {
        name: "demo-workers-0",
        group: "workers",
        role: NodeRole::Worker,
        lease: Some(&lease),
    };
    let text = with_input(&spec, worker, |i| metadata::render(i).unwrap());
    assert_eq!(
        text,
        "instance-id: demo-workers-0
local-hostname: demo-workers-0
redact:
- userdata
network:
  version: 2
  ethernets:
    ens192:
      match:
        macaddress: 00:50:56:ab:cd:ef
      dhcp4: false
      dhcp6: false
      addresses:
      - 10.20.0.12/24
      routes:
      - to: 0.0.0.0/0
        via: 10.20.0.1
      nameservers:
        addresses:
        - 10.20.0.2
        search:
        - lab.example.com
"
    );
    let dhcp = spec_with(|r| r.spec.ip_allocation = Some("dhcp".into()));
    let dhcp_text = with_input(
        &dhcp,
        Node {
            lease: None,
            ..worker
        },
        |i| metadata::render(i).unwrap(),
    );
    let parsed: metadata::Metadata = serde_yaml::from_str(&dhcp_text).unwrap();
    let ethernet = &parsed.network.ethernets[metadata::NETWORK_ID];
    assert!(ethernet.dhcp4 && ethernet.addresses.is_empty() && ethernet.nameservers.is_none());

    // cloud-init's own renderers, as Ubuntu (netplan) and Rocky
    // (sysconfig, NetworkManager) would run them on the metadata.
    if !have_cloud_init() {
        return;
    }
    let dir = TempDir::new("net-convert");
    for (label, text) in [("static", &text), ("dhcp", &dhcp_text)] {
        let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let network = serde_yaml::to_string(&value["network"]).unwrap();
        let input = dir.write(&format!("{label}.yaml"), &network);
        for (distro, kind) in [
            ("ubuntu", "netplan"),
            ("rocky", "sysconfig"),
            ("rocky", "network-manager"),
        ] {
            let out = dir.0.join(format!("{label}-{distro}-{kind}"));
            run(Command::new("cloud-init")
                .args(["devel", "net-convert", "--network-data"])
                .arg(&input)
                .args([
                    "--kind",
                    "yaml",
                    "--distro",
                    distro,
                    "--output-kind",
                    kind,
                    "--directory",
                ])
                .arg(&out));
            let rendered = read_tree(&out);
            let lower = rendered.to_ascii_lowercase();
            assert!(lower.contains("00:50:56:ab:cd:ef"), "{kind}: {rendered}");
            assert!(!rendered.contains("set-name"), "{kind}: {rendered}");
            if label == "static" {
                assert!(
                    rendered.contains("10.20.0.12") && rendered.contains("10.20.0.1"),
                    "{kind}: {rendered}"
                );
            } else {
                let dhcp = ["dhcp4: true", "BOOTPROTO=dhcp", "method=auto"];
                assert!(
                    dhcp.iter().any(|d| rendered.contains(d)),
                    "{kind}: {rendered}"
                );
            }
        }
    }
}

/// Every file under `dir`, concatenated with its path.
fn read_tree(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            text.push_str(&format!(
                "== {}\n{}\n",
                path.display(),
                std::fs::read_to_string(&path).unwrap()
            ));
        }
    }
    text
}

/// Every variant whose user-data the schema test checks.
pub(crate) fn cloud_config_variants() -> Vec<(String, String)> {
    let spec = example();
    let proxied = spec_with(|r| {
        r.spec.proxy = Some(RawProxy {
            http_proxy: Some("http://proxy.example.com:3128".into()),
            https_proxy: Some("http://proxy.example.com:3128".into()),
            no_proxy: vec!["vc.example.com".into(), ".example.com".into()],
        });
    });
    let dhcp = spec_with(|r| {
        r.spec.ip_allocation = Some("dhcp".into());
        r.spec.disable_tunnel_offload = false;
        r.spec.ntp_servers.clear();
    });
    let rocky = spec_with(|r| r.spec.os_family = Some("rocky".into()));
    let mirrored = spec_with(|r| {
        r.spec.kubernetes_version = "v1.32.1".into();
        r.spec.registry = Some(RawRegistry {
            mirror: "harbor.example.com/k8s".into(),
            ca_bundle: Some(TEST_CA_PEM.into()),
            insecure_skip_verify: false,
        });
    });
    node_variants(
        &[
            ("static", &spec, true),
            ("proxy", &proxied, true),
            ("dhcp", &dhcp, false),
            ("rocky", &rocky, true),
            ("mirror", &mirrored, true),
        ],
        |i| cloud_init::render(i).unwrap(),
    )
}

#[test]
fn cloud_config_passes_cloud_init_schema() {
    if !have_cloud_init() {
        return;
    }
    let dir = TempDir::new("cloud-init");
    for (name, text) in cloud_config_variants() {
        let path = dir.write(&format!("{name}.yaml"), &text);
        let report = run(Command::new("cloud-init")
            .args(["schema", "--annotate", "--config-file"])
            .arg(&path));
        assert!(
            report.contains("Valid cloud-config"),
            "{name}: {report}\n{text}"
        );
    }
}

fn write_files(value: &serde_yaml::Value) -> BTreeMap<String, serde_yaml::Value> {
    value["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

#[test]
fn cloud_config_contents() {
    let variants: BTreeMap<String, String> = cloud_config_variants().into_iter().collect();
    let value = |name: &str| -> serde_yaml::Value {
        let text = &variants[name];
        assert!(text.starts_with("#cloud-config\n"), "{name}");
        serde_yaml::from_str(text).unwrap()
    };
    let init = value("static-demo-cp-0");
    let init_files = write_files(&init);
    for expected in [
        "/etc/kubernetes/vkube/pki/ca.key",
        "/etc/kubernetes/vkube/pki/etcd/ca.crt",
        "/etc/kubernetes/vkube/pki/sa.key",
        "/etc/kubernetes/vkube/kube-vip.yaml.in",
        "/etc/kube-vip.hosts",
        "/etc/kubernetes/vkube/kubeadm.yaml.in",
        "/etc/kubernetes/vkube/addons/20-cni-cilium.yaml",
        "/etc/kubernetes/vkube/addons/30-cpi.yaml",
        "/opt/vkube/lib.sh",
        "/opt/vkube/bootstrap.sh",
        "/etc/systemd/system/vkube-tunnel-offload.service",
        "/etc/systemd/system/vkube-bootstrap.service",
    ] {
        assert!(init_files.contains_key(expected), "missing {expected}");
    }
    let ca_key = &init_files["/etc/kubernetes/vkube/pki/ca.key"];
    assert_eq!(ca_key["permissions"], "0600");
    assert_eq!(ca_key["content"].as_str().unwrap(), pki().ca.pair.key_pem);
    assert_eq!(
        init_files["/etc/kubernetes/vkube/kubeadm.yaml.in"]["permissions"],
        "0600"
    );
    // Add-ons: secret-bearing ones are root-only.
    assert_eq!(
        init_files["/etc/kubernetes/vkube/addons/30-cpi.yaml"]["permissions"],
        "0600"
    );
    assert_eq!(
        init_files["/etc/kubernetes/vkube/addons/20-cni-cilium.yaml"]["permissions"],
        "0644"
    );
    assert_eq!(init["ntp"]["ntp_client"], "chrony");
    assert_eq!(init["ntp"]["servers"][1], "1.pool.ntp.org");
    assert_eq!(
        init["users"][1]["ssh_authorized_keys"][0]
            .as_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("ssh-ed25519")
    );
    // The units are enabled, the bootstrap unit last and without waiting.
    let runcmd: Vec<Vec<String>> = serde_yaml::from_value(init["runcmd"].clone()).unwrap();
    assert_eq!(
        runcmd,
        [
            vec!["systemctl", "daemon-reload"],
            vec![
                "systemctl",
                "enable",
                "--now",
                "vkube-tunnel-offload.service"
            ],
            vec![
                "systemctl",
                "enable",
                "--now",
                "--no-block",
                "vkube-bootstrap.service"
            ],
        ]
    );
    let offload = init_files["/etc/systemd/system/vkube-tunnel-offload.service"]["content"]
        .as_str()
        .unwrap();
    assert!(
        offload
            .contains("ExecStart=/bin/bash /opt/vkube/lib.sh tunnel-offload 00:50:56:ab:cd:ef\n"),
        "{offload}"
    );
    assert!(!offload.contains("ens192"), "{offload}");

    // Workers get no CA material, kube-vip or add-ons.
    let worker_paths: Vec<String> = write_files(&value("static-demo-workers-0"))
        .into_keys()
        .collect();
    assert!(
        worker_paths
            .iter()
            .all(|p| !p.contains("/pki/") && !p.contains("kube-vip") && !p.contains("/addons/")),
        "{worker_paths:?}"
    );
    // Only the init node applies add-ons.
    assert!(write_files(&value("static-demo-cp-1"))
        .keys()
        .all(|p| !p.contains("/addons/")));

    // Proxy: /etc/environment appended, containerd drop-in, NO_PROXY covers the cluster.
    let proxied = write_files(&value("proxy-demo-workers-0"));
    let environment = &proxied["/etc/environment"];
    assert_eq!(environment["append"], true);
    let environment = environment["content"].as_str().unwrap();
    assert!(
        environment.contains("HTTPS_PROXY=\"http://proxy.example.com:3128\"\n"),
        "{environment}"
    );
    assert!(environment.contains("NO_PROXY=\"vc.example.com,.example.com,localhost,127.0.0.1,10.20.0.5,10.20.0.0/24,10.244.0.0/16,10.96.0.0/12,.svc,.cluster.local\"\n"), "{environment}");
    let drop_in = proxied["/etc/systemd/system/containerd.service.d/http-proxy.conf"]["content"]
        .as_str()
        .unwrap();
    assert!(
        drop_in.contains("[Service]\nEnvironment=\"HTTP_PROXY=http://proxy.example.com:3128\"\n"),
        "{drop_in}"
    );
    assert!(!drop_in.contains("http_proxy="), "{drop_in}");

    // DHCP variant without offload fix or NTP.
    let dhcp = value("dhcp-demo-workers-0");
    assert!(dhcp.get("ntp").is_none());
    assert!(write_files(&dhcp)
        .keys()
        .all(|p| !p.contains("tunnel-offload")));
}

#[test]
fn bootstrap_script_runs_kubeadm_then_applies_add_ons_and_cleans_up() {
    let spec = example();
    let cp_lease = lease("demo-cp-0", 10);
    let script = with_input(&spec, init_node(Some(&cp_lease)), |i| {
        script::bootstrap(i).unwrap()
    });
    let position = |needle: &str| {
        script
            .find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in\n{script}"))
    };
    let order = [
        "nic=$(vkube_nic \"$mac\")",
        "systemctl enable --now vkube-tunnel-offload.service",
        "vkube_render /etc/kubernetes/vkube/kube-vip.yaml.in /etc/kubernetes/vkube/kube-vip.yaml 0644 \"VKUBE_NIC=$nic\"",
        "vkube_render /etc/kubernetes/vkube/kubeadm.yaml.in /etc/kubernetes/vkube/kubeadm.yaml 0600",
        "cp -a /etc/kubernetes/vkube/pki/. /etc/kubernetes/pki/",
        "install -m 0644 /etc/kubernetes/vkube/kube-vip.yaml /etc/kubernetes/manifests/kube-vip.yaml",
        "kubeadm init --config /etc/kubernetes/vkube/kubeadm.yaml",
        "rm -f /etc/kubernetes/vkube/kubeadm.yaml /etc/kubernetes/vkube/kubeadm.yaml.in",
        "rm -rf /etc/kubernetes/vkube/pki",
        "vkube_apply_addon '/etc/kubernetes/vkube/addons/20-cni-cilium.yaml' 0",
        "vkube_apply_addon '/etc/kubernetes/vkube/addons/30-cpi.yaml' 1",
        "sed -i 's#path: /etc/kubernetes/super-admin.conf#path: /etc/kubernetes/admin.conf#' /etc/kubernetes/manifests/kube-vip.yaml",
        "touch /etc/kubernetes/vkube/bootstrap.done",
    ];
    let positions: Vec<usize> = order.iter().map(|needle| position(needle)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {positions:?}\n{script}"
    );
    assert!(script.contains("  mac='00:50:56:ab:cd:ef'\n"), "{script}");
    // A static worker needs no NIC lookup, applies nothing, switches nothing.
    let worker_lease = lease("demo-workers-0", 12);
    let worker = Node {
        name: "demo-workers-0",
        group: "workers",
        role: NodeRole::Worker,
        lease: Some(&worker_lease),
    };
    let script = with_input(&spec, worker, |i| script::bootstrap(i).unwrap());
    for absent in ["vkube_nic", "vkube_apply_addon", "super-admin", "kube-vip"] {
        assert!(!script.contains(absent), "{absent} in\n{script}");
    }
    assert!(script.contains("kubeadm join --config"), "{script}");
    // 1.28: kube-vip uses admin.conf from the start, nothing to switch.
    let old = version(&spec, 28);
    let script = with_input(&old, init_node(Some(&cp_lease)), |i| {
        script::bootstrap(i).unwrap()
    });
    assert!(!script.contains("super-admin"), "{script}");
}

#[test]
fn ignition_for_flatcar_in_parity_with_cloud_init() {
    let spec = spec_with(|r| r.spec.os_family = Some("flatcar".into()));
    let lease = lease("demo-cp-0", 10);
    let pairs = with_input(&spec, init_node(Some(&lease)), |i| {
        guestinfo::render(i).unwrap()
    });
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "guestinfo.ignition.config.data",
            "guestinfo.ignition.config.data.encoding"
        ]
    );
    assert_eq!(pairs[1].1, "base64");
    let json: serde_json::Value =
        serde_json::from_slice(&STANDARD.decode(&pairs[0].1).unwrap()).unwrap();
    assert!(json["ignition"]["version"]
        .as_str()
        .unwrap()
        .starts_with("3."));
    assert_eq!(json["passwd"]["users"][0]["name"], "core");
    let ignition_files = json["storage"]["files"].as_array().unwrap();
    let decode = |path: &str| -> String {
        let file = ignition_files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no {path}"));
        let source = file["contents"]["source"].as_str().unwrap();
        String::from_utf8(
            STANDARD
                .decode(source.strip_prefix("data:;base64,").unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode("/etc/hostname"), "demo-cp-0\n");
    let network = decode("/etc/systemd/network/10-vkube.network");
    assert!(
        network.contains("MACAddress=00:50:56:ab:cd:ef")
            && network.contains("Address=10.20.0.10/24")
            && network.contains("Gateway=10.20.0.1"),
        "{network}"
    );
    assert!(!network.contains("Name="), "never renamed: {network}");
    assert_eq!(
        decode("/etc/kubernetes/vkube/pki/ca.crt"),
        pki().ca.pair.cert_pem
    );
    assert!(decode("/etc/systemd/timesyncd.conf.d/10-vkube.conf")
        .contains("NTP=0.pool.ntp.org 1.pool.ntp.org"));
    let mode =
        |path: &str| ignition_files.iter().find(|f| f["path"] == path).unwrap()["mode"].clone();
    assert_eq!(mode("/etc/kubernetes/vkube/pki/ca.key"), 0o600);
    assert_eq!(mode("/etc/kubernetes/vkube/addons/30-cpi.yaml"), 0o600);
    let units: Vec<&str> = json["systemd"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        units,
        [
            "vkube-tunnel-offload.service",
            "vkube-guestinfo-clear.service",
            "vkube-bootstrap.service"
        ]
    );
    let clear = json["systemd"]["units"][1]["contents"].as_str().unwrap();
    assert!(
        clear.contains("ExecStart=/bin/bash /opt/vkube/lib.sh clear-guestinfo guestinfo.ignition.config.data\n"),
        "{clear}"
    );
    assert!(json["systemd"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["enabled"] == true));

    // Parity: the same files and units as the cloud-init node, apart from
    // what each OS does its own way (time sync, host name, network).
    let ubuntu = example();
    let cloud = with_input(&ubuntu, init_node(Some(&lease)), |i| {
        content::render(i).unwrap()
    });
    let flatcar = with_input(&spec, init_node(Some(&lease)), |i| {
        content::render(i).unwrap()
    });
    let paths = |c: &content::NodeContent| -> Vec<String> {
        c.files
            .iter()
            .map(|f| f.path.clone())
            .filter(|p| !p.contains("timesyncd"))
            .collect()
    };
    assert_eq!(paths(&cloud), paths(&flatcar));
    for path in paths(&cloud) {
        let text = |c: &content::NodeContent| {
            c.files
                .iter()
                .find(|f| f.path == path)
                .unwrap()
                .content
                .clone()
        };
        assert_eq!(text(&cloud), text(&flatcar), "{path}");
    }
    let unit_names = |c: &content::NodeContent| -> Vec<String> {
        c.units
            .iter()
            .map(|u| u.name.clone())
            .filter(|n| n != content::GUESTINFO_CLEAR_UNIT)
            .collect()
    };
    assert_eq!(unit_names(&cloud), unit_names(&flatcar));
}

#[test]
fn guestinfo_for_cloud_init() {
    let spec = example();
    let lease = lease("demo-workers-0", 12);
    let worker = Node {
        name: "demo-workers-0",
        group: "workers",
        role: NodeRole::Worker,
        lease: Some(&lease),
    };
    let pairs = with_input(&spec, worker, |i| guestinfo::render(i).unwrap());
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "guestinfo.metadata",
            "guestinfo.metadata.encoding",
            "guestinfo.userdata",
            "guestinfo.userdata.encoding"
        ]
    );
    let metadata = String::from_utf8(STANDARD.decode(&pairs[0].1).unwrap()).unwrap();
    assert!(
        metadata.starts_with("instance-id: demo-workers-0\n"),
        "{metadata}"
    );
    // The key the datasource redacts is the user-data vkube writes.
    let parsed: metadata::Metadata = serde_yaml::from_str(&metadata).unwrap();
    assert_eq!(
        parsed
            .redact
            .iter()
            .map(|key| format!("guestinfo.{key}"))
            .collect::<Vec<_>>(),
        [guestinfo::USERDATA]
    );
    assert_eq!(
        (pairs[1].1.as_str(), pairs[3].1.as_str()),
        ("base64", "gzip+base64")
    );
    let userdata = gunzip(&STANDARD.decode(&pairs[2].1).unwrap());
    assert!(userdata.starts_with("#cloud-config\n"));
    // The VMware datasource's own decoder reads it back.
    if let Some(decoded) = cloud_init_decode(&pairs[3].1, &pairs[2].1) {
        assert_eq!(decoded, userdata);
    }
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The Python that runs cloud-init (its script's `#!` line): a `python3`
/// first on PATH (e.g. pyenv's) may not have cloud-init's modules.
fn cloud_init_python() -> String {
    let script = Command::new("sh")
        .args(["-c", "command -v cloud-init"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|path| !path.is_empty());
    script
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| {
            let first = text.lines().next()?.strip_prefix("#!")?.trim().to_owned();
            let program = first.split_whitespace().next()?.to_owned();
            (!program.ends_with("/env")).then_some(program)
        })
        .unwrap_or_else(|| "python3".into())
}

/// `data` decoded by cloud-init's VMware datasource (`decode(key,
/// enc_type, data)`), or `None` when cloud-init is not installed.
fn cloud_init_decode(encoding: &str, data: &str) -> Option<String> {
    let script = "import sys\nfrom cloudinit.sources.DataSourceVMware import decode\nout = decode('userdata', sys.argv[1], sys.stdin.read())\nsys.stdout.write(out.decode() if isinstance(out, bytes) else out)\n";
    let child = Command::new(cloud_init_python())
        .args(["-c", script, encoding])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    let mut child = child;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(data.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let required = std::env::var("VKUBE_REQUIRE_CLOUD_INIT").is_ok_and(|v| v == "1");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named") && !required {
            eprintln!("note: cloud-init's Python modules are not installed, skipping");
            return None;
        }
        panic!("cloud-init's decoder failed: {stderr}");
    }
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn every_guestinfo_value_fits_what_a_guest_reads() {
    // The first control-plane node carries everything: CA keys and the
    // add-ons, here a stand-in the size of the real manifests.
    let spec = example();
    let lease = lease("demo-cp-0", 10);
    let big = crate::addons::Manifest {
        addon: crate::addons::Addon::Cni,
        component: "cilium".into(),
        version: "v1.18.0".into(),
        file_name: "20-cni-cilium.yaml".into(),
        yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".repeat(3000),
        has_secrets: false,
        images: Vec::new(),
    };
    let pairs = with_input_addons(
        &spec,
        init_node(Some(&lease)),
        std::slice::from_ref(&big),
        |i| guestinfo::render(i).unwrap(),
    );
    for (key, value) in &pairs {
        assert!(
            value.len() <= guestinfo::MAX_VALUE_BYTES,
            "{key}: {}",
            value.len()
        );
    }
    // Text that does not compress is refused, naming the node and the key.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: String = (0..200_000)
        .map(|_| {
            // xorshift64: text gzip cannot shrink below 64 KiB.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let huge = crate::addons::Manifest { yaml: noise, ..big };
    let err = with_input_addons(
        &spec,
        init_node(Some(&lease)),
        std::slice::from_ref(&huge),
        |i| guestinfo::render(i).unwrap_err(),
    );
    assert!(err.to_string().contains("guestinfo.userdata"), "{err}");
    assert!(err.to_string().contains("demo-cp-0"), "{err}");
}

#[test]
fn files_never_show_their_contents_in_debug_output() {
    let spec = example();
    let lease = lease("demo-cp-0", 10);
    let content = with_input(&spec, init_node(Some(&lease)), |i| {
        content::render(i).unwrap()
    });
    let debug = format!("{content:?}");
    assert!(
        debug.contains("/etc/kubernetes/vkube/pki/ca.key"),
        "{debug}"
    );
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(!debug.contains("0123456789abcdef"), "token: {debug}");
}
