//! Clusters and node records in SQLite: the [`ClusterStore`]
//! implementation.
//!
//! Cluster changes are compare-and-set on `version`
//! (`UPDATE … WHERE name = ? AND version = ?`), checked again by the
//! statement itself so the same SQL stays correct under PostgreSQL's
//! weaker default isolation, where the read and the write could
//! interleave with another replica.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::ipam::release_leases;
use super::journal::select_intents;
use super::lock::fenced;
use super::{database, Inner, SqliteStore};
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

fn cluster_row(row: &Row<'_>) -> rusqlite::Result<ClusterRow> {
    Ok(ClusterRow {
        name: row.get(0)?,
        uid: row.get(1)?,
        spec_yaml: row.get(2)?,
        spec_hash: row.get(3)?,
        version: row.get(4)?,
        phase: row.get(5)?,
        deletion_started_at: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        vcenter_uuid: row.get(9)?,
        last_error: row.get(10)?,
    })
}

fn node_row(row: &Row<'_>) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        cluster: row.get(0)?,
        name: row.get(1)?,
        pool: row.get(2)?,
        index: row.get(3)?,
        domain: row.get(4)?,
        vm_id: row.get(5)?,
        ip: row.get(6)?,
        phase: row.get(7)?,
        spec_hash: row.get(8)?,
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
    })
}

/// The cluster, or `None`.
fn find_cluster(transaction: &Transaction<'_>, name: &str) -> Result<Option<ClusterRecord>> {
    transaction
        .query_row(
            &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
            [name],
            cluster_row,
        )
        .optional()
        .map_err(database(format!("reading cluster `{name}`")))?
        .map(ClusterRow::into_record)
        .transpose()
}

/// The cluster, or `ClusterNotFound`.
pub(super) fn load_cluster(transaction: &Transaction<'_>, name: &str) -> Result<ClusterRecord> {
    find_cluster(transaction, name)?.ok_or_else(|| Error::ClusterNotFound {
        cluster: name.to_owned(),
    })
}

/// Writes `next` over `current` with the version bumped; writes nothing if
/// they are equal.
fn save_change(
    transaction: &Transaction<'_>,
    current: ClusterRecord,
    next: ClusterRecord,
    now: Timestamp,
) -> Result<ClusterRecord> {
    let Some(next) = bumped(&current, next, now) else {
        return Ok(current);
    };
    let action = format!("updating cluster `{}`", current.name);
    let changed = transaction
        .execute(
            "UPDATE clusters SET spec_yaml = ?3, spec_hash = ?4, phase = ?5,
                 deletion_started_at = ?6, version = ?7, updated_at = ?8,
                 vcenter_uuid = ?9, last_error = ?10
             WHERE name = ?1 AND version = ?2",
            params![
                current.name,
                current.version,
                next.spec_yaml,
                next.spec_hash,
                next.phase.as_str(),
                next.deletion_started_at.map(Timestamp::unix_seconds),
                next.version,
                next.updated_at.unix_seconds(),
                next.vcenter_uuid,
                next.last_error,
            ],
        )
        .map_err(database(&action))?;
    if changed == 0 {
        // Unreachable under SQLite's single writer; the statement checks
        // the version itself all the same.
        let actual = load_cluster(transaction, &current.name)?;
        check_version(&actual, current.version)?;
    }
    Ok(next)
}

fn select_nodes(
    transaction: &Transaction<'_>,
    condition: &str,
    parameters: &[&dyn rusqlite::ToSql],
    action: &str,
) -> Result<Vec<NodeRecord>> {
    let mut statement = transaction
        .prepare(&format!(
            "SELECT {NODE_COLUMNS} FROM cluster_nodes WHERE {condition}
             ORDER BY node_pool, node_index, name"
        ))
        .map_err(database(action))?;
    let rows = statement
        .query_map(parameters, node_row)
        .map_err(database(action))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(database(action))?;
    rows.into_iter().map(NodeRow::into_record).collect()
}

fn find_node(
    transaction: &Transaction<'_>,
    cluster: &str,
    node: &str,
    action: &str,
) -> Result<Option<NodeRecord>> {
    Ok(select_nodes(
        transaction,
        "cluster = ?1 AND name = ?2",
        &[&cluster, &node],
        action,
    )?
    .pop())
}

/// Another node of the cluster with the same pool index or VM, if any.
fn find_clash(transaction: &Transaction<'_>, cluster: &str, node: &Node) -> Result<Option<Error>> {
    let action = format!("checking node `{}` of cluster `{cluster}`", node.name);
    let others = select_nodes(
        transaction,
        "cluster = ?1 AND name <> ?2 AND ((node_pool = ?3 AND node_index = ?4) OR vm_id = ?5)",
        &[&cluster, &node.name, &node.pool, &node.index, &node.vm_id],
        &action,
    )?;
    Ok(others
        .into_iter()
        .next()
        .map(|other| node_clash(cluster, node, other)))
}

impl Inner {
    fn create_cluster(
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
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            if let Some(existing) = find_cluster(transaction, name)? {
                return existing_cluster(existing, uid);
            }
            let owner: Option<String> = transaction
                .query_row("SELECT name FROM clusters WHERE uid = ?1", [uid], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(database(&action))?;
            if let Some(owner) = owner {
                return Err(uid_taken(uid, &owner));
            }
            transaction
                .execute(
                    &format!("INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?7, NULL, NULL)"),
                    params![
                        record.name,
                        record.uid,
                        record.spec_yaml,
                        record.spec_hash,
                        record.version,
                        record.phase.as_str(),
                        now.unix_seconds(),
                    ],
                )
                .map_err(database(&action))?;
            Ok(record)
        })
    }

    fn cluster(&self, name: &str) -> Result<ClusterRecord> {
        self.read(&format!("reading cluster `{name}`"), |transaction| {
            load_cluster(transaction, name)
        })
    }

    fn clusters(&self) -> Result<Vec<ClusterRecord>> {
        let action = "listing clusters";
        self.read(action, |transaction| {
            let mut statement = transaction
                .prepare(&format!(
                    "SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"
                ))
                .map_err(database(action))?;
            let rows = statement
                .query_map([], cluster_row)
                .map_err(database(action))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(database(action))?;
            rows.into_iter().map(ClusterRow::into_record).collect()
        })
    }

    /// Changes the fence's cluster as `change` says, compare-and-set.
    fn change_cluster(
        &self,
        fence: Option<&Fence>,
        name: &str,
        action: &str,
        now: Timestamp,
        change: impl FnOnce(&ClusterRecord) -> Result<ClusterRecord>,
    ) -> Result<ClusterRecord> {
        self.write(action, |transaction| {
            if let Some(fence) = fence {
                fenced(transaction, fence, action)?;
            }
            let current = load_cluster(transaction, name)?;
            let next = change(&current)?;
            save_change(transaction, current, next, now)
        })
    }

    fn remove_cluster(
        &self,
        name: &str,
        force: ForceDelete,
        now: Timestamp,
    ) -> Result<RemovedCluster> {
        let action = format!("removing cluster `{name}`");
        self.write(&action, |transaction| {
            let cluster = load_cluster(transaction, name)?;
            let nodes = select_nodes(transaction, "cluster = ?1", &[&name], &action)?;
            check_removal(&cluster, &nodes, force, now)?;
            let open_intents = select_intents(
                transaction,
                "cluster = ?1 AND completed_at IS NULL",
                &[&name],
                &action,
            )?;
            let released_leases = release_leases(transaction, name, None, &action)?;
            for sql in [
                "DELETE FROM cluster_secrets WHERE cluster = ?1",
                "DELETE FROM cluster_addons WHERE cluster = ?1",
                "DELETE FROM cluster_events WHERE cluster = ?1",
                "DELETE FROM cluster_intents WHERE cluster = ?1",
                "DELETE FROM cluster_nodes WHERE cluster = ?1",
                // A holder's next fenced write or renewal fails with `LockLost`.
                "DELETE FROM apply_locks WHERE cluster = ?1",
                "DELETE FROM clusters WHERE name = ?1",
            ] {
                transaction
                    .execute(sql, [name])
                    .map_err(database(&action))?;
            }
            Ok(RemovedCluster {
                cluster,
                nodes,
                open_intents,
                released_leases,
            })
        })
    }

    fn upsert_node(&self, fence: &Fence, node: &Node, now: Timestamp) -> Result<NodeRecord> {
        check_node(node)?;
        let cluster = fence.cluster();
        let action = format!("recording node `{}` of cluster `{cluster}`", node.name);
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            load_cluster(transaction, cluster)?;
            if let Some(clash) = find_clash(transaction, cluster, node)? {
                return Err(clash);
            }
            let existing = find_node(transaction, cluster, &node.name, &action)?;
            if let Some(existing) = existing.filter(|existing| existing.node == *node) {
                return Ok(existing);
            }
            // `created_at` keeps its first value.
            transaction
                .execute(
                    &format!(
                        "INSERT INTO cluster_nodes ({NODE_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
                         ON CONFLICT (cluster, name) DO UPDATE SET
                             node_pool = excluded.node_pool, node_index = excluded.node_index,
                             domain = excluded.domain, vm_id = excluded.vm_id, ip = excluded.ip,
                             phase = excluded.phase, spec_hash = excluded.spec_hash,
                             updated_at = excluded.updated_at"
                    ),
                    params![
                        cluster,
                        node.name,
                        node.pool,
                        node.index,
                        node.domain,
                        node.vm_id,
                        node.ip.map(|ip| ip.to_string()),
                        node.phase.as_str(),
                        node.spec_hash,
                        now.unix_seconds(),
                    ],
                )
                .map_err(database(&action))?;
            find_node(transaction, cluster, &node.name, &action)?.ok_or_else(|| Error::Corrupt {
                what: format!("node `{}` of cluster `{cluster}`", node.name),
                problem: "the row just written cannot be read back".into(),
            })
        })
    }

    fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>> {
        let action = format!("reading node `{node}` of cluster `{cluster}`");
        self.read(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            find_node(transaction, cluster, node, &action)
        })
    }

    fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>> {
        let action = format!("listing nodes of cluster `{cluster}`");
        self.read(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            select_nodes(transaction, "cluster = ?1", &[&cluster], &action)
        })
    }

    fn delete_node(&self, fence: &Fence, node: &str) -> Result<RemovedNode> {
        let cluster = fence.cluster();
        let action = format!("deleting node `{node}` of cluster `{cluster}`");
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            let record = find_node(transaction, cluster, node, &action)?;
            transaction
                .execute(
                    "DELETE FROM cluster_nodes WHERE cluster = ?1 AND name = ?2",
                    [cluster, node],
                )
                .map_err(database(&action))?;
            let released_leases = release_leases(transaction, cluster, Some(node), &action)?;
            Ok(RemovedNode {
                node: record,
                released_leases,
            })
        })
    }

    fn record_addons(&self, fence: &Fence, records: &[AddonRecord]) -> Result<()> {
        let cluster = fence.cluster();
        let action = format!("recording the add-ons of cluster `{cluster}`");
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            load_cluster(transaction, cluster)?;
            for record in records {
                transaction
                    .execute(
                        &format!(
                            "INSERT INTO cluster_addons (cluster, {ADDON_COLUMNS}) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                             ON CONFLICT (cluster, addon) DO UPDATE SET component = excluded.component, \
                             version = excluded.version, digest = excluded.digest, delivery = excluded.delivery, \
                             node = excluded.node, message = excluded.message, updated_at = excluded.updated_at"
                        ),
                        params![
                            cluster,
                            record.addon,
                            record.component,
                            record.version,
                            record.digest,
                            record.delivery.as_str(),
                            record.node,
                            record.message,
                            record.updated_at.unix_seconds()
                        ],
                    )
                    .map_err(database(&action))?;
            }
            Ok(())
        })
    }

    fn addons(&self, cluster: &str) -> Result<Vec<AddonRecord>> {
        let action = format!("reading the add-ons of cluster `{cluster}`");
        self.read(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            let mut statement = transaction
                .prepare(&format!(
                    "SELECT {ADDON_COLUMNS} FROM cluster_addons WHERE cluster = ?1 ORDER BY addon"
                ))
                .map_err(database(&action))?;
            let rows = statement
                .query_map(params![cluster], |row| {
                    Ok(AddonRow {
                        addon: row.get(0)?,
                        component: row.get(1)?,
                        version: row.get(2)?,
                        digest: row.get(3)?,
                        delivery: row.get(4)?,
                        node: row.get(5)?,
                        message: row.get(6)?,
                        updated_at: row.get(7)?,
                    })
                })
                .map_err(database(&action))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(database(&action))?;
            rows.into_iter()
                .map(|row| row.into_record(cluster))
                .collect()
        })
    }
}

#[async_trait]
impl ClusterStore for SqliteStore {
    async fn create_cluster(
        &self,
        fence: &Fence,
        uid: &str,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        let (fence, uid) = (fence.clone(), uid.to_owned());
        let (spec_yaml, spec_hash) = (spec_yaml.to_owned(), spec_hash.to_owned());
        self.run("creating a cluster", move |store| {
            store.create_cluster(&fence, &uid, &spec_yaml, &spec_hash, now)
        })
        .await
    }

    async fn cluster(&self, name: &str) -> Result<ClusterRecord> {
        let name = name.to_owned();
        self.run("reading a cluster", move |store| store.cluster(&name))
            .await
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>> {
        self.run("listing clusters", |store| store.clusters()).await
    }

    async fn update_cluster_spec(
        &self,
        fence: &Fence,
        expected_version: u64,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        let fence = fence.clone();
        let (spec_yaml, spec_hash) = (spec_yaml.to_owned(), spec_hash.to_owned());
        self.run("updating a cluster spec", move |store| {
            let name = fence.cluster();
            let action = format!("updating the spec of cluster `{name}`");
            store.change_cluster(Some(&fence), name, &action, now, |current| {
                spec_update(current, expected_version, &spec_yaml, &spec_hash)
            })
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
        let fence = fence.clone();
        self.run("setting a cluster phase", move |store| {
            let name = fence.cluster();
            let action = format!("setting the phase of cluster `{name}`");
            store.change_cluster(Some(&fence), name, &action, now, |current| {
                phase_update(current, expected_version, phase, now)
            })
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
        let fence = fence.clone();
        let last_error = last_error.map(str::to_owned);
        self.run("setting a cluster's status", move |store| {
            let name = fence.cluster();
            let action = format!("setting the status of cluster `{name}`");
            store.change_cluster(Some(&fence), name, &action, now, |current| {
                status_update(current, expected_version, phase, last_error.as_deref(), now)
            })
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
        let fence = fence.clone();
        let vcenter_uuid = vcenter_uuid.to_owned();
        self.run("recording a cluster's vCenter", move |store| {
            let name = fence.cluster();
            let action = format!("recording the vCenter of cluster `{name}`");
            store.change_cluster(Some(&fence), name, &action, now, |current| {
                vcenter_update(current, expected_version, &vcenter_uuid)
            })
        })
        .await
    }

    async fn mark_deleting(&self, name: &str, now: Timestamp) -> Result<ClusterRecord> {
        let name = name.to_owned();
        self.run("marking a cluster for deletion", move |store| {
            let action = format!("marking cluster `{name}` for deletion");
            store.change_cluster(None, &name, &action, now, |current| {
                Ok(deletion_mark(current, now))
            })
        })
        .await
    }

    async fn remove_cluster(
        &self,
        name: &str,
        force: ForceDelete,
        now: Timestamp,
    ) -> Result<RemovedCluster> {
        let name = name.to_owned();
        self.run("removing a cluster", move |store| {
            store.remove_cluster(&name, force, now)
        })
        .await
    }

    async fn upsert_node(&self, fence: &Fence, node: &Node, now: Timestamp) -> Result<NodeRecord> {
        let (fence, node) = (fence.clone(), node.clone());
        self.run("recording a node", move |store| {
            store.upsert_node(&fence, &node, now)
        })
        .await
    }

    async fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>> {
        let (cluster, node) = (cluster.to_owned(), node.to_owned());
        self.run("reading a node", move |store| store.node(&cluster, &node))
            .await
    }

    async fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>> {
        let cluster = cluster.to_owned();
        self.run("listing nodes", move |store| store.nodes(&cluster))
            .await
    }

    async fn delete_node(&self, fence: &Fence, node: &str) -> Result<RemovedNode> {
        let (fence, node) = (fence.clone(), node.to_owned());
        self.run("deleting a node", move |store| {
            store.delete_node(&fence, &node)
        })
        .await
    }

    async fn ensure_secret(&self, cluster: &str, name: &str, value: &str) -> Result<String> {
        let (cluster, name, value) = (cluster.to_owned(), name.to_owned(), value.to_owned());
        self.run("storing a secret", move |store| {
            store.ensure_secret(&cluster, &name, &value)
        })
        .await
    }

    async fn secret(&self, cluster: &str, name: &str) -> Result<Option<String>> {
        let (cluster, name) = (cluster.to_owned(), name.to_owned());
        self.run("reading a secret", move |store| {
            store.secret(&cluster, &name)
        })
        .await
    }

    async fn record_addons(&self, fence: &Fence, records: &[AddonRecord]) -> Result<()> {
        let (fence, records) = (fence.clone(), records.to_vec());
        self.run("recording add-ons", move |store| {
            store.record_addons(&fence, &records)
        })
        .await
    }

    async fn addons(&self, cluster: &str) -> Result<Vec<AddonRecord>> {
        let cluster = cluster.to_owned();
        self.run("reading add-ons", move |store| store.addons(&cluster))
            .await
    }

    async fn replace_secret(
        &self,
        cluster: &str,
        name: &str,
        expected: &str,
        value: &str,
    ) -> Result<String> {
        let (cluster, name) = (cluster.to_owned(), name.to_owned());
        let (expected, value) = (expected.to_owned(), value.to_owned());
        self.run("replacing a secret", move |store| {
            store.replace_secret(&cluster, &name, &expected, &value)
        })
        .await
    }
}
