//! Deterministic names: node VM names, the cluster folder path, the VIP's
//! lease name and the extraConfig markers every vkube VM carries.
//!
//! Deterministic names make half-done work findable: a rerun computes the
//! same name and finds the VM (or lease) an interrupted run left behind.
//! Reading markers back from vCenter is `vkube-vsphere`'s job.

use super::spec::CONTROL_PLANE_GROUP;
use super::values::ClusterName;

/// extraConfig key holding the cluster's name.
pub const MARKER_CLUSTER_NAME: &str = "vkube.cluster.name";
/// extraConfig key holding the cluster's uid (random, chosen once by the store).
pub const MARKER_CLUSTER_UID: &str = "vkube.cluster.uid";
/// extraConfig key holding the node group (`cp` or the node pool's name).
pub const MARKER_POOL: &str = "vkube.pool";
/// extraConfig key holding the node's name.
pub const MARKER_NODE: &str = "vkube.node";
/// extraConfig key holding the node's index within its group.
pub const MARKER_INDEX: &str = "vkube.index";
/// extraConfig key holding the group's spec hash when the VM was created.
pub const MARKER_SPEC_HASH: &str = "vkube.spec-hash";
/// extraConfig key holding the placement domain's name.
pub const MARKER_DOMAIN: &str = "vkube.domain";

/// Every marker key, for building a PropertyCollector path set
/// (`config.extraConfig["vkube.cluster.uid"]`, …).
pub const MARKER_KEYS: [&str; 7] = [
    MARKER_CLUSTER_NAME,
    MARKER_CLUSTER_UID,
    MARKER_POOL,
    MARKER_NODE,
    MARKER_INDEX,
    MARKER_SPEC_HASH,
    MARKER_DOMAIN,
];

/// The VM (and Kubernetes node and host) name of node `index` of `group`:
/// `<cluster>-cp-<n>` for the control plane, `<cluster>-<pool>-<n>` else.
pub fn vm_name(cluster: &ClusterName, group: &str, index: u32) -> String {
    format!("{cluster}-{group}-{index}")
}

/// Splits a VM name made by [`vm_name`] back into group and index, or
/// `None` if it is not one of `cluster`'s names. `groups` are the names to
/// try (pool names may contain `-`, so the longest match wins).
pub fn parse_vm_name<'a>(
    cluster: &ClusterName,
    groups: &[&'a str],
    name: &str,
) -> Option<(&'a str, u32)> {
    let rest = name.strip_prefix(cluster.as_str())?.strip_prefix('-')?;
    let mut best: Option<(&'a str, u32)> = None;
    for group in groups.iter().copied().chain([CONTROL_PLANE_GROUP]) {
        let Some(index) = rest.strip_prefix(group).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let canonical = !index.is_empty() && (index == "0" || !index.starts_with('0'));
        if let (true, Ok(index)) = (
            canonical && index.bytes().all(|b| b.is_ascii_digit()),
            index.parse(),
        ) {
            if best.is_none_or(|(g, _)| group.len() > g.len()) {
                best = Some((group, index));
            }
        }
    }
    best
}

/// The folder vkube creates for the cluster: `<parent>/<cluster>`.
pub fn cluster_folder(parent: &str, cluster: &ClusterName) -> String {
    format!("{}/{cluster}", parent.trim_end_matches('/'))
}

/// The node name the VIP's lease is stored under when the VIP comes from a
/// pool (`vip: {fromPool: …}`): `<cluster>-vip`, which no VM name can be.
pub fn vip_lease_node(cluster: &ClusterName) -> String {
    format!("{cluster}-vip")
}

/// The markers of one node VM, as extraConfig key/value pairs in
/// [`MARKER_KEYS`] order.
pub fn markers(
    cluster: &ClusterName,
    cluster_uid: &str,
    group: &str,
    node: &str,
    index: u32,
    spec_hash: &str,
    domain: &str,
) -> Vec<(String, String)> {
    [
        (MARKER_CLUSTER_NAME, cluster.to_string()),
        (MARKER_CLUSTER_UID, cluster_uid.to_owned()),
        (MARKER_POOL, group.to_owned()),
        (MARKER_NODE, node.to_owned()),
        (MARKER_INDEX, index.to_string()),
        (MARKER_SPEC_HASH, spec_hash.to_owned()),
        (MARKER_DOMAIN, domain.to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> ClusterName {
        ClusterName::new("demo").unwrap()
    }

    #[test]
    fn names_and_folder() {
        assert_eq!(vm_name(&demo(), "cp", 0), "demo-cp-0");
        assert_eq!(vm_name(&demo(), "workers", 12), "demo-workers-12");
        assert_eq!(cluster_folder("/DC0/vm/", &demo()), "/DC0/vm/demo");
        assert_eq!(cluster_folder("/DC0/vm", &demo()), "/DC0/vm/demo");
        assert_eq!(vip_lease_node(&demo()), "demo-vip");
    }

    #[test]
    fn parse_back() {
        let groups = ["gpu", "gpu-big"];
        assert_eq!(
            parse_vm_name(&demo(), &groups, "demo-cp-2"),
            Some(("cp", 2))
        );
        assert_eq!(
            parse_vm_name(&demo(), &groups, "demo-gpu-big-10"),
            Some(("gpu-big", 10))
        );
        assert_eq!(
            parse_vm_name(&demo(), &groups, "demo-gpu-3"),
            Some(("gpu", 3))
        );
        for other in [
            "demo-vip",
            "demo-gpu-",
            "demo-gpu-01",
            "demox-cp-1",
            "other-cp-1",
            "demo-cpu-1",
        ] {
            assert_eq!(parse_vm_name(&demo(), &groups, other), None, "{other}");
        }
    }

    #[test]
    fn marker_pairs() {
        let pairs = markers(&demo(), "uid-1", "cp", "demo-cp-0", 0, "abc", "az1");
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, MARKER_KEYS);
        assert_eq!(pairs[1].1, "uid-1");
        assert_eq!(pairs[4].1, "0");
    }
}
