//! Clusters and node records in memory: the [`ClusterStore`]
//! implementation (secrets are in `secrets.rs`).

use async_trait::async_trait;

use super::state::{ClusterEntry, State};
use super::{secrets, MemoryStore, Operation};
use crate::cluster::{
    AddonRecord, ClusterPhase, ClusterRecord, ClusterStore, ForceDelete, Node, NodeRecord,
    RemovedCluster, RemovedNode,
};
use crate::error::Result;
use crate::lock::Fence;
use crate::rules::{
    bumped, check_node, check_removal, deletion_mark, existing_cluster, new_cluster, node_clash,
    phase_update, spec_update, status_update, uid_taken, vcenter_update,
};
use crate::time::Timestamp;

impl State {
    fn create_cluster(&mut self, fence: &Fence, record: ClusterRecord) -> Result<ClusterRecord> {
        self.check_fence(fence)?;
        if let Some(existing) = self.clusters.get(&record.name) {
            return existing_cluster(existing.record.clone(), &record.uid);
        }
        if let Some(owner) = self.clusters.values().find(|c| c.record.uid == record.uid) {
            return Err(uid_taken(&record.uid, &owner.record.name));
        }
        let entry = ClusterEntry::new(record.clone());
        self.clusters.insert(record.name.clone(), entry);
        Ok(record)
    }

    /// Changes a cluster as `change` says, compare-and-set; fenced when
    /// `fence` is given. A change to nothing keeps version and time.
    fn change_cluster(
        &mut self,
        fence: Option<&Fence>,
        name: &str,
        now: Timestamp,
        change: impl FnOnce(&ClusterRecord) -> Result<ClusterRecord>,
    ) -> Result<ClusterRecord> {
        if let Some(fence) = fence {
            self.check_fence(fence)?;
        }
        let entry = self.cluster_mut(name)?;
        let next = change(&entry.record)?;
        if let Some(next) = bumped(&entry.record, next, now) {
            entry.record = next;
        }
        Ok(entry.record.clone())
    }

    fn remove_cluster(
        &mut self,
        name: &str,
        force: ForceDelete,
        now: Timestamp,
    ) -> Result<RemovedCluster> {
        let entry = self.cluster(name)?;
        let nodes = entry.sorted_nodes();
        check_removal(&entry.record, &nodes, force, now)?;
        let cluster = entry.record.clone();
        let open_intents = entry.open_intents();
        let released_leases = self.release_leases(name, None);
        self.clusters.remove(name);
        // A holder's next fenced write or renewal fails with `LockLost`.
        self.locks.remove(name);
        Ok(RemovedCluster {
            cluster,
            nodes,
            open_intents,
            released_leases,
        })
    }

    fn upsert_node(&mut self, fence: &Fence, node: &Node, now: Timestamp) -> Result<NodeRecord> {
        self.check_fence(fence)?;
        let cluster = fence.cluster();
        let entry = self.cluster_mut(cluster)?;
        let clash = entry.sorted_nodes().into_iter().find(|other| {
            other.node.name != node.name
                && ((other.node.pool == node.pool && other.node.index == node.index)
                    || (node.vm_id.is_some() && other.node.vm_id == node.vm_id))
        });
        if let Some(other) = clash {
            return Err(node_clash(cluster, node, other));
        }
        let existing = entry.nodes.get(&node.name);
        if let Some(existing) = existing.filter(|existing| existing.node == *node) {
            return Ok(existing.clone());
        }
        let record = NodeRecord {
            cluster: cluster.to_owned(),
            node: node.clone(),
            // `created_at` keeps its first value.
            created_at: existing.map_or(now, |existing| existing.created_at),
            updated_at: now,
        };
        entry.nodes.insert(node.name.clone(), record.clone());
        Ok(record)
    }

    fn delete_node(&mut self, fence: &Fence, node: &str) -> Result<RemovedNode> {
        self.check_fence(fence)?;
        let cluster = fence.cluster();
        let record = self
            .clusters
            .get_mut(cluster)
            .and_then(|entry| entry.nodes.remove(node));
        let released_leases = self.release_leases(cluster, Some(node));
        Ok(RemovedNode {
            node: record,
            released_leases,
        })
    }

    fn record_addons(&mut self, fence: &Fence, records: &[AddonRecord]) -> Result<()> {
        self.check_fence(fence)?;
        let entry = self.cluster_mut(fence.cluster())?;
        for record in records {
            entry.addons.insert(record.addon.clone(), record.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl ClusterStore for MemoryStore {
    async fn create_cluster(
        &self,
        fence: &Fence,
        uid: &str,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        self.write(Operation::CreateCluster, |state, _| {
            let record = new_cluster(fence.cluster(), uid, spec_yaml, spec_hash, now)?;
            state.create_cluster(fence, record)
        })
    }

    async fn cluster(&self, name: &str) -> Result<ClusterRecord> {
        self.read(Operation::Cluster, |state, _| {
            Ok(state.cluster(name)?.record.clone())
        })
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>> {
        self.read(Operation::Clusters, |state, _| {
            Ok(state.clusters.values().map(|c| c.record.clone()).collect())
        })
    }

    async fn update_cluster_spec(
        &self,
        fence: &Fence,
        expected_version: u64,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        self.write(Operation::UpdateClusterSpec, |state, _| {
            state.change_cluster(Some(fence), fence.cluster(), now, |current| {
                spec_update(current, expected_version, spec_yaml, spec_hash)
            })
        })
    }

    async fn set_cluster_phase(
        &self,
        fence: &Fence,
        expected_version: u64,
        phase: ClusterPhase,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        self.write(Operation::SetClusterPhase, |state, _| {
            state.change_cluster(Some(fence), fence.cluster(), now, |current| {
                phase_update(current, expected_version, phase, now)
            })
        })
    }

    async fn set_cluster_status(
        &self,
        fence: &Fence,
        expected_version: u64,
        phase: ClusterPhase,
        last_error: Option<&str>,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        self.write(Operation::SetClusterStatus, |state, _| {
            state.change_cluster(Some(fence), fence.cluster(), now, |current| {
                status_update(current, expected_version, phase, last_error, now)
            })
        })
    }

    async fn set_cluster_vcenter(
        &self,
        fence: &Fence,
        expected_version: u64,
        vcenter_uuid: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        self.write(Operation::SetClusterVcenter, |state, _| {
            state.change_cluster(Some(fence), fence.cluster(), now, |current| {
                vcenter_update(current, expected_version, vcenter_uuid)
            })
        })
    }

    async fn mark_deleting(&self, name: &str, now: Timestamp) -> Result<ClusterRecord> {
        self.write(Operation::MarkDeleting, |state, _| {
            state.change_cluster(None, name, now, |current| Ok(deletion_mark(current, now)))
        })
    }

    async fn remove_cluster(
        &self,
        name: &str,
        force: ForceDelete,
        now: Timestamp,
    ) -> Result<RemovedCluster> {
        self.write(Operation::RemoveCluster, |state, _| {
            state.remove_cluster(name, force, now)
        })
    }

    async fn upsert_node(&self, fence: &Fence, node: &Node, now: Timestamp) -> Result<NodeRecord> {
        self.write(Operation::UpsertNode, |state, _| {
            check_node(node)?;
            state.upsert_node(fence, node, now)
        })
    }

    async fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>> {
        self.read(Operation::Node, |state, _| {
            Ok(state.cluster(cluster)?.nodes.get(node).cloned())
        })
    }

    async fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>> {
        self.read(Operation::Nodes, |state, _| {
            Ok(state.cluster(cluster)?.sorted_nodes())
        })
    }

    async fn delete_node(&self, fence: &Fence, node: &str) -> Result<RemovedNode> {
        self.write(Operation::DeleteNode, |state, _| {
            state.delete_node(fence, node)
        })
    }

    async fn ensure_secret(&self, cluster: &str, name: &str, value: &str) -> Result<String> {
        self.write(Operation::EnsureSecret, |state, sealer| {
            secrets::ensure_secret(state, sealer, cluster, name, value)
        })
    }

    async fn secret(&self, cluster: &str, name: &str) -> Result<Option<String>> {
        self.read(Operation::Secret, |state, sealer| {
            secrets::secret(state, sealer, cluster, name)
        })
    }

    async fn record_addons(&self, fence: &Fence, records: &[AddonRecord]) -> Result<()> {
        self.write(Operation::RecordAddons, |state, _| {
            state.record_addons(fence, records)
        })
    }

    async fn addons(&self, cluster: &str) -> Result<Vec<AddonRecord>> {
        self.read(Operation::Addons, |state, _| {
            Ok(state.cluster(cluster)?.addons.values().cloned().collect())
        })
    }

    async fn replace_secret(
        &self,
        cluster: &str,
        name: &str,
        expected: &str,
        value: &str,
    ) -> Result<String> {
        self.write(Operation::ReplaceSecret, |state, sealer| {
            secrets::replace_secret(state, sealer, cluster, name, expected, value)
        })
    }
}
