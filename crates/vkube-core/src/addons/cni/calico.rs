//! Calico with the Kubernetes API as its datastore: the CRDs calico-node
//! and calico-kube-controllers use, their RBAC, the `calico-config`
//! ConfigMap (with the CNI network config `install-cni` writes), the
//! calico-node DaemonSet and the calico-kube-controllers Deployment.
//!
//! Shape: one IPv4 pool on the pod CIDR with VXLAN `Always` and IP-in-IP
//! `Never`, networking backend `vxlan` (BIRD not started, no BGP), node
//! address from the Node's InternalIP. No Typha: calico-node talks to the
//! API server directly, which Calico documents as fine below ~50 nodes.
//!
//! Why `Always` and not `CrossSubnet`: `CrossSubnet` routes pod traffic
//! unencapsulated inside a subnet, with pod source addresses on the port
//! group, which NSX segments with SpoofGuard drop; always encapsulating
//! behaves the same on every vSphere network and keeps one MTU.
//!
//! Why `kubernetes-internal-ip` for the node address: `can-reach=<VIP>`
//! picks the source address of the route to the VIP, and on the control
//! plane node holding the VIP that address is the VIP itself; the Node's
//! InternalIP is what the kubelet (`node-ip`) and the CPI agreed on, on any
//! NIC name. calico-node restarts until the CPI has set it.
//!
//! CRD schemas are open (`x-kubernetes-preserve-unknown-fields`), not the
//! full upstream ones: calico-node and kube-controllers write and read
//! these objects themselves, and vkube creates none.

use serde_json::{json, Value};

use super::k8s::{self, rule, CrdSpec, Scope};
use super::{
    api_host_port, invalid, ipv4_pod_cidr, manifest, pinned, release_minor, Pin, NAMESPACE,
};
use crate::addons::{image, AddonInput, Error, Manifest};
use crate::ipam::Cidr;

const COMPONENT: &str = "calico";
const CONFIG: &str = "calico-config";
/// The ConfigMap Calico's containers take `KUBERNETES_SERVICE_HOST`/
/// `_PORT` from (its documented way to reach the API server directly).
const SERVICES_ENDPOINT: &str = "kubernetes-services-endpoint";
const NODE: &str = "calico-node";
const CONTROLLERS: &str = "calico-kube-controllers";
const CNI_PLUGIN: &str = "calico-cni-plugin";
const GROUP: &str = "crd.projectcalico.org";
/// Calico's default IPAM block (addresses are handed to nodes in /26
/// blocks, borrowed across nodes when one runs out).
const BLOCK_SIZE: u8 = 26;

/// Calico release per Kubernetes minor. Rule: the newest Calico line whose
/// "Supported versions" list (docs.tigera.io, Calico Open Source, System
/// requirements for Kubernetes, per version) contains the minor; within a
/// line, its latest patch.
pub const PINS: &[Pin] = &[
    Pin {
        minors: 28..=28,
        version: "v3.28.5",
        source: "Calico 3.28 system requirements: tested on Kubernetes v1.27, v1.28, v1.29, v1.30",
    },
    Pin {
        minors: 29..=30,
        version: "v3.29.7",
        source: "Calico 3.29 system requirements: tested on Kubernetes v1.29, v1.30, v1.31, v1.32",
    },
    Pin {
        minors: 31..=31,
        version: "v3.30.7",
        source: "Calico 3.30 system requirements: tested on Kubernetes v1.31 to v1.35",
    },
    Pin {
        minors: 32..=33,
        version: "v3.31.7",
        source: "Calico 3.31 system requirements: tested on Kubernetes 1.32 to 1.35",
    },
];

/// What differs between the pinned Calico lines.
struct Release {
    version: &'static str,
    minor: u64,
}

impl Release {
    /// Images moved from Docker Hub to quay.io with 3.31.
    fn registry(&self) -> &'static str {
        if self.minor >= 31 {
            "quay.io"
        } else {
            "docker.io"
        }
    }

    fn image(&self, registry: Option<&str>, name: &str) -> String {
        image(
            registry,
            &format!("{}/calico/{name}:{}", self.registry(), self.version),
        )
    }

    /// Tiers (3.29) and Kubernetes AdminNetworkPolicy (3.29).
    fn has_tiers(&self) -> bool {
        self.minor >= 29
    }

    /// Staged policies and BaselineAdminNetworkPolicy (3.30).
    fn has_staged_policies(&self) -> bool {
        self.minor >= 30
    }

    /// CNI spec version of the network config Calico ships.
    fn cni_version(&self) -> &'static str {
        if self.minor >= 31 {
            "1.0.0"
        } else {
            "0.3.1"
        }
    }
}

/// A `crd.projectcalico.org/v1` kind and the release that introduced it.
struct CalicoKind {
    kind: &'static str,
    plural: &'static str,
    scope: Scope,
    since: u64,
}

const fn kind(kind: &'static str, plural: &'static str, scope: Scope, since: u64) -> CalicoKind {
    CalicoKind {
        kind,
        plural,
        scope,
        since,
    }
}

/// The `crd.projectcalico.org/v1` kinds of the Kubernetes datastore.
const CALICO_KINDS: &[CalicoKind] = &[
    kind("BGPConfiguration", "bgpconfigurations", Scope::Cluster, 28),
    kind("BGPFilter", "bgpfilters", Scope::Cluster, 28),
    kind("BGPPeer", "bgppeers", Scope::Cluster, 28),
    kind("BlockAffinity", "blockaffinities", Scope::Cluster, 28),
    kind("CalicoNodeStatus", "caliconodestatuses", Scope::Cluster, 28),
    kind(
        "ClusterInformation",
        "clusterinformations",
        Scope::Cluster,
        28,
    ),
    kind(
        "FelixConfiguration",
        "felixconfigurations",
        Scope::Cluster,
        28,
    ),
    kind(
        "GlobalNetworkPolicy",
        "globalnetworkpolicies",
        Scope::Cluster,
        28,
    ),
    kind("GlobalNetworkSet", "globalnetworksets", Scope::Cluster, 28),
    kind("HostEndpoint", "hostendpoints", Scope::Cluster, 28),
    kind("IPAMBlock", "ipamblocks", Scope::Cluster, 28),
    kind("IPAMConfig", "ipamconfigs", Scope::Cluster, 28),
    kind("IPAMHandle", "ipamhandles", Scope::Cluster, 28),
    kind("IPPool", "ippools", Scope::Cluster, 28),
    kind("IPReservation", "ipreservations", Scope::Cluster, 28),
    kind(
        "KubeControllersConfiguration",
        "kubecontrollersconfigurations",
        Scope::Cluster,
        28,
    ),
    kind("NetworkPolicy", "networkpolicies", Scope::Namespaced, 28),
    kind("NetworkSet", "networksets", Scope::Namespaced, 28),
    kind("Tier", "tiers", Scope::Cluster, 29),
    kind(
        "StagedGlobalNetworkPolicy",
        "stagedglobalnetworkpolicies",
        Scope::Cluster,
        30,
    ),
    kind(
        "StagedKubernetesNetworkPolicy",
        "stagedkubernetesnetworkpolicies",
        Scope::Namespaced,
        30,
    ),
    kind(
        "StagedNetworkPolicy",
        "stagednetworkpolicies",
        Scope::Namespaced,
        30,
    ),
];

/// The Kubernetes network-policy-api group calico-node watches from 3.29
/// on (Felix does not become ready without these CRDs).
const POLICY_GROUP: &str = "policy.networking.k8s.io";
/// CRDs in `*.k8s.io` groups must name the API review that approved them.
const POLICY_API_APPROVAL: (&str, &str) = (
    "api-approved.kubernetes.io",
    "https://github.com/kubernetes-sigs/network-policy-api/pull/30",
);

/// Renders Calico for the input's Kubernetes minor.
pub(super) fn render(input: &AddonInput<'_>) -> Result<Manifest, Error> {
    let pin = pinned(PINS, COMPONENT, input)?;
    let release = Release {
        version: pin.version,
        minor: release_minor(pin.version),
    };
    let pod_cidr = ipv4_pod_cidr(COMPONENT, input)?;
    if pod_cidr.prefix() > BLOCK_SIZE {
        return Err(invalid(
            COMPONENT,
            format!("pod CIDR {pod_cidr} is smaller than one Calico IPAM block (/{BLOCK_SIZE})"),
        ));
    }
    let labels = k8s::addon_labels(COMPONENT);
    let (host, port) = api_host_port(input);

    let mut objects = crds(&release, &labels);
    objects.extend([
        k8s::service_account(NODE, NAMESPACE, &labels),
        k8s::service_account(CNI_PLUGIN, NAMESPACE, &labels),
        k8s::service_account(CONTROLLERS, NAMESPACE, &labels),
        k8s::config_map(
            CONFIG,
            NAMESPACE,
            &labels,
            [
                ("calico_backend", "vxlan".to_owned()),
                ("cni_network_config", cni_network_config(&release)),
            ],
        ),
        k8s::config_map(
            SERVICES_ENDPOINT,
            NAMESPACE,
            &labels,
            [
                ("KUBERNETES_SERVICE_HOST", host),
                ("KUBERNETES_SERVICE_PORT", port),
            ],
        ),
        k8s::cluster_role(NODE, &labels, node_rules(&release)),
        k8s::cluster_role(CNI_PLUGIN, &labels, cni_plugin_rules()),
        k8s::cluster_role(CONTROLLERS, &labels, controllers_rules(&release)),
    ]);
    for name in [NODE, CNI_PLUGIN, CONTROLLERS] {
        objects.push(k8s::cluster_role_binding(
            name,
            &labels,
            name,
            vec![k8s::service_account_subject(name, NAMESPACE)],
        ));
    }
    if release.has_tiers() {
        // Lets the garbage collector read tiers once a Calico API server
        // serves `projectcalico.org` (Calico ships this with tiers).
        objects.push(k8s::cluster_role(
            "calico-tier-getter",
            &labels,
            vec![rule(&["projectcalico.org"], &["tiers"], &["get"])],
        ));
        objects.push(k8s::cluster_role_binding(
            "calico-tier-getter",
            &labels,
            "calico-tier-getter",
            vec![json!({
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": "system:kube-controller-manager",
            })],
        ));
    }
    objects.push(node_daemon_set(input, &release, pod_cidr, &labels));
    objects.push(controllers_deployment(input, &release, &labels));
    objects.push(k8s::pod_disruption_budget(
        CONTROLLERS,
        NAMESPACE,
        &labels,
        &json!({ "k8s-app": CONTROLLERS }),
        1,
    ));
    Ok(manifest(COMPONENT, release.version, &objects))
}

fn crds(release: &Release, labels: &Value) -> Vec<Value> {
    let mut crds: Vec<Value> = CALICO_KINDS
        .iter()
        .filter(|k| release.minor >= k.since)
        .map(|k| {
            let spec = CrdSpec {
                group: GROUP,
                version: "v1",
                kind: k.kind,
                plural: k.plural,
                scope: k.scope,
                status_subresource: false,
            };
            k8s::open_crd(&spec, labels, &[])
        })
        .collect();
    let mut policy_kinds = Vec::new();
    if release.has_tiers() {
        policy_kinds.push(("AdminNetworkPolicy", "adminnetworkpolicies"));
    }
    if release.has_staged_policies() {
        policy_kinds.push(("BaselineAdminNetworkPolicy", "baselineadminnetworkpolicies"));
    }
    for (kind, plural) in policy_kinds {
        let spec = CrdSpec {
            group: POLICY_GROUP,
            version: "v1alpha1",
            kind,
            plural,
            scope: Scope::Cluster,
            status_subresource: true,
        };
        crds.push(k8s::open_crd(&spec, labels, &[POLICY_API_APPROVAL]));
    }
    crds
}

/// The CNI network config `install-cni` writes to
/// `/etc/cni/net.d/10-calico.conflist` (it fills in the node name and the
/// kubeconfig it generates for the plugin). `mtu: 0`: the plugin takes the
/// MTU Felix detected (`/var/lib/calico/mtu`).
fn cni_network_config(release: &Release) -> String {
    let mut plugins = vec![
        json!({
            "type": "calico",
            "log_level": "info",
            "log_file_path": "/var/log/calico/cni/cni.log",
            "datastore_type": "kubernetes",
            "nodename": "__KUBERNETES_NODE_NAME__",
            "mtu": 0,
            "ipam": { "type": "calico-ipam" },
            "policy": { "type": "k8s" },
            "kubernetes": { "kubeconfig": "__KUBECONFIG_FILEPATH__" },
        }),
        json!({ "type": "portmap", "snat": true, "capabilities": { "portMappings": true } }),
    ];
    // 3.30 dropped the bandwidth plugin from its network config.
    if !release.has_staged_policies() {
        plugins.push(json!({ "type": "bandwidth", "capabilities": { "bandwidth": true } }));
    }
    let config = json!({
        "name": "k8s-pod-network",
        "cniVersion": release.cni_version(),
        "plugins": plugins,
    });
    serde_json::to_string_pretty(&config).expect("JSON values serialize")
}

fn node_rules(release: &Release) -> Vec<Value> {
    let calico = &[GROUP];
    let mut read = vec![
        // `globalfelixconfigs`/`globalbgpconfigs`: names older datastores
        // used, still read by calico-node's migration check.
        "globalfelixconfigs",
        "felixconfigurations",
        "bgppeers",
        "bgpfilters",
        "globalbgpconfigs",
        "bgpconfigurations",
        "ippools",
        "ipreservations",
        "ipamblocks",
        "globalnetworkpolicies",
        "globalnetworksets",
        "networkpolicies",
        "networksets",
        "clusterinformations",
        "hostendpoints",
        "blockaffinities",
        "caliconodestatuses",
    ];
    if release.has_tiers() {
        read.push("tiers");
    }
    if release.has_staged_policies() {
        read.extend([
            "stagedglobalnetworkpolicies",
            "stagednetworkpolicies",
            "stagedkubernetesnetworkpolicies",
        ]);
    }
    let mut rules = vec![
        // calico-node mints the CNI plugin's token for its kubeconfig.
        k8s::named_rule(
            &[""],
            &["serviceaccounts/token"],
            &[CNI_PLUGIN],
            &["create"],
        ),
        rule(&[""], &["pods", "nodes", "namespaces"], &["get"]),
        rule(&[""], &["nodes"], &["get", "list", "watch"]),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(
            &[""],
            &["pods", "namespaces", "serviceaccounts"],
            &["list", "watch"],
        ),
        rule(&[""], &["pods/status"], &["patch"]),
        rule(&[""], &["endpoints", "services"], &["watch", "list", "get"]),
        rule(&[""], &["configmaps"], &["get"]),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["watch", "list"],
        ),
        rule(
            &["networking.k8s.io"],
            &["networkpolicies"],
            &["watch", "list"],
        ),
        rule(calico, &read, &["get", "list", "watch"]),
        // Calico creates its defaults (pool, FelixConfiguration,
        // ClusterInformation) on first start.
        rule(
            calico,
            &["ippools", "felixconfigurations", "clusterinformations"],
            &["create", "update"],
        ),
        rule(
            calico,
            &["bgpconfigurations", "bgppeers"],
            &["create", "update"],
        ),
        rule(calico, &["caliconodestatuses"], &["update"]),
        rule(
            calico,
            &["blockaffinities", "ipamblocks", "ipamhandles"],
            &["get", "list", "create", "update", "delete"],
        ),
        rule(calico, &["blockaffinities"], &["watch"]),
        rule(calico, &["ipamconfigs"], &["get", "create"]),
        rule(&["apps"], &["daemonsets"], &["get"]),
    ];
    if release.has_tiers() {
        rules.push(rule(calico, &["tiers"], &["create"]));
        let mut policies = vec!["adminnetworkpolicies"];
        if release.has_staged_policies() {
            policies.push("baselineadminnetworkpolicies");
        }
        rules.push(rule(&[POLICY_GROUP], &policies, &["watch", "list"]));
    }
    rules
}

/// What the CNI plugin does on the node for each pod: read the pod, assign
/// its address, write the pod's IP annotation.
fn cni_plugin_rules() -> Vec<Value> {
    vec![
        rule(&[""], &["pods", "nodes", "namespaces"], &["get"]),
        rule(&[""], &["pods/status"], &["patch"]),
        rule(
            &[GROUP],
            &[
                "blockaffinities",
                "ipamblocks",
                "ipamhandles",
                "clusterinformations",
                "ippools",
                "ipreservations",
                "ipamconfigs",
            ],
            &["get", "list", "create", "update", "delete"],
        ),
    ]
}

/// kube-controllers runs only its `node` controller (releases the IPAM
/// blocks and host endpoints of deleted nodes).
fn controllers_rules(release: &Release) -> Vec<Value> {
    let calico = &[GROUP];
    let mut ipam = vec!["blockaffinities", "ipamblocks", "ipamhandles"];
    if release.has_staged_policies() {
        ipam.push("ipamconfigs");
    }
    if release.has_tiers() {
        ipam.push("tiers");
    }
    let mut rules = vec![
        rule(&[""], &["nodes"], &["watch", "list", "get"]),
        rule(&[""], &["pods"], &["get", "list", "watch"]),
        rule(calico, &["ipreservations"], &["list"]),
        rule(
            calico,
            &ipam,
            &["get", "list", "create", "update", "delete", "watch"],
        ),
        rule(calico, &["ippools"], &["list", "watch"]),
        rule(
            calico,
            &["hostendpoints"],
            &["get", "list", "create", "update", "delete", "watch"],
        ),
        rule(
            calico,
            &["clusterinformations", "kubecontrollersconfigurations"],
            &["get", "list", "create", "update", "watch"],
        ),
    ];
    if release.minor >= 31 {
        rules.push(rule(&[""], &["namespaces"], &["get", "list", "watch"]));
    }
    rules
}

fn services_endpoint() -> Value {
    json!([{ "configMapRef": { "name": SERVICES_ENDPOINT } }])
}

fn node_init_containers(release: &Release, registry: Option<&str>) -> Vec<Value> {
    let cni_image = release.image(registry, "cni");
    let node_image = release.image(registry, "node");
    // No `upgrade-ipam`: it converts host-local IPAM state left by an
    // earlier CNI, and a vkube cluster starts out with Calico.
    vec![
        // Installs the CNI binaries and writes 10-calico.conflist plus the
        // plugin's kubeconfig.
        json!({
            "name": "install-cni",
            "image": cni_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/opt/cni/bin/install"],
            "envFrom": services_endpoint(),
            "env": [
                k8s::env("CNI_CONF_NAME", "10-calico.conflist"),
                k8s::env_from_config_map("CNI_NETWORK_CONFIG", CONFIG, "cni_network_config", false),
                k8s::env_from_field("KUBERNETES_NODE_NAME", "spec.nodeName"),
                k8s::env("SLEEP", "false"),
            ],
            "volumeMounts": [
                k8s::mount("cni-bin-dir", "/host/opt/cni/bin"),
                k8s::mount("cni-net-dir", "/host/etc/cni/net.d"),
            ],
            "securityContext": { "privileged": true },
        }),
        // Mounts the BPF filesystem and cgroup v2 on the host if missing
        // (best effort; renamed `ebpf-bootstrap` in 3.31).
        json!({
            "name": if release.minor >= 31 { "ebpf-bootstrap" } else { "mount-bpffs" },
            "image": node_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["calico-node", "-init", "-best-effort"],
            "volumeMounts": [
                k8s::mount_propagated("sys-fs", "/sys/fs", "Bidirectional"),
                k8s::mount_propagated("var-run-calico", "/var/run/calico", "Bidirectional"),
                k8s::mount_read_only("nodeproc", "/nodeproc"),
            ],
            "securityContext": { "privileged": true },
        }),
    ]
}

fn node_env(input: &AddonInput<'_>, pod_cidr: Cidr) -> Vec<Value> {
    let mut env = vec![
        k8s::env("DATASTORE_TYPE", "kubernetes"),
        k8s::env("WAIT_FOR_DATASTORE", "true"),
        k8s::env_from_field("NODENAME", "spec.nodeName"),
        k8s::env_from_config_map("CALICO_NETWORKING_BACKEND", CONFIG, "calico_backend", false),
        k8s::env("CLUSTER_TYPE", "k8s"),
        k8s::env("IP", "autodetect"),
        k8s::env("IP_AUTODETECTION_METHOD", "kubernetes-internal-ip"),
        // The default pool calico-node creates on first start.
        k8s::env("CALICO_IPV4POOL_CIDR", pod_cidr.to_string()),
        k8s::env("CALICO_IPV4POOL_BLOCK_SIZE", BLOCK_SIZE.to_string()),
        k8s::env("CALICO_IPV4POOL_IPIP", "Never"),
        k8s::env("CALICO_IPV4POOL_VXLAN", "Always"),
        k8s::env("CALICO_IPV4POOL_NAT_OUTGOING", "true"),
        // 0 = detect the uplink's MTU and subtract VXLAN's 50 bytes.
        k8s::env("FELIX_VXLANMTU", "0"),
        k8s::env("CALICO_DISABLE_FILE_LOGGING", "true"),
        k8s::env("FELIX_DEFAULTENDPOINTTOHOSTACTION", "ACCEPT"),
        k8s::env("FELIX_IPV6SUPPORT", "false"),
        k8s::env("FELIX_HEALTHENABLED", "true"),
    ];
    if !input.tunnel_offload_disabled {
        // The nodes keep VMXNET3's tunnel offload on: do Calico's own
        // mitigation instead (see the `cni` module docs).
        env.push(k8s::env(
            "FELIX_FEATUREDETECTOVERRIDE",
            "ChecksumOffloadBroken=true",
        ));
    }
    env
}

fn felix_probe(flag: &str) -> Value {
    json!({ "exec": { "command": ["/bin/calico-node", flag] } })
}

fn node_container(input: &AddonInput<'_>, release: &Release, pod_cidr: Cidr) -> Value {
    let mut mounts = vec![
        k8s::mount("cni-net-dir", "/host/etc/cni/net.d"),
        k8s::mount_read_only("lib-modules", "/lib/modules"),
        k8s::mount("xtables-lock", "/run/xtables.lock"),
        k8s::mount("var-run-calico", "/var/run/calico"),
        k8s::mount("var-lib-calico", "/var/lib/calico"),
        k8s::mount("bpffs", "/sys/fs/bpf"),
        k8s::mount_read_only("cni-log-dir", "/var/log/calico/cni"),
    ];
    if release.minor >= 31 {
        mounts.push(k8s::mount_read_only(
            "sys-kernel-security",
            "/sys/kernel/security",
        ));
    }
    let liveness = k8s::merge(
        felix_probe("-felix-live"),
        json!({ "periodSeconds": 10, "initialDelaySeconds": 10, "failureThreshold": 6, "timeoutSeconds": 10 }),
    );
    let readiness = k8s::merge(
        felix_probe("-felix-ready"),
        json!({ "periodSeconds": 10, "timeoutSeconds": 10 }),
    );
    json!({
        "name": NODE,
        "image": release.image(input.registry, "node"),
        "imagePullPolicy": "IfNotPresent",
        "envFrom": services_endpoint(),
        "env": node_env(input, pod_cidr),
        "securityContext": { "privileged": true },
        "resources": { "requests": { "cpu": "250m" } },
        "lifecycle": { "preStop": { "exec": { "command": ["/bin/calico-node", "-shutdown"] } } },
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        "volumeMounts": mounts,
    })
}

fn node_volumes(release: &Release) -> Vec<Value> {
    let mut volumes = vec![
        k8s::host_path_volume("lib-modules", "/lib/modules", None),
        k8s::host_path_volume(
            "var-run-calico",
            "/var/run/calico",
            Some("DirectoryOrCreate"),
        ),
        k8s::host_path_volume(
            "var-lib-calico",
            "/var/lib/calico",
            Some("DirectoryOrCreate"),
        ),
        k8s::host_path_volume("xtables-lock", "/run/xtables.lock", Some("FileOrCreate")),
        k8s::host_path_volume("sys-fs", "/sys/fs/", Some("DirectoryOrCreate")),
        k8s::host_path_volume("bpffs", "/sys/fs/bpf", Some("Directory")),
        k8s::host_path_volume("nodeproc", "/proc", None),
        k8s::host_path_volume("cni-bin-dir", "/opt/cni/bin", Some("DirectoryOrCreate")),
        k8s::host_path_volume("cni-net-dir", "/etc/cni/net.d", None),
        k8s::host_path_volume("cni-log-dir", "/var/log/calico/cni", None),
    ];
    if release.minor >= 31 {
        volumes.push(k8s::host_path_volume(
            "sys-kernel-security",
            "/sys/kernel/security",
            None,
        ));
    }
    volumes
}

fn node_daemon_set(
    input: &AddonInput<'_>,
    release: &Release,
    pod_cidr: Cidr,
    labels: &Value,
) -> Value {
    let selector = json!({ "k8s-app": NODE });
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": k8s::metadata(NODE, Some(NAMESPACE), &k8s::with_labels(labels, &selector)),
        "spec": {
            "selector": { "matchLabels": selector },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1 } },
            "template": {
                "metadata": { "labels": selector },
                "spec": {
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "hostNetwork": true,
                    // Every node, whatever its taints: NotReady (no CNI yet),
                    // uninitialized (no CPI yet), control plane, user taints.
                    "tolerations": k8s::tolerate_all(),
                    "serviceAccountName": NODE,
                    "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                    // Felix tidies up in preStop; no grace period needed.
                    "terminationGracePeriodSeconds": 0,
                    "priorityClassName": "system-node-critical",
                    "initContainers": node_init_containers(release, input.registry),
                    "containers": [node_container(input, release, pod_cidr)],
                    "volumes": node_volumes(release),
                },
            },
        },
    })
}

fn controllers_deployment(input: &AddonInput<'_>, release: &Release, labels: &Value) -> Value {
    let selector = json!({ "k8s-app": CONTROLLERS });
    let mut container = json!({
        "name": CONTROLLERS,
        "image": release.image(input.registry, "kube-controllers"),
        "imagePullPolicy": "IfNotPresent",
        "env": [
            k8s::env("ENABLED_CONTROLLERS", "node"),
            k8s::env("DATASTORE_TYPE", "kubernetes"),
        ],
        "livenessProbe": {
            "exec": { "command": ["/usr/bin/check-status", "-l"] },
            "periodSeconds": 10,
            "initialDelaySeconds": 10,
            "failureThreshold": 6,
            "timeoutSeconds": 10,
        },
        "readinessProbe": {
            "exec": { "command": ["/usr/bin/check-status", "-r"] },
            "periodSeconds": 10,
        },
    });
    if release.has_tiers() {
        // The image runs as a non-root user from 3.29 on (Calico's own
        // manifest enforces it from then).
        container["securityContext"] = json!({ "runAsNonRoot": true });
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": k8s::metadata(CONTROLLERS, Some(NAMESPACE), &k8s::with_labels(labels, &selector)),
        "spec": {
            // Calico runs a single kube-controllers, replaced, not surged.
            "replicas": 1,
            "selector": { "matchLabels": selector },
            "strategy": { "type": "Recreate" },
            "template": {
                "metadata": { "labels": selector },
                "spec": {
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "tolerations": [
                        { "key": "CriticalAddonsOnly", "operator": "Exists" },
                        { "key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule" },
                        // Schedulable before the CPI has initialized the node.
                        { "key": "node.cloudprovider.kubernetes.io/uninitialized", "operator": "Exists", "effect": "NoSchedule" },
                    ],
                    "serviceAccountName": CONTROLLERS,
                    "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                    "priorityClassName": "system-cluster-critical",
                    "containers": [container],
                },
            },
        },
    })
}
