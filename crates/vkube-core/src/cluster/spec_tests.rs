//! Table tests for cluster spec validation, the canonical form and hashes.

use super::*;
use crate::ipam::{parse_pools_yaml, validate_pools};

pub(crate) const EXAMPLE: &str = include_str!("../../../../examples/cluster.yaml");
pub(crate) const EXAMPLE_POOLS: &str = include_str!("../../../../examples/ippools.yaml");

pub(crate) fn example() -> ClusterSpec {
    ClusterSpec::from_yaml(EXAMPLE).expect("example is valid")
}

/// The example with `edit` applied to its raw form.
fn edited(edit: impl FnOnce(&mut RawClusterSpec)) -> Result<ClusterSpec, Error> {
    let mut raw = RawClusterSpec::from_yaml(EXAMPLE).unwrap();
    edit(&mut raw);
    raw.validate()
}

fn problems(edit: impl FnOnce(&mut RawClusterSpec)) -> Vec<String> {
    match edited(edit) {
        Ok(_) => Vec::new(),
        Err(error) => error.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn example_is_valid_and_fits_its_pools() {
    let spec = example();
    assert_eq!(spec.name().as_str(), "demo");
    assert_eq!(spec.control_plane().replicas(), 3);
    assert_eq!(spec.placement_domains().len(), 2);
    assert_eq!(
        spec.groups().iter().map(|g| g.name()).collect::<Vec<_>>(),
        ["cp", "workers", "infra"]
    );
    let pools = validate_pools(&parse_pools_yaml(EXAMPLE_POOLS).unwrap(), false).unwrap();
    spec.check_pools(&pools).unwrap();
}

#[test]
fn check_pools_reports_unknown_pools_and_vip_outside() {
    let pools = validate_pools(&parse_pools_yaml(EXAMPLE_POOLS).unwrap(), false).unwrap();
    let spec = edited(|raw| {
        raw.spec.placement_domains[1].ip_pool = Some("other".into());
        raw.spec.control_plane.vip = Some(RawVip {
            address: Some("10.30.0.5".into()),
            from_pool: None,
        });
    })
    .unwrap();
    let found: Vec<String> = spec
        .check_pools(&pools)
        .unwrap_err()
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found, [
        "spec.placementDomains[1].ipPool: unknown IP pool `other`",
        "spec.controlPlane.vip.address: 10.30.0.5 is outside network 10.20.0.0/24 of IP pool `nodes` used by the control plane",
    ]);
    let inside = edited(|raw| {
        raw.spec.control_plane.vip = Some(RawVip {
            address: Some("10.20.0.50".into()),
            from_pool: None,
        })
    })
    .unwrap();
    let found = inside.check_pools(&pools).unwrap_err().to_string();
    assert!(found.contains("could be leased to a node"), "{found}");
}

#[test]
fn validation_table() {
    type Edit = fn(&mut RawClusterSpec);
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("unknown pool domain", |r| r.spec.node_pools[1].placement_domains[0] = "az3".into(),
            &["spec.nodePools[1].placementDomains[0]: unknown domain \"az3\""]),
        ("duplicate pool domain", |r| r.spec.node_pools[0].placement_domains = vec!["az1".into(), "az1".into()],
            &["spec.nodePools[0].placementDomains[1]: domain \"az1\" is listed twice"]),
        ("cp replicas", |r| r.spec.control_plane.replicas = 2,
            &["spec.controlPlane.replicas: must be 1, 3 or 5 (etcd needs an odd quorum), not 2"]),
        ("cp unknown domain", |r| r.spec.control_plane.placement_domain = "az9".into(),
            &["spec.controlPlane.placementDomain: unknown domain \"az9\""]),
        ("cp no domain", |r| r.spec.control_plane.placement_domain = String::new(),
            &["spec.controlPlane.placementDomain: is required (the control plane uses exactly one placement domain)"]),
        ("datastore xor cluster: both", |r| r.spec.placement_domains[0].datastore_cluster = Some("/DC0/datastore/SP".into()),
            &["spec.placementDomains[0].datastoreCluster: set either `datastore` or `datastoreCluster`, not both"]),
        ("datastore xor cluster: none", |r| r.spec.placement_domains[1].datastore = None,
            &["spec.placementDomains[1].datastore: one of `datastore` or `datastoreCluster` is required"]),
        ("static needs pool", |r| r.spec.placement_domains[1].ip_pool = None,
            &["spec.placementDomains[1].ipPool: is required with `ipAllocation: static`: nodes in domain `az2` need addresses"]),
        ("dhcp needs no pool", |r| { r.spec.ip_allocation = Some("dhcp".into()); r.spec.placement_domains[1].ip_pool = None; }, &[]),
        ("vip both", |r| r.spec.control_plane.vip = Some(RawVip { address: Some("10.20.0.5".into()), from_pool: Some("nodes".into()) }),
            &["spec.controlPlane.vip: set either `address` or `fromPool`, not both"]),
        ("vip missing", |r| r.spec.control_plane.vip = None,
            &["spec.controlPlane.vip: is required: `{address: IP}` or `{fromPool: POOL}`"]),
        ("vip from pool", |r| r.spec.control_plane.vip = Some(RawVip { address: None, from_pool: Some("nodes".into()) }), &[]),
        ("vip bad address", |r| r.spec.control_plane.vip = Some(RawVip { address: Some("10.20.0".into()), from_pool: None }),
            &["spec.controlPlane.vip.address: `10.20.0` is not an IP address"]),
        ("linked with disk", |r| r.spec.clone_mode = Some("linked".into()),
            &["spec.controlPlane.diskGiB: must be unset with `cloneMode: linked`: a linked clone keeps the template's disk size (use `cloneMode: full` to resize)",
              "spec.nodePools[0].diskGiB: must be unset with `cloneMode: linked`: a linked clone keeps the template's disk size (use `cloneMode: full` to resize)"]),
        ("linked without disk", |r| { r.spec.clone_mode = Some("linked".into()); r.spec.control_plane.disk_gib = None; r.spec.node_pools[0].disk_gib = None; }, &[]),
        ("bad enums", |r| { r.spec.clone_mode = Some("instant".into()); r.spec.os_family = Some("debian".into()); r.spec.ip_allocation = Some("slaac".into()); },
            &["spec.cloneMode: `instant` is not one of `full`, `linked`",
              "spec.osFamily: `debian` is not one of `ubuntu`, `rocky`, `flatcar`",
              "spec.ipAllocation: `slaac` is not one of `dhcp`, `static`"]),
        ("version", |r| r.spec.kubernetes_version = "1.30.2".into(),
            &["spec.kubernetesVersion: `1.30.2` is not a Kubernetes version like `v1.30.2` (a leading `v`, then MAJOR.MINOR.PATCH)"]),
        ("names", |r| { r.metadata.name = "Demo".into(); r.spec.node_pools[0].name = "cp".into(); r.spec.node_pools[1].name = "cp".into(); },
            &["metadata.name: `Demo` must be a DNS label: lowercase letters, digits and `-`, starting and ending with a letter or digit",
              "spec.nodePools[0].name: `cp` is reserved for the control plane",
              "spec.nodePools[1].name: `cp` is reserved for the control plane",
              "spec.nodePools[1].name: `cp` is already used by spec.nodePools[0]"]),
        ("vm name length", |r| { r.metadata.name = "a".repeat(30); r.spec.node_pools[0].name = "b".repeat(30); },
            &["spec.nodePools[0].name: VM names `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-NNNN` would be 66 characters, over the 63 a hostname allows: shorten the cluster or pool name"]),
        ("sizes", |r| { r.spec.control_plane.cpu = 1; r.spec.control_plane.memory_mib = 1024; r.spec.node_pools[0].disk_gib = Some(5); r.spec.node_pools[1].cpu = 0; },
            &["spec.controlPlane.cpu: must be at least 2, not 1",
              "spec.controlPlane.memoryMiB: must be at least 2048, not 1024",
              "spec.nodePools[0].diskGiB: must be at least 10, not 5",
              "spec.nodePools[1].cpu: must be at least 1, not 0"]),
        ("labels and taints", |r| {
            r.spec.node_pools[0].labels.insert("node-role.kubernetes.io/worker".into(), "".into());
            r.spec.node_pools[0].labels.insert("team".into(), "bad value".into());
            r.spec.node_pools[1].taints[0].effect = "Never".into();
        }, &["spec.nodePools[0].labels[\"node-role.kubernetes.io/worker\"]: kubelets may not set `node-role.kubernetes.io/worker` (NodeRestriction refuses labels under `kubernetes.io` and `k8s.io`): use `node.kubernetes.io/…` or your own prefix",
             "spec.nodePools[0].labels[\"team\"]: value `bad value` must be at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
             "spec.nodePools[1].taints[0].effect: `Never` is not one of `NoSchedule`, `PreferNoSchedule`, `NoExecute`"]),
        ("networks overlap", |r| r.spec.network = Some(RawClusterNetwork { pod_cidr: Some("10.0.0.0/8".into()), service_cidr: Some("10.96.0.0/12".into()), cni: None }),
            &["spec.network.serviceCidr: 10.96.0.0/12 overlaps the pod network 10.0.0.0/8",
              "spec.controlPlane.vip.address: 10.20.0.5 is inside spec.network.podCidr 10.0.0.0/8"]),
        ("ssh ntp proxy", |r| {
            r.spec.ssh_authorized_keys.push("not a key".into());
            r.spec.ntp_servers.push("bad host".into());
            r.spec.proxy = Some(RawProxy { http_proxy: Some("proxy:3128".into()), https_proxy: None, no_proxy: vec!["a,b".into()] });
        }, &["spec.sshAuthorizedKeys[1]: is not an OpenSSH public key line like `ssh-ed25519 AAAA… comment`",
             "spec.ntpServers[2]: `bad host` is not a host name or address",
             "spec.proxy.httpProxy: `proxy:3128` is not a proxy URL like `http://proxy.example.com:3128`",
             "spec.proxy.noProxy[0]: `a,b` must be one host, domain or CIDR (no spaces or commas)"]),
        ("header and required", |r| { r.api_version = "v1".into(); r.kind = "Pod".into(); r.spec.template = " ".into(); r.spec.placement_domains[0].network = String::new(); },
            &["apiVersion: must be `vkube.dev/v1alpha1`, not `v1`",
              "kind: must be `Cluster`, not `Pod`",
              "spec.template: is required",
              "spec.placementDomains[0].network: is required"]),
    ];
    for (name, edit, expected) in cases {
        let found = problems(edit);
        assert_eq!(
            found,
            expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "case `{name}`"
        );
    }
}

#[test]
fn all_problems_at_once() {
    let error =
        ClusterSpec::from_yaml("apiVersion: vkube.dev/v1alpha1\nkind: Cluster\n").unwrap_err();
    let fields: Vec<&str> = error.problems().iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.kubernetesVersion",
            "spec.datacenter",
            "spec.folder",
            "spec.template",
            "spec.placementDomains",
            "spec.controlPlane.replicas",
            "spec.controlPlane.vip",
            "spec.controlPlane.cpu",
            "spec.controlPlane.memoryMiB",
            "spec.controlPlane.placementDomain",
            "spec.cloudCredentials",
        ]
    );
    assert!(error
        .to_string()
        .starts_with("invalid cluster spec: 12 problems\n  metadata.name: is required"));
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let text = EXAMPLE.replace("cpu: 4", "cpus: 4");
    let error = RawClusterSpec::from_yaml(&text).unwrap_err();
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        source.contains("spec.nodePools[0]") && source.contains("unknown field `cpus`"),
        "{source}"
    );
}

#[test]
fn canonical_yaml_round_trips_and_fills_defaults() {
    let spec = example();
    let yaml = spec.to_yaml();
    assert_eq!(ClusterSpec::from_yaml(&yaml).unwrap(), spec);
    assert_eq!(ClusterSpec::from_yaml(&yaml).unwrap().to_yaml(), yaml);
    assert!(
        yaml.contains("kubeVipImage: ghcr.io/kube-vip/kube-vip:v0.8.0"),
        "{yaml}"
    );

    let minimal = "apiVersion: vkube.dev/v1alpha1
kind: Cluster
metadata: {name: mini}
spec:
  kubernetesVersion: v1.30.2
  datacenter: DC0
  folder: /DC0/vm/
  template: ubuntu
  placementDomains:
    - {name: az1, computeCluster: /DC0/host/DC0_C0, datastore: /DC0/datastore/LocalDS_0, network: /DC0/network/VM Network}
  controlPlane: {replicas: 1, vip: {address: 10.0.0.5}, cpu: 2, memoryMiB: 4096, placementDomain: az1}
  cloudCredentials: mini-cloud
";
    let canonical = ClusterSpec::from_yaml(minimal).unwrap().to_yaml();
    assert_eq!(
        canonical,
        "apiVersion: vkube.dev/v1alpha1
kind: Cluster
metadata:
  name: mini
spec:
  kubernetesVersion: v1.30.2
  datacenter: DC0
  folder: /DC0/vm
  template: ubuntu
  cloneMode: full
  osFamily: ubuntu
  ipAllocation: dhcp
  placementDomains:
  - name: az1
    computeCluster: /DC0/host/DC0_C0
    resourcePool: /DC0/host/DC0_C0/Resources
    datastore: /DC0/datastore/LocalDS_0
    network: /DC0/network/VM Network
  controlPlane:
    replicas: 1
    vip:
      address: 10.0.0.5
    cpu: 2
    memoryMiB: 4096
    placementDomain: az1
    kubeVipImage: ghcr.io/kube-vip/kube-vip:v0.8.0
  nodePools: []
  network:
    podCidr: 10.244.0.0/16
    serviceCidr: 10.96.0.0/12
    cni: cilium
  cloudCredentials: mini-cloud
  storage:
    defaultDatastore: /DC0/datastore/LocalDS_0
"
    );
}

#[test]
fn spec_hash_is_stable_and_tracks_replacement_fields() {
    let spec = example();
    let cp = spec.group("cp").unwrap().spec_hash();
    // Golden: changing this value replaces every control-plane node in
    // every cluster on upgrade, so it must only change on purpose.
    assert_eq!(cp.len(), 64);
    assert_eq!(cp, example().group("cp").unwrap().spec_hash());
    assert_ne!(cp, spec.group("workers").unwrap().spec_hash());

    let hash =
        |edit: fn(&mut RawClusterSpec)| edited(edit).unwrap().group("workers").unwrap().spec_hash();
    let base = spec.group("workers").unwrap().spec_hash();
    for (what, edit) in [
        (
            "template",
            (|r: &mut RawClusterSpec| r.spec.template = "other".into()) as fn(&mut RawClusterSpec),
        ),
        ("version", |r| r.spec.kubernetes_version = "v1.30.3".into()),
        ("os", |r| r.spec.os_family = Some("rocky".into())),
        ("cpu", |r| r.spec.node_pools[0].cpu = 8),
        ("memory", |r| r.spec.node_pools[0].memory_mib = 16384),
        ("disk", |r| r.spec.node_pools[0].disk_gib = Some(80)),
    ] {
        assert_ne!(hash(edit), base, "{what} must change the hash");
    }
    for (what, edit) in [
        (
            "replicas",
            (|r: &mut RawClusterSpec| r.spec.node_pools[0].replicas = 9) as fn(&mut RawClusterSpec),
        ),
        ("labels", |r| {
            r.spec.node_pools[0].labels.clear();
        }),
        ("ntp", |r| r.spec.ntp_servers.clear()),
    ] {
        assert_eq!(hash(edit), base, "{what} must not change the hash");
    }
}

/// A self-signed P-256 CA (`openssl req -x509 -newkey ec`), as a
/// `spec.registry.caBundle`.
pub(crate) const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBiDCCAS2gAwIBAgIUTNcOLsf/xR9cZzHyZ67VN5hz4LcwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOSGFyYm9yIFRlc3QgQ0EwHhcNMjYxMjAxMDkxMTU3WhcNMzYx
MTI4MDkxMTU3WjAZMRcwFQYDVQQDDA5IYXJib3IgVGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABHfkMYIsMegMb78D8e5e2sSIRR32DMDc+T7SHMr5ZE5q
cQHJ6ghwA/aU3iw5yWtiO93+DnrHQSoew+71VKys0+WjUzBRMB0GA1UdDgQWBBRV
PlDfKeP6Mp9zuqZ1YlUQmar84TAfBgNVHSMEGDAWgBRVPlDfKeP6Mp9zuqZ1YlUQ
mar84TAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDthA0aQKRs
Hdb9E+6JuUSUgAtIx2TosSjuRT8cPewY3wIhALMTA25unfQ9y3CdeLI4sfWM90V1
EoqzXSa0giRA/4+C
-----END CERTIFICATE-----
";

fn raw_registry(mirror: &str) -> Option<RawRegistry> {
    Some(RawRegistry {
        mirror: mirror.into(),
        ca_bundle: None,
        insecure_skip_verify: false,
    })
}

#[test]
fn new_field_validation_table() {
    type Edit = fn(&mut RawClusterSpec);
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("version too old", |r| r.spec.kubernetes_version = "v1.27.16".into(),
            &["spec.kubernetesVersion: `v1.27.16` is not supported: vkube supports Kubernetes v1.28 to v1.33 (any patch release)"]),
        ("version too new", |r| r.spec.kubernetes_version = "v1.34.1".into(),
            &["spec.kubernetesVersion: `v1.34.1` is not supported: vkube supports Kubernetes v1.28 to v1.33 (any patch release)"]),
        ("oldest supported", |r| r.spec.kubernetes_version = "v1.28.0".into(), &[]),
        ("newest supported", |r| r.spec.kubernetes_version = "v1.33.4".into(), &[]),
        ("cni", |r| r.spec.network.as_mut().unwrap().cni = Some("flannel".into()),
            &["spec.network.cni: `flannel` is not one of `cilium`, `calico`, `none`"]),
        ("cni calico", |r| r.spec.network.as_mut().unwrap().cni = Some("calico".into()), &[]),
        ("credentials missing", |r| r.spec.cloud_credentials = " ".into(),
            &["spec.cloudCredentials: is required: the name of the cluster's own vCenter credentials the cloud provider (CPI) and CSI driver run as; store them with `vkube cluster credentials set NAME --username USER --password-file FILE`"]),
        ("credentials not a label", |r| r.spec.cloud_credentials = "Demo_Cloud".into(),
            &["spec.cloudCredentials: `Demo_Cloud` must be a DNS label: lowercase letters, digits and `-`, starting and ending with a letter or digit"]),
        ("mirror with scheme", |r| r.spec.registry = raw_registry("https://harbor.example.com/k8s"),
            &["spec.registry.mirror: `https://harbor.example.com/k8s` has a scheme `https://`: drop it (vkube pulls over HTTPS) and write it like `harbor.example.com/k8s` (host[:port][/path], no scheme)"]),
        ("mirror without host", |r| r.spec.registry = raw_registry("harbor/k8s"),
            &["spec.registry.mirror: `harbor/k8s` starts with `harbor`, which image references read as a Docker Hub namespace, not a host: use a fully qualified name or add the port (like `harbor.example.com/k8s` (host[:port][/path], no scheme))"]),
        ("mirror bad port", |r| r.spec.registry = raw_registry("harbor.example.com:99999"),
            &["spec.registry.mirror: `harbor.example.com:99999` has an invalid port `99999`"]),
        ("mirror bad path", |r| r.spec.registry = raw_registry("harbor.example.com/K8s/"),
            &["spec.registry.mirror: `harbor.example.com/K8s` has an invalid repository path `K8s`: lowercase letters, digits and single `.`, `_` or `-` between them, components separated by `/`"]),
        ("mirror empty", |r| r.spec.registry = raw_registry(""),
            &["spec.registry.mirror: is required: a registry like `harbor.example.com/k8s` (host[:port][/path], no scheme)"]),
        ("mirror forms", |r| r.spec.registry = raw_registry("10.0.0.9:5000/mirror/k8s-images"), &[]),
        ("mirror ipv6", |r| r.spec.registry = raw_registry("[fd00::9]:5000"), &[]),
        ("mirror localhost", |r| r.spec.registry = raw_registry("localhost/k8s"), &[]),
        ("ca bundle not pem", |r| r.spec.registry = Some(RawRegistry { mirror: "harbor.example.com".into(), ca_bundle: Some("MIIB…".into()), insecure_skip_verify: false }),
            &["spec.registry.caBundle: is not a PEM certificate bundle: certificate 1 does not start with `-----BEGIN CERTIFICATE-----`"]),
        ("ca bundle bad base64", |r| r.spec.registry = Some(RawRegistry { mirror: "harbor.example.com".into(), ca_bundle: Some("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n".into()), insecure_skip_verify: false }),
            &["spec.registry.caBundle: certificate 1 is not valid base64: Invalid symbol 37, offset 0."]),
        ("ca bundle and insecure", |r| r.spec.registry = Some(RawRegistry { mirror: "harbor.example.com".into(), ca_bundle: Some(TEST_CA_PEM.into()), insecure_skip_verify: true }),
            &["spec.registry.insecureSkipVerify: set either `caBundle` (verify the mirror with it) or `insecureSkipVerify`, not both"]),
        ("ca bundle of two", |r| r.spec.registry = Some(RawRegistry { mirror: "harbor.example.com".into(), ca_bundle: Some(format!("{TEST_CA_PEM}\n{TEST_CA_PEM}")), insecure_skip_verify: false }), &[]),
        ("storage both", |r| r.spec.storage = Some(RawStorage { default_datastore: Some("/DC0/datastore/LocalDS_0".into()), storage_policy: Some("gold".into()) }),
            &["spec.storage: set either `defaultDatastore` or `storagePolicy`, not both"]),
        ("storage none", |r| r.spec.storage = Some(RawStorage::default()),
            &["spec.storage: set `defaultDatastore` or `storagePolicy` (or drop `storage` to default to the control plane domain's datastore)"]),
        ("storage on a datastore cluster", |r| {
            r.spec.placement_domains[1].datastore = None;
            r.spec.placement_domains[1].datastore_cluster = Some("/DC0/datastore/SP0".into());
            r.spec.storage = Some(RawStorage { default_datastore: Some("/DC0/datastore/SP0/".into()), storage_policy: None });
        }, &["spec.storage.defaultDatastore: `/DC0/datastore/SP0` is the datastore cluster of spec.placementDomains[1]: a datastore cluster cannot be the CSI default datastore; name one of its datastores or use `storagePolicy`"]),
        ("storage policy blank", |r| r.spec.storage = Some(RawStorage { default_datastore: None, storage_policy: Some(" ".into()) }),
            &["spec.storage.storagePolicy: must be a storage policy name on one line"]),
        ("pod network too small", |r| r.spec.network.as_mut().unwrap().pod_cidr = Some("10.244.0.0/22".into()),
            &["spec.network.podCidr: 10.244.0.0/22 has room for 4 nodes (a /24 each), but the spec asks for 8"]),
        ("pod network below a node block", |r| r.spec.network.as_mut().unwrap().pod_cidr = Some("10.244.0.0/25".into()),
            &["spec.network.podCidr: 10.244.0.0/25 is smaller than the /24 each node gets from it"]),
        ("service network too large", |r| r.spec.network.as_mut().unwrap().service_cidr = Some("10.64.0.0/11".into()),
            &["spec.network.serviceCidr: 10.64.0.0/11 is larger than the API server allows: use /12 or smaller"]),
    ];
    for (name, edit, expected) in cases {
        let found = problems(edit);
        assert_eq!(
            found,
            expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "case `{name}`"
        );
    }
}

#[test]
fn new_field_accessors_and_defaults() {
    let spec = example();
    assert_eq!(spec.cni(), crate::addons::Cni::Cilium);
    assert_eq!(spec.cloud_credentials().as_str(), "demo-cloud");
    assert!(spec.registry().is_none());
    // No `storage`: the control plane domain's plain datastore.
    assert_eq!(
        spec.default_storage(),
        Some(DefaultStorageSpec::Datastore(
            "/DC0/datastore/LocalDS_0".into()
        ))
    );
    assert_eq!(spec.pod_cidr().to_string(), DEFAULT_POD_CIDR);

    // The control plane on a datastore cluster: no default class.
    let on_cluster = edited(|r| {
        r.spec.placement_domains[0].datastore = None;
        r.spec.placement_domains[0].datastore_cluster = Some("/DC0/datastore/SP0".into());
    })
    .unwrap();
    assert_eq!(on_cluster.default_storage(), None);
    let canonical = on_cluster.to_yaml();
    assert!(!canonical.contains("storage:"), "{canonical}");
    assert_eq!(ClusterSpec::from_yaml(&canonical).unwrap(), on_cluster);

    // Explicit policy, registry with CA, calico: round trip.
    let custom = edited(|r| {
        r.spec.storage = Some(RawStorage {
            default_datastore: None,
            storage_policy: Some("vSAN Default Storage Policy".into()),
        });
        r.spec.registry = Some(RawRegistry {
            mirror: "harbor.example.com:8443/k8s/".into(),
            ca_bundle: Some(TEST_CA_PEM.into()),
            insecure_skip_verify: false,
        });
        r.spec.network.as_mut().unwrap().cni = Some("calico".into());
    })
    .unwrap();
    assert_eq!(
        custom.default_storage(),
        Some(DefaultStorageSpec::Policy(
            "vSAN Default Storage Policy".into()
        ))
    );
    let registry = custom.registry().unwrap();
    assert_eq!(registry.mirror(), "harbor.example.com:8443/k8s");
    assert_eq!(registry.host(), "harbor.example.com:8443");
    assert_eq!(registry.host_name(), "harbor.example.com");
    assert_eq!(registry.path(), Some("k8s"));
    assert_eq!(registry.ca_bundle(), Some(TEST_CA_PEM));
    assert!(!registry.insecure_skip_verify());
    assert_eq!(custom.cni(), crate::addons::Cni::Calico);
    let yaml = custom.to_yaml();
    assert!(
        yaml.contains("  registry:\n    mirror: harbor.example.com:8443/k8s\n    caBundle: |\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("  storage:\n    storagePolicy: vSAN Default Storage Policy\n"),
        "{yaml}"
    );
    assert_eq!(ClusterSpec::from_yaml(&yaml).unwrap(), custom);

    let ipv6 = edited(|r| r.spec.registry = raw_registry("[fd00::9]:5000")).unwrap();
    let registry = ipv6.registry().unwrap();
    assert_eq!(
        (registry.host(), registry.host_name(), registry.path()),
        ("[fd00::9]:5000", "fd00::9", None)
    );
}

#[test]
fn check_pools_refuses_pod_and_service_networks_on_node_networks() {
    let pools = validate_pools(&parse_pools_yaml(EXAMPLE_POOLS).unwrap(), false).unwrap();
    // The old default pod network next to a 192.168.x LAN.
    let lan = EXAMPLE_POOLS.replace("10.20.0.", "192.168.1.");
    let lan_pools = validate_pools(&parse_pools_yaml(&lan).unwrap(), false).unwrap();
    let spec = edited(|raw| {
        raw.spec.network = Some(RawClusterNetwork {
            pod_cidr: Some("192.168.0.0/16".into()),
            service_cidr: Some("10.20.0.0/16".into()),
            cni: None,
        });
        raw.spec.control_plane.vip = Some(RawVip {
            address: None,
            from_pool: Some("nodes".into()),
        });
    })
    .unwrap();
    let found: Vec<String> = spec
        .check_pools(&lan_pools)
        .unwrap_err()
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found, [
        "spec.network.podCidr: 192.168.0.0/16 overlaps network 192.168.1.0/24 of IP pool `nodes` (spec.placementDomains[0].ipPool): choose a pod network that no node network uses",
    ]);
    let found: Vec<String> = spec
        .check_pools(&pools)
        .unwrap_err()
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found, [
        "spec.network.serviceCidr: 10.20.0.0/16 overlaps network 10.20.0.0/24 of IP pool `nodes` (spec.placementDomains[0].ipPool): choose a service network that no node network uses",
    ]);
    // The defaults fit the example's pool.
    example().check_pools(&pools).unwrap();
}

/// Problems whose text contains `needle`.
fn matching<'a>(problems: &'a [String], needle: &str) -> Vec<&'a String> {
    problems.iter().filter(|p| p.contains(needle)).collect()
}

#[test]
fn counts_sizes_and_lists_are_bounded_naming_the_field() {
    let found = problems(|raw| {
        raw.spec.node_pools[0].replicas = 1_000_000;
        raw.spec.node_pools[1].cpu = 1000;
        raw.spec.node_pools[1].memory_mib = 30 * 1024 * 1024;
        raw.spec.control_plane.disk_gib = Some(100_000);
        let key = raw.spec.ssh_authorized_keys[0].clone();
        raw.spec.ssh_authorized_keys = (0..100).map(|i| format!("{key}{i}")).collect();
        raw.spec.ntp_servers = vec!["ntp.example.com".into(), "ntp.example.com".into()];
    });
    for needle in [
        "spec.nodePools[0].replicas: 1000000 is more than the 500 nodes",
        "spec.nodePools: 1000005 nodes in all, more than the 1000",
        "spec.nodePools[1].cpu: 1000 is more than the 768 vCPUs",
        "spec.nodePools[1].memoryMiB:",
        "spec.controlPlane.diskGiB: 100000 is more than the 63488 GiB",
        "spec.sshAuthorizedKeys: 100 entries, at most 64",
        "spec.ntpServers[1]: repeats `ntp.example.com`",
    ] {
        assert_eq!(matching(&found, needle).len(), 1, "{needle} in {found:#?}");
    }
    // The pod network check does not pile on a million-node plan either:
    // validation answers at once.
    let huge_key = problems(|raw| {
        raw.spec.ssh_authorized_keys = vec![format!("ssh-ed25519 {}", "A".repeat(20_000))]
    });
    assert!(
        !matching(&huge_key, "sshAuthorizedKeys[0]: is 20012 bytes").is_empty(),
        "{huge_key:#?}"
    );
}

#[test]
fn repeated_taints_are_refused() {
    let found = problems(|raw| {
        let taint = raw.spec.node_pools[1].taints[0].clone();
        raw.spec.node_pools[1].taints.push(taint);
    });
    assert_eq!(
        matching(&found, "spec.nodePools[1].taints[1]: repeats").len(),
        1,
        "{found:#?}"
    );
}

#[test]
fn pod_and_service_networks_must_share_an_address_family() {
    let found = problems(|raw| {
        raw.spec.network = Some(RawClusterNetwork {
            service_cidr: Some("fd00:10:96::/108".into()),
            ..raw.spec.network.clone().unwrap_or_default()
        });
    });
    assert_eq!(
        matching(
            &found,
            "spec.network.serviceCidr: fd00:10:96::/108 and the pod network"
        )
        .len(),
        1,
        "{found:#?}"
    );
}

#[test]
fn the_vip_may_be_neither_the_gateway_nor_a_name_server() {
    let pools = validate_pools(&parse_pools_yaml(EXAMPLE_POOLS).unwrap(), false).unwrap();
    for (address, needle) in [
        ("10.20.0.1", "is the gateway of IP pool `nodes`"),
        ("10.20.0.2", "is a name server of IP pool `nodes`"),
    ] {
        let spec = edited(|raw| {
            raw.spec.control_plane.vip.as_mut().unwrap().address = Some(address.into())
        })
        .unwrap();
        let err = spec.check_pools(&pools).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "spec.controlPlane.vip.address: {address} {needle}"
            )),
            "{err}"
        );
    }
}

#[test]
fn pools_must_hold_every_node_and_the_plan_says_how_many() {
    let spec = example();
    // 3 control-plane + 3 workers + 2 infra, all in pool `nodes`.
    let needed = spec.addresses_needed();
    assert_eq!(needed.len(), 1);
    assert_eq!(needed.values().copied().collect::<Vec<_>>(), [8]);
    let available = |n: u128| std::collections::BTreeMap::from([("nodes".to_owned(), n)]);
    assert!(spec.check_capacity(&available(8)).is_ok());
    let err = spec.check_capacity(&available(7)).unwrap_err().to_string();
    assert!(
        err.contains("need 8 addresses from IP pool `nodes`, which has 7 left"),
        "{err}"
    );
}

#[test]
fn a_pool_may_not_lease_out_its_own_name_server() {
    let text = "pools:\n  - name: lan\n    range: { start: 10.1.0.10, end: 10.1.0.50 }\n    prefix: 24\n    gateway: 10.1.0.1\n    nameServers: [10.1.0.20]\n";
    let err = validate_pools(&parse_pools_yaml(text).unwrap(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nameServers[0]: 10.1.0.20 is inside the pool's addresses"),
        "{err}"
    );
    let excluded = text.replace(
        "    nameServers",
        "    exclude: [10.1.0.20]\n    nameServers",
    );
    assert!(validate_pools(&parse_pools_yaml(&excluded).unwrap(), false).is_ok());
}
