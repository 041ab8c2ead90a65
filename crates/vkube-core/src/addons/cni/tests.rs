use std::collections::BTreeSet;

use serde_yaml::Value as Yaml;

use super::*;
use crate::addons::k8s::{config_map, Labels, Meta, Stream};
use crate::addons::testing::{
    assert_valid_for_every_minor, container_images, documents, find, have_kubernetes_validate,
    kubernetes_validate, tolerates, Fixture, ScratchDir, PASSWORD,
};
use crate::addons::SUPPORTED_MINORS;
use crate::yaml::pyyaml_stream_as_json;

const MIRROR: &str = "harbor.example.internal/k8s";

/// The shared fixture with `cni` for Kubernetes 1.`minor`, its images
/// from `registry`.
fn fixture(cni: Cni, minor: u64, registry: Option<&str>) -> Fixture {
    let mut fixture = Fixture::two_zones(minor);
    fixture.cni = cni;
    fixture.registry = registry.map(str::to_owned);
    fixture
}

fn render_for(cni: Cni, minor: u64, registry: Option<&str>) -> Manifest {
    render(&fixture(cni, minor, registry).input())
        .unwrap()
        .expect("a CNI manifest")
}

fn str_of(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn env_value<'a>(container: &'a Yaml, name: &str) -> Option<&'a str> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

fn container<'a>(workload: &'a Yaml, list: &str, name: &str) -> &'a Yaml {
    workload["spec"]["template"]["spec"][list]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {list} {name}"))
}

fn tolerations(workload: &Yaml) -> &Yaml {
    &workload["spec"]["template"]["spec"]["tolerations"]
}

const CNIS: [Cni; 2] = [Cni::Cilium, Cni::Calico];

#[test]
fn validates_strictly_for_every_supported_minor() {
    let variants = |minor| {
        CNIS.map(|cni| (cni.as_str(), fixture(cni, minor, Some(MIRROR))))
            .into()
    };
    assert_valid_for_every_minor("cni", variants, |input| render(input).unwrap().unwrap());
}

#[test]
fn kubernetes_validate_refuses_an_unknown_field() {
    // The validation above can fail: the same manifest with one field no
    // Pod has is refused.
    if !have_kubernetes_validate() {
        return;
    }
    let manifest = render_for(Cni::Cilium, 30, None);
    let mut docs = documents(&manifest);
    let agent = docs
        .iter_mut()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("the agent DaemonSet");
    agent["spec"]["template"]["spec"]["hostNetworking"] = Yaml::Bool(true);
    let broken: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    let dir = ScratchDir::new("cni-broken");
    let validation = kubernetes_validate(&dir.write("broken.yaml", &broken), 30);
    assert!(
        !validation.accepted,
        "accepted an unknown field:\n{}",
        validation.report
    );
    assert!(
        validation.report.contains("hostNetworking"),
        "{}",
        validation.report
    );
}

/// The CNIs' streams go through the YAML 1.1-safe emitter: values Go's and
/// Python's YAML 1.1 readers take for booleans or octal numbers stay
/// strings, as `kubernetes-validate` (PyYAML) and a YAML 1.1 re-read show.
#[test]
fn yaml_1_1_words_stay_strings() {
    const WORDS: [&str; 6] = ["on", "no", "y", "0755", "1:20", "0x1F"];
    let mut stream = Stream::new("");
    let data = WORDS.iter().map(|word| (format!("key-{word}"), *word));
    stream.push(&config_map(
        Meta::namespaced("words", NAMESPACE, &Labels::part_of("test")),
        data,
    ));
    let manifest = manifest("test", "v1.0.0", stream);
    if let Some(docs) = pyyaml_stream_as_json(&manifest.yaml) {
        for word in WORDS {
            assert_eq!(
                docs[0]["data"][format!("key-{word}")],
                word,
                "{}",
                manifest.yaml
            );
        }
    }
    if have_kubernetes_validate() {
        let dir = ScratchDir::new("cni-words");
        let validation = kubernetes_validate(&dir.write(&manifest.file_name, &manifest.yaml), 30);
        assert!(validation.accepted, "{}", validation.report);
    }
}

/// Every rendered CNI manifest reads the same with a YAML 1.1 reader as
/// with a YAML 1.2 one.
#[test]
fn yaml_1_1_and_1_2_readers_agree() {
    for cni in CNIS {
        for minor in SUPPORTED_MINORS {
            let manifest = render_for(cni, minor, Some(MIRROR));
            let Some(yaml_1_1) = pyyaml_stream_as_json(&manifest.yaml) else {
                return;
            };
            let yaml_1_2: Vec<serde_json::Value> = documents(&manifest)
                .iter()
                .map(|doc| serde_json::to_value(doc).unwrap())
                .collect();
            assert_eq!(yaml_1_1, yaml_1_2, "{cni} 1.{minor}");
        }
    }
}

#[test]
fn manifest_identity() {
    for cni in CNIS {
        for minor in SUPPORTED_MINORS {
            let manifest = render_for(cni, minor, None);
            let pins = match cni {
                Cni::Cilium => CILIUM_PINS,
                _ => CALICO_PINS,
            };
            let pin = pins.iter().find(|p| p.minors.contains(&minor)).unwrap();
            assert_eq!(manifest.addon, Addon::Cni);
            assert_eq!(manifest.component, cni.as_str());
            assert_eq!(manifest.version, pin.version);
            assert_eq!(manifest.file_name, format!("20-cni-{cni}.yaml"));
            assert!(!manifest.has_secrets);
            assert!(!manifest.yaml.contains(PASSWORD));
        }
    }
}

#[test]
fn pin_tables_cover_every_supported_minor_once() {
    for (name, pins) in [("cilium", CILIUM_PINS), ("calico", CALICO_PINS)] {
        for minor in SUPPORTED_MINORS {
            let matching = pins.iter().filter(|p| p.minors.contains(&minor)).count();
            assert_eq!(
                matching, 1,
                "{name}: Kubernetes 1.{minor} pinned {matching} times"
            );
        }
        for pin in pins {
            assert!(
                pin.minors.start() >= SUPPORTED_MINORS.start()
                    && pin.minors.end() <= SUPPORTED_MINORS.end(),
                "{name} {}: pinned outside the supported minors",
                pin.version
            );
            let numbers: Vec<&str> = pin.version.trim_start_matches('v').split('.').collect();
            assert!(
                pin.version.starts_with('v')
                    && numbers.len() == 3
                    && numbers.iter().all(|n| n.parse::<u64>().is_ok()),
                "{name}: `{}` is not vX.Y.Z",
                pin.version
            );
            assert!(!pin.source.is_empty());
        }
    }
}

#[test]
fn unsupported_minors_are_refused() {
    for cni in CNIS {
        for text in ["v1.27.9", "v1.34.0"] {
            let mut fixture = fixture(cni, 30, None);
            fixture.kubernetes = crate::cluster::values::unchecked::parse(text);
            let error = render(&fixture.input()).unwrap_err();
            assert_eq!(
                error,
                Error::UnsupportedVersion {
                    component: cni.as_str().into(),
                    version: text.into(),
                }
            );
            assert!(error.to_string().contains("v1.28–v1.33"), "{error}");
        }
    }
}

#[test]
fn no_cni_renders_nothing() {
    // Not even for a Kubernetes version no CNI is pinned for.
    for text in ["v1.30.2", "v1.40.0"] {
        let mut fixture = fixture(Cni::None, 30, None);
        fixture.kubernetes = crate::cluster::values::unchecked::parse(text);
        assert_eq!(render(&fixture.input()), Ok(None));
    }
}

#[test]
fn every_image_goes_through_the_mirror_and_is_listed() {
    for cni in CNIS {
        for minor in SUPPORTED_MINORS {
            let upstream = render_for(cni, minor, None);
            let mirrored = render_for(cni, minor, Some(MIRROR));
            for manifest in [&upstream, &mirrored] {
                // Sorted, each once.
                assert_eq!(
                    manifest.images,
                    container_images(&documents(manifest)),
                    "{cni} 1.{minor}"
                );
            }
            for image in &upstream.images {
                assert!(
                    image.starts_with("quay.io/") || image.starts_with("docker.io/"),
                    "{image}"
                );
                assert!(
                    image.ends_with(&format!(":{}", upstream.version)),
                    "{image}"
                );
            }
            for image in &mirrored.images {
                assert!(image.starts_with(&format!("{MIRROR}/")), "{image}");
            }
            for registry in [
                "quay.io",
                "docker.io",
                "registry.k8s.io",
                "ghcr.io",
                "gcr.io",
            ] {
                assert!(
                    !mirrored.yaml.contains(registry),
                    "{cni} 1.{minor}: `{registry}` left with a mirror set"
                );
            }
            let expected = match cni {
                Cni::Cilium => 2,
                _ => 3,
            };
            assert_eq!(mirrored.images.len(), expected, "{:?}", mirrored.images);
        }
    }
}

/// Kinds that have no namespace.
const CLUSTER_SCOPED: [&str; 5] = [
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "PriorityClass",
];

#[test]
fn stream_holds_separate_named_documents() {
    for cni in CNIS {
        for minor in SUPPORTED_MINORS {
            let manifest = render_for(cni, minor, None);
            assert!(manifest.yaml.starts_with("---\n"));
            let docs = documents(&manifest);
            assert_eq!(docs.len(), manifest.yaml.matches("\n---\n").count() + 1);
            let mut seen = BTreeSet::new();
            for doc in &docs {
                let kind = str_of(&doc["kind"]);
                let name = str_of(&doc["metadata"]["name"]);
                assert!(!str_of(&doc["apiVersion"]).is_empty());
                let namespace = doc["metadata"]["namespace"].as_str();
                if CLUSTER_SCOPED.contains(&kind) {
                    assert_eq!(namespace, None, "{kind}/{name} is cluster-scoped");
                } else {
                    assert_eq!(
                        namespace,
                        Some("kube-system"),
                        "{kind}/{name} needs a namespace"
                    );
                }
                assert_eq!(
                    doc["metadata"]["labels"]["app.kubernetes.io/managed-by"], "vkube",
                    "{kind}/{name}"
                );
                assert!(
                    seen.insert((kind.to_owned(), name.to_owned())),
                    "{kind}/{name} twice"
                );
            }
        }
    }
}

#[test]
fn workloads_run_on_nodes_that_are_not_ready_yet() {
    let taints = [
        ("node.kubernetes.io/not-ready", "NoSchedule"),
        (
            "node.cloudprovider.kubernetes.io/uninitialized",
            "NoSchedule",
        ),
        ("node-role.kubernetes.io/control-plane", "NoSchedule"),
    ];
    for (cni, workloads) in [
        (
            Cni::Cilium,
            [("DaemonSet", "cilium"), ("Deployment", "cilium-operator")],
        ),
        (
            Cni::Calico,
            [
                ("DaemonSet", "calico-node"),
                ("Deployment", "calico-kube-controllers"),
            ],
        ),
    ] {
        let docs = documents(&render_for(cni, 30, None));
        for (kind, name) in workloads {
            let workload = find(&docs, kind, name);
            let tolerations = tolerations(workload);
            for (key, effect) in taints {
                // Calico's controllers run in the pod network: they wait
                // for a Ready node, like any pod.
                if name == "calico-kube-controllers" && key == "node.kubernetes.io/not-ready" {
                    continue;
                }
                assert!(tolerates(tolerations, key, effect), "{name}: {key}");
            }
            let pod = &workload["spec"]["template"]["spec"];
            let expected = if kind == "DaemonSet" {
                "system-node-critical"
            } else {
                "system-cluster-critical"
            };
            assert_eq!(pod["priorityClassName"], expected, "{name}");
        }
        let agent = find(&docs, "DaemonSet", workloads[0].1);
        assert_eq!(agent["spec"]["template"]["spec"]["hostNetwork"], true);
        assert!(tolerates(
            tolerations(agent),
            "node.kubernetes.io/unreachable",
            "NoExecute"
        ));
    }
}

#[test]
fn cilium_config() {
    let docs = documents(&render_for(Cni::Cilium, 31, None));
    let data = &find(&docs, "ConfigMap", "cilium-config")["data"];
    for (key, value) in [
        ("routing-mode", "tunnel"),
        ("tunnel-protocol", "vxlan"),
        ("tunnel-port", "8472"),
        ("kube-proxy-replacement", "false"),
        ("ipam", "cluster-pool"),
        ("cluster-pool-ipv4-cidr", "192.168.0.0/16"),
        ("cluster-pool-ipv4-mask-size", "24"),
        ("mtu", "0"),
        ("k8s-service-host", "10.20.0.5"),
        ("k8s-service-port", "6443"),
        ("identity-allocation-mode", "crd"),
        (
            "write-cni-conf-when-ready",
            "/host/etc/cni/net.d/05-cilium.conflist",
        ),
        ("external-envoy-proxy", "false"),
    ] {
        assert_eq!(data[key], value, "cilium-config {key}");
    }
    // Everything that talks to the API server before Services work gets
    // the VIP.
    let agent = find(&docs, "DaemonSet", "cilium");
    let operator = find(&docs, "Deployment", "cilium-operator");
    for container in [
        container(agent, "containers", "cilium-agent"),
        container(agent, "initContainers", "config"),
        container(agent, "initContainers", "clean-cilium-state"),
        container(operator, "containers", "cilium-operator"),
    ] {
        assert_eq!(
            env_value(container, "KUBERNETES_SERVICE_HOST"),
            Some("10.20.0.5")
        );
        assert_eq!(
            env_value(container, "KUBERNETES_SERVICE_PORT"),
            Some("6443")
        );
    }
    // The init containers the agent needs, in order.
    let init: Vec<&str> = agent["spec"]["template"]["spec"]["initContainers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| str_of(&c["name"]))
        .collect();
    assert_eq!(
        init,
        [
            "config",
            "mount-cgroup",
            "apply-sysctl-overwrites",
            "mount-bpf-fs",
            "clean-cilium-state",
            "install-cni-binaries"
        ]
    );
    let host_paths: BTreeSet<&str> = agent["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    for path in [
        "/sys/fs/bpf",
        "/run/cilium/cgroupv2",
        "/opt/cni/bin",
        "/etc/cni/net.d",
        "/lib/modules",
        "/run/xtables.lock",
    ] {
        assert!(host_paths.contains(path), "agent lacks hostPath {path}");
    }
    assert_eq!(operator["spec"]["replicas"], 2);
    assert_eq!(
        container(operator, "containers", "cilium-operator")["command"][0],
        "cilium-operator-generic"
    );
    assert!(
        str_of(&container(operator, "containers", "cilium-operator")["image"])
            .contains("/cilium/operator-generic:")
    );
    // No CRDs: the operator registers them and may create and update them.
    assert!(!docs.iter().any(|d| d["kind"] == "CustomResourceDefinition"));
    let operator_role =
        serde_json::to_string(&find(&docs, "ClusterRole", "cilium-operator")["rules"]).unwrap();
    assert!(operator_role.contains("customresourcedefinitions"));
    assert!(operator_role.contains("ciliumnodes.cilium.io"));
}

#[test]
fn cilium_per_node_ranges_fit_the_pod_cidr() {
    let mask = |cidr: &str| cilium::node_mask_size(cidr.parse().unwrap());
    assert_eq!(mask("10.0.0.0/8"), Ok(24));
    assert_eq!(mask("192.168.0.0/16"), Ok(24));
    assert_eq!(mask("10.244.0.0/18"), Ok(24));
    assert_eq!(mask("10.244.0.0/20"), Ok(25));
    assert_eq!(mask("10.244.0.0/24"), Ok(25));
    let error = mask("10.244.0.0/25").unwrap_err();
    assert!(error.to_string().contains("too small"), "{error}");
}

#[test]
fn ipv6_pod_cidr_is_refused() {
    for cni in CNIS {
        let fixture = fixture(cni, 30, None);
        let mut input = fixture.input();
        input.pod_cidr = "fd00:10::/56".parse().unwrap();
        let error = render(&input).unwrap_err();
        assert!(error.to_string().contains("IPv6"), "{error}");
    }
}

#[test]
fn apparmor_by_kubernetes_minor() {
    for (minor, field) in [(28, false), (29, false), (30, true), (33, true)] {
        let docs = documents(&render_for(Cni::Cilium, minor, None));
        let template = &find(&docs, "DaemonSet", "cilium")["spec"]["template"];
        let profile = &template["spec"]["securityContext"]["appArmorProfile"]["type"];
        let annotation = &template["metadata"]["annotations"]
            ["container.apparmor.security.beta.kubernetes.io/cilium-agent"];
        if field {
            assert_eq!(profile, "Unconfined", "1.{minor}");
            assert!(annotation.is_null(), "1.{minor}");
        } else {
            assert!(profile.is_null(), "1.{minor}");
            assert_eq!(annotation, "unconfined", "1.{minor}");
        }
    }
}

#[test]
fn calico_vxlan_only_on_the_pod_cidr() {
    for minor in SUPPORTED_MINORS {
        let docs = documents(&render_for(Cni::Calico, minor, None));
        let config = &find(&docs, "ConfigMap", "calico-config")["data"];
        assert_eq!(config["calico_backend"], "vxlan");
        let network: serde_json::Value =
            serde_json::from_str(str_of(&config["cni_network_config"])).unwrap();
        assert_eq!(network["plugins"][0]["type"], "calico");
        assert_eq!(network["plugins"][0]["mtu"], 0);
        assert_eq!(network["plugins"][0]["ipam"]["type"], "calico-ipam");
        let endpoint = &find(&docs, "ConfigMap", "kubernetes-services-endpoint")["data"];
        assert_eq!(endpoint["KUBERNETES_SERVICE_HOST"], "10.20.0.5");
        assert_eq!(endpoint["KUBERNETES_SERVICE_PORT"], "6443");

        let node = find(&docs, "DaemonSet", "calico-node");
        let felix = container(node, "containers", "calico-node");
        for (name, value) in [
            ("CALICO_IPV4POOL_CIDR", "192.168.0.0/16"),
            ("CALICO_IPV4POOL_VXLAN", "Always"),
            ("CALICO_IPV4POOL_IPIP", "Never"),
            ("IP_AUTODETECTION_METHOD", "kubernetes-internal-ip"),
            ("FELIX_VXLANMTU", "0"),
            ("DATASTORE_TYPE", "kubernetes"),
        ] {
            assert_eq!(env_value(felix, name), Some(value), "1.{minor} {name}");
        }
        container(node, "initContainers", "install-cni");
    }
}

#[test]
fn calico_offload_mitigation_follows_the_node_setting() {
    let fixture = fixture(Cni::Calico, 32, None);
    for (disabled_on_nodes, expected) in [(true, None), (false, Some("ChecksumOffloadBroken=true"))]
    {
        let mut input = fixture.input();
        input.tunnel_offload_disabled = disabled_on_nodes;
        let manifest = render(&input).unwrap().unwrap();
        let docs = documents(&manifest);
        let felix = container(
            find(&docs, "DaemonSet", "calico-node"),
            "containers",
            "calico-node",
        );
        assert_eq!(env_value(felix, "FELIX_FEATUREDETECTOVERRIDE"), expected);
    }
}

/// Every resource of Calico's API groups that its ClusterRoles name has a
/// CRD, and every CRD is used by some role: the CRD list and the RBAC
/// cannot drift apart.
#[test]
fn calico_crds_match_what_its_components_use() {
    // Names older datastores used; calico-node still asks for them.
    const LEGACY: [&str; 2] = ["globalfelixconfigs", "globalbgpconfigs"];
    for minor in SUPPORTED_MINORS {
        let docs = documents(&render_for(Cni::Calico, minor, None));
        let crds: BTreeSet<String> = docs
            .iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
            .map(|d| str_of(&d["metadata"]["name"]).to_owned())
            .collect();
        let mut used = BTreeSet::new();
        for role in [
            "calico-node",
            "calico-cni-plugin",
            "calico-kube-controllers",
        ] {
            for rule in find(&docs, "ClusterRole", role)["rules"]
                .as_sequence()
                .unwrap()
            {
                for group in rule["apiGroups"].as_sequence().unwrap() {
                    let group = str_of(group);
                    if group != "crd.projectcalico.org" && group != "policy.networking.k8s.io" {
                        continue;
                    }
                    for resource in rule["resources"].as_sequence().unwrap() {
                        let resource = str_of(resource).split('/').next().unwrap();
                        if !LEGACY.contains(&resource) {
                            used.insert(format!("{resource}.{group}"));
                        }
                    }
                }
            }
        }
        assert_eq!(crds, used, "Kubernetes 1.{minor}");
        for doc in docs
            .iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            let name = str_of(&doc["metadata"]["name"]);
            let approval = &doc["metadata"]["annotations"]["api-approved.kubernetes.io"];
            assert_eq!(name.ends_with(".k8s.io"), !approval.is_null(), "{name}");
        }
    }
}
