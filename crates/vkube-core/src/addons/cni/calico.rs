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

use serde_json::json;

use super::{account_binding, ipv4_pod_cidr, manifest, pinned, release_minor, Pin, NAMESPACE};
use crate::addons::k8s::{
    binding, cluster_role, config_map, daemon_set, deployment, linux_nodes, named_rule, open_crd,
    pod_disruption_budget, rule, service_account, Container, CrdSpec, EnvVar, Labels, Meta,
    PodSpec, PodTemplate, Probe, Profile, RoleRef, Rule, Scope, SecurityContext, Strategy, Stream,
    Subject, Toleration, Volume,
};
use crate::addons::{api_server_env, image, AddonInput, Error, Manifest};
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
/// The label Calico's workloads select their pods by.
const SELECTOR_LABEL: &str = "k8s-app";
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

const fn cluster(kind: &'static str, plural: &'static str, since: u64) -> CalicoKind {
    CalicoKind {
        kind,
        plural,
        scope: Scope::Cluster,
        since,
    }
}

const fn namespaced(kind: &'static str, plural: &'static str, since: u64) -> CalicoKind {
    CalicoKind {
        scope: Scope::Namespaced,
        ..cluster(kind, plural, since)
    }
}

/// The `crd.projectcalico.org/v1` kinds of the Kubernetes datastore.
const CALICO_KINDS: &[CalicoKind] = &[
    cluster("BGPConfiguration", "bgpconfigurations", 28),
    cluster("BGPFilter", "bgpfilters", 28),
    cluster("BGPPeer", "bgppeers", 28),
    cluster("BlockAffinity", "blockaffinities", 28),
    cluster("CalicoNodeStatus", "caliconodestatuses", 28),
    cluster("ClusterInformation", "clusterinformations", 28),
    cluster("FelixConfiguration", "felixconfigurations", 28),
    cluster("GlobalNetworkPolicy", "globalnetworkpolicies", 28),
    cluster("GlobalNetworkSet", "globalnetworksets", 28),
    cluster("HostEndpoint", "hostendpoints", 28),
    cluster("IPAMBlock", "ipamblocks", 28),
    cluster("IPAMConfig", "ipamconfigs", 28),
    cluster("IPAMHandle", "ipamhandles", 28),
    cluster("IPPool", "ippools", 28),
    cluster("IPReservation", "ipreservations", 28),
    cluster(
        "KubeControllersConfiguration",
        "kubecontrollersconfigurations",
        28,
    ),
    namespaced("NetworkPolicy", "networkpolicies", 28),
    namespaced("NetworkSet", "networksets", 28),
    cluster("Tier", "tiers", 29),
    cluster(
        "StagedGlobalNetworkPolicy",
        "stagedglobalnetworkpolicies",
        30,
    ),
    namespaced(
        "StagedKubernetesNetworkPolicy",
        "stagedkubernetesnetworkpolicies",
        30,
    ),
    namespaced("StagedNetworkPolicy", "stagednetworkpolicies", 30),
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
        return Err(Error::invalid(
            COMPONENT,
            format!("pod CIDR {pod_cidr} is smaller than one Calico IPAM block (/{BLOCK_SIZE})"),
        ));
    }
    let labels = Labels::part_of(COMPONENT);
    let meta = |name: &str| Meta::namespaced(name, NAMESPACE, &labels);

    let mut stream = Stream::new("");
    push_crds(&mut stream, &release, &labels);
    for name in [NODE, CNI_PLUGIN, CONTROLLERS] {
        stream.push(&service_account(meta(name)));
    }
    stream.push(&config_map(
        meta(CONFIG),
        [
            ("calico_backend", "vxlan".to_owned()),
            ("cni_network_config", cni_network_config(&release)),
        ],
    ));
    stream.push(&config_map(meta(SERVICES_ENDPOINT), api_server_env(input)));
    for (name, rules) in [
        (NODE, node_rules(&release)),
        (CNI_PLUGIN, cni_plugin_rules()),
        (CONTROLLERS, controllers_rules(&release)),
    ] {
        stream.push(&cluster_role(Meta::cluster(name, &labels), rules));
    }
    for name in [NODE, CNI_PLUGIN, CONTROLLERS] {
        stream.push(&account_binding(name, &labels));
    }
    if release.has_tiers() {
        // Lets the garbage collector read tiers once a Calico API server
        // serves `projectcalico.org` (Calico ships this with tiers).
        let tier_getter = Meta::cluster("calico-tier-getter", &labels);
        stream.push(&cluster_role(
            tier_getter.clone(),
            vec![rule(&["projectcalico.org"], &["tiers"], &["get"])],
        ));
        stream.push(&binding(
            tier_getter,
            RoleRef::cluster_role("calico-tier-getter"),
            vec![Subject::user("system:kube-controller-manager")],
        ));
    }
    let node = PodTemplate::new(
        Labels::of(SELECTOR_LABEL, NODE),
        node_pod(input, &release, pod_cidr),
    );
    stream.push(&daemon_set(meta(NODE).label(SELECTOR_LABEL, NODE), 1, node));
    let controllers = PodTemplate::new(
        Labels::of(SELECTOR_LABEL, CONTROLLERS),
        controllers_pod(input, &release),
    );
    // Calico runs a single kube-controllers, replaced, not surged.
    stream.push(&deployment(
        meta(CONTROLLERS).label(SELECTOR_LABEL, CONTROLLERS),
        1,
        Strategy::Recreate,
        controllers,
    ));
    stream.push(&pod_disruption_budget(
        meta(CONTROLLERS),
        &Labels::of(SELECTOR_LABEL, CONTROLLERS),
        1,
    ));
    Ok(manifest(COMPONENT, release.version, stream))
}

fn push_crds(stream: &mut Stream, release: &Release, labels: &Labels) {
    for calico in CALICO_KINDS.iter().filter(|k| release.minor >= k.since) {
        let spec = CrdSpec {
            group: GROUP,
            version: "v1",
            kind: calico.kind,
            plural: calico.plural,
            scope: calico.scope,
            status_subresource: false,
        };
        stream.push(&open_crd(&spec, labels));
    }
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
        stream.push(
            &open_crd(&spec, labels).annotation(POLICY_API_APPROVAL.0, POLICY_API_APPROVAL.1),
        );
    }
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

fn node_rules(release: &Release) -> Vec<Rule> {
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
        named_rule(
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
fn cni_plugin_rules() -> Vec<Rule> {
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
fn controllers_rules(release: &Release) -> Vec<Rule> {
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

/// Felix's and kube-controllers' liveness: `command` every 10 s, restarted
/// after a minute of failures.
fn liveness(command: &[&str]) -> Probe {
    Probe::exec(command)
        .period(10)
        .initial_delay(10)
        .failures(6)
        .timeout(10)
}

fn node_init_containers(release: &Release, registry: Option<&str>) -> Vec<Container> {
    // No `upgrade-ipam`: it converts host-local IPAM state left by an
    // earlier CNI, and a vkube cluster starts out with Calico.
    vec![
        // Installs the CNI binaries and writes 10-calico.conflist plus the
        // plugin's kubeconfig.
        Container::new("install-cni", release.image(registry, "cni"))
            .command(&["/opt/cni/bin/install"])
            .env_from_config_map(SERVICES_ENDPOINT)
            .env("CNI_CONF_NAME", "10-calico.conflist")
            .env_var(EnvVar::config_map_key(
                "CNI_NETWORK_CONFIG",
                CONFIG,
                "cni_network_config",
                false,
            ))
            .env_field("KUBERNETES_NODE_NAME", "spec.nodeName")
            .env("SLEEP", "false")
            .mount("cni-bin-dir", "/host/opt/cni/bin")
            .mount("cni-net-dir", "/host/etc/cni/net.d")
            .security(SecurityContext::privileged()),
        // Mounts the BPF filesystem and cgroup v2 on the host if missing
        // (best effort; renamed `ebpf-bootstrap` in 3.31).
        Container::new(
            if release.minor >= 31 {
                "ebpf-bootstrap"
            } else {
                "mount-bpffs"
            },
            release.image(registry, "node"),
        )
        .command(&["calico-node", "-init", "-best-effort"])
        .mount_bidirectional("sys-fs", "/sys/fs")
        .mount_bidirectional("var-run-calico", "/var/run/calico")
        .mount_read_only("nodeproc", "/nodeproc")
        .security(SecurityContext::privileged()),
    ]
}

fn node_env(input: &AddonInput<'_>, pod_cidr: Cidr) -> Vec<EnvVar> {
    let mut env = vec![
        EnvVar::value("DATASTORE_TYPE", "kubernetes"),
        EnvVar::value("WAIT_FOR_DATASTORE", "true"),
        EnvVar::field("NODENAME", "spec.nodeName"),
        EnvVar::config_map_key("CALICO_NETWORKING_BACKEND", CONFIG, "calico_backend", false),
        EnvVar::value("CLUSTER_TYPE", "k8s"),
        EnvVar::value("IP", "autodetect"),
        EnvVar::value("IP_AUTODETECTION_METHOD", "kubernetes-internal-ip"),
        // The default pool calico-node creates on first start.
        EnvVar::value("CALICO_IPV4POOL_CIDR", pod_cidr.to_string()),
        EnvVar::value("CALICO_IPV4POOL_BLOCK_SIZE", BLOCK_SIZE.to_string()),
        EnvVar::value("CALICO_IPV4POOL_IPIP", "Never"),
        EnvVar::value("CALICO_IPV4POOL_VXLAN", "Always"),
        EnvVar::value("CALICO_IPV4POOL_NAT_OUTGOING", "true"),
        // 0 = detect the uplink's MTU and subtract VXLAN's 50 bytes.
        EnvVar::value("FELIX_VXLANMTU", "0"),
        EnvVar::value("CALICO_DISABLE_FILE_LOGGING", "true"),
        EnvVar::value("FELIX_DEFAULTENDPOINTTOHOSTACTION", "ACCEPT"),
        EnvVar::value("FELIX_IPV6SUPPORT", "false"),
        EnvVar::value("FELIX_HEALTHENABLED", "true"),
    ];
    if !input.tunnel_offload_disabled {
        // The nodes keep VMXNET3's tunnel offload on: do Calico's own
        // mitigation instead (see the `cni` module docs).
        env.push(EnvVar::value(
            "FELIX_FEATUREDETECTOVERRIDE",
            "ChecksumOffloadBroken=true",
        ));
    }
    env
}

fn node_container(input: &AddonInput<'_>, release: &Release, pod_cidr: Cidr) -> Container {
    let container = Container::new(NODE, release.image(input.registry, "node"))
        .env_from_config_map(SERVICES_ENDPOINT)
        .env_vars(node_env(input, pod_cidr))
        .security(SecurityContext::privileged())
        .request_cpu("250m")
        .pre_stop(&["/bin/calico-node", "-shutdown"])
        .liveness(liveness(&["/bin/calico-node", "-felix-live"]))
        .readiness(
            Probe::exec(&["/bin/calico-node", "-felix-ready"])
                .period(10)
                .timeout(10),
        )
        .mount("cni-net-dir", "/host/etc/cni/net.d")
        .mount_read_only("lib-modules", "/lib/modules")
        .mount("xtables-lock", "/run/xtables.lock")
        .mount("var-run-calico", "/var/run/calico")
        .mount("var-lib-calico", "/var/lib/calico")
        .mount("bpffs", "/sys/fs/bpf")
        .mount_read_only("cni-log-dir", "/var/log/calico/cni");
    if release.minor >= 31 {
        container.mount_read_only("sys-kernel-security", "/sys/kernel/security")
    } else {
        container
    }
}

fn node_volumes(release: &Release) -> Vec<Volume> {
    let mut volumes = vec![
        Volume::host_path("lib-modules", "/lib/modules", None),
        Volume::host_path(
            "var-run-calico",
            "/var/run/calico",
            Some("DirectoryOrCreate"),
        ),
        Volume::host_path(
            "var-lib-calico",
            "/var/lib/calico",
            Some("DirectoryOrCreate"),
        ),
        Volume::host_path("xtables-lock", "/run/xtables.lock", Some("FileOrCreate")),
        Volume::host_path("sys-fs", "/sys/fs/", Some("DirectoryOrCreate")),
        Volume::host_path("bpffs", "/sys/fs/bpf", Some("Directory")),
        Volume::host_path("nodeproc", "/proc", None),
        Volume::host_path("cni-bin-dir", "/opt/cni/bin", Some("DirectoryOrCreate")),
        Volume::host_path("cni-net-dir", "/etc/cni/net.d", None),
        Volume::host_path("cni-log-dir", "/var/log/calico/cni", None),
    ];
    if release.minor >= 31 {
        volumes.push(Volume::host_path(
            "sys-kernel-security",
            "/sys/kernel/security",
            None,
        ));
    }
    volumes
}

fn node_pod(input: &AddonInput<'_>, release: &Release, pod_cidr: Cidr) -> PodSpec {
    PodSpec {
        node_selector: linux_nodes(),
        host_network: true,
        // Every node, whatever its taints: NotReady (no CNI yet),
        // uninitialized (no CPI yet), control plane, user taints.
        tolerations: vec![Toleration::everything()],
        service_account_name: NODE.to_owned(),
        security_context: Some(runtime_default_seccomp()),
        // Felix tidies up in preStop; no grace period needed.
        termination_grace_period_seconds: Some(0),
        priority_class_name: "system-node-critical",
        init_containers: node_init_containers(release, input.registry),
        containers: vec![node_container(input, release, pod_cidr)],
        volumes: node_volumes(release),
        ..PodSpec::default()
    }
}

fn runtime_default_seccomp() -> SecurityContext {
    SecurityContext {
        seccomp_profile: Some(Profile::runtime_default()),
        ..SecurityContext::default()
    }
}

fn controllers_pod(input: &AddonInput<'_>, release: &Release) -> PodSpec {
    let mut container = Container::new(
        CONTROLLERS,
        release.image(input.registry, "kube-controllers"),
    )
    .env("ENABLED_CONTROLLERS", "node")
    .env("DATASTORE_TYPE", "kubernetes")
    .liveness(liveness(&["/usr/bin/check-status", "-l"]))
    .readiness(Probe::exec(&["/usr/bin/check-status", "-r"]).period(10));
    if release.has_tiers() {
        // The image runs as a non-root user from 3.29 on (Calico's own
        // manifest enforces it from then).
        container = container.security(SecurityContext {
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        });
    }
    PodSpec {
        node_selector: linux_nodes(),
        tolerations: vec![
            Toleration::key("CriticalAddonsOnly"),
            Toleration::exists("node-role.kubernetes.io/control-plane", "NoSchedule"),
            // Schedulable before the CPI has initialized the node.
            Toleration::exists(
                "node.cloudprovider.kubernetes.io/uninitialized",
                "NoSchedule",
            ),
        ],
        service_account_name: CONTROLLERS.to_owned(),
        security_context: Some(runtime_default_seccomp()),
        priority_class_name: "system-cluster-critical",
        containers: vec![container],
        ..PodSpec::default()
    }
}
