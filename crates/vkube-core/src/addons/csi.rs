//! The vSphere CSI driver: the `vmware-system-csi` namespace, the
//! `vsphere-config-secret` Secret with `csi-vsphere.conf`, the CSIDriver
//! object, the controller Deployment (driver, syncer and the external
//! attacher, resizer and provisioner) on the control-plane nodes, the node
//! plugin DaemonSet on every Linux node, their ServiceAccounts and RBAC,
//! and the feature-state ConfigMap the driver reads.
//!
//! Only the controller and the syncer mount the Secret. The node plugin
//! never talks to vCenter: for topology it creates a `CSINodeTopology`
//! object that the syncer fills in from the node VM's tags (the
//! `[Labels]` categories), so worker nodes never see the password.
//!
//! Volume snapshots are left out: they need the snapshot CRDs and the
//! snapshot controller, which vkube does not install.

mod config;

pub use config::{csi_config, MAX_CLUSTER_ID_LEN};

use super::k8s::{
    binding, cluster_role, config_map, csi_driver, daemon_set, deployment, linux_nodes, namespace,
    role, rule, secret, service_account, Affinity, Amount, Capabilities, Container, CsiDriverSpec,
    EnvVar, Labels, Meta, PodSpec, PodTemplate, Probe, RoleRef, Rule, SecurityContext, Strategy,
    Stream, Subject, Toleration, Volume, READ,
};
use super::vsphere::{config_files, pinned};
use super::{image, Addon, AddonInput, Error, Manifest};
use crate::topology::CSI_PROVISIONER;

/// Component name (also the controller Deployment's name).
pub const COMPONENT: &str = "vsphere-csi-controller";
/// Name of the node plugin DaemonSet.
pub const NODE_COMPONENT: &str = "vsphere-csi-node";
/// File name on the node.
pub const FILE_NAME: &str = "40-csi.yaml";
/// Namespace of the driver.
pub const NAMESPACE: &str = "vmware-system-csi";
/// Secret holding `csi-vsphere.conf`.
pub const SECRET: &str = "vsphere-config-secret";
/// ConfigMap of internal feature states, named by `--fss-name`.
pub const FEATURE_STATES: &str = "internal-feature-states.csi.vsphere.vmware.com";
/// Where the controller and the syncer find `csi-vsphere.conf`.
const CONFIG_DIR: &str = "/etc/cloud";
const CONFIG_FILE: &str = "csi-vsphere.conf";

/// One vSphere CSI release with the sidecar versions it ships with (the
/// images in its `manifests/vanilla/vsphere-csi-driver.yaml`) and the
/// feature states that manifest sets.
#[derive(Debug)]
struct Release {
    driver: &'static str,
    attacher: &'static str,
    resizer: &'static str,
    provisioner: &'static str,
    liveness_probe: &'static str,
    registrar: &'static str,
    feature_states: &'static [(&'static str, &'static str)],
    /// From v3.6 the driver and the syncer start a profiling server
    /// unless told not to (older releases do not know the flag).
    disable_profile_server: bool,
}

/// v3.3.1: "Supported Kubernetes Releases: Minimum 1.27, Maximum 1.30"
/// (release notes).
const V3_3_1: Release = Release {
    driver: "v3.3.1",
    attacher: "v4.5.1",
    resizer: "v1.10.1",
    provisioner: "v4.0.1",
    liveness_probe: "v2.12.0",
    registrar: "v2.10.1",
    feature_states: &[
        ("pv-to-backingdiskobjectid-mapping", "false"),
        ("trigger-csi-fullsync", "false"),
    ],
    disable_profile_server: false,
};

/// v3.5.1: v3.5.0 "added compatibility for Kubernetes v1.33"; supports
/// 1.31 to 1.33.
const V3_5_1: Release = Release {
    driver: "v3.5.1",
    attacher: "v4.8.1",
    resizer: "v1.12.0",
    provisioner: "v4.0.1",
    liveness_probe: "v2.15.0",
    registrar: "v2.13.0",
    feature_states: V3_3_1.feature_states,
    disable_profile_server: false,
};

/// v3.6.3: v3.6 supports Kubernetes 1.32 to 1.34.
const V3_6_3: Release = Release {
    driver: "v3.6.3",
    attacher: "v4.9.0",
    resizer: "v1.12.0",
    provisioner: "v4.0.1",
    liveness_probe: "v2.15.0",
    registrar: "v2.13.0",
    feature_states: &[
        ("csi-transaction-support", "false"),
        ("pv-to-backingdiskobjectid-mapping", "false"),
        ("trigger-csi-fullsync", "false"),
    ],
    disable_profile_server: true,
};

/// vSphere CSI release per Kubernetes minor: the newest release whose
/// documented range covers both the minor and the one before it, so the
/// driver stays supported while the nodes of an upgrade are still on the
/// old minor (for 1.31 none covers 1.30 too; v3.5 starts at 1.31).
/// Ranges: v3.3.1 release notes (1.27–1.30); v3.5 1.31–1.33, v3.6
/// 1.32–1.34 (vsphere-tmm/helm-charts#106, quoting the release notes).
const RELEASES: &[(u64, &Release)] = &[
    (28, &V3_3_1),
    (29, &V3_3_1),
    (30, &V3_3_1),
    (31, &V3_5_1),
    (32, &V3_5_1),
    (33, &V3_6_3),
];

fn release(input: &AddonInput<'_>) -> Result<&'static Release, Error> {
    pinned(RELEASES, input, COMPONENT).copied()
}

/// The pinned vSphere CSI driver version for the input's Kubernetes minor.
pub fn version(input: &AddonInput<'_>) -> Result<&'static str, Error> {
    release(input).map(|release| release.driver)
}

/// Every image of a release, after the registry rewrite.
struct Images {
    driver: String,
    syncer: String,
    attacher: String,
    resizer: String,
    provisioner: String,
    liveness_probe: String,
    registrar: String,
}

impl Images {
    fn new(release: &Release, registry: Option<&str>) -> Images {
        let vsphere = |name: &str| {
            image(
                registry,
                &format!("registry.k8s.io/csi-vsphere/{name}:{}", release.driver),
            )
        };
        let sidecar = |name: &str, tag: &str| {
            image(
                registry,
                &format!("registry.k8s.io/sig-storage/{name}:{tag}"),
            )
        };
        Images {
            driver: vsphere("driver"),
            syncer: vsphere("syncer"),
            attacher: sidecar("csi-attacher", release.attacher),
            resizer: sidecar("csi-resizer", release.resizer),
            provisioner: sidecar("csi-provisioner", release.provisioner),
            liveness_probe: sidecar("livenessprobe", release.liveness_probe),
            registrar: sidecar("csi-node-driver-registrar", release.registrar),
        }
    }
}

/// The CSI manifest (`40-csi.yaml`).
pub fn render(input: &AddonInput<'_>) -> Result<Manifest, Error> {
    let release = release(input)?;
    config::check(input)?;
    let images = Images::new(release, input.registry);

    let mut stream = Stream::new(&format!(
        "vSphere CSI driver {} for Kubernetes {}.\nRendered by vkube for cluster `{}` (cluster-id `{}`); the Secret holds the cluster's own vCenter user.",
        release.driver, input.kubernetes, input.cluster, input.cluster_id
    ));
    let labels = Labels::component(COMPONENT);
    // The node plugin is privileged: the namespace says so, so that a
    // cluster-wide Pod Security default does not block it.
    stream.push(&namespace(
        Meta::cluster(NAMESPACE, &labels).label("pod-security.kubernetes.io/enforce", "privileged"),
    ));
    stream.push(&csi_driver(
        Meta::cluster(CSI_PROVISIONER, &labels),
        CsiDriverSpec {
            attach_required: true,
            pod_info_on_mount: false,
        },
    ));
    push_account(&mut stream, COMPONENT, controller_rules(), Vec::new());
    push_account(
        &mut stream,
        NODE_COMPONENT,
        vec![
            rule(
                &["cns.vmware.com"],
                &["csinodetopologies"],
                &["create", "watch", "get", "patch"],
            ),
            rule(&[""], &["nodes"], &["get"]),
        ],
        vec![rule(&[""], &["configmaps"], READ)],
    );
    let meta = |name: &str| Meta::namespaced(name, NAMESPACE, &labels);
    let states = release
        .feature_states
        .iter()
        .map(|(name, state)| (*name, *state));
    stream.push(&config_map(meta(FEATURE_STATES), states));
    let conf = config::render(input, &input.credentials.password);
    stream.push(&secret(
        meta(SECRET),
        &config_files(input, CONFIG_FILE, conf),
    ));
    // Rolling updates stop the old pod before starting the new one: it
    // runs on control-plane nodes only, where there may be no room for an
    // extra one.
    stream.push(&deployment(
        meta(COMPONENT),
        1,
        Strategy::rolling(Amount::Pods(1), Some(Amount::Pods(0))),
        PodTemplate::of_component(COMPONENT, controller_pod(input, release, &images)),
    ));
    stream.push(&daemon_set(
        Meta::namespaced(
            NODE_COMPONENT,
            NAMESPACE,
            &Labels::component(NODE_COMPONENT),
        ),
        1,
        PodTemplate::of_component(NODE_COMPONENT, node_pod(&images)),
    ));
    Ok(stream.into_manifest(Addon::Csi, COMPONENT, release.driver, FILE_NAME))
}

/// ServiceAccount `name` with a ClusterRole (and binding) of `cluster`
/// rules and, if any, a Role (and binding) of `namespaced` rules in the
/// driver's namespace.
fn push_account(stream: &mut Stream, name: &str, cluster: Vec<Rule>, namespaced: Vec<Rule>) {
    let labels = Labels::component(name);
    let meta = || Meta::namespaced(name, NAMESPACE, &labels);
    let account = || vec![Subject::service_account(name, NAMESPACE)];
    stream.push(&service_account(meta()));
    stream.push(&cluster_role(Meta::cluster(name, &labels), cluster));
    stream.push(&binding(
        Meta::cluster(name, &labels),
        RoleRef::cluster_role(name),
        account(),
    ));
    if !namespaced.is_empty() {
        stream.push(&role(meta(), namespaced));
        stream.push(&binding(meta(), RoleRef::role(name), account()));
    }
}

/// What the controller, the syncer and the sidecars do cluster-wide (the
/// driver's documented rules, without those of the snapshotter sidecar
/// that vkube does not deploy; the driver itself reads snapshots).
fn controller_rules() -> Vec<Rule> {
    vec![
        rule(&[""], &["nodes", "pods"], &["get", "list", "watch"]),
        rule(&[""], &["configmaps"], &["get", "list", "watch", "create"]),
        rule(
            &[""],
            &["persistentvolumeclaims"],
            &["get", "list", "watch", "update"],
        ),
        rule(&[""], &["persistentvolumeclaims/status"], &["patch"]),
        rule(
            &[""],
            &["persistentvolumes"],
            &[
                "get", "list", "watch", "create", "update", "delete", "patch",
            ],
        ),
        rule(
            &[""],
            &["events"],
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "watch", "list", "delete", "update", "create"],
        ),
        rule(&["storage.k8s.io"], &["storageclasses", "csinodes"], READ),
        rule(
            &["storage.k8s.io"],
            &["volumeattachments"],
            &["get", "list", "watch", "patch"],
        ),
        rule(
            &["storage.k8s.io"],
            &["volumeattachments/status"],
            &["patch"],
        ),
        rule(
            &["cns.vmware.com"],
            &["triggercsifullsyncs"],
            &["create", "get", "update", "watch", "list"],
        ),
        rule(
            &["cns.vmware.com"],
            &["cnsvspherevolumemigrations"],
            &["create", "get", "list", "watch", "update", "delete"],
        ),
        rule(
            &["cns.vmware.com"],
            &["cnsvolumeinfoes"],
            &["create", "get", "list", "watch", "delete"],
        ),
        rule(
            &["cns.vmware.com"],
            &["cnsvolumeoperationrequests"],
            &["create", "get", "list", "update", "delete"],
        ),
        rule(
            &["cns.vmware.com"],
            &["csinodetopologies"],
            &["get", "update", "watch", "list"],
        ),
        // The syncer installs the CRDs above itself.
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["get", "create", "update"],
        ),
        rule(
            &["snapshot.storage.k8s.io"],
            &["volumesnapshots"],
            &["get", "list"],
        ),
        rule(
            &["snapshot.storage.k8s.io"],
            &["volumesnapshotclasses"],
            &["watch", "get", "list"],
        ),
    ]
}

const SOCKET_DIR: &str = "/csi";
const SOCKET: &str = "/csi/csi.sock";
const KUBELET_DIR: &str = "/var/lib/kubelet";
const PLUGIN_DIR: &str = "/var/lib/kubelet/plugins/csi.vsphere.vmware.com";
const REGISTRATION_SOCKET: &str = "/var/lib/kubelet/plugins/csi.vsphere.vmware.com/csi.sock";

/// Arguments every sidecar of the controller shares: the socket, a
/// timeout fitting slow vCenter tasks, and leader election (replicas may
/// be added).
fn sidecar_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--v=4",
        "--timeout=300s",
        "--csi-address=$(ADDRESS)",
        "--kube-api-qps=100",
        "--kube-api-burst=100",
        "--leader-election",
        "--leader-election-lease-duration=120s",
        "--leader-election-renew-deadline=60s",
        "--leader-election-retry-period=30s",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

fn sidecar(name: &'static str, image: &str, extra: &[&str]) -> Container {
    Container::new(name, image.to_owned())
        .args(&sidecar_args(extra))
        .env("ADDRESS", SOCKET)
        .mount("socket-dir", SOCKET_DIR)
}

/// `--fss-name`/`--fss-namespace`, and no profiling server when
/// `disable_profile_server` (the controller's driver and syncer of
/// releases that have one).
fn feature_state_args(disable_profile_server: bool) -> Vec<String> {
    let mut args = vec![
        format!("--fss-name={FEATURE_STATES}"),
        "--fss-namespace=$(CSI_NAMESPACE)".to_owned(),
    ];
    if disable_profile_server {
        args.push("--enable-profile-server=false".to_owned());
    }
    args
}

/// How the controller's driver and syncer reach vCenter (the config file)
/// and the API server (client rate limits), and their log format.
fn vcenter_client_env() -> Vec<EnvVar> {
    vec![
        EnvVar::value("VSPHERE_CSI_CONFIG", format!("{CONFIG_DIR}/{CONFIG_FILE}")),
        EnvVar::value("LOGGER_LEVEL", "PRODUCTION"),
        EnvVar::value("INCLUSTER_CLIENT_QPS", "100"),
        EnvVar::value("INCLUSTER_CLIENT_BURST", "100"),
        EnvVar::field("CSI_NAMESPACE", "metadata.namespace"),
    ]
}

/// The CSI livenessprobe sidecar: serves the driver's `/healthz` on the
/// socket in volume `socket_volume`.
fn liveness_probe(images: &Images, socket_volume: &'static str) -> Container {
    Container::new("liveness-probe", images.liveness_probe.clone())
        .args(&["--v=4", &format!("--csi-address={SOCKET}")])
        .mount(socket_volume, SOCKET_DIR)
}

/// Driver and syncer run as an unprivileged user.
fn non_root() -> SecurityContext {
    SecurityContext {
        run_as_user: Some(65532),
        run_as_group: Some(65532),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// The controller pod. `dnsPolicy: Default` resolves vCenter with the
/// node's resolver, independent of CoreDNS.
fn controller_pod(input: &AddonInput<'_>, release: &Release, images: &Images) -> PodSpec {
    let mut provisioner_extra = vec!["--default-fstype=ext4"];
    if input.categories.is_some() {
        // Zones: provision where the pod is scheduled, only there.
        provisioner_extra.extend(["--feature-gates=Topology=true", "--strict-topology"]);
    }
    let driver = Container::new("vsphere-csi-controller", images.driver.clone())
        .args(&feature_state_args(release.disable_profile_server))
        .env("CSI_ENDPOINT", format!("unix://{SOCKET}"))
        .env("X_CSI_MODE", "controller")
        .env("X_CSI_SPEC_DISABLE_LEN_CHECK", "true")
        .env("X_CSI_SERIAL_VOL_ACCESS_TIMEOUT", "3m")
        .env_vars(vcenter_client_env())
        .port("healthz", 9808)
        .port("ctlr-metrics", 2112)
        .liveness(
            Probe::http("/healthz", "healthz")
                .initial_delay(30)
                .timeout(10)
                .period(180)
                .failures(3),
        )
        .security(non_root())
        .mount_read_only("vsphere-config-volume", CONFIG_DIR)
        .mount("socket-dir", SOCKET_DIR);
    let mut syncer_args = vec![
        "--leader-election".to_owned(),
        "--leader-election-lease-duration=30s".to_owned(),
        "--leader-election-renew-deadline=20s".to_owned(),
        "--leader-election-retry-period=10s".to_owned(),
    ];
    syncer_args.extend(feature_state_args(release.disable_profile_server));
    let syncer = Container::new("vsphere-syncer", images.syncer.clone())
        .args(&syncer_args)
        .env("FULL_SYNC_INTERVAL_MINUTES", "30")
        .env_vars(vcenter_client_env())
        .port("syncer-metrics", 2113)
        .security(non_root())
        .mount_read_only("vsphere-config-volume", CONFIG_DIR);
    PodSpec {
        service_account_name: COMPONENT.to_owned(),
        priority_class_name: "system-cluster-critical",
        dns_policy: Some("Default"),
        affinity: Some(
            Affinity::default()
                .on_control_plane()
                .prefer_spread(&Labels::named(COMPONENT)),
        ),
        tolerations: vec![Toleration::exists(
            "node-role.kubernetes.io/control-plane",
            "NoSchedule",
        )],
        containers: vec![
            sidecar("csi-attacher", &images.attacher, &[]),
            sidecar(
                "csi-resizer",
                &images.resizer,
                &["--handle-volume-inuse-error=false"],
            ),
            driver,
            liveness_probe(images, "socket-dir"),
            syncer,
            sidecar("csi-provisioner", &images.provisioner, &provisioner_extra),
        ],
        volumes: vec![
            Volume::secret("vsphere-config-volume", SECRET),
            Volume::empty_dir("socket-dir"),
        ],
        ..PodSpec::default()
    }
}

/// The node plugin pod: privileged, on the host network, with the
/// kubelet's directories (mounts propagated back), `/dev` and `/sys`.
/// It tolerates every taint: volumes must work on every node.
fn node_pod(images: &Images) -> PodSpec {
    let registrar = Container::new("node-driver-registrar", images.registrar.clone())
        .args(&[
            "--v=5",
            "--csi-address=$(ADDRESS)",
            "--kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)",
        ])
        .env("ADDRESS", SOCKET)
        .env("DRIVER_REG_SOCK_PATH", REGISTRATION_SOCKET)
        .liveness(
            Probe::exec(&[
                "/csi-node-driver-registrar",
                &format!("--kubelet-registration-path={REGISTRATION_SOCKET}"),
                "--mode=kubelet-registration-probe",
            ])
            .initial_delay(3)
            .timeout(1)
            .period(10)
            .failures(3),
        )
        .mount("plugin-dir", SOCKET_DIR)
        .mount("registration-dir", "/registration");
    let driver = Container::new("vsphere-csi-node", images.driver.clone())
        .args(&feature_state_args(false))
        .env_field("NODE_NAME", "spec.nodeName")
        .env("CSI_ENDPOINT", format!("unix://{SOCKET}"))
        // Four paravirtual SCSI controllers of 15 disks, minus the OS
        // disk: Kubernetes schedules no more volumes to a node.
        .env("MAX_VOLUMES_PER_NODE", "59")
        .env("X_CSI_MODE", "node")
        .env("X_CSI_SPEC_REQ_VALIDATION", "false")
        .env("X_CSI_SPEC_DISABLE_LEN_CHECK", "true")
        .env("LOGGER_LEVEL", "PRODUCTION")
        .env_field("CSI_NAMESPACE", "metadata.namespace")
        .env("NODEGETINFO_WATCH_TIMEOUT_MINUTES", "1")
        .port("healthz", 9808)
        .liveness(
            Probe::http("/healthz", "healthz")
                .initial_delay(10)
                .timeout(5)
                .period(5)
                .failures(3),
        )
        .security(SecurityContext {
            privileged: Some(true),
            allow_privilege_escalation: Some(true),
            capabilities: Some(Capabilities {
                add: vec!["SYS_ADMIN"],
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        })
        .mount("plugin-dir", SOCKET_DIR)
        .mount_bidirectional("pods-mount-dir", KUBELET_DIR)
        .mount("device-dir", "/dev")
        .mount("blocks-dir", "/sys/block")
        .mount("sys-devices-dir", "/sys/devices");
    PodSpec {
        service_account_name: NODE_COMPONENT.to_owned(),
        priority_class_name: "system-node-critical",
        host_network: true,
        dns_policy: Some("ClusterFirstWithHostNet"),
        node_selector: linux_nodes(),
        tolerations: vec![Toleration::any("NoExecute"), Toleration::any("NoSchedule")],
        containers: vec![registrar, driver, liveness_probe(images, "plugin-dir")],
        volumes: vec![
            Volume::host_path(
                "registration-dir",
                "/var/lib/kubelet/plugins_registry",
                Some("Directory"),
            ),
            Volume::host_path("plugin-dir", PLUGIN_DIR, Some("DirectoryOrCreate")),
            Volume::host_path("pods-mount-dir", KUBELET_DIR, Some("Directory")),
            Volume::host_path("device-dir", "/dev", None),
            Volume::host_path("blocks-dir", "/sys/block", Some("Directory")),
            Volume::host_path("sys-devices-dir", "/sys/devices", Some("Directory")),
        ],
        ..PodSpec::default()
    }
}

#[cfg(test)]
mod tests {

    use super::config::tests::read_gcfg;
    use super::*;
    use crate::addons::testing::{
        assert_pinned_for_supported_minors_only, assert_valid_for_every_minor, container_images,
        documents, find, password_only_in_the_secret_data, zones_and_plain, Fixture, PASSWORD,
    };
    use crate::addons::vsphere::CA_FILE_NAME;
    use crate::addons::SUPPORTED_MINORS;

    fn args(container: &serde_yaml::Value) -> Vec<String> {
        container["args"]
            .as_sequence()
            .map(|args| {
                args.iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn container<'d>(pod: &'d serde_yaml::Value, name: &str) -> &'d serde_yaml::Value {
        pod["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    #[test]
    fn every_supported_minor_has_a_release_and_others_are_refused() {
        for minor in SUPPORTED_MINORS {
            let manifest = render(&Fixture::two_zones(minor).input()).unwrap();
            assert!(manifest.version.starts_with("v3."), "{minor}");
            assert_eq!(manifest.images.len(), 7);
        }
        assert_pinned_for_supported_minors_only(render);
    }

    #[test]
    fn manifests_validate_strictly_for_every_minor() {
        assert_valid_for_every_minor("csi", zones_and_plain, |input| render(input).unwrap());
    }

    #[test]
    fn secret_holds_the_config_and_nothing_else_the_password() {
        for fixture in [Fixture::two_zones(31), Fixture::plain(33)] {
            let manifest = render(&fixture.input()).unwrap();
            let data = password_only_in_the_secret_data(&manifest);
            let secret = find(&documents(&manifest), "Secret", SECRET).clone();
            assert_eq!(secret["metadata"]["namespace"], NAMESPACE);
            let values = read_gcfg(&data[CONFIG_FILE]);
            let section = format!("VirtualCenter.{}", fixture.vcenter.server);
            assert_eq!(values[&format!("{section}.password")], PASSWORD);
            assert_eq!(values["Global.cluster-id"], fixture.cluster_id);
            assert_eq!(
                data.contains_key(CA_FILE_NAME),
                fixture.vcenter.ca_pem.is_some()
            );
        }
    }

    #[test]
    fn only_the_controller_mounts_the_secret() {
        let docs = documents(&render(&Fixture::two_zones(30).input()).unwrap());
        let controller = &find(&docs, "Deployment", COMPONENT)["spec"]["template"]["spec"];
        let node = &find(&docs, "DaemonSet", NODE_COMPONENT)["spec"]["template"]["spec"];
        let secrets = |pod: &serde_yaml::Value| {
            pod["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|v| v.get("secret").is_some())
                .count()
        };
        assert_eq!(secrets(controller), 1);
        assert_eq!(secrets(node), 0);
        for name in ["vsphere-csi-controller", "vsphere-syncer"] {
            let mounts = &container(controller, name)["volumeMounts"][0];
            assert_eq!(mounts["mountPath"], CONFIG_DIR);
            assert_eq!(mounts["readOnly"], true);
        }
    }

    #[test]
    fn topology_switches_the_provisioner_to_strict_topology() {
        let zoned = documents(&render(&Fixture::two_zones(32).input()).unwrap());
        let plain = documents(&render(&Fixture::plain(32).input()).unwrap());
        let provisioner = |docs: &[serde_yaml::Value]| {
            args(container(
                &find(docs, "Deployment", COMPONENT)["spec"]["template"]["spec"],
                "csi-provisioner",
            ))
        };
        let zoned = provisioner(&zoned);
        assert!(zoned.contains(&"--feature-gates=Topology=true".to_owned()));
        assert!(zoned.contains(&"--strict-topology".to_owned()));
        assert!(!provisioner(&plain).iter().any(|a| a.contains("Topology")));
    }

    #[test]
    fn node_plugin_is_privileged_with_kubelet_dirs() {
        let docs = documents(&render(&Fixture::plain(29).input()).unwrap());
        let pod = &find(&docs, "DaemonSet", NODE_COMPONENT)["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        let driver = container(pod, "vsphere-csi-node");
        assert_eq!(driver["securityContext"]["privileged"], true);
        let mounts: Vec<(&str, Option<&str>)> = driver["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["mountPath"].as_str().unwrap(),
                    m.get("mountPropagation").and_then(|p| p.as_str()),
                )
            })
            .collect();
        for expected in [
            ("/var/lib/kubelet", Some("Bidirectional")),
            ("/dev", None),
            ("/sys/block", None),
            ("/sys/devices", None),
        ] {
            assert!(mounts.contains(&expected), "{expected:?} in {mounts:?}");
        }
        let registrar = container(pod, "node-driver-registrar");
        assert!(
            args(registrar).contains(&"--kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)".into())
        );
        let namespace = find(&docs, "Namespace", NAMESPACE);
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "privileged"
        );
        let driver_object = find(&docs, "CSIDriver", "csi.vsphere.vmware.com");
        assert_eq!(driver_object["spec"]["attachRequired"], true);
        assert_eq!(driver_object["spec"]["podInfoOnMount"], false);
    }

    #[test]
    fn feature_states_and_flags_follow_the_release() {
        let old = documents(&render(&Fixture::two_zones(28).input()).unwrap());
        let new = documents(&render(&Fixture::two_zones(33).input()).unwrap());
        let states = |docs: &[serde_yaml::Value]| {
            find(docs, "ConfigMap", FEATURE_STATES)["data"]
                .as_mapping()
                .unwrap()
                .len()
        };
        assert_eq!(states(&old), 2);
        assert_eq!(states(&new), 3);
        let driver_args = |docs: &[serde_yaml::Value]| {
            args(container(
                &find(docs, "Deployment", COMPONENT)["spec"]["template"]["spec"],
                "vsphere-csi-controller",
            ))
        };
        let profile = "--enable-profile-server=false".to_owned();
        assert!(!driver_args(&old).contains(&profile));
        assert!(driver_args(&new).contains(&profile));
        assert!(driver_args(&new).contains(&format!("--fss-name={FEATURE_STATES}")));
    }

    #[test]
    fn registry_rewrite_covers_every_image() {
        for minor in SUPPORTED_MINORS {
            let fixture = Fixture::plain(minor);
            let manifest = render(&fixture.input()).unwrap();
            let docs = documents(&manifest);
            assert_eq!(container_images(&docs), manifest.images);
            for image in &manifest.images {
                assert!(image.starts_with("harbor.local/mirror/"), "{image}");
                assert!(!image.contains("registry.k8s.io"), "{image}");
            }
        }
    }
}
