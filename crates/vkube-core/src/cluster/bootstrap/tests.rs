//! Bootstrap rendering tests: kubeadm documents parsed back, cloud-config
//! validated by `cloud-init schema`, metadata, Ignition and guestinfo.

use std::net::IpAddr;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::kubeadm::{ClusterConfiguration, InitConfiguration, JoinConfiguration};
use super::token::BootstrapToken;
use super::*;
use crate::cluster::pki::tests::pki;
use crate::cluster::spec_tests::{example, EXAMPLE_POOLS};
use crate::cluster::{RawClusterSpec, RawProxy};
use crate::ipam::{parse_pools_yaml, validate_pools, Lease};

fn lease(node: &str, last: u8) -> Lease {
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

fn spec_with(edit: impl FnOnce(&mut RawClusterSpec)) -> ClusterSpec {
    let mut raw = example().to_raw();
    edit(&mut raw);
    raw.validate().unwrap()
}

/// Renders with `f` for a node of `spec`.
fn with_input<T>(
    spec: &ClusterSpec,
    node: &str,
    group: &str,
    role: NodeRole,
    lease: Option<&Lease>,
    f: impl FnOnce(&NodeBootstrap<'_>) -> T,
) -> T {
    let pki = pki();
    let token = token();
    let input = NodeBootstrap {
        spec,
        node,
        group,
        role,
        mac_address: "00:50:56:AB:CD:EF",
        lease,
        vip: vip(),
        token: &token,
        pki: &pki,
    };
    f(&input)
}

#[test]
fn kubeadm_init_documents_parse_back() {
    let spec = example();
    let lease = lease("demo-cp-0", 10);
    let text = with_input(
        &spec,
        "demo-cp-0",
        "cp",
        NodeRole::Init,
        Some(&lease),
        |i| kubeadm::render(i).unwrap(),
    );
    let docs: Vec<&str> = text.split("---\n").collect();
    assert_eq!(docs.len(), 2, "{text}");
    let init: InitConfiguration = serde_yaml::from_str(docs[0]).unwrap();
    assert_eq!(init.api_version, "kubeadm.k8s.io/v1beta3");
    assert_eq!(init.kind, "InitConfiguration");
    assert_eq!(init.bootstrap_tokens[0].token, "abcdef.0123456789abcdef");
    assert_eq!(
        init.local_api_endpoint.advertise_address.as_deref(),
        Some("10.20.0.10")
    );
    assert_eq!(init.node_registration.name, "demo-cp-0");
    assert_eq!(
        init.node_registration.kubelet_extra_args["cloud-provider"],
        "external"
    );
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
        cluster.controller_manager.extra_args["cloud-provider"],
        "external"
    );
    // Raw key spelling kubeadm expects.
    assert!(
        docs[0].contains("localAPIEndpoint:") && docs[1].contains("certSANs:"),
        "{text}"
    );
}

#[test]
fn kubeadm_join_for_control_plane_and_workers() {
    let spec = example();
    let cp_lease = lease("demo-cp-1", 11);
    let text = with_input(
        &spec,
        "demo-cp-1",
        "cp",
        NodeRole::ControlPlane,
        Some(&cp_lease),
        |i| kubeadm::render(i).unwrap(),
    );
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
    let text = with_input(
        &spec,
        "demo-infra-0",
        "infra",
        NodeRole::Worker,
        Some(&worker_lease),
        |i| kubeadm::render(i).unwrap(),
    );
    let join: JoinConfiguration = serde_yaml::from_str(&text).unwrap();
    assert!(join.control_plane.is_none());
    assert_eq!(
        join.node_registration.kubelet_extra_args["node-labels"],
        "node.kubernetes.io/pool=infra"
    );
    let taints = join.node_registration.taints.unwrap();
    assert_eq!(
        (taints[0].key.as_str(), taints[0].value.as_deref()),
        ("dedicated", Some("infra"))
    );
    assert!(text.contains("effect: NoSchedule"), "{text}");
}

#[test]
fn static_allocation_needs_a_lease() {
    let spec = example();
    let error = with_input(&spec, "demo-cp-0", "cp", NodeRole::Init, None, |i| {
        guestinfo::render(i).unwrap_err()
    });
    assert_eq!(
        error.to_string(),
        "node `demo-cp-0` has no address lease (static IP allocation)"
    );
}

#[test]
fn metadata_static_and_dhcp() {
    let spec = example();
    let lease = lease("demo-workers-0", 12);
    let text = with_input(
        &spec,
        "demo-workers-0",
        "workers",
        NodeRole::Worker,
        Some(&lease),
        |i| metadata::render(i).unwrap(),
    );
    assert_eq!(
        text,
        "instance-id: demo-workers-0
local-hostname: demo-workers-0
network:
  version: 2
  ethernets:
    ens192:
      match:
        macaddress: 00:50:56:ab:cd:ef
      set-name: ens192
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
    let parsed: metadata::Metadata = with_input(
        &dhcp,
        "demo-workers-0",
        "workers",
        NodeRole::Worker,
        None,
        |i| serde_yaml::from_str(&metadata::render(i).unwrap()).unwrap(),
    );
    let ethernet = &parsed.network.ethernets["ens192"];
    assert!(ethernet.dhcp4 && ethernet.addresses.is_empty() && ethernet.nameservers.is_none());
}

/// Every variant whose user-data the schema test checks.
fn cloud_config_variants() -> Vec<(String, String)> {
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
    let leases = [
        lease("demo-cp-0", 10),
        lease("demo-cp-1", 11),
        lease("demo-workers-0", 12),
    ];
    let mut variants = Vec::new();
    for (label, spec, static_ip) in [
        ("static", &spec, true),
        ("proxy", &proxied, true),
        ("dhcp", &dhcp, false),
        ("rocky", &rocky, true),
    ] {
        for ((node, group, role), lease) in [
            (("demo-cp-0", "cp", NodeRole::Init), &leases[0]),
            (("demo-cp-1", "cp", NodeRole::ControlPlane), &leases[1]),
            (("demo-workers-0", "workers", NodeRole::Worker), &leases[2]),
        ] {
            let text = with_input(spec, node, group, role, static_ip.then_some(lease), |i| {
                cloud_init::render(i).unwrap()
            });
            variants.push((format!("{label}-{node}"), text));
        }
    }
    variants
}

#[test]
fn cloud_config_passes_cloud_init_schema() {
    let required = std::env::var("VKUBE_REQUIRE_CLOUD_INIT").is_ok_and(|v| v == "1");
    if Command::new("cloud-init")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(!required, "VKUBE_REQUIRE_CLOUD_INIT=1 but `cloud-init` is not installed (apt-get install -y cloud-init)");
        eprintln!("note: `cloud-init` not installed, skipping schema validation (apt-get install -y cloud-init)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("vkube-cloud-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in cloud_config_variants() {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, &text).unwrap();
        let out = Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&path)
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.contains("Valid cloud-config"),
            "{name}: {report}\n{text}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cloud_config_contents() {
    let variants: std::collections::BTreeMap<String, String> =
        cloud_config_variants().into_iter().collect();
    let value = |name: &str| -> serde_yaml::Value {
        let text = &variants[name];
        assert!(text.starts_with("#cloud-config\n"), "{name}");
        serde_yaml::from_str(text).unwrap()
    };
    let paths = |v: &serde_yaml::Value| -> Vec<String> {
        v["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let init = value("static-demo-cp-0");
    let init_paths = paths(&init);
    for expected in [
        "/etc/kubernetes/vkube/pki/ca.key",
        "/etc/kubernetes/vkube/pki/etcd/ca.crt",
        "/etc/kubernetes/vkube/pki/sa.key",
        "/etc/kubernetes/vkube/kube-vip.yaml",
        "/etc/kubernetes/vkube/kubeadm.yaml",
        "/opt/vkube/bootstrap.sh",
        "/etc/systemd/system/vkube-tunnel-offload.service",
    ] {
        assert!(
            init_paths.iter().any(|p| p == expected),
            "missing {expected} in {init_paths:?}"
        );
    }
    let ca_key = init["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/kubernetes/vkube/pki/ca.key")
        .unwrap();
    assert_eq!(ca_key["permissions"], "0600");
    assert_eq!(ca_key["content"].as_str().unwrap(), pki().ca.pair.key_pem);
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
    assert_eq!(init["runcmd"][0][1], "/opt/vkube/bootstrap.sh");
    let script = init["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/opt/vkube/bootstrap.sh")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        script.contains("kubeadm init --config /etc/kubernetes/vkube/kubeadm.yaml"),
        "{script}"
    );
    assert!(
        script.contains("cp -a /etc/kubernetes/vkube/pki/. /etc/kubernetes/pki/"),
        "{script}"
    );
    assert!(
        script.contains("systemctl enable --now vkube-tunnel-offload.service"),
        "{script}"
    );
    let unit = init["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/systemd/system/vkube-tunnel-offload.service")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(unit.contains("ExecStart=/usr/sbin/ethtool -K ens192 tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off"), "{unit}");
    assert!(unit.contains("WantedBy=multi-user.target"), "{unit}");

    // kube-vip on the first node of a 1.29+ cluster uses super-admin.conf.
    let kube_vip = init["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/kubernetes/vkube/kube-vip.yaml")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let pod: serde_yaml::Value = serde_yaml::from_str(&kube_vip).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(
        pod["spec"]["volumes"][0]["hostPath"]["path"],
        "/etc/kubernetes/super-admin.conf"
    );
    let env = pod["spec"]["containers"][0]["env"].as_sequence().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "address" && e["value"] == "10.20.0.5"));
    assert!(env
        .iter()
        .any(|e| e["name"] == "vip_interface" && e["value"] == "ens192"));
    let join_cp = value("static-demo-cp-1");
    let join_vip = join_cp["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/kubernetes/vkube/kube-vip.yaml")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        join_vip.contains("path: /etc/kubernetes/admin.conf"),
        "{join_vip}"
    );

    // Workers get no CA material or kube-vip.
    let worker_paths = paths(&value("static-demo-workers-0"));
    assert!(
        worker_paths
            .iter()
            .all(|p| !p.contains("/pki/") && !p.contains("kube-vip")),
        "{worker_paths:?}"
    );

    // Proxy: /etc/environment appended, containerd drop-in, NO_PROXY covers the cluster.
    let proxied = value("proxy-demo-workers-0");
    let files = proxied["write_files"].as_sequence().unwrap();
    let environment = files
        .iter()
        .find(|f| f["path"] == "/etc/environment")
        .unwrap();
    assert_eq!(environment["append"], true);
    let environment = environment["content"].as_str().unwrap();
    assert!(
        environment.contains("HTTPS_PROXY=\"http://proxy.example.com:3128\"\n"),
        "{environment}"
    );
    assert!(environment.contains("NO_PROXY=\"vc.example.com,.example.com,localhost,127.0.0.1,10.20.0.5,10.20.0.0/24,10.244.0.0/16,10.96.0.0/12,.svc,.cluster.local\"\n"), "{environment}");
    let drop_in = files
        .iter()
        .find(|f| f["path"] == "/etc/systemd/system/containerd.service.d/http-proxy.conf")
        .unwrap()["content"]
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
    assert!(paths(&dhcp).iter().all(|p| !p.contains("tunnel-offload")));
}

#[test]
fn ignition_for_flatcar() {
    let spec = spec_with(|r| r.spec.os_family = Some("flatcar".into()));
    let lease = lease("demo-cp-0", 10);
    let pairs = with_input(
        &spec,
        "demo-cp-0",
        "cp",
        NodeRole::Init,
        Some(&lease),
        |i| guestinfo::render(i).unwrap(),
    );
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
    let files = json["storage"]["files"].as_array().unwrap();
    let decode = |path: &str| -> String {
        let file = files
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
    assert_eq!(
        decode("/etc/kubernetes/vkube/pki/ca.crt"),
        pki().ca.pair.cert_pem
    );
    assert!(decode("/etc/systemd/timesyncd.conf.d/10-vkube.conf")
        .contains("NTP=0.pool.ntp.org 1.pool.ntp.org"));
    let key_file = files
        .iter()
        .find(|f| f["path"] == "/etc/kubernetes/vkube/pki/ca.key")
        .unwrap();
    assert_eq!(key_file["mode"], 0o600);
    let units: Vec<&str> = json["systemd"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        units,
        ["vkube-tunnel-offload.service", "vkube-bootstrap.service"]
    );
    assert!(json["systemd"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["enabled"] == true));
}

#[test]
fn guestinfo_for_cloud_init() {
    let spec = example();
    let lease = lease("demo-workers-0", 12);
    let pairs = with_input(
        &spec,
        "demo-workers-0",
        "workers",
        NodeRole::Worker,
        Some(&lease),
        |i| guestinfo::render(i).unwrap(),
    );
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
    let userdata = String::from_utf8(STANDARD.decode(&pairs[2].1).unwrap()).unwrap();
    assert!(userdata.starts_with("#cloud-config\n"));
    assert_eq!(
        (pairs[1].1.as_str(), pairs[3].1.as_str()),
        ("base64", "base64")
    );
}
