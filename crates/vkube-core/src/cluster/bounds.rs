//! Upper bounds on a cluster spec, checked before anything else happens:
//! sizes vSphere cannot create, node counts no pool or planner should be
//! asked for, lists whose size ends up in every node's guestinfo, and
//! repeated entries. Each bound is a constant here, with why it is what it
//! is.

use std::collections::BTreeSet;
use std::time::Duration;

use super::error::Problems;
use super::raw::RawSpec;

/// Nodes in one pool. A pool is one failure domain's worth of identical
/// VMs; larger clusters use more pools.
pub const MAX_POOL_REPLICAS: u32 = 500;
/// Nodes in one cluster: Kubernetes' tested scale limit (5000 nodes) is far
/// beyond what one vkube apply should drive against one vCenter.
pub const MAX_CLUSTER_NODES: u64 = 1000;
/// vCPUs of one VM (vSphere 8, hardware version 20+).
pub const MAX_CPU: u32 = 768;
/// Memory of one VM in MiB: 24 TiB (vSphere 8).
pub const MAX_MEMORY_MIB: u32 = 24 * 1024 * 1024;
/// Size of one virtual disk in GiB: 62 TiB, vSphere's VMDK limit.
pub const MAX_DISK_GIB: u32 = 62 * 1024;
/// SSH keys, NTP servers and NO_PROXY entries are copied into every node's
/// bootstrap data, which a guest reads in 64 KiB at most.
pub const MAX_SSH_KEYS: usize = 64;
/// See [`MAX_SSH_KEYS`].
pub const MAX_NTP_SERVERS: usize = 16;
/// See [`MAX_SSH_KEYS`].
pub const MAX_NO_PROXY: usize = 128;
/// One SSH key line (an RSA-16384 key is about 2.8 KB).
pub const MAX_SSH_KEY_LEN: usize = 8 * 1024;
/// Labels and taints of one pool.
pub const MAX_LABELS: usize = 64;
/// See [`MAX_LABELS`].
pub const MAX_TAINTS: usize = 32;
/// Longest a health check waits on a condition or a node's registration: a
/// week. Beyond that a node is not "slow", and a typo (`500h`) would turn
/// remediation off unnoticed.
pub const MAX_HEALTH_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest `nodeStartupTimeout` other than `0` (off): cloning, first boot,
/// cloud-init and `kubeadm join` take minutes, and a shorter limit would
/// replace every new node before it can register, forever.
pub const MIN_NODE_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Entries of one `healthCheck.unhealthyConditions` (a node has a handful of
/// condition types, each with three statuses).
pub const MAX_UNHEALTHY_CONDITIONS: usize = 16;
/// Longest user value quoted back in an error message.
pub const MAX_QUOTED: usize = 120;

/// `value` for an error message: cut to [`MAX_QUOTED`] characters, saying
/// how much was left out (a 10 MB name is not echoed back whole).
pub fn quoted(value: &str) -> String {
    let count = value.chars().count();
    if count <= MAX_QUOTED {
        return value.to_owned();
    }
    let head: String = value.chars().take(MAX_QUOTED).collect();
    format!("{head}… ({} more characters)", count - MAX_QUOTED)
}

/// Checks every bound of `spec`, recording problems by field.
pub(crate) fn check(p: &mut Problems, spec: &RawSpec) {
    let mut total = u64::from(spec.control_plane.replicas);
    for (index, pool) in spec.node_pools.iter().enumerate() {
        let at = format!("spec.nodePools[{index}]");
        if pool.replicas > MAX_POOL_REPLICAS {
            p.push(
                format!("{at}.replicas"),
                format!("{} is more than the {MAX_POOL_REPLICAS} nodes one pool may have: split it into several pools", pool.replicas),
            );
        }
        total += u64::from(pool.replicas);
        sizes(p, &at, pool.cpu, pool.memory_mib, pool.disk_gib);
        if pool.labels.len() > MAX_LABELS {
            p.push(
                format!("{at}.labels"),
                format!("{} labels, at most {MAX_LABELS}", pool.labels.len()),
            );
        }
        if pool.taints.len() > MAX_TAINTS {
            p.push(
                format!("{at}.taints"),
                format!("{} taints, at most {MAX_TAINTS}", pool.taints.len()),
            );
        }
        let taints = pool
            .taints
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect));
        repeated(
            p,
            &format!("{at}.taints"),
            taints.collect::<Vec<_>>().iter().map(String::as_str),
        );
    }
    if total > MAX_CLUSTER_NODES {
        p.push(
            "spec.nodePools",
            format!("{total} nodes in all, more than the {MAX_CLUSTER_NODES} one cluster may have"),
        );
    }
    let cp = &spec.control_plane;
    sizes(p, "spec.controlPlane", cp.cpu, cp.memory_mib, cp.disk_gib);

    list(
        p,
        "spec.sshAuthorizedKeys",
        spec.ssh_authorized_keys.len(),
        MAX_SSH_KEYS,
    );
    for (index, key) in spec.ssh_authorized_keys.iter().enumerate() {
        if key.len() > MAX_SSH_KEY_LEN {
            p.push(
                format!("spec.sshAuthorizedKeys[{index}]"),
                format!(
                    "is {} bytes, more than the {MAX_SSH_KEY_LEN} any public key line needs",
                    key.len()
                ),
            );
        }
    }
    repeated(
        p,
        "spec.sshAuthorizedKeys",
        spec.ssh_authorized_keys.iter().map(|k| k.trim()),
    );
    list(
        p,
        "spec.ntpServers",
        spec.ntp_servers.len(),
        MAX_NTP_SERVERS,
    );
    repeated(
        p,
        "spec.ntpServers",
        spec.ntp_servers.iter().map(|s| s.trim()),
    );
    if let Some(proxy) = &spec.proxy {
        list(p, "spec.proxy.noProxy", proxy.no_proxy.len(), MAX_NO_PROXY);
        repeated(
            p,
            "spec.proxy.noProxy",
            proxy.no_proxy.iter().map(|s| s.trim()),
        );
    }
}

fn sizes(p: &mut Problems, at: &str, cpu: u32, memory_mib: u32, disk_gib: Option<u32>) {
    if cpu > MAX_CPU {
        p.push(
            format!("{at}.cpu"),
            format!("{cpu} is more than the {MAX_CPU} vCPUs a vSphere VM can have"),
        );
    }
    if memory_mib > MAX_MEMORY_MIB {
        p.push(
            format!("{at}.memoryMiB"),
            format!(
                "{memory_mib} is more than the {MAX_MEMORY_MIB} MiB (24 TiB) a vSphere VM can have"
            ),
        );
    }
    if let Some(disk) = disk_gib.filter(|d| *d > MAX_DISK_GIB) {
        p.push(
            format!("{at}.diskGiB"),
            format!("{disk} is more than the {MAX_DISK_GIB} GiB (62 TiB) of a vSphere disk"),
        );
    }
}

fn list(p: &mut Problems, field: &str, len: usize, max: usize) {
    if len > max {
        p.push(field, format!("{len} entries, at most {max}"));
    }
}

/// One problem per entry that repeats an earlier one, naming its index.
fn repeated<'a>(p: &mut Problems, field: &str, entries: impl Iterator<Item = &'a str>) {
    let mut seen = BTreeSet::new();
    for (index, entry) in entries.enumerate() {
        if !seen.insert(entry) {
            p.push(
                format!("{field}[{index}]"),
                format!("repeats `{}`", quoted(entry)),
            );
        }
    }
}
