//! kube-vip as a static pod on every control-plane node: it announces the
//! API server VIP by ARP from the leader (Kubernetes lease
//! `plndr-cp-lock`, 15 s duration, 10 s renew deadline, 2 s retry).
//!
//! kube-vip talks to the local API server as `kubernetes:6443`. It gets
//! that name from its own hosts file ([`HOSTS_PATH`], mounted as the
//! container's `/etc/hosts`), not from `hostAliases`: with
//! `cloud-provider: external`, the kubelet of Kubernetes 1.29–1.31 gives a
//! host-network pod no managed hosts file while the node has no addresses
//! yet (kube-vip issue 692, kubernetes issue 121028), so the aliases never
//! arrive and `kubeadm init` times out waiting for the VIP.
//!
//! The manifest is a template: the interface is
//! [`NIC_PLACEHOLDER`], replaced at boot by the name of the NIC with the
//! node's MAC (see `script`).

use std::net::IpAddr;

use super::{NodeBootstrap, API_SERVER_PORT, NIC_PLACEHOLDER};
use crate::addons;
use crate::cluster::plan::NodeRole;

/// The hosts file kube-vip sees as `/etc/hosts`.
pub const HOSTS_PATH: &str = "/etc/kube-vip.hosts";
/// Its contents: `kubernetes` is the local API server.
pub const HOSTS: &str =
    "127.0.0.1 localhost kubernetes\n::1 localhost ip6-localhost ip6-loopback\n";
/// Kubeconfig kube-vip uses once the cluster exists.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// Kubeconfig kube-vip uses on the first node during `kubeadm init` from
/// Kubernetes 1.29 (see [`kubeconfig`]).
pub const SUPER_ADMIN_CONF: &str = "/etc/kubernetes/super-admin.conf";
/// Leader election timings in seconds: duration, renew deadline, retry.
pub const LEASE_TIMINGS: (u32, u32, u32) = (15, 10, 2);

/// The kubeconfig the node's kube-vip starts with. From Kubernetes 1.29,
/// `admin.conf` only gains rights once `kubeadm init` has created a
/// binding, which needs the API server behind the VIP: the first node
/// starts kube-vip with `super-admin.conf` and switches to `admin.conf`
/// after `kubeadm init` succeeded (the bootstrap script does).
pub fn kubeconfig(input: &NodeBootstrap<'_>) -> &'static str {
    if input.role == NodeRole::Init && input.spec.kubernetes_version().minor() >= 29 {
        SUPER_ADMIN_CONF
    } else {
        ADMIN_CONF
    }
}

/// The static pod manifest (template with [`NIC_PLACEHOLDER`]).
pub fn manifest(input: &NodeBootstrap<'_>) -> String {
    let spec = input.spec;
    let prefix = match input.vip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let (duration, renew, retry) = LEASE_TIMINGS;
    let env = [
        ("vip_arp", "true".to_owned()),
        ("port", API_SERVER_PORT.to_string()),
        ("vip_interface", NIC_PLACEHOLDER.to_owned()),
        ("vip_cidr", prefix.to_string()),
        ("cp_enable", "true".to_owned()),
        ("cp_namespace", "kube-system".to_owned()),
        ("vip_leaderelection", "true".to_owned()),
        ("vip_leasename", "plndr-cp-lock".to_owned()),
        ("vip_leaseduration", duration.to_string()),
        ("vip_renewdeadline", renew.to_string()),
        ("vip_retryperiod", retry.to_string()),
        ("address", input.vip.to_string()),
    ];
    let env: Vec<serde_json::Value> = env
        .into_iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    let image = addons::image(
        spec.registry().map(|r| r.mirror()).as_deref(),
        spec.control_plane().kube_vip_image(),
    );
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system"},
        "spec": {
            "containers": [{
                "name": "kube-vip",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["manager"],
                "env": env,
                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                "volumeMounts": [
                    {"mountPath": ADMIN_CONF, "name": "kubeconfig"},
                    {"mountPath": "/etc/hosts", "name": "etc-hosts", "readOnly": true},
                ],
            }],
            "hostNetwork": true,
            "volumes": [
                {"name": "kubeconfig", "hostPath": {"path": kubeconfig(input), "type": "File"}},
                {"name": "etc-hosts", "hostPath": {"path": HOSTS_PATH, "type": "File"}},
            ],
        },
    });
    serde_yaml::to_string(&pod).expect("json converts")
}
