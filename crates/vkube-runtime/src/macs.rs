//! The NIC MACs of the nodes a run creates, chosen before their clones so
//! the bootstrap network config matches from the start (the pure choice is
//! `vkube_core::cluster::mac`). The MACs in use in vCenter are read once
//! per run, when the first node is created, and every MAC chosen in the run
//! is kept, so two nodes of one run never share one.

use std::collections::BTreeMap;

use vkube_core::cluster::mac::{choose_node_mac, MAC_ATTEMPTS};
use vkube_vsphere::VspherePort;

use crate::error::{Error, Result};

#[derive(Default)]
struct Book {
    /// MAC → VM id, as vCenter had them when first asked.
    in_use: Option<BTreeMap<String, String>>,
    /// Node → MAC chosen in this run.
    chosen: BTreeMap<String, String>,
}

/// The MACs of one run.
#[derive(Default)]
pub(crate) struct NodeMacs {
    book: tokio::sync::Mutex<Book>,
}

impl NodeMacs {
    /// The MAC of node `node` of the cluster `uid`: the same for the whole
    /// run, and the same in every run while vCenter holds no VM with it.
    pub(crate) async fn for_node(
        &self,
        vsphere: &dyn VspherePort,
        uid: &str,
        node: &str,
    ) -> Result<String> {
        let mut book = self.book.lock().await;
        if let Some(mac) = book.chosen.get(node) {
            return Ok(mac.clone());
        }
        if book.in_use.is_none() {
            book.in_use = Some(vsphere.macs_in_use().await?);
        }
        let in_use = book.in_use.as_ref().expect("read above");
        let mac = choose_node_mac(uid, node, |candidate| {
            in_use.contains_key(candidate) || book.chosen.values().any(|c| c == candidate)
        })
        .ok_or_else(|| Error::Input {
            what: format!("choosing the MAC of node `{node}`"),
            problem: format!(
                "all {MAC_ATTEMPTS} candidates in VMware's manual range are in use in vCenter"
            ),
        })?;
        book.chosen.insert(node.to_owned(), mac.clone());
        Ok(mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeVsphere;
    use vkube_core::cluster::mac::candidate_mac;

    #[tokio::test]
    async fn a_mac_in_use_in_vcenter_or_by_another_node_is_never_chosen() {
        let vsphere = FakeVsphere::new(Vec::<String>::new());
        // Someone gave the template the first candidate of node `a`.
        vsphere.set_mac("ubuntu-template", &candidate_mac("uid", "a", 0));
        let macs = NodeMacs::default();
        let a = macs.for_node(&vsphere, "uid", "a").await.expect("mac");
        assert_eq!(a, candidate_mac("uid", "a", 1));
        assert_eq!(
            macs.for_node(&vsphere, "uid", "a").await.expect("mac"),
            a,
            "the same for the whole run"
        );
        let b = macs.for_node(&vsphere, "uid", "b").await.expect("mac");
        assert_eq!(b, candidate_mac("uid", "b", 0));
        assert_ne!(a, b);
    }
}
