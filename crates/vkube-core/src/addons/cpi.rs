//! The vSphere cloud provider (CPI): `vsphere.conf` in the YAML form of
//! cloud-provider-vsphere, the cluster's vCenter credentials in a Secret,
//! and the cloud-controller-manager — a DaemonSet on the control-plane
//! nodes that initializes nodes (provider ID, addresses, zone and region
//! labels from the tag categories) and removes the
//! `node.cloudprovider.kubernetes.io/uninitialized` taint.
//!
//! The config names the Secret instead of holding the password: the
//! ConfigMap stays free of secrets, and a rotated password is picked up
//! without a restart (the controller watches the Secret).

use std::collections::BTreeMap;

use serde::Serialize;

use super::k8s::{
    binding, cluster_role, config_map, daemon_set, role, rule, secret, service_account, Affinity,
    Container, EnvVar, Labels, Meta, PodSpec, PodTemplate, RoleRef, Rule, SecurityContext, Stream,
    Subject, Toleration, Volume, READ,
};
use super::vsphere::{check_vcenter, config_files, pinned, CA_FILE_NAME, REDACTED};
use super::{api_server_env, image, Addon, AddonInput, Error, Manifest};

/// Component name (also the DaemonSet's and the ClusterRole's name).
pub const COMPONENT: &str = "vsphere-cloud-controller-manager";
/// File name on the node.
pub const FILE_NAME: &str = "30-cpi.yaml";
/// Namespace of everything the CPI consists of.
pub const NAMESPACE: &str = "kube-system";
/// ConfigMap holding `vsphere.conf` (and the CA bundle, when given).
pub const CONFIG_MAP: &str = "vsphere-cloud-config";
/// Secret holding the vCenter user and password.
pub const SECRET: &str = "vsphere-cloud-secret";
/// ServiceAccount of the controller.
const SERVICE_ACCOUNT: &str = "cloud-controller-manager";
/// Where the ConfigMap is mounted.
const CONFIG_DIR: &str = "/etc/cloud";

/// cloud-provider-vsphere release per Kubernetes minor. Its README's
/// version matrix: "compatibility is ONLY guaranteed between a specific
/// release and its corresponding Kubernetes version" — so the CPI minor
/// equals the Kubernetes minor. Patch: the image in
/// `releases/v1.<minor>/vsphere-cloud-controller-manager.yaml` on each
/// `release-1.<minor>` branch.
const RELEASES: &[(u64, &str)] = &[
    (28, "v1.28.1"),
    (29, "v1.29.2"),
    (30, "v1.30.2"),
    (31, "v1.31.1"),
    (32, "v1.32.3"),
    (33, "v1.33.1"),
];

const IMAGE: &str = "registry.k8s.io/cloud-pv-vsphere/cloud-provider-vsphere";

/// The pinned cloud-provider-vsphere version for the input's Kubernetes
/// minor.
pub fn version(input: &AddonInput<'_>) -> Result<&'static str, Error> {
    pinned(RELEASES, input, COMPONENT).copied()
}

/// The CPI manifest (`30-cpi.yaml`): ServiceAccount, RBAC, the
/// credentials Secret, the `vsphere.conf` ConfigMap and the
/// cloud-controller-manager DaemonSet, all in `kube-system`.
pub fn render(input: &AddonInput<'_>) -> Result<Manifest, Error> {
    let version = version(input)?;
    check_vcenter(input, COMPONENT)?;
    let controller_image = image(input.registry, &format!("{IMAGE}:{version}"));

    let mut stream = Stream::new(&format!(
        "vSphere cloud provider (cloud-controller-manager {version}) for Kubernetes {}.\nRendered by vkube for cluster `{}`; the Secret holds the cluster's own vCenter user.",
        input.kubernetes, input.cluster
    ));
    let labels = Labels::component(COMPONENT);
    let meta = |name: &str| Meta::namespaced(name, NAMESPACE, &labels);
    let account = || vec![Subject::service_account(SERVICE_ACCOUNT, NAMESPACE)];
    stream.push(&service_account(meta(SERVICE_ACCOUNT)));
    stream.push(&secret(meta(SECRET), &credentials(input, false)));
    stream.push(&config_map(
        meta(CONFIG_MAP),
        config_files(input, "vsphere.conf", vsphere_conf(input)),
    ));
    stream.push(&cluster_role(
        Meta::cluster(COMPONENT, &labels),
        cluster_rules(),
    ));
    stream.push(&binding(
        Meta::cluster(COMPONENT, &labels),
        RoleRef::cluster_role(COMPONENT),
        account(),
    ));
    // The controller reads its credentials Secret through an informer on
    // kube-system only; a Role there is enough (upstream grants secrets
    // cluster-wide).
    let secrets_role = format!("{COMPONENT}-secrets");
    stream.push(&role(
        meta(&secrets_role),
        vec![rule(&[""], &["secrets"], READ)],
    ));
    stream.push(&binding(
        meta(&secrets_role),
        RoleRef::role(&secrets_role),
        account(),
    ));
    // Reading the API server's client CA (delegated authentication).
    stream.push(&binding(
        meta(&format!("{COMPONENT}-authentication-reader")),
        RoleRef::role("extension-apiserver-authentication-reader"),
        account(),
    ));
    stream.push(&daemon_set(
        meta(COMPONENT),
        1,
        PodTemplate::of_component(COMPONENT, pod(input, controller_image)),
    ));
    Ok(stream.into_manifest(Addon::Cpi, COMPONENT, version, FILE_NAME))
}

/// The CPI's config as a person checks it: `vsphere.conf` as deployed
/// (it names the Secret, it holds no password), then, as a second YAML
/// document, the Secret's keys with the password shown as `<redacted>`
/// unless `redact` is false.
pub fn cpi_config(input: &AddonInput<'_>, redact: bool) -> Result<String, Error> {
    version(input)?;
    check_vcenter(input, COMPONENT)?;
    let conf = vsphere_conf(input);
    let keys = crate::yaml::to_string(&credentials(input, redact));
    Ok(format!(
        "# vsphere.conf (ConfigMap {NAMESPACE}/{CONFIG_MAP})\n{conf}---\n# credentials (Secret {NAMESPACE}/{SECRET})\n{keys}"
    ))
}

/// `vsphere.conf` as read by cloud-provider-vsphere (`global`, `vcenter`,
/// `labels`; keys as in its `types_yaml.go`).
#[derive(Serialize)]
struct VsphereConf<'a> {
    global: Global<'a>,
    vcenter: BTreeMap<&'a str, VcenterEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<TopologyLabels<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Global<'a> {
    port: u16,
    insecure_flag: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
    secret_name: &'static str,
    secret_namespace: &'static str,
    /// Which guest addresses become the node's addresses.
    ip_family: Vec<&'static str>,
}

#[derive(Serialize)]
struct VcenterEntry<'a> {
    server: &'a str,
    datacenters: Vec<&'a str>,
}

#[derive(Serialize)]
struct TopologyLabels<'a> {
    region: &'a str,
    zone: &'a str,
}

fn vsphere_conf(input: &AddonInput<'_>) -> String {
    let vcenter = input.vcenter;
    // Node addresses come from VMware Tools; the family follows the API
    // endpoint's (the nodes' network).
    let family = if input.api_endpoint.is_ipv6() {
        "ipv6"
    } else {
        "ipv4"
    };
    let conf = VsphereConf {
        global: Global {
            port: vcenter.port,
            insecure_flag: vcenter.insecure,
            thumbprint: vcenter.thumbprint.as_deref(),
            ca_file: vcenter
                .ca_pem
                .as_ref()
                .map(|_| format!("{CONFIG_DIR}/{CA_FILE_NAME}")),
            secret_name: SECRET,
            secret_namespace: NAMESPACE,
            ip_family: vec![family],
        },
        vcenter: BTreeMap::from([(
            vcenter.server.as_str(),
            VcenterEntry {
                server: &vcenter.server,
                datacenters: input.datacenters.iter().map(String::as_str).collect(),
            },
        )]),
        labels: input.categories.map(|categories| TopologyLabels {
            region: categories.region.as_str(),
            zone: categories.zone.as_str(),
        }),
    };
    crate::yaml::to_string(&conf)
}

/// The Secret's keys. The controller looks credentials up by server:
/// `<server>.username` / `<server>.password`, or — for servers that are
/// not valid Secret keys, such as IPv6 addresses — its alternative form
/// `server_<id>`, `username_<id>`, `password_<id>`.
fn credentials(input: &AddonInput<'_>, redact: bool) -> BTreeMap<String, String> {
    let server = &input.vcenter.server;
    let password = if redact {
        REDACTED.to_owned()
    } else {
        input.credentials.password.clone()
    };
    let username = input.credentials.username.clone();
    let valid_key = server
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if valid_key {
        BTreeMap::from([
            (format!("{server}.username"), username),
            (format!("{server}.password"), password),
        ])
    } else {
        BTreeMap::from([
            ("server_vcenter".to_owned(), server.clone()),
            ("username_vcenter".to_owned(), username),
            ("password_vcenter".to_owned(), password),
        ])
    }
}

/// What the cloud-controller-manager may do cluster-wide (the rules
/// cloud-provider-vsphere documents, without secrets, which its Role in
/// kube-system covers).
fn cluster_rules() -> Vec<Rule> {
    vec![
        rule(&[""], &["events"], &["create", "patch", "update"]),
        rule(
            &[""],
            &["nodes"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(&[""], &["nodes/status"], &["patch"]),
        rule(&[""], &["services"], &["list", "patch", "update", "watch"]),
        rule(&[""], &["services/status"], &["patch"]),
        rule(
            &[""],
            &["serviceaccounts"],
            &["create", "get", "list", "watch", "update"],
        ),
        rule(
            &[""],
            &["persistentvolumes"],
            &["get", "list", "update", "watch"],
        ),
        rule(
            &[""],
            &["endpoints"],
            &["create", "get", "list", "watch", "update"],
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "get", "list", "watch", "update"],
        ),
    ]
}

/// Runs on every control-plane node (leader election picks the active
/// one), before the nodes are initialized and before the pod network
/// exists: host network, tolerating the uninitialized and not-ready taints.
fn pod(input: &AddonInput<'_>, controller_image: String) -> PodSpec {
    let args = [
        "--cloud-provider=vsphere".to_owned(),
        format!("--cloud-config={CONFIG_DIR}/vsphere.conf"),
        "--v=2".to_owned(),
    ];
    let container = Container::new("vsphere-cloud-controller-manager", controller_image)
        .args(&args)
        .env_vars(api_server_env(input).map(|(name, value)| EnvVar::value(name, value)))
        .request_cpu("200m")
        .request_memory("128Mi")
        .mount_read_only("vsphere-config-volume", CONFIG_DIR);
    PodSpec {
        service_account_name: SERVICE_ACCOUNT.to_owned(),
        priority_class_name: "system-node-critical",
        host_network: true,
        affinity: Some(Affinity::default().on_control_plane()),
        tolerations: vec![
            Toleration::exists(
                "node.cloudprovider.kubernetes.io/uninitialized",
                "NoSchedule",
            ),
            Toleration::exists("node-role.kubernetes.io/control-plane", "NoSchedule"),
            Toleration::exists("node.kubernetes.io/not-ready", "NoSchedule"),
        ],
        security_context: Some(SecurityContext {
            run_as_user: Some(1001),
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        }),
        containers: vec![container],
        volumes: vec![Volume::config_map("vsphere-config-volume", CONFIG_MAP)],
        ..PodSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addons::testing::{
        assert_pinned_for_supported_minors_only, assert_valid_for_every_minor, container_images,
        documents, find, password_only_in_the_secret_data, zones_and_plain, Fixture, PASSWORD,
    };
    use crate::addons::SUPPORTED_MINORS;
    use crate::yaml::pyyaml_as_json;
    use serde_json::json;

    #[test]
    fn every_supported_minor_is_pinned_to_its_own_cpi_minor() {
        for minor in SUPPORTED_MINORS {
            let fixture = Fixture::two_zones(minor);
            let manifest = render(&fixture.input()).unwrap();
            assert!(
                manifest.version.starts_with(&format!("v1.{minor}.")),
                "{minor}: {}",
                manifest.version
            );
            assert_eq!(manifest.images, [format!("{IMAGE}:{}", manifest.version)]);
        }
        assert_pinned_for_supported_minors_only(render);
    }

    #[test]
    fn manifests_validate_strictly_for_every_minor() {
        assert_valid_for_every_minor("cpi", zones_and_plain, |input| render(input).unwrap());
    }

    #[test]
    fn vsphere_conf_reads_back_key_by_key_as_yaml_1_1() {
        let fixture = Fixture::two_zones(31);
        let conf = vsphere_conf(&fixture.input());
        // PyYAML reads YAML 1.1 like the CPI's Go YAML library: `on` must
        // stay a datacenter name, not become `true`.
        let Some(parsed) = pyyaml_as_json(&conf) else {
            return;
        };
        assert_eq!(
            parsed,
            json!({
                "global": {
                    "port": 443,
                    "insecureFlag": false,
                    "thumbprint": fixture.vcenter.thumbprint,
                    "secretName": SECRET,
                    "secretNamespace": NAMESPACE,
                    "ipFamily": ["ipv4"],
                },
                "vcenter": {
                    "vc.example.com": {
                        "server": "vc.example.com",
                        "datacenters": ["DC0", "on"],
                    }
                },
                "labels": {"region": "dc-region", "zone": "az"},
            })
        );

        let plain = Fixture::plain(31);
        let parsed = pyyaml_as_json(&vsphere_conf(&plain.input())).unwrap();
        assert_eq!(parsed["global"]["caFile"], "/etc/cloud/vcenter-ca.pem");
        assert_eq!(parsed["global"]["port"], 8443);
        assert!(parsed["global"].get("thumbprint").is_none());
        assert!(parsed.get("labels").is_none());
        assert_eq!(parsed["vcenter"]["fd00:10::5"]["server"], "fd00:10::5");
    }

    #[test]
    fn labels_match_the_topology_categories() {
        let fixture = Fixture::two_zones(30);
        let docs = documents(&render(&fixture.input()).unwrap());
        let conf = find(&docs, "ConfigMap", CONFIG_MAP)["data"]["vsphere.conf"]
            .as_str()
            .unwrap();
        let conf: serde_yaml::Value = serde_yaml::from_str(conf).unwrap();
        let categories = fixture.categories.as_ref().unwrap();
        assert_eq!(conf["labels"]["region"], categories.region.as_str());
        assert_eq!(conf["labels"]["zone"], categories.zone.as_str());
    }

    #[test]
    fn password_only_in_the_secret() {
        for fixture in [Fixture::two_zones(33), Fixture::plain(28)] {
            let data = password_only_in_the_secret_data(&render(&fixture.input()).unwrap());
            let decoded = |key: &str| data[key].as_str();
            if fixture.vcenter.server == "vc.example.com" {
                assert_eq!(decoded("vc.example.com.password"), PASSWORD);
                assert_eq!(decoded("vc.example.com.username"), "k8s-demo@vsphere.local");
            } else {
                // IPv6: `:` is not allowed in Secret keys.
                assert_eq!(decoded("server_vcenter"), "fd00:10::5");
                assert_eq!(decoded("password_vcenter"), PASSWORD);
                assert_eq!(decoded("username_vcenter"), "k8s-demo@vsphere.local");
            }
        }
    }

    #[test]
    fn printed_config_redacts_unless_asked() {
        let fixture = Fixture::two_zones(32);
        let redacted = cpi_config(&fixture.input(), true).unwrap();
        assert!(!redacted.contains(PASSWORD), "{redacted}");
        assert!(
            redacted.contains("vc.example.com.password: \"<redacted>\""),
            "{redacted}"
        );
        let shown = cpi_config(&fixture.input(), false).unwrap();
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&shown)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
        assert_eq!(docs[0]["global"]["secretName"], SECRET);
        assert_eq!(docs[1]["vc.example.com.password"], PASSWORD);
    }

    #[test]
    fn daemon_set_runs_on_uninitialized_control_plane_nodes() {
        let fixture = Fixture::plain(29);
        let manifest = render(&fixture.input()).unwrap();
        let docs = documents(&manifest);
        let pod = &find(&docs, "DaemonSet", COMPONENT)["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        let tolerated: Vec<&str> = pod["tolerations"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        for key in [
            "node.cloudprovider.kubernetes.io/uninitialized",
            "node-role.kubernetes.io/control-plane",
            "node.kubernetes.io/not-ready",
        ] {
            assert!(tolerated.contains(&key), "{key}");
        }
        let expressions = &pod["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0];
        assert_eq!(expressions["key"], "node-role.kubernetes.io/control-plane");
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"--cloud-provider=vsphere"));
        assert!(args.contains(&"--cloud-config=/etc/cloud/vsphere.conf"));
        assert_eq!(container["env"][0]["value"], "10.20.0.5");
        // The registry mirror covers every image.
        assert_eq!(container_images(&docs), manifest.images);
        assert!(manifest.images[0].starts_with("harbor.local/mirror/cloud-pv-vsphere/"));
        // The CA bundle is mounted with the config.
        let data = &find(&docs, "ConfigMap", CONFIG_MAP)["data"];
        assert!(data[CA_FILE_NAME]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        // The authentication reader binding.
        let reader = find(
            &docs,
            "RoleBinding",
            &format!("{COMPONENT}-authentication-reader"),
        );
        assert_eq!(
            reader["roleRef"]["name"],
            "extension-apiserver-authentication-reader"
        );
    }

    #[test]
    fn insecure_only_when_asked() {
        let mut fixture = Fixture::two_zones(30);
        let conf = vsphere_conf(&fixture.input());
        assert!(conf.contains("insecureFlag: false"), "{conf}");
        fixture.vcenter.insecure = true;
        let conf = vsphere_conf(&fixture.input());
        assert!(conf.contains("insecureFlag: true"), "{conf}");
    }
}
