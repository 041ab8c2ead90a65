//! Clusters and node records in PostgreSQL: the [`ClusterStore`]
//! implementation.
//!
//! Every write that reads a cluster's rows and then changes them locks the
//! cluster row first (`FOR NO KEY UPDATE`), so writers of one cluster
//! queue as they do on SQLite; the version compare-and-set is still in the
//! `UPDATE`'s own `WHERE`.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::ipam::release_leases;
use super::journal::select_intents;
use super::lock::{fenced, lock_for_removal};
use super::{bigint, commit, pg, read, write, PgStore};
use crate::cluster::{
    AddonRecord, ClusterPhase, ClusterRecord, ClusterStore, ForceDelete, Node, NodeRecord,
    RemovedCluster, RemovedNode,
};
use crate::error::{Error, Result};
use crate::lock::Fence;
use crate::rows::{AddonRow, ClusterRow, NodeRow, ADDON_COLUMNS, CLUSTER_COLUMNS, NODE_COLUMNS};
use crate::rules::{
    bumped, check_node, check_removal, check_version, deletion_mark, existing_cluster, new_cluster,
    node_clash, phase_update, spec_update, status_update, uid_taken, vcenter_update,
};
use crate::time::Timestamp;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

fn cluster_row(row: &Row) -> ClusterRow {
    ClusterRow {
        name: row.get(0),
        uid: row.get(1),
        spec_yaml: row.get(2),
        spec_hash: row.get(3),
        version: row.get(4),
        phase: row.get(5),
        deletion_started_at: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
        vcenter_uuid: row.get(9),
        last_error: row.get(10),
    }
}

fn node_row(row: &Row) -> NodeRow {
    NodeRow {
        cluster: row.get(0),
        name: row.get(1),
        pool: row.get(2),
        index: row.get(3),
        domain: row.get(4),
        vm_id: row.get(5),
        ip: row.get(6),
        phase: row.get(7),
        spec_hash: row.get(8),
        created_at: row.get(9),
        updated_at: row.get(10),
    }
}

/// The cluster, or `None`; `locking` is e.g. `FOR NO KEY UPDATE`.
async fn find_cluster(
    client: &impl GenericClient,
    name: &str,
    locking: &str,
) -> Result<Option<ClusterRecord>> {
    client
        .query_opt(
            &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = $1 {locking}"),
            &[&name],
        )
        .await
        .map_err(pg(format!("reading cluster `{name}`")))?
        .map(|row| cluster_row(&row).into_record())
        .transpose()
}

/// The cluster, or `ClusterNotFound`; `locking` as for [`find_cluster`].
pub(super) async fn load_cluster(
    client: &impl GenericClient,
    name: &str,
    locking: &str,
) -> Result<ClusterRecord> {
    find_cluster(client, name, locking)
        .await?
        .ok_or_else(|| Error::ClusterNotFound {
            cluster: name.to_owned(),
        })
}

/// Writes `next` over `current` with the version bumped; writes nothing if
/// they are equal.
async fn save_change(
    client: &impl GenericClient,
    current: ClusterRecord,
    next: ClusterRecord,
    now: Timestamp,
) -> Result<ClusterRecord> {
    let Some(next) = bumped(&current, next, now) else {
        return Ok(current);
    };
    let action = format!("updating cluster `{}`", current.name);
    let changed = client
        .execute(
            "UPDATE clusters SET spec_yaml = $3, spec_hash = $4, phase = $5,
                 deletion_started_at = $6, version = $7, updated_at = $8,
                 vcenter_uuid = $9, last_error = $10
             WHERE name = $1 AND version = $2",
            &[
                &current.name,
                &bigint(current.version),
                &next.spec_yaml,
                &next.spec_hash,
                &next.phase.as_str(),
                &next.deletion_started_at.map(Timestamp::unix_seconds),
                &bigint(next.version),
                &next.updated_at.unix_seconds(),
                &next.vcenter_uuid,
                &next.last_error,
            ],
        )
        .await
        .map_err(pg(&action))?;
    if changed == 0 {
        // Unreachable while the row is locked; the statement checks anyway.
        let actual = load_cluster(client, &current.name, "").await?;
        check_version(&actual, current.version)?;
    }
    Ok(next)
}

async fn select_nodes(
    client: &impl GenericClient,
    condition: &str,
    parameters: Params<'_>,
    action: &str,
) -> Result<Vec<NodeRecord>> {
    client
        .query(
            &format!(
                "SELECT {NODE_COLUMNS} FROM cluster_nodes WHERE {condition}
                 ORDER BY node_pool COLLATE \"C\", node_index, name COLLATE \"C\""
            ),
            parameters,
        )
        .await
        .map_err(pg(action))?
        .iter()
        .map(|row| node_row(row).into_record())
        .collect()
}

async fn find_node(
    client: &impl GenericClient,
    cluster: &str,
    node: &str,
    action: &str,
) -> Result<Option<NodeRecord>> {
    Ok(select_nodes(
        client,
        "cluster = $1 AND name = $2",
        &[&cluster, &node],
        action,
    )
    .await?
    .pop())
}

impl PgStore {
    /// Changes a cluster as `change` says, compare-and-set, with the row
    /// locked; fenced when `fence` is given.
    async fn change_cluster(
        &self,
        fence: Option<&Fence>,
        name: &str,
        action: &str,
        now: Timestamp,
        change: impl FnOnce(&ClusterRecord) -> Result<ClusterRecord> + Send,
    ) -> Result<ClusterRecord> {
        let mut client = self.client(action).await?;
        let transaction = write(&mut client, action).await?;
        if let Some(fence) = fence {
            fenced(&transaction, fence, action).await?;
        }
        let current = load_cluster(&transaction, name, "FOR NO KEY UPDATE").await?;
        let next = change(&current)?;
        let saved = save_change(&transaction, current, next, now).await?;
        commit(transaction, action).await?;
        Ok(saved)
    }
}

#[async_trait]
impl ClusterStore for PgStore {
    async fn create_cluster(
        &self,
        fence: &Fence,
        uid: &str,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        let name = fence.cluster();
        let record = new_cluster(name, uid, spec_yaml, spec_hash, now)?;
        let action = format!("creating cluster `{name}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        // A concurrent creator of the same name or uid makes this wait for
        // its commit, then do nothing: the reads below see what it wrote.
        let inserted = transaction
            .execute(
                &format!(
                    "INSERT INTO clusters ({CLUSTER_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, NULL, NULL) ON CONFLICT DO NOTHING"
                ),
                &[
                    &record.name,
                    &record.uid,
                    &record.spec_yaml,
                    &record.spec_hash,
                    &bigint(record.version),
                    &record.phase.as_str(),
                    &now.unix_seconds(),
                ],
            )
            .await
            .map_err(pg(&action))?;
        if inserted == 0 {
            if let Some(existing) = find_cluster(&transaction, name, "").await? {
                return existing_cluster(existing, uid);
            }
            let owner: String = transaction
                .query_opt("SELECT name FROM clusters WHERE uid = $1", &[&uid])
                .await
                .map_err(pg(&action))?
                .map(|row| row.get(0))
                .unwrap_or_default();
            return Err(uid_taken(uid, &owner));
        }
        commit(transaction, &action).await?;
        Ok(record)
    }

    async fn cluster(&self, name: &str) -> Result<ClusterRecord> {
        let action = format!("reading cluster `{name}`");
        let client = self.client(&action).await?;
        load_cluster(&client, name, "").await
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>> {
        let action = "listing clusters";
        let client = self.client(action).await?;
        client
            .query(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(pg(action))?
            .iter()
            .map(|row| cluster_row(row).into_record())
            .collect()
    }

    async fn update_cluster_spec(
        &self,
        fence: &Fence,
        expected_version: u64,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        let name = fence.cluster();
        let action = format!("updating the spec of cluster `{name}`");
        self.change_cluster(Some(fence), name, &action, now, |current| {
            spec_update(current, expected_version, spec_yaml, spec_hash)
        })
        .await
    }

    async fn set_cluster_phase(
        &self,
        fence: &Fence,
        expected_version: u64,
        phase: ClusterPhase,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        let name = fence.cluster();
        let action = format!("setting the phase of cluster `{name}`");
        self.change_cluster(Some(fence), name, &action, now, |current| {
            phase_update(current, expected_version, phase, now)
        })
        .await
    }

    async fn set_cluster_status(
        &self,
        fence: &Fence,
        expected_version: u64,
        phase: ClusterPhase,
        last_error: Option<&str>,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        let name = fence.cluster();
        let action = format!("setting the status of cluster `{name}`");
        self.change_cluster(Some(fence), name, &action, now, |current| {
            status_update(current, expected_version, phase, last_error, now)
        })
        .await
    }

    async fn set_cluster_vcenter(
        &self,
        fence: &Fence,
        expected_version: u64,
        vcenter_uuid: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        let name = fence.cluster();
        let action = format!("recording the vCenter of cluster `{name}`");
        self.change_cluster(Some(fence), name, &action, now, |current| {
            vcenter_update(current, expected_version, vcenter_uuid)
        })
        .await
    }

    async fn mark_deleting(&self, name: &str, now: Timestamp) -> Result<ClusterRecord> {
        let action = format!("marking cluster `{name}` for deletion");
        self.change_cluster(None, name, &action, now, |current| {
            Ok(deletion_mark(current, now))
        })
        .await
    }

    async fn remove_cluster(
        &self,
        name: &str,
        force: ForceDelete,
        now: Timestamp,
    ) -> Result<RemovedCluster> {
        let action = format!("removing cluster `{name}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        lock_for_removal(&transaction, name, &action).await?;
        let cluster = load_cluster(&transaction, name, "FOR UPDATE").await?;
        let nodes = select_nodes(&transaction, "cluster = $1", &[&name], &action).await?;
        check_removal(&cluster, &nodes, force, now)?;
        let open_intents = select_intents(
            &transaction,
            "cluster = $1 AND completed_at IS NULL",
            &[&name],
            &action,
        )
        .await?;
        let released_leases = release_leases(&transaction, name, None, &action).await?;
        for sql in [
            "DELETE FROM cluster_secrets WHERE cluster = $1",
            "DELETE FROM cluster_addons WHERE cluster = $1",
            "DELETE FROM cluster_events WHERE cluster = $1",
            "DELETE FROM cluster_intents WHERE cluster = $1",
            "DELETE FROM cluster_nodes WHERE cluster = $1",
            // A holder's next fenced write or renewal fails with `LockLost`.
            "DELETE FROM apply_locks WHERE cluster = $1",
            "DELETE FROM clusters WHERE name = $1",
        ] {
            transaction
                .execute(sql, &[&name])
                .await
                .map_err(pg(&action))?;
        }
        commit(transaction, &action).await?;
        Ok(RemovedCluster {
            cluster,
            nodes,
            open_intents,
            released_leases,
        })
    }

    async fn upsert_node(&self, fence: &Fence, node: &Node, now: Timestamp) -> Result<NodeRecord> {
        check_node(node)?;
        let cluster = fence.cluster();
        let action = format!("recording node `{}` of cluster `{cluster}`", node.name);
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        // Node writes of one cluster queue here, so the clash check holds.
        load_cluster(&transaction, cluster, "FOR NO KEY UPDATE").await?;
        let index = i64::from(node.index);
        let clash = select_nodes(
            &transaction,
            "cluster = $1 AND name <> $2 AND ((node_pool = $3 AND node_index = $4) OR vm_id = $5)",
            &[&cluster, &node.name, &node.pool, &index, &node.vm_id],
            &action,
        )
        .await?
        .into_iter()
        .next();
        if let Some(other) = clash {
            return Err(node_clash(cluster, node, other));
        }
        let existing = find_node(&transaction, cluster, &node.name, &action).await?;
        if let Some(existing) = existing.filter(|existing| existing.node == *node) {
            return Ok(existing);
        }
        // `created_at` keeps its first value.
        let row = transaction
            .query_one(
                &format!(
                    "INSERT INTO cluster_nodes ({NODE_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
                     ON CONFLICT (cluster, name) DO UPDATE SET
                         node_pool = EXCLUDED.node_pool, node_index = EXCLUDED.node_index,
                         domain = EXCLUDED.domain, vm_id = EXCLUDED.vm_id, ip = EXCLUDED.ip,
                         phase = EXCLUDED.phase, spec_hash = EXCLUDED.spec_hash,
                         updated_at = EXCLUDED.updated_at
                     RETURNING {NODE_COLUMNS}"
                ),
                &[
                    &cluster,
                    &node.name,
                    &node.pool,
                    &index,
                    &node.domain,
                    &node.vm_id,
                    &node.ip.map(|ip| ip.to_string()),
                    &node.phase.as_str(),
                    &node.spec_hash,
                    &now.unix_seconds(),
                ],
            )
            .await
            .map_err(pg(&action))?;
        let record = node_row(&row).into_record()?;
        commit(transaction, &action).await?;
        Ok(record)
    }

    async fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>> {
        let action = format!("reading node `{node}` of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = read(&mut client, &action).await?;
        load_cluster(&transaction, cluster, "").await?;
        find_node(&transaction, cluster, node, &action).await
    }

    async fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>> {
        let action = format!("listing nodes of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = read(&mut client, &action).await?;
        load_cluster(&transaction, cluster, "").await?;
        select_nodes(&transaction, "cluster = $1", &[&cluster], &action).await
    }

    async fn delete_node(&self, fence: &Fence, node: &str) -> Result<RemovedNode> {
        let cluster = fence.cluster();
        let action = format!("deleting node `{node}` of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        let record = transaction
            .query_opt(
                &format!(
                    "DELETE FROM cluster_nodes WHERE cluster = $1 AND name = $2
                     RETURNING {NODE_COLUMNS}"
                ),
                &[&cluster, &node],
            )
            .await
            .map_err(pg(&action))?
            .map(|row| node_row(&row).into_record())
            .transpose()?;
        let released_leases = release_leases(&transaction, cluster, Some(node), &action).await?;
        commit(transaction, &action).await?;
        Ok(RemovedNode {
            node: record,
            released_leases,
        })
    }

    async fn ensure_secret(&self, cluster: &str, name: &str, value: &str) -> Result<String> {
        super::secrets::ensure_secret(self, cluster, name, value).await
    }

    async fn secret(&self, cluster: &str, name: &str) -> Result<Option<String>> {
        super::secrets::secret(self, cluster, name).await
    }

    async fn record_addons(&self, fence: &Fence, records: &[AddonRecord]) -> Result<()> {
        let cluster = fence.cluster();
        let action = format!("recording the add-ons of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        load_cluster(&transaction, cluster, "FOR KEY SHARE").await?;
        for record in records {
            transaction
                .execute(
                    &format!(
                        "INSERT INTO cluster_addons (cluster, {ADDON_COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (cluster, addon) DO UPDATE SET
                             component = EXCLUDED.component, version = EXCLUDED.version,
                             digest = EXCLUDED.digest, delivery = EXCLUDED.delivery,
                             node = EXCLUDED.node, message = EXCLUDED.message,
                             updated_at = EXCLUDED.updated_at"
                    ),
                    &[
                        &cluster,
                        &record.addon,
                        &record.component,
                        &record.version,
                        &record.digest,
                        &record.delivery.as_str(),
                        &record.node,
                        &record.message,
                        &record.updated_at.unix_seconds(),
                    ],
                )
                .await
                .map_err(pg(&action))?;
        }
        commit(transaction, &action).await
    }

    async fn addons(&self, cluster: &str) -> Result<Vec<AddonRecord>> {
        let action = format!("reading the add-ons of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = read(&mut client, &action).await?;
        load_cluster(&transaction, cluster, "").await?;
        transaction
            .query(
                &format!(
                    "SELECT {ADDON_COLUMNS} FROM cluster_addons WHERE cluster = $1 ORDER BY addon COLLATE \"C\""
                ),
                &[&cluster],
            )
            .await
            .map_err(pg(&action))?
            .iter()
            .map(|row| {
                AddonRow {
                    addon: row.get(0),
                    component: row.get(1),
                    version: row.get(2),
                    digest: row.get(3),
                    delivery: row.get(4),
                    node: row.get(5),
                    message: row.get(6),
                    updated_at: row.get(7),
                }
                .into_record(cluster)
            })
            .collect()
    }

    async fn replace_secret(
        &self,
        cluster: &str,
        name: &str,
        expected: &str,
        value: &str,
    ) -> Result<String> {
        super::secrets::replace_secret(self, cluster, name, expected, value).await
    }
}
