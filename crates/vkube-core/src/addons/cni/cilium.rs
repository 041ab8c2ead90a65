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

use serde_json::{json, Value};

use super::k8s::{self, rule, tolerate_all};
use super::{api_host_port, invalid, ipv4_pod_cidr, manifest, pinned, Pin, NAMESPACE};
use crate::addons::{image, AddonInput, Error, Manifest};
use crate::ipam::Cidr;

const COMPONENT: &str = "cilium";
const CONFIG: &str = "cilium-config";
const AGENT: &str = "cilium";
const OPERATOR: &str = "cilium-operator";
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
    let images = Images {
        agent: image(
            input.registry,
            &format!("quay.io/cilium/cilium:{}", pin.version),
        ),
        operator: image(
            input.registry,
            &format!("quay.io/cilium/operator-generic:{}", pin.version),
        ),
    };
    let labels = k8s::addon_labels(COMPONENT);
    let (host, port) = api_host_port(input);
    let api = ApiServer { host, port };
    let objects = vec![
        k8s::service_account(AGENT, NAMESPACE, &labels),
        k8s::service_account(OPERATOR, NAMESPACE, &labels),
        k8s::config_map(CONFIG, NAMESPACE, &labels, config(pod_cidr, mask, &api)),
        k8s::cluster_role(AGENT, &labels, agent_rules()),
        k8s::cluster_role(OPERATOR, &labels, operator_rules()),
        k8s::cluster_role_binding(
            AGENT,
            &labels,
            AGENT,
            vec![k8s::service_account_subject(AGENT, NAMESPACE)],
        ),
        k8s::cluster_role_binding(
            OPERATOR,
            &labels,
            OPERATOR,
            vec![k8s::service_account_subject(OPERATOR, NAMESPACE)],
        ),
        // `cilium-dbg build-config` reads the ConfigMap through the API.
        k8s::role(
            "cilium-config-agent",
            NAMESPACE,
            &labels,
            vec![rule(&[""], &["configmaps"], &["get", "list", "watch"])],
        ),
        k8s::role_binding(
            "cilium-config-agent",
            NAMESPACE,
            &labels,
            "cilium-config-agent",
            vec![k8s::service_account_subject(AGENT, NAMESPACE)],
        ),
        agent_daemon_set(input.kubernetes.minor(), &images.agent, &api, &labels),
        operator_deployment(&images.operator, &api, &labels),
        k8s::pod_disruption_budget(OPERATOR, NAMESPACE, &labels, &operator_selector(), 1),
    ];
    Ok(manifest(COMPONENT, pin.version, &objects))
}

struct Images {
    agent: String,
    operator: String,
}

/// The API endpoint as `KUBERNETES_SERVICE_HOST`/`_PORT`.
struct ApiServer {
    host: String,
    port: String,
}

impl ApiServer {
    fn env(&self) -> [Value; 2] {
        [
            k8s::env("KUBERNETES_SERVICE_HOST", self.host.clone()),
            k8s::env("KUBERNETES_SERVICE_PORT", self.port.clone()),
        ]
    }
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
        prefix => Err(invalid(
            COMPONENT,
            format!(
                "pod CIDR {pod_cidr} is too small: with /{prefix} Cilium's per-node ranges (/25, 126 pods) fit fewer than 2 nodes; use /24 or larger"
            ),
        )),
    }
}

/// `cilium-config`: what the agent and the operator read. Only keys known
/// to every pinned line are set; the rest stay at the agent's defaults.
fn config(pod_cidr: Cidr, mask: u8, api: &ApiServer) -> Vec<(&'static str, String)> {
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
        ("k8s-service-host", api.host.clone()),
        ("k8s-service-port", api.port.clone()),
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
fn agent_rules() -> Vec<Value> {
    let cilium = &["cilium.io"];
    vec![
        rule(
            &["networking.k8s.io"],
            &["networkpolicies"],
            &["get", "list", "watch"],
        ),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["get", "list", "watch"],
        ),
        rule(
            &[""],
            &["namespaces", "services", "pods", "endpoints", "nodes"],
            &["get", "list", "watch"],
        ),
        // The agent waits for the CRDs the operator registers.
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["get", "list", "watch"],
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
fn operator_rules() -> Vec<Value> {
    let cilium = &["cilium.io"];
    let crd_names: Vec<String> = CRDS.iter().map(|p| format!("{p}.cilium.io")).collect();
    let crd_names: Vec<&str> = crd_names.iter().map(String::as_str).collect();
    vec![
        // Restarts unmanaged kube-dns/CoreDNS pods so Cilium manages them.
        rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
        k8s::named_rule(&[""], &["configmaps"], &[CONFIG], &["patch"]),
        rule(&[""], &["nodes"], &["list", "watch"]),
        // Remove the agent-not-ready taint; NetworkUnavailable=false.
        rule(&[""], &["nodes", "nodes/status"], &["patch"]),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["get", "list", "watch"],
        ),
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
        k8s::named_rule(
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
            &["get", "list", "watch"],
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
fn pod_identity_env() -> [Value; 2] {
    [
        k8s::env_from_field("K8S_NODE_NAME", "spec.nodeName"),
        k8s::env_from_field("CILIUM_K8S_NAMESPACE", "metadata.namespace"),
    ]
}

fn env_list(groups: &[&[Value]]) -> Value {
    Value::Array(groups.iter().flat_map(|g| g.iter().cloned()).collect())
}

/// SELinux type for containers that touch the host (`spc_t`, "super
/// privileged container"), as Cilium documents for SELinux-enforcing
/// nodes such as Rocky.
fn spc_t() -> Value {
    json!({ "level": "s0", "type": "spc_t" })
}

/// An init container that copies a static Cilium helper binary into the
/// host's CNI bin dir and runs it in the host's namespaces (no host shell
/// or mount binary needed), then removes it.
fn host_helper(
    name: &str,
    image: &str,
    binary: &str,
    nsenter: &str,
    args: &[(&str, &str)],
) -> Value {
    // Each argument is passed as an environment variable named by its key.
    let arg_refs: String = args.iter().map(|(key, _)| format!(" ${key}")).collect();
    let script = format!(
        "cp /usr/bin/{binary} /hostbin/{binary};\nnsenter {nsenter} \"${{BIN_PATH}}/{binary}\"{arg_refs};\nrm /hostbin/{binary}\n"
    );
    let mut env = vec![k8s::env("BIN_PATH", "/opt/cni/bin")];
    env.extend(args.iter().map(|(key, value)| k8s::env(key, *value)));
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["bash", "-ec", script],
        "env": env,
        "volumeMounts": [k8s::mount("hostproc", "/hostproc"), k8s::mount("cni-path", "/hostbin")],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "seLinuxOptions": spc_t(),
            "capabilities": { "add": ["SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"], "drop": ["ALL"] },
        },
    })
}

fn agent_init_containers(image: &str, api: &ApiServer) -> Vec<Value> {
    vec![
        // Builds the agent's config dir from the ConfigMap (and any
        // CiliumNodeConfig overrides) through the API.
        json!({
            "name": "config",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["cilium-dbg", "build-config"],
            "env": env_list(&[&pod_identity_env(), &api.env()]),
            "volumeMounts": [k8s::mount("tmp", "/tmp")],
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": { "capabilities": { "add": ["NET_ADMIN"], "drop": ["ALL"] } },
        }),
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
        json!({
            "name": "mount-bpf-fs",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", "-c", "--"],
            "args": ["mount | grep \"/sys/fs/bpf type bpf\" || mount -t bpf bpf /sys/fs/bpf"],
            "volumeMounts": [k8s::mount_propagated("bpf-maps", "/sys/fs/bpf", "Bidirectional")],
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": { "privileged": true },
        }),
        // Removes stale state when the ConfigMap asks for it.
        json!({
            "name": "clean-cilium-state",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/init-container.sh"],
            "env": env_list(&[
                &[
                    k8s::env_from_config_map("CILIUM_ALL_STATE", CONFIG, "clean-cilium-state", true),
                    k8s::env_from_config_map("CILIUM_BPF_STATE", CONFIG, "clean-cilium-bpf-state", true),
                    k8s::env_from_config_map(
                        "WRITE_CNI_CONF_WHEN_READY",
                        CONFIG,
                        "write-cni-conf-when-ready",
                        true,
                    ),
                ],
                &api.env(),
            ]),
            "volumeMounts": [
                k8s::mount("bpf-maps", "/sys/fs/bpf"),
                k8s::mount_propagated("cilium-cgroup", CGROUP_ROOT, "HostToContainer"),
                k8s::mount("cilium-run", "/var/run/cilium"),
            ],
            "resources": { "requests": { "cpu": "100m", "memory": "100Mi" } },
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {
                "seLinuxOptions": spc_t(),
                "capabilities": {
                    "add": ["NET_ADMIN", "SYS_MODULE", "SYS_ADMIN", "SYS_RESOURCE"],
                    "drop": ["ALL"],
                },
            },
        }),
        // The cilium-cni plugin binary into /opt/cni/bin.
        json!({
            "name": "install-cni-binaries",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/install-plugin.sh"],
            "volumeMounts": [k8s::mount("cni-path", "/host/opt/cni/bin")],
            "resources": { "requests": { "cpu": "100m", "memory": "10Mi" } },
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": { "seLinuxOptions": spc_t(), "capabilities": { "drop": ["ALL"] } },
        }),
    ]
}

/// An HTTP probe of the agent's `/healthz` on 127.0.0.1 (host network).
fn agent_probe(extra_headers: &[(&str, &str)]) -> Value {
    let mut headers = vec![json!({ "name": "brief", "value": "true" })];
    headers.extend(
        extra_headers
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value })),
    );
    json!({
        "httpGet": {
            "host": "127.0.0.1",
            "path": "/healthz",
            "port": "health",
            "scheme": "HTTP",
            "httpHeaders": headers,
        },
    })
}

fn agent_container(image: &str, api: &ApiServer) -> Value {
    json!({
        "name": "cilium-agent",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["cilium-agent"],
        "args": [format!("--config-dir={CONFIG_DIR}")],
        // Up to ~3.5 min to come up (CRDs from the operator, BPF compile).
        "startupProbe": k8s::merge(agent_probe(&[]), json!({
            "failureThreshold": 105,
            "periodSeconds": 2,
            "successThreshold": 1,
            "initialDelaySeconds": 5,
        })),
        // An API server outage must not restart every agent.
        "livenessProbe": k8s::merge(agent_probe(&[("require-k8s-connectivity", "false")]), json!({
            "periodSeconds": 30,
            "successThreshold": 1,
            "failureThreshold": 10,
            "timeoutSeconds": 5,
        })),
        "readinessProbe": k8s::merge(agent_probe(&[]), json!({
            "periodSeconds": 30,
            "successThreshold": 1,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        })),
        "env": env_list(&[
            &pod_identity_env(),
            &[json!({
                "name": "GOMEMLIMIT",
                "valueFrom": { "resourceFieldRef": { "resource": "limits.memory", "divisor": "1" } },
            })],
            &api.env(),
        ]),
        // Removes the CNI config when the agent stops for good.
        "lifecycle": { "preStop": { "exec": { "command": ["/cni-uninstall.sh"] } } },
        "ports": [{
            "name": "health",
            "containerPort": AGENT_HEALTH_PORT,
            "hostPort": AGENT_HEALTH_PORT,
            "protocol": "TCP",
        }],
        "securityContext": {
            "seLinuxOptions": spc_t(),
            "capabilities": {
                "add": [
                    "CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_MODULE",
                    "SYS_ADMIN", "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID",
                    "SETUID", "SYSLOG",
                ],
                "drop": ["ALL"],
            },
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            // Unprivileged: sysctls are written through the host's /proc.
            k8s::mount("host-proc-sys-net", "/host/proc/sys/net"),
            k8s::mount("host-proc-sys-kernel", "/host/proc/sys/kernel"),
            k8s::mount_propagated("bpf-maps", "/sys/fs/bpf", "HostToContainer"),
            k8s::mount("cilium-run", "/var/run/cilium"),
            k8s::mount_propagated("cilium-netns", "/var/run/cilium/netns", "HostToContainer"),
            k8s::mount("etc-cni-netd", "/host/etc/cni/net.d"),
            k8s::mount_read_only("lib-modules", "/lib/modules"),
            k8s::mount("xtables-lock", "/run/xtables.lock"),
            k8s::mount("tmp", "/tmp"),
        ],
    })
}

fn agent_volumes() -> Value {
    json!([
        { "name": "tmp", "emptyDir": {} },
        k8s::host_path_volume("cilium-run", "/var/run/cilium", Some("DirectoryOrCreate")),
        k8s::host_path_volume("cilium-netns", "/var/run/netns", Some("DirectoryOrCreate")),
        k8s::host_path_volume("bpf-maps", "/sys/fs/bpf", Some("DirectoryOrCreate")),
        k8s::host_path_volume("hostproc", "/proc", Some("Directory")),
        k8s::host_path_volume("cilium-cgroup", CGROUP_ROOT, Some("DirectoryOrCreate")),
        k8s::host_path_volume("cni-path", "/opt/cni/bin", Some("DirectoryOrCreate")),
        k8s::host_path_volume("etc-cni-netd", "/etc/cni/net.d", Some("DirectoryOrCreate")),
        k8s::host_path_volume("lib-modules", "/lib/modules", None),
        k8s::host_path_volume("xtables-lock", "/run/xtables.lock", Some("FileOrCreate")),
        k8s::host_path_volume("host-proc-sys-net", "/proc/sys/net", Some("Directory")),
        k8s::host_path_volume("host-proc-sys-kernel", "/proc/sys/kernel", Some("Directory")),
    ])
}

fn agent_daemon_set(kube_minor: u64, image: &str, api: &ApiServer, labels: &Value) -> Value {
    let selector = json!({ "k8s-app": "cilium" });
    let pod_labels = k8s::with_labels(
        &selector,
        &json!({ "app.kubernetes.io/name": "cilium-agent", "app.kubernetes.io/part-of": COMPONENT }),
    );
    let (mut annotations, apparmor) = k8s::apparmor_unconfined(kube_minor, &APPARMOR_UNCONFINED);
    annotations.insert(
        "kubectl.kubernetes.io/default-container".into(),
        json!("cilium-agent"),
    );
    let mut pod_security = apparmor;
    // The agent loads BPF programs and the helpers mount: no seccomp filter.
    pod_security.insert("seccompProfile".into(), json!({ "type": "Unconfined" }));
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": k8s::metadata(AGENT, Some(NAMESPACE), &k8s::with_labels(labels, &selector)),
        "spec": {
            "selector": { "matchLabels": selector },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 2 } },
            "template": {
                "metadata": { "labels": pod_labels, "annotations": annotations },
                "spec": {
                    "securityContext": pod_security,
                    "initContainers": agent_init_containers(image, api),
                    "containers": [agent_container(image, api)],
                    "hostNetwork": true,
                    "restartPolicy": "Always",
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": AGENT,
                    "automountServiceAccountToken": true,
                    "terminationGracePeriodSeconds": 1,
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    // Every node, whatever its taints: NotReady (no CNI yet),
                    // uninitialized (no CPI yet), control plane, user taints.
                    "tolerations": tolerate_all(),
                    "volumes": agent_volumes(),
                },
            },
        },
    })
}

fn operator_selector() -> Value {
    json!({ "io.cilium/app": "operator", "name": OPERATOR })
}

fn operator_probe(extra: Value) -> Value {
    k8s::merge(
        json!({
            "httpGet": {
                "host": "127.0.0.1",
                "path": "/healthz",
                "port": OPERATOR_HEALTH_PORT,
                "scheme": "HTTP",
            },
        }),
        extra,
    )
}

fn operator_deployment(image: &str, api: &ApiServer, labels: &Value) -> Value {
    let selector = operator_selector();
    let pod_labels = k8s::with_labels(
        &selector,
        &json!({ "app.kubernetes.io/name": OPERATOR, "app.kubernetes.io/part-of": COMPONENT }),
    );
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": k8s::metadata(OPERATOR, Some(NAMESPACE), &k8s::with_labels(labels, &selector)),
        "spec": {
            // Two, on different nodes (host network: one per node anyway);
            // the second waits for a second node. Losing one of two may
            // not stop a rollout.
            "replicas": 2,
            "selector": { "matchLabels": selector },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "50%" },
            },
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": {
                    "containers": [{
                        "name": OPERATOR,
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["cilium-operator-generic"],
                        "args": [format!("--config-dir={CONFIG_DIR}"), "--debug=$(CILIUM_DEBUG)"],
                        "env": env_list(&[
                            &pod_identity_env(),
                            &[k8s::env_from_config_map("CILIUM_DEBUG", CONFIG, "debug", true)],
                            &api.env(),
                        ]),
                        "livenessProbe": operator_probe(json!({
                            "initialDelaySeconds": 60,
                            "periodSeconds": 10,
                            "timeoutSeconds": 3,
                        })),
                        "readinessProbe": operator_probe(json!({
                            "initialDelaySeconds": 0,
                            "periodSeconds": 5,
                            "timeoutSeconds": 3,
                            "failureThreshold": 5,
                        })),
                        "volumeMounts": [k8s::mount_read_only("cilium-config-path", CONFIG_DIR)],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": { "drop": ["ALL"] },
                        },
                    }],
                    // Host network: the operator hands out the pod CIDRs, so
                    // it must run before any pod network exists.
                    "hostNetwork": true,
                    "restartPolicy": "Always",
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": OPERATOR,
                    "automountServiceAccountToken": true,
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [{
                                "labelSelector": { "matchLabels": { "io.cilium/app": "operator" } },
                                "topologyKey": "kubernetes.io/hostname",
                            }],
                        },
                    },
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    // Runs on the first control-plane node while it is still
                    // NotReady and uninitialized.
                    "tolerations": tolerate_all(),
                    "volumes": [{ "name": "cilium-config-path", "configMap": { "name": CONFIG } }],
                },
            },
        },
    })
}
