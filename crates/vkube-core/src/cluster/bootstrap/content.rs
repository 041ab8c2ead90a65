//! What goes onto a node, independent of the boot format: files (CA
//! material, the kube-vip template and hosts file on control-plane nodes,
//! the kubeadm config template, add-on manifests on the first node,
//! registry mirror and proxy settings, the node library and bootstrap
//! script) and systemd units (bootstrap, VMXNET3 offload fix, and on
//! Flatcar the guestinfo clean-up). `cloud_init` and `ignition` package
//! the same [`NodeContent`], so both boot formats do the same things.
//!
//! Key material is kept in `/etc/kubernetes/vkube/pki` and copied into
//! `/etc/kubernetes/pki` before each kubeadm attempt: a failed attempt runs
//! `kubeadm reset`, which deletes `/etc/kubernetes/pki` and the manifests.

use super::{containerd, kube_vip, kubeadm, script, NodeBootstrap};
use crate::cluster::error::Error;
use crate::ipam::Cidr;

/// The kubeadm config the bootstrap script writes and kubeadm reads
/// (0600: it holds the token; deleted once kubeadm succeeded).
pub const KUBEADM_CONFIG_PATH: &str = "/etc/kubernetes/vkube/kubeadm.yaml";
/// The kubeadm config as delivered, with [`super::NODE_IP_PLACEHOLDER`]
/// under DHCP (0600; deleted once kubeadm succeeded).
pub const KUBEADM_TEMPLATE_PATH: &str = "/etc/kubernetes/vkube/kubeadm.yaml.in";
/// The kube-vip manifest as delivered, with [`super::NIC_PLACEHOLDER`].
pub const KUBE_VIP_TEMPLATE_PATH: &str = "/etc/kubernetes/vkube/kube-vip.yaml.in";
/// The kube-vip manifest with the NIC filled in.
pub const KUBE_VIP_PATH: &str = "/etc/kubernetes/vkube/kube-vip.yaml";
/// Add-on manifests on the first control-plane node.
pub const ADDONS_DIR: &str = "/etc/kubernetes/vkube/addons";
/// The node's admin kubeconfig, written by kubeadm on control-plane nodes.
pub const ADMIN_KUBECONFIG: &str = "/etc/kubernetes/admin.conf";
/// Marker the bootstrap script leaves once everything is done.
pub const BOOTSTRAP_DONE: &str = "/etc/kubernetes/vkube/bootstrap.done";
/// The bootstrap script, run by [`BOOTSTRAP_UNIT`].
pub const BOOTSTRAP_SCRIPT_PATH: &str = "/opt/vkube/bootstrap.sh";
/// The node library the script and units use.
pub const LIBRARY_PATH: &str = "/opt/vkube/lib.sh";
/// Name of the offload-fix unit.
pub const OFFLOAD_UNIT: &str = "vkube-tunnel-offload.service";
/// Name of the bootstrap unit (every OS).
pub const BOOTSTRAP_UNIT: &str = "vkube-bootstrap.service";
/// Name of the unit that clears the Ignition config from guestinfo
/// (Flatcar; cloud-init's datasource does it itself).
pub const GUESTINFO_CLEAR_UNIT: &str = "vkube-guestinfo-clear.service";
/// containerd's proxy drop-in.
pub const CONTAINERD_PROXY_DROP_IN: &str =
    "/etc/systemd/system/containerd.service.d/http-proxy.conf";

/// Staged CA material on control-plane nodes (deleted after kubeadm).
pub(crate) const VKUBE_PKI: &str = "/etc/kubernetes/vkube/pki";

/// One file to write.
#[derive(Clone, PartialEq, Eq)]
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

impl std::fmt::Debug for File {
    // Contents may be key material or credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File")
            .field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("append", &self.append)
            .finish_non_exhaustive()
    }
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

pub(crate) fn file(path: &str, mode: u32, content: impl Into<String>) -> File {
    File {
        path: path.to_owned(),
        mode,
        content: content.into(),
        append: false,
    }
}

/// The node's content. Fails on a missing lease (static allocation), a
/// malformed MAC, a zero token TTL or unreadable CA material.
pub fn render(input: &NodeBootstrap<'_>) -> Result<NodeContent, Error> {
    let spec = input.spec;
    let mac = input.mac()?;
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
        files.push(file(kube_vip::HOSTS_PATH, 0o644, kube_vip::HOSTS));
        files.push(file(
            KUBE_VIP_TEMPLATE_PATH,
            0o644,
            kube_vip::manifest(input),
        ));
    }
    files.push(file(KUBEADM_TEMPLATE_PATH, 0o600, kubeadm::render(input)?));
    for manifest in input.node_addons() {
        let mode = if manifest.has_secrets { 0o600 } else { 0o644 };
        files.push(file(
            &script::addon_path(&manifest.file_name),
            mode,
            manifest.yaml.as_str(),
        ));
    }
    if let Some(registry) = spec.registry() {
        files.extend(containerd::files(registry));
    }
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
    files.push(file(LIBRARY_PATH, 0o755, script::library()));
    files.push(file(
        BOOTSTRAP_SCRIPT_PATH,
        0o755,
        script::bootstrap(input)?,
    ));

    if spec.disable_tunnel_offload() {
        content.units.push(Unit {
            name: OFFLOAD_UNIT.into(),
            content: offload_unit(&mac),
            enabled: true,
        });
    }
    if !spec.os_family().uses_cloud_init() {
        content.units.push(Unit {
            name: GUESTINFO_CLEAR_UNIT.into(),
            content: guestinfo_clear_unit(),
            enabled: true,
        });
    }
    content.units.push(Unit {
        name: BOOTSTRAP_UNIT.into(),
        content: bootstrap_unit(),
        enabled: true,
    });
    Ok(content)
}

/// `NO_PROXY`: the user's entries, then what must never go through a
/// proxy: loopback, the VIP, the node's network, pod and service
/// networks, cluster-local names, and the registry mirror (an internal
/// service by nature: an air-gapped mirror is usually reachable only
/// directly, and pulling cluster images through a proxy would make the
/// proxy part of every node's boot).
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
    if let Some(registry) = spec.registry() {
        entries.push(registry.host_name().to_owned());
    }
    let mut seen = std::collections::BTreeSet::new();
    entries.retain(|e| seen.insert(e.clone()));
    Ok(entries.join(","))
}

/// VMXNET3's UDP tunnel segmentation offload corrupts VXLAN/Geneve
/// traffic on hardware version 14+; turning it off at every boot is the
/// known workaround. The NIC is found by its MAC when the unit runs.
fn offload_unit(mac: &str) -> String {
    format!(
        "[Unit]
Description=vkube: turn off VMXNET3 UDP tunnel offload on the node NIC (breaks CNI overlay traffic)
After=network.target
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/bash {LIBRARY_PATH} tunnel-offload {mac}

[Install]
WantedBy=multi-user.target
"
    )
}

fn guestinfo_clear_unit() -> String {
    format!(
        "[Unit]
Description=vkube: clear the Ignition config (bootstrap secrets) from guestinfo

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/bash {LIBRARY_PATH} clear-guestinfo {key}

[Install]
WantedBy=multi-user.target
",
        key = super::guestinfo::IGNITION
    )
}

/// Runs the bootstrap script at every boot until it is done: a reboot in
/// the middle (or add-ons that could not be applied yet) is picked up
/// again. kubeadm may retry for many minutes, so no start timeout.
fn bootstrap_unit() -> String {
    format!(
        "[Unit]
Description=vkube: kubeadm bootstrap
Wants=network-online.target
After=network-online.target containerd.service {OFFLOAD_UNIT}
ConditionPathExists=!{BOOTSTRAP_DONE}

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=0
ExecStart=/bin/bash {BOOTSTRAP_SCRIPT_PATH}

[Install]
WantedBy=multi-user.target
"
    )
}
