//! The MAC address of a node's NIC, chosen by vkube before the VM exists so
//! the bootstrap network config can match it from the clone on.
//!
//! Addresses come from VMware's range for manually assigned MACs,
//! `00:50:56:00:00:00`–`00:50:56:3F:FF:FF` (vCenter generates others, and
//! refuses a manual MAC outside it). A node's address is derived from the
//! cluster's uid and the node's name, so every run picks the same one; the
//! caller passes what is already in use in vCenter (and chosen for other
//! nodes) and the next derivation is tried when it is taken.

use sha2::{Digest, Sha256};

/// The first address of VMware's manual range.
pub const MANUAL_MAC_FIRST: &str = "00:50:56:00:00:00";
/// The last address of VMware's manual range.
pub const MANUAL_MAC_LAST: &str = "00:50:56:3f:ff:ff";
/// How many derivations are tried before giving up (the range holds 2^22).
pub const MAC_ATTEMPTS: u32 = 64;

/// The `attempt`-th candidate MAC of node `node` of the cluster `uid`, in
/// the kernel's spelling (lowercase, `:`-separated).
pub fn candidate_mac(uid: &str, node: &str, attempt: u32) -> String {
    let mut hash = Sha256::new();
    hash.update(b"vkube-node-mac\0");
    hash.update(uid.as_bytes());
    hash.update(b"\0");
    hash.update(node.as_bytes());
    hash.update(b"\0");
    hash.update(attempt.to_be_bytes());
    let digest = hash.finalize();
    // 22 bits: the fourth octet's top two bits stay 0 (at most 0x3f).
    format!(
        "00:50:56:{:02x}:{:02x}:{:02x}",
        digest[0] & 0x3f,
        digest[1],
        digest[2]
    )
}

/// The MAC for node `node` of cluster `uid`: the first candidate not
/// `taken` (normalised to lowercase before asking). `None` when
/// [`MAC_ATTEMPTS`] candidates are all taken.
pub fn choose_node_mac(uid: &str, node: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
    (0..MAC_ATTEMPTS)
        .map(|attempt| candidate_mac(uid, node, attempt))
        .find(|mac| !taken(mac))
}

/// Whether `mac` lies in VMware's manual range (any case).
pub fn is_manual_vmware_mac(mac: &str) -> bool {
    let mac = mac.trim().to_ascii_lowercase();
    let pairs: Vec<&str> = mac.split(':').collect();
    pairs.len() == 6
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        && pairs[..3] == ["00", "50", "56"]
        && u8::from_str_radix(pairs[3], 16).is_ok_and(|b| b <= 0x3f)
}

/// A MAC in one spelling for comparisons: lowercase, `:`-separated.
pub fn normalize_mac(mac: &str) -> String {
    mac.trim().to_ascii_lowercase().replace('-', ":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn candidates_are_manual_vmware_macs_stable_per_node() {
        let mut seen = BTreeSet::new();
        for i in 0..2000 {
            let node = format!("c1-workers-{i}");
            let mac = candidate_mac("uid-1", &node, 0);
            assert!(is_manual_vmware_mac(&mac), "{mac}");
            assert_eq!(mac, candidate_mac("uid-1", &node, 0), "deterministic");
            seen.insert(mac);
        }
        // 2000 nodes over 2^22 addresses: collisions are possible but rare.
        assert!(seen.len() >= 1995, "{}", seen.len());
        assert_ne!(
            candidate_mac("uid-1", "c1-cp-0", 0),
            candidate_mac("uid-2", "c1-cp-0", 0),
            "another cluster uid, another address"
        );
    }

    #[test]
    fn a_taken_candidate_is_skipped_and_exhaustion_is_none() {
        let first = candidate_mac("u", "n", 0);
        let second = candidate_mac("u", "n", 1);
        assert_ne!(first, second);
        assert_eq!(
            choose_node_mac("u", "n", |m| m == first),
            Some(second.clone())
        );
        assert_eq!(choose_node_mac("u", "n", |_| false), Some(first));
        assert_eq!(choose_node_mac("u", "n", |_| true), None);
    }

    #[test]
    fn the_manual_range_is_checked_exactly() {
        assert!(is_manual_vmware_mac(MANUAL_MAC_FIRST));
        assert!(is_manual_vmware_mac(MANUAL_MAC_LAST));
        assert!(is_manual_vmware_mac("00:50:56:3F:FF:FF"));
        assert!(!is_manual_vmware_mac("00:50:56:40:00:00"));
        assert!(!is_manual_vmware_mac("00:0c:29:00:00:01"));
        assert!(!is_manual_vmware_mac("00:50:56:00:00"));
        assert_eq!(normalize_mac(" 00-50-56-AB-cd-01 "), "00:50:56:ab:cd:01");
    }
}
