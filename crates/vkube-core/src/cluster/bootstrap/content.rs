//! What goes onto a node, independent of the boot format: files (CA
//! material and kube-vip on control-plane nodes, kubeadm config, proxy
//! settings, the bootstrap script) and systemd units (the VMXNET3 offload
//! fix, and on Flatcar the bootstrap service). `cloud_init` and `ignition`
//! package the same [`NodeContent`].
//!
//! Key material is kept in `/etc/kubernetes/vkube/pki` and copied into
//! `/etc/kubernetes/pki` before each kubeadm attempt: a failed attempt runs
//! `kubeadm reset`, which deletes `/etc/kubernetes/pki` and the manifests.

use std::net::IpAddr;

use super::{kubeadm, NodeBootstrap, NIC_NAME};
use crate::cluster::error::Error;
use crate::cluster::plan::NodeRole;
use crate::ipam::Cidr;

/// Where the kubeadm config is written (0600: it holds the token).
pub const KUBEADM_CONFIG_PATH: &str = "/etc/kubernetes/vkube/kubeadm.yaml";
/// The bootstrap script, run once by cloud-init or a systemd unit.
pub const BOOTSTRAP_SCRIPT_PATH: &str = "/opt/vkube/bootstrap.sh";
/// Name of the offload-fix unit.
pub const OFFLOAD_UNIT: &str = "vkube-tunnel-offload.service";
/// Name of the bootstrap unit (Flatcar).
pub const BOOTSTRAP_UNIT: &str = "vkube-bootstrap.service";
/// containerd's proxy drop-in.
pub const CONTAINERD_PROXY_DROP_IN: &str =
    "/etc/systemd/system/containerd.service.d/http-proxy.conf";
/// How many times the bootstrap script tries kubeadm before giving up.
pub const KUBEADM_ATTEMPTS: u32 = 30;

const VKUBE_PKI: &str = "/etc/kubernetes/vkube/pki";
const VKUBE_KUBE_VIP: &str = "/etc/kubernetes/vkube/kube-vip.yaml";

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// Octal mode, e.g. `0o600`.
    pub mode: u32,
    /// Contents.
    pub content: String,
    /// Append to an existing file instead of replacing it.
    pub append: bool,
}

/// One systemd unit to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Unit name, e.g. `vkube-tunnel-offload.service`.
    pub name: String,
    /// Unit file contents.
    pub content: String,
    /// Enable at boot.
    pub enabled: bool,
}

/// Everything a node gets, format-independent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeContent {
    /// Files, in write order.
    pub files: Vec<File>,
    /// systemd units.
    pub units: Vec<Unit>,
    /// NTP servers (cloud-init's `ntp` module configures chrony).
    pub ntp_servers: Vec<String>,
    /// SSH keys.
    pub ssh_authorized_keys: Vec<String>,
}

fn file(path: &str, mode: u32, content: impl Into<String>) -> File {
    File {
        path: path.to_owned(),
        mode,
        content: content.into(),
        append: false,
    }
}

/// The node's content. Fails only on a missing lease (static allocation)
/// or unreadable CA material.
pub fn render(input: &NodeBootstrap<'_>) -> Result<NodeContent, Error> {
    let spec = input.spec;
    let mut content = NodeContent {
        ntp_servers: spec.ntp_servers().to_vec(),
        ssh_authorized_keys: spec.ssh_authorized_keys().to_vec(),
        ..NodeContent::default()
    };
    let files = &mut content.files;
    if input.is_control_plane() {
        let pki = input.pki;
        for (name, text, mode) in [
            ("ca.crt", &pki.ca.pair.cert_pem, 0o644),
            ("ca.key", &pki.ca.pair.key_pem, 0o600),
            ("etcd/ca.crt", &pki.etcd_ca.pair.cert_pem, 0o644),
            ("etcd/ca.key", &pki.etcd_ca.pair.key_pem, 0o600),
            (
                "front-proxy-ca.crt",
                &pki.front_proxy_ca.pair.cert_pem,
                0o644,
            ),
            (
                "front-proxy-ca.key",
                &pki.front_proxy_ca.pair.key_pem,
                0o600,
            ),
            ("sa.key", &pki.service_account_key_pem, 0o600),
            ("sa.pub", &pki.service_account_public_pem, 0o644),
        ] {
            files.push(file(&format!("{VKUBE_PKI}/{name}"), mode, text.as_str()));
        }
        files.push(file(VKUBE_KUBE_VIP, 0o644, kube_vip_manifest(input)));
    }
    files.push(file(KUBEADM_CONFIG_PATH, 0o600, kubeadm::render(input)?));

    if let Some(proxy) = spec.proxy() {
        let no_proxy = no_proxy(input)?;
        let mut variables: Vec<(&str, &str)> = Vec::new();
        if let Some(http) = proxy.http_proxy() {
            variables.push(("HTTP_PROXY", http));
            variables.push(("http_proxy", http));
        }
        if let Some(https) = proxy.https_proxy() {
            variables.push(("HTTPS_PROXY", https));
            variables.push(("https_proxy", https));
        }
        variables.push(("NO_PROXY", &no_proxy));
        variables.push(("no_proxy", &no_proxy));
        let environment: String = variables
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\"\n"))
            .collect();
        files.push(File {
            path: "/etc/environment".into(),
            mode: 0o644,
            content: environment,
            append: true,
        });
        let mut drop_in = String::from("# vkube: proxy settings for image pulls\n[Service]\n");
        for (key, value) in variables
            .iter()
            .filter(|(k, _)| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        {
            drop_in.push_str(&format!("Environment=\"{key}={value}\"\n"));
        }
        files.push(file(CONTAINERD_PROXY_DROP_IN, 0o644, drop_in));
    }

    if !input.spec.os_family().uses_cloud_init() && !spec.ntp_servers().is_empty() {
        // Flatcar keeps time with systemd-timesyncd.
        files.push(file(
            "/etc/systemd/timesyncd.conf.d/10-vkube.conf",
            0o644,
            format!("[Time]\nNTP={}\n", spec.ntp_servers().join(" ")),
        ));
    }

    if spec.disable_tunnel_offload() {
        content.units.push(Unit {
            name: OFFLOAD_UNIT.into(),
            content: offload_unit(),
            enabled: true,
        });
    }
    content
        .files
        .push(file(BOOTSTRAP_SCRIPT_PATH, 0o755, bootstrap_script(input)));
    if !spec.os_family().uses_cloud_init() {
        content.units.push(Unit {
            name: BOOTSTRAP_UNIT.into(),
            content: bootstrap_unit(),
            enabled: true,
        });
    }
    Ok(content)
}

/// `NO_PROXY`: the user's entries, then what must never go through a
/// proxy: loopback, the VIP, the node's network, pod and service networks
/// and cluster-local names.
fn no_proxy(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    let spec = input.spec;
    let mut entries: Vec<String> = spec
        .proxy()
        .map(|p| p.no_proxy().to_vec())
        .unwrap_or_default();
    entries.extend([
        "localhost".into(),
        "127.0.0.1".into(),
        input.vip.to_string(),
    ]);
    if let Some(lease) = input.static_lease()? {
        if let Ok(network) = Cidr::containing(lease.address, lease.prefix) {
            entries.push(network.to_string());
        }
    }
    entries.extend([
        spec.pod_cidr().to_string(),
        spec.service_cidr().to_string(),
        ".svc".into(),
        ".cluster.local".into(),
    ]);
    let mut seen = std::collections::BTreeSet::new();
    entries.retain(|e| seen.insert(e.clone()));
    Ok(entries.join(","))
}

/// VMXNET3's UDP tunnel segmentation offload corrupts VXLAN/Geneve
/// traffic on hardware version 14+ (CNI pods reach each other by ICMP but
/// not TCP); turning it off at every boot is the known workaround.
fn offload_unit() -> String {
    format!(
        "[Unit]
Description=vkube: turn off VMXNET3 UDP tunnel offload on {NIC_NAME} (breaks CNI overlay traffic)
Wants=sys-subsystem-net-devices-{NIC_NAME}.device
After=sys-subsystem-net-devices-{NIC_NAME}.device
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ethtool -K {NIC_NAME} tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off

[Install]
WantedBy=multi-user.target
"
    )
}

fn bootstrap_unit() -> String {
    format!(
        "[Unit]
Description=vkube: kubeadm bootstrap
Wants=network-online.target
After=network-online.target containerd.service
ConditionPathExists=!/etc/kubernetes/kubelet.conf

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/bash {BOOTSTRAP_SCRIPT_PATH}

[Install]
WantedBy=multi-user.target
"
    )
}

/// The script that runs kubeadm, retrying (with `kubeadm reset`) until the
/// API server behind the VIP answers: joining nodes may boot before the
/// first control-plane node is ready, and control-plane joins serialize
/// themselves on etcd membership this way.
fn bootstrap_script(input: &NodeBootstrap<'_>) -> String {
    let spec = input.spec;
    let mut script = format!(
        "#!/bin/bash
# vkube bootstrap of {node} ({role:?}); generated, do not edit.
set -uo pipefail
export PATH=/opt/bin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
if [ -f /etc/kubernetes/kubelet.conf ]; then
  echo 'vkube: node already bootstrapped'
  exit 0
fi
swapoff -a
systemctl daemon-reload
",
        node = input.node,
        role = input.role,
    );
    if spec.disable_tunnel_offload() {
        script.push_str(&format!("systemctl enable --now {OFFLOAD_UNIT}\n"));
    }
    if spec.proxy().is_some() {
        script.push_str("systemctl restart containerd\n");
    }
    let restore = if input.is_control_plane() {
        format!(
            "  mkdir -p /etc/kubernetes/pki /etc/kubernetes/manifests
  cp -a {VKUBE_PKI}/. /etc/kubernetes/pki/
  install -m 0644 {VKUBE_KUBE_VIP} /etc/kubernetes/manifests/kube-vip.yaml
"
        )
    } else {
        String::new()
    };
    let command = match input.role {
        NodeRole::Init => format!("kubeadm init --config {KUBEADM_CONFIG_PATH}"),
        NodeRole::ControlPlane | NodeRole::Worker => {
            format!("kubeadm join --config {KUBEADM_CONFIG_PATH}")
        }
    };
    script.push_str(&format!(
        "for attempt in $(seq 1 {KUBEADM_ATTEMPTS}); do
{restore}  if {command}; then
    echo \"vkube: bootstrap done after $attempt attempt(s)\"
    exit 0
  fi
  kubeadm reset --force || true
  sleep 20
done
echo 'vkube: kubeadm failed {KUBEADM_ATTEMPTS} times' >&2
exit 1
"
    ));
    script
}

/// kube-vip as a static pod announcing the VIP by ARP, with leader
/// election among control-plane nodes.
pub fn kube_vip_manifest(input: &NodeBootstrap<'_>) -> String {
    let spec = input.spec;
    // From Kubernetes 1.29, admin.conf only gains rights once kubeadm init
    // has created a binding, which needs the API server behind the VIP:
    // the first node uses super-admin.conf instead (kube-vip issue #684).
    let kubeconfig = if input.role == NodeRole::Init && spec.kubernetes_version().minor() >= 29 {
        "/etc/kubernetes/super-admin.conf"
    } else {
        "/etc/kubernetes/admin.conf"
    };
    let prefix = match input.vip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let env = [
        ("vip_arp", "true".to_owned()),
        ("port", super::API_SERVER_PORT.to_string()),
        ("vip_interface", NIC_NAME.to_owned()),
        ("vip_cidr", prefix.to_string()),
        ("cp_enable", "true".to_owned()),
        ("cp_namespace", "kube-system".to_owned()),
        ("vip_leaderelection", "true".to_owned()),
        ("vip_leasename", "plndr-cp-lock".to_owned()),
        ("vip_leaseduration", "5".to_owned()),
        ("vip_renewdeadline", "3".to_owned()),
        ("vip_retryperiod", "1".to_owned()),
        ("address", input.vip.to_string()),
    ];
    let env: Vec<serde_yaml::Value> = env
        .into_iter()
        .map(|(name, value)| {
            let mut map = serde_yaml::Mapping::new();
            map.insert("name".into(), name.into());
            map.insert("value".into(), value.into());
            serde_yaml::Value::Mapping(map)
        })
        .collect();
    let pod = serde_yaml::to_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system"},
        "spec": {
            "containers": [{
                "name": "kube-vip",
                "image": spec.control_plane().kube_vip_image(),
                "imagePullPolicy": "IfNotPresent",
                "args": ["manager"],
                "env": env,
                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                "volumeMounts": [{"mountPath": "/etc/kubernetes/admin.conf", "name": "kubeconfig"}],
            }],
            "hostAliases": [{"hostnames": ["kubernetes"], "ip": "127.0.0.1"}],
            "hostNetwork": true,
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": kubeconfig}}],
        },
    }))
    .expect("json converts");
    serde_yaml::to_string(&pod).expect("value serializes")
}
