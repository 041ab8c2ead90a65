//! Cilium: the agent DaemonSet, the operator Deployment, their RBAC and
//! the `cilium-config` ConfigMap both read.
//!
//! Shape: VXLAN tunnel on UDP 8472, cluster-pool IPAM on the spec's pod
//! CIDR, kube-proxy kept (`kube-proxy-replacement: false`), L7 proxy with
//! Envoy embedded in the agent (no separate `cilium-envoy` DaemonSet and
//! image), Hubble on the agent's local socket only (`kubectl exec
//! ds/cilium -- hubble observe`; no relay, no TCP listener, no TLS
//! material to generate).
//!
//! No CRDs here: the operator registers Cilium's CRDs once it is leader
//! (its `create-crds` cell; `--skip-crd-creation` defaults to false), and
//! the agents wait for them. Hence the operator's CRD create/update rights.

use super::{account_binding, ipv4_pod_cidr, manifest, pinned, Pin, NAMESPACE};
use crate::addons::k8s::{
    binding, cluster_role, config_map, daemon_set, deployment, linux_nodes, named_rule,
    pod_disruption_budget, role, rule, service_account, Affinity, Amount, Capabilities, Container,
    EnvVar, HttpGet, Labels, Meta, PodSpec, PodTemplate, Port, Probe, Profile, RoleRef, Rule,
    SeLinuxOptions, SecurityContext, Strategy, Stream, Subject, Toleration, Volume, NAME_LABEL,
    PART_OF_LABEL, READ,
};
use crate::addons::{api_server_env, image, AddonInput, Error, Manifest};
use crate::ipam::Cidr;

const COMPONENT: &str = "cilium";
const CONFIG: &str = "cilium-config";
const AGENT: &str = "cilium";
const OPERATOR: &str = "cilium-operator";
/// The Role (and binding) that lets the agent read its ConfigMap.
const CONFIG_READER: &str = "cilium-config-agent";
/// The agent's health endpoint (`agent-health-port`), probed on 127.0.0.1.
const AGENT_HEALTH_PORT: u16 = 9879;
/// The operator's API/health endpoint (`operator-api-serve-addr`).
const OPERATOR_HEALTH_PORT: u16 = 9234;
/// Cilium's VXLAN port (its default, the Linux kernel's VXLAN port, not
/// IANA's 4789): the node firewall must pass UDP 8472 between nodes.
const VXLAN_PORT: u16 = 8472;
/// Where the agent finds its configuration (written by `cilium-dbg
/// build-config` in the `config` init container; the operator mounts the
/// ConfigMap there).
const CONFIG_DIR: &str = "/tmp/cilium/config-map";
/// The cgroup v2 mount the `mount-cgroup` init container makes on the host.
const CGROUP_ROOT: &str = "/run/cilium/cgroupv2";
/// Containers whose AppArmor profile must be unconfined (they mount, enter
/// host namespaces, write sysctls; the rest are privileged or need
/// nothing).
const APPARMOR_UNCONFINED: [&str; 4] = [
    "cilium-agent",
    "clean-cilium-state",
    "mount-cgroup",
    "apply-sysctl-overwrites",
];

/// Cilium release per Kubernetes minor. Rule: the newest Cilium line whose
/// e2e-tested Kubernetes list (Documentation/network/kubernetes/
/// compatibility.rst of the release) contains the minor, up to 1.18 (the
/// agent/operator layout written here); within a line, its latest patch.
/// 1.16 and 1.17 are EOL upstream, as are Kubernetes 1.28 and 1.29.
pub const PINS: &[Pin] = &[
    Pin {
        minors: 28..=28,
        version: "v1.16.19",
        source: "Cilium 1.16 docs, Kubernetes compatibility: e2e tested on 1.27, 1.28, 1.29, 1.30",
    },
    Pin {
        minors: 29..=29,
        version: "v1.17.18",
        source: "Cilium v1.17 compatibility.rst: e2e tested on 1.29, 1.30, 1.31, 1.32",
    },
    Pin {
        minors: 30..=33,
        version: "v1.18.14",
        source: "Cilium v1.18.14 compatibility.rst: e2e tested on 1.30, 1.31, 1.32, 1.33",
    },
];

/// Renders Cilium for the input's Kubernetes minor.
pub(super) fn render(input: &AddonInput<'_>) -> Result<Manifest, Error> {
    let pin = pinned(PINS, COMPONENT, input)?;
    let pod_cidr = ipv4_pod_cidr(COMPONENT, input)?;
    let mask = node_mask_size(pod_cidr)?;
    let agent_image = image(
        input.registry,
        &format!("quay.io/cilium/cilium:{}", pin.version),
    );
    let operator_image = image(
        input.registry,
        &format!("quay.io/cilium/operator-generic:{}", pin.version),
    );
    let api: Vec<EnvVar> = api_server_env(input)
        .into_iter()
        .map(|(name, value)| EnvVar::value(name, value))
        .collect();
    let labels = Labels::part_of(COMPONENT);
    let meta = |name: &str| Meta::namespaced(name, NAMESPACE, &labels);

    let mut stream = Stream::new("");
    stream.push(&service_account(meta(AGENT)));
    stream.push(&service_account(meta(OPERATOR)));
    stream.push(&config_map(meta(CONFIG), config(input, pod_cidr, mask)));
    stream.push(&cluster_role(Meta::cluster(AGENT, &labels), agent_rules()));
    stream.push(&cluster_role(
        Meta::cluster(OPERATOR, &labels),
        operator_rules(),
    ));
    stream.push(&account_binding(AGENT, &labels));
    stream.push(&account_binding(OPERATOR, &labels));
    // `cilium-dbg build-config` reads the ConfigMap through the API.
    stream.push(&role(
        meta(CONFIG_READER),
        vec![rule(&[""], &["configmaps"], READ)],
    ));
    stream.push(&binding(
        meta(CONFIG_READER),
        RoleRef::role(CONFIG_READER),
        vec![Subject::service_account(AGENT, NAMESPACE)],
    ));
    stream.push(&daemon_set(
        meta(AGENT).label("k8s-app", AGENT),
        2,
        agent_template(input.kubernetes.minor(), &agent_image, &api),
    ));
    let operator_selector = operator_selector();
    stream.push(&deployment(
        Meta::namespaced(OPERATOR, NAMESPACE, &labels.merged(&operator_selector)),
        // Two, on different nodes (host network: one per node anyway);
        // the second waits for a second node. Losing one of two may not
        // stop a rollout.
        2,
        Strategy::rolling(Amount::Percent(50), Some(Amount::Percent(25))),
        operator_template(&operator_image, &api),
    ));
    stream.push(&pod_disruption_budget(
        meta(OPERATOR),
        &operator_selector,
        1,
    ));
    Ok(manifest(COMPONENT, pin.version, stream))
}

/// Per-node pod CIDR size for cluster-pool IPAM (each node gets one range
/// of this size from the pod CIDR, so the pair bounds nodes × pods):
/// - /24 (254 pods per node) when that still leaves 64 nodes or more
///   (pod CIDR /18 or larger — the default /16 gives 256 nodes);
/// - /25 (126 pods, above the kubelet's default `maxPods` of 110) down to
///   a /24 pod CIDR (2 nodes);
/// - smaller pod CIDRs cannot hold a control plane and a worker.
pub(super) fn node_mask_size(pod_cidr: Cidr) -> Result<u8, Error> {
    match pod_cidr.prefix() {
        0..=18 => Ok(24),
        19..=24 => Ok(25),
        prefix => Err(Error::invalid(
            COMPONENT,
            format!(
                "pod CIDR {pod_cidr} is too small: with /{prefix} Cilium's per-node ranges (/25, 126 pods) fit fewer than 2 nodes; use /24 or larger"
            ),
        )),
    }
}

/// `cilium-config`: what the agent and the operator read. Only keys known
/// to every pinned line are set; the rest stay at the agent's defaults.
fn config(input: &AddonInput<'_>, pod_cidr: Cidr, mask: u8) -> Vec<(&'static str, String)> {
    let text = |value: &str| value.to_owned();
    vec![
        // Identities as CRDs (no kvstore).
        ("identity-allocation-mode", text("crd")),
        ("cluster-name", text("default")),
        ("cluster-id", text("0")),
        ("debug", text("false")),
        ("enable-policy", text("default")),
        ("enable-ipv4", text("true")),
        ("enable-ipv6", text("false")),
        // Overlay: VXLAN on Cilium's port.
        ("routing-mode", text("tunnel")),
        ("tunnel-protocol", text("vxlan")),
        ("tunnel-port", VXLAN_PORT.to_string()),
        // 0 = detect the uplink's MTU; tunnel overhead is subtracted for
        // the pod routes (see the module docs of `cni`).
        ("mtu", text("0")),
        ("enable-ipv4-masquerade", text("true")),
        ("auto-direct-node-routes", text("false")),
        // kube-proxy stays; Cilium does not replace it.
        ("kube-proxy-replacement", text("false")),
        // IPAM: one range per node out of the pod CIDR, handed out by the
        // operator; the node's `spec.podCIDR` is not needed.
        ("ipam", text("cluster-pool")),
        ("cluster-pool-ipv4-cidr", pod_cidr.to_string()),
        ("cluster-pool-ipv4-mask-size", mask.to_string()),
        ("k8s-require-ipv4-pod-cidr", text("false")),
        // The agent writes its CNI config only once it is ready, and
        // removes other CNIs' configs.
        ("custom-cni-conf", text("false")),
        (
            "write-cni-conf-when-ready",
            text("/host/etc/cni/net.d/05-cilium.conflist"),
        ),
        ("cni-exclusive", text("true")),
        // Reach the API server at the VIP, not the `kubernetes` Service
        // (which needs a working CNI and kube-proxy first). Every Cilium
        // container that talks to the API also gets it as
        // KUBERNETES_SERVICE_HOST/_PORT, which client-go's in-cluster
        // config reads on every pinned line.
        ("k8s-service-host", input.api_endpoint.ip().to_string()),
        ("k8s-service-port", input.api_endpoint.port().to_string()),
        ("enable-l7-proxy", text("true")),
        ("external-envoy-proxy", text("false")),
        ("enable-hubble", text("true")),
        ("hubble-socket-path", text("/var/run/cilium/hubble.sock")),
        ("monitor-aggregation", text("medium")),
        ("monitor-aggregation-interval", text("5s")),
        ("monitor-aggregation-flags", text("all")),
        ("bpf-map-dynamic-size-ratio", text("0.0025")),
        ("preallocate-bpf-maps", text("false")),
        ("enable-endpoint-health-checking", text("true")),
        ("enable-health-checking", text("true")),
        ("bpf-root", text("/sys/fs/bpf")),
        ("cgroup-root", text(CGROUP_ROOT)),
        ("procfs", text("/host/proc")),
        // The agent taints its node until it is ready, and the operator
        // removes the taint: no pod lands on a node without networking.
        (
            "agent-not-ready-taint-key",
            text("node.cilium.io/agent-not-ready"),
        ),
        ("set-cilium-node-taints", text("true")),
        ("remove-cilium-node-taints", text("true")),
        ("set-cilium-is-up-condition", text("true")),
        ("synchronize-k8s-nodes", text("true")),
        (
            "operator-api-serve-addr",
            format!("127.0.0.1:{OPERATOR_HEALTH_PORT}"),
        ),
    ]
}

/// The agent's rights: read what it enforces and routes for; write its own
/// node, endpoints and identities. (Union of what the pinned lines' agents
/// use; list/watch on a kind a line lacks is harmless.)
fn agent_rules() -> Vec<Rule> {
    let cilium = &["cilium.io"];
    vec![
        rule(&["networking.k8s.io"], &["networkpolicies"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(
            &[""],
            &["namespaces", "services", "pods", "endpoints", "nodes"],
            READ,
        ),
        // The agent waits for the CRDs the operator registers.
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            READ,
        ),
        rule(
            cilium,
            &[
                "ciliumloadbalancerippools",
                "ciliumbgppeeringpolicies",
                "ciliumbgpnodeconfigs",
                "ciliumbgpadvertisements",
                "ciliumbgppeerconfigs",
                "ciliumclusterwideenvoyconfigs",
                "ciliumclusterwidenetworkpolicies",
                "ciliumegressgatewaypolicies",
                "ciliumendpoints",
                "ciliumendpointslices",
                "ciliumenvoyconfigs",
                "ciliumidentities",
                "ciliumlocalredirectpolicies",
                "ciliumnetworkpolicies",
                "ciliumnodes",
                "ciliumnodeconfigs",
                "ciliumcidrgroups",
                "ciliuml2announcementpolicies",
                "ciliumpodippools",
            ],
            &["list", "watch"],
        ),
        rule(
            cilium,
            &["ciliumidentities", "ciliumendpoints", "ciliumnodes"],
            &["create"],
        ),
        rule(cilium, &["ciliumidentities"], &["update"]),
        rule(cilium, &["ciliumendpoints"], &["delete", "get"]),
        rule(
            cilium,
            &["ciliumnodes", "ciliumnodes/status"],
            &["get", "update"],
        ),
        rule(
            cilium,
            &[
                "ciliumendpoints",
                "ciliumendpoints/status",
                "ciliumnetworkpolicies/status",
                "ciliumclusterwidenetworkpolicies/status",
                "ciliuml2announcementpolicies/status",
                "ciliumbgpnodeconfigs/status",
            ],
            &["patch"],
        ),
    ]
}

/// Every CRD some pinned operator registers (it updates them by name when
/// their schema version changes on upgrade).
const CRDS: &[&str] = &[
    "ciliumbgpadvertisements",
    "ciliumbgpclusterconfigs",
    "ciliumbgpnodeconfigoverrides",
    "ciliumbgpnodeconfigs",
    "ciliumbgppeerconfigs",
    "ciliumbgppeeringpolicies",
    "ciliumcidrgroups",
    "ciliumclusterwideenvoyconfigs",
    "ciliumclusterwidenetworkpolicies",
    "ciliumegressgatewaypolicies",
    "ciliumendpoints",
    "ciliumendpointslices",
    "ciliumenvoyconfigs",
    "ciliumexternalworkloads",
    "ciliumgatewayclassconfigs",
    "ciliumidentities",
    "ciliuml2announcementpolicies",
    "ciliumloadbalancerippools",
    "ciliumlocalredirectpolicies",
    "ciliumnetworkpolicies",
    "ciliumnodeconfigs",
    "ciliumnodes",
    "ciliumpodippools",
];

/// The operator's rights: register the CRDs, hand out pod CIDRs
/// (CiliumNodes), garbage-collect identities and endpoints, remove the
/// agent-not-ready taint, elect a leader.
fn operator_rules() -> Vec<Rule> {
    let cilium = &["cilium.io"];
    let crd_names: Vec<String> = CRDS.iter().map(|p| format!("{p}.cilium.io")).collect();
    let crd_names: Vec<&str> = crd_names.iter().map(String::as_str).collect();
    vec![
        // Restarts unmanaged kube-dns/CoreDNS pods so Cilium manages them.
        rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
        named_rule(&[""], &["configmaps"], &[CONFIG], &["patch"]),
        rule(&[""], &["nodes"], &["list", "watch"]),
        // Remove the agent-not-ready taint; NetworkUnavailable=false.
        rule(&[""], &["nodes", "nodes/status"], &["patch"]),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&[""], &["services/status"], &["update", "patch"]),
        rule(&[""], &["namespaces"], &["get", "list", "watch"]),
        rule(&[""], &["services", "endpoints"], &["get", "list", "watch"]),
        rule(
            cilium,
            &["ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"],
            &[
                "create",
                "update",
                "deletecollection",
                "patch",
                "get",
                "list",
                "watch",
            ],
        ),
        rule(
            cilium,
            &[
                "ciliumnetworkpolicies/status",
                "ciliumclusterwidenetworkpolicies/status",
            ],
            &["patch", "update"],
        ),
        rule(
            cilium,
            &["ciliumendpoints", "ciliumidentities"],
            &["delete", "list", "watch"],
        ),
        rule(cilium, &["ciliumidentities"], &["update"]),
        rule(
            cilium,
            &["ciliumnodes"],
            &["create", "update", "get", "list", "watch", "delete"],
        ),
        rule(cilium, &["ciliumnodes/status"], &["update"]),
        rule(
            cilium,
            &[
                "ciliumendpointslices",
                "ciliumenvoyconfigs",
                "ciliumbgppeerconfigs",
                "ciliumbgpadvertisements",
                "ciliumbgpnodeconfigs",
            ],
            &[
                "create", "update", "get", "list", "watch", "delete", "patch",
            ],
        ),
        rule(cilium, &["ciliumendpointslices"], &["deletecollection"]),
        rule(
            cilium,
            &[
                "ciliumbgpclusterconfigs/status",
                "ciliumbgppeerconfigs/status",
            ],
            &["update"],
        ),
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["create", "get", "list", "watch"],
        ),
        named_rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &crd_names,
            &["update"],
        ),
        rule(
            cilium,
            &[
                "ciliumloadbalancerippools",
                "ciliumpodippools",
                "ciliumbgppeeringpolicies",
                "ciliumbgpclusterconfigs",
                "ciliumbgpnodeconfigoverrides",
                "ciliumbgppeerconfigs",
            ],
            READ,
        ),
        rule(cilium, &["ciliumpodippools"], &["create"]),
        rule(cilium, &["ciliumloadbalancerippools/status"], &["patch"]),
        // Leader election between the two replicas.
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "get", "update"],
        ),
    ]
}

/// `K8S_NODE_NAME` and `CILIUM_K8S_NAMESPACE`, which every Cilium
/// container that talks to the API reads.
fn pod_identity_env() -> [EnvVar; 2] {
    [
        EnvVar::field("K8S_NODE_NAME", "spec.nodeName"),
        EnvVar::field("CILIUM_K8S_NAMESPACE", "metadata.namespace"),
    ]
}

/// A container that touches the host: SELinux type `spc_t` ("super
/// privileged container", as Cilium documents for SELinux-enforcing nodes
/// such as Rocky), every capability dropped but `add`.
fn host_access(add: &[&'static str]) -> SecurityContext {
    SecurityContext {
        se_linux_options: Some(SeLinuxOptions {
            level: "s0",
            kind: "spc_t",
        }),
        ..only_capabilities(add)
    }
}

/// Every capability dropped but `add`.
fn only_capabilities(add: &[&'static str]) -> SecurityContext {
    SecurityContext {
        capabilities: Some(Capabilities {
            add: add.to_vec(),
            drop: vec!["ALL"],
        }),
        ..SecurityContext::default()
    }
}

/// An init container that copies a static Cilium helper binary into the
/// host's CNI bin dir and runs it in the host's namespaces (no host shell
/// or mount binary needed), then removes it.
fn host_helper(
    name: &'static str,
    image: &str,
    binary: &str,
    nsenter: &str,
    args: &[(&str, &str)],
) -> Container {
    // Each argument is passed as an environment variable named by its key.
    let arg_refs: String = args.iter().map(|(key, _)| format!(" ${key}")).collect();
    let script = format!(
        "cp /usr/bin/{binary} /hostbin/{binary};\nnsenter {nsenter} \"${{BIN_PATH}}/{binary}\"{arg_refs};\nrm /hostbin/{binary}\n"
    );
    Container::new(name, image)
        .command(&["bash", "-ec", &script])
        .env("BIN_PATH", "/opt/cni/bin")
        .env_vars(args.iter().map(|(key, value)| EnvVar::value(key, *value)))
        .mount("hostproc", "/hostproc")
        .mount("cni-path", "/hostbin")
        .log_termination_message()
        .security(host_access(&["SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"]))
}

fn agent_init_containers(image: &str, api: &[EnvVar]) -> Vec<Container> {
    vec![
        // Builds the agent's config dir from the ConfigMap (and any
        // CiliumNodeConfig overrides) through the API.
        Container::new("config", image)
            .command(&["cilium-dbg", "build-config"])
            .env_vars(pod_identity_env())
            .env_vars(api.to_vec())
            .mount("tmp", "/tmp")
            .log_termination_message()
            .security(only_capabilities(&["NET_ADMIN"])),
        // cgroup v2 at /run/cilium/cgroupv2 on the host (socket programs).
        host_helper(
            "mount-cgroup",
            image,
            "cilium-mount",
            "--cgroup=/hostproc/1/ns/cgroup --mount=/hostproc/1/ns/mnt",
            &[("CGROUP_ROOT", CGROUP_ROOT)],
        ),
        // Keeps systemd-networkd/sysctl.d from undoing Cilium's sysctls.
        host_helper(
            "apply-sysctl-overwrites",
            image,
            "cilium-sysctlfix",
            "--mount=/hostproc/1/ns/mnt",
            &[],
        ),
        // The BPF filesystem, mounted on the host if it is not (mount
        // propagation to the host needs a privileged container).
        Container::new("mount-bpf-fs", image)
            .command(&["/bin/bash", "-c", "--"])
            .args(&["mount | grep \"/sys/fs/bpf type bpf\" || mount -t bpf bpf /sys/fs/bpf"])
            .mount_bidirectional("bpf-maps", "/sys/fs/bpf")
            .log_termination_message()
            .security(SecurityContext::privileged()),
        // Removes stale state when the ConfigMap asks for it.
        Container::new("clean-cilium-state", image)
            .command(&["/init-container.sh"])
            .env_var(EnvVar::config_map_key(
                "CILIUM_ALL_STATE",
                CONFIG,
                "clean-cilium-state",
                true,
            ))
            .env_var(EnvVar::config_map_key(
                "CILIUM_BPF_STATE",
                CONFIG,
                "clean-cilium-bpf-state",
                true,
            ))
            .env_var(EnvVar::config_map_key(
                "WRITE_CNI_CONF_WHEN_READY",
                CONFIG,
                "write-cni-conf-when-ready",
                true,
            ))
            .env_vars(api.to_vec())
            .mount("bpf-maps", "/sys/fs/bpf")
            .mount_from_host("cilium-cgroup", CGROUP_ROOT)
            .mount("cilium-run", "/var/run/cilium")
            .request_cpu("100m")
            .request_memory("100Mi")
            .log_termination_message()
            .security(host_access(&[
                "NET_ADMIN",
                "SYS_MODULE",
                "SYS_ADMIN",
                "SYS_RESOURCE",
            ])),
        // The cilium-cni plugin binary into /opt/cni/bin.
        Container::new("install-cni-binaries", image)
            .command(&["/install-plugin.sh"])
            .mount("cni-path", "/host/opt/cni/bin")
            .request_cpu("100m")
            .request_memory("10Mi")
            .log_termination_message()
            .security(host_access(&[])),
    ]
}

/// An HTTP request to `port` on 127.0.0.1 (host network).
fn local_health(port: impl Into<Port>) -> HttpGet {
    HttpGet::new("/healthz", port).to("127.0.0.1", "HTTP")
}

/// The agent's `/healthz`, brief.
fn agent_health() -> HttpGet {
    local_health("health").header("brief", "true")
}

fn agent_container(image: &str, api: &[EnvVar]) -> Container {
    Container::new("cilium-agent", image)
        .command(&["cilium-agent"])
        .args(&[format!("--config-dir={CONFIG_DIR}")])
        // Up to ~3.5 min to come up (CRDs from the operator, BPF compile).
        .startup(
            Probe::get(agent_health())
                .failures(105)
                .period(2)
                .successes(1)
                .initial_delay(5),
        )
        // An API server outage must not restart every agent.
        .liveness(
            Probe::get(agent_health().header("require-k8s-connectivity", "false"))
                .period(30)
                .successes(1)
                .failures(10)
                .timeout(5),
        )
        .readiness(
            Probe::get(agent_health())
                .period(30)
                .successes(1)
                .failures(3)
                .timeout(5),
        )
        .env_vars(pod_identity_env())
        .env_var(EnvVar::resource("GOMEMLIMIT", "limits.memory", "1"))
        .env_vars(api.to_vec())
        // Removes the CNI config when the agent stops for good.
        .pre_stop(&["/cni-uninstall.sh"])
        .host_port("health", AGENT_HEALTH_PORT)
        .security(host_access(&[
            "CHOWN",
            "KILL",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "SYS_MODULE",
            "SYS_ADMIN",
            "SYS_RESOURCE",
            "DAC_OVERRIDE",
            "FOWNER",
            "SETGID",
            "SETUID",
            "SYSLOG",
        ]))
        .log_termination_message()
        // Unprivileged: sysctls are written through the host's /proc.
        .mount("host-proc-sys-net", "/host/proc/sys/net")
        .mount("host-proc-sys-kernel", "/host/proc/sys/kernel")
        .mount_from_host("bpf-maps", "/sys/fs/bpf")
        .mount("cilium-run", "/var/run/cilium")
        .mount_from_host("cilium-netns", "/var/run/cilium/netns")
        .mount("etc-cni-netd", "/host/etc/cni/net.d")
        .mount_read_only("lib-modules", "/lib/modules")
        .mount("xtables-lock", "/run/xtables.lock")
        .mount("tmp", "/tmp")
}

fn agent_volumes() -> Vec<Volume> {
    vec![
        Volume::empty_dir("tmp"),
        Volume::host_path("cilium-run", "/var/run/cilium", Some("DirectoryOrCreate")),
        Volume::host_path("cilium-netns", "/var/run/netns", Some("DirectoryOrCreate")),
        Volume::host_path("bpf-maps", "/sys/fs/bpf", Some("DirectoryOrCreate")),
        Volume::host_path("hostproc", "/proc", Some("Directory")),
        Volume::host_path("cilium-cgroup", CGROUP_ROOT, Some("DirectoryOrCreate")),
        Volume::host_path("cni-path", "/opt/cni/bin", Some("DirectoryOrCreate")),
        Volume::host_path("etc-cni-netd", "/etc/cni/net.d", Some("DirectoryOrCreate")),
        Volume::host_path("lib-modules", "/lib/modules", None),
        Volume::host_path("xtables-lock", "/run/xtables.lock", Some("FileOrCreate")),
        Volume::host_path("host-proc-sys-net", "/proc/sys/net", Some("Directory")),
        Volume::host_path(
            "host-proc-sys-kernel",
            "/proc/sys/kernel",
            Some("Directory"),
        ),
    ]
}

/// The labels of the pods of `name`: `selector`, the component name and
/// the add-on.
fn pod_labels(name: &str) -> Labels {
    Labels::of(NAME_LABEL, name).with(PART_OF_LABEL, COMPONENT)
}

fn agent_template(kube_minor: u64, image: &str, api: &[EnvVar]) -> PodTemplate {
    let pod = PodSpec {
        // The agent loads BPF programs and the helpers mount: no seccomp
        // filter.
        security_context: Some(SecurityContext {
            seccomp_profile: Some(Profile::unconfined()),
            ..SecurityContext::default()
        }),
        init_containers: agent_init_containers(image, api),
        containers: vec![agent_container(image, api)],
        host_network: true,
        restart_policy: Some("Always"),
        priority_class_name: "system-node-critical",
        service_account_name: AGENT.to_owned(),
        automount_service_account_token: Some(true),
        termination_grace_period_seconds: Some(1),
        node_selector: linux_nodes(),
        // Every node, whatever its taints: NotReady (no CNI yet),
        // uninitialized (no CPI yet), control plane, user taints.
        tolerations: vec![Toleration::everything()],
        volumes: agent_volumes(),
        ..PodSpec::default()
    };
    PodTemplate::new(Labels::of("k8s-app", AGENT), pod)
        .labels(&pod_labels("cilium-agent"))
        .annotation("kubectl.kubernetes.io/default-container", "cilium-agent")
        .apparmor_unconfined(kube_minor, &APPARMOR_UNCONFINED)
}

fn operator_selector() -> Labels {
    Labels::of("io.cilium/app", "operator").with("name", OPERATOR)
}

fn operator_template(image: &str, api: &[EnvVar]) -> PodTemplate {
    let container = Container::new(OPERATOR, image)
        .command(&["cilium-operator-generic"])
        .args(&[
            format!("--config-dir={CONFIG_DIR}"),
            "--debug=$(CILIUM_DEBUG)".to_owned(),
        ])
        .env_vars(pod_identity_env())
        .env_var(EnvVar::config_map_key(
            "CILIUM_DEBUG",
            CONFIG,
            "debug",
            true,
        ))
        .env_vars(api.to_vec())
        .liveness(
            Probe::get(local_health(OPERATOR_HEALTH_PORT))
                .initial_delay(60)
                .period(10)
                .timeout(3),
        )
        .readiness(
            Probe::get(local_health(OPERATOR_HEALTH_PORT))
                .initial_delay(0)
                .period(5)
                .timeout(3)
                .failures(5),
        )
        .mount_read_only("cilium-config-path", CONFIG_DIR)
        .log_termination_message()
        .security(SecurityContext {
            allow_privilege_escalation: Some(false),
            ..only_capabilities(&[])
        });
    let pod = PodSpec {
        containers: vec![container],
        // Host network: the operator hands out the pod CIDRs, so it must
        // run before any pod network exists.
        host_network: true,
        restart_policy: Some("Always"),
        priority_class_name: "system-cluster-critical",
        service_account_name: OPERATOR.to_owned(),
        automount_service_account_token: Some(true),
        affinity: Some(
            Affinity::default().require_spread(&Labels::of("io.cilium/app", "operator")),
        ),
        node_selector: linux_nodes(),
        // Runs on the first control-plane node while it is still NotReady
        // and uninitialized.
        tolerations: vec![Toleration::everything()],
        volumes: vec![Volume::config_map("cilium-config-path", CONFIG)],
        ..PodSpec::default()
    };
    PodTemplate::new(operator_selector(), pod).labels(&pod_labels(OPERATOR))
}
