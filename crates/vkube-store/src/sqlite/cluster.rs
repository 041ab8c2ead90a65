//! Clusters and node records in SQLite: the [`ClusterStore`]
//! implementation.
//!
//! Cluster changes are compare-and-set on `version`
//! (`UPDATE … WHERE name = ? AND version = ?`), checked again by the
//! statement itself so the same SQL stays correct under PostgreSQL's
//! weaker default isolation, where the read and the write could
//! interleave with another replica.

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::ipam::release_leases;
use super::journal::select_intents;
use super::{check_name, database, SqliteStore};
use crate::cluster::{
    AddonDelivery, AddonRecord, ClusterPhase, ClusterRecord, ClusterStore, ForceDelete, Node,
    NodePhase, NodeRecord, RemovedCluster, RemovedNode,
};
use crate::error::{Error, Result};
use crate::time::Timestamp;

const CLUSTER_COLUMNS: &str = "name, uid, spec_yaml, spec_hash, version, phase, \
     deletion_started_at, created_at, updated_at";

const NODE_COLUMNS: &str = "cluster, name, node_pool, node_index, domain, vm_id, ip, phase, \
     spec_hash, created_at, updated_at";

/// A stored enum value, or `Corrupt` naming what held it.
pub(super) fn parse_stored<T>(
    parse: impl FnOnce(&str) -> Option<T>,
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T> {
    parse(text).ok_or_else(|| Error::Corrupt {
        what: what(),
        problem: format!("`{text}` is not a known value"),
    })
}

/// A `clusters` row as stored, before its text columns are parsed.
struct ClusterRow {
    name: String,
    uid: String,
    spec_yaml: String,
    spec_hash: String,
    version: u64,
    phase: String,
    deletion_started_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl ClusterRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
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
        })
    }

    fn into_record(self) -> Result<ClusterRecord> {
        let phase = parse_stored(ClusterPhase::parse, &self.phase, || {
            format!("phase of cluster `{}`", self.name)
        })?;
        Ok(ClusterRecord {
            name: self.name,
            uid: self.uid,
            spec_yaml: self.spec_yaml,
            spec_hash: self.spec_hash,
            version: self.version,
            phase,
            deletion_started_at: self.deletion_started_at.map(Timestamp::from_unix_seconds),
            created_at: Timestamp::from_unix_seconds(self.created_at),
            updated_at: Timestamp::from_unix_seconds(self.updated_at),
        })
    }
}

/// The cluster, or `None`.
fn find_cluster(transaction: &Transaction<'_>, name: &str) -> Result<Option<ClusterRecord>> {
    transaction
        .query_row(
            &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
            [name],
            ClusterRow::read,
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

fn check_version(current: &ClusterRecord, expected_version: u64) -> Result<()> {
    if current.version == expected_version {
        Ok(())
    } else {
        Err(Error::Conflict {
            cluster: current.name.clone(),
            expected_version,
            actual: current.version,
        })
    }
}

/// Writes `next` over `current` with the version bumped; writes nothing if
/// they are equal.
fn save_change(
    transaction: &Transaction<'_>,
    current: ClusterRecord,
    mut next: ClusterRecord,
    now: Timestamp,
) -> Result<ClusterRecord> {
    if next == current {
        return Ok(current);
    }
    next.version = current.version + 1;
    next.updated_at = now;
    let action = format!("updating cluster `{}`", current.name);
    let changed = transaction
        .execute(
            "UPDATE clusters SET spec_yaml = ?3, spec_hash = ?4, phase = ?5,
                 deletion_started_at = ?6, version = ?7, updated_at = ?8
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
            ],
        )
        .map_err(database(&action))?;
    if changed == 0 {
        // Unreachable under SQLite's single writer; with PostgreSQL another
        // replica may have committed between our read and this write.
        let actual = load_cluster(transaction, &current.name)?;
        check_version(&actual, current.version)?;
    }
    Ok(next)
}

/// Moves `record` into deletion: phase `phase` and a start time, kept if
/// already set.
fn start_deletion(record: &mut ClusterRecord, phase: ClusterPhase, now: Timestamp) {
    record.phase = phase;
    record.deletion_started_at.get_or_insert(now);
}

/// A `cluster_nodes` row as stored.
struct NodeRow {
    cluster: String,
    name: String,
    pool: String,
    index: u32,
    domain: Option<String>,
    vm_id: Option<String>,
    ip: Option<String>,
    phase: String,
    spec_hash: String,
    created_at: i64,
    updated_at: i64,
}

impl NodeRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
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

    fn into_record(self) -> Result<NodeRecord> {
        let what = |field: &str| {
            format!(
                "{field} of node `{}` in cluster `{}`",
                self.name, self.cluster
            )
        };
        let phase = parse_stored(NodePhase::parse, &self.phase, || what("phase"))?;
        let ip = match &self.ip {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| Error::Corrupt {
                what: what("address"),
                problem: format!("`{text}` is not an IP address"),
            })?),
        };
        Ok(NodeRecord {
            cluster: self.cluster,
            node: Node {
                name: self.name,
                pool: self.pool,
                index: self.index,
                domain: self.domain,
                vm_id: self.vm_id,
                ip,
                phase,
                spec_hash: self.spec_hash,
            },
            created_at: Timestamp::from_unix_seconds(self.created_at),
            updated_at: Timestamp::from_unix_seconds(self.updated_at),
        })
    }
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
        .query_map(parameters, NodeRow::read)
        .map_err(database(action))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(database(action))?;
    rows.into_iter().map(NodeRow::into_record).collect()
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
    Ok(others.into_iter().next().map(|other| {
        let shared = if other.node.vm_id.is_some() && other.node.vm_id == node.vm_id {
            format!("VM `{}`", other.node.vm_id.as_deref().unwrap_or_default())
        } else {
            format!("index {} of pool `{}`", node.index, node.pool)
        };
        Error::NodeClash {
            cluster: cluster.to_owned(),
            node: node.name.clone(),
            other: other.node.name,
            shared,
        }
    }))
}

impl ClusterStore for SqliteStore {
    fn create_cluster(
        &self,
        name: &str,
        uid: &str,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        check_name("cluster", name)?;
        check_name("cluster uid", uid)?;
        let action = format!("creating cluster `{name}`");
        self.write(&action, |transaction| {
            if let Some(existing) = find_cluster(transaction, name)? {
                return if existing.uid == uid {
                    Ok(existing)
                } else {
                    Err(Error::ClusterExists {
                        cluster: name.to_owned(),
                    })
                };
            }
            let owner: Option<String> = transaction
                .query_row("SELECT name FROM clusters WHERE uid = ?1", [uid], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(database(&action))?;
            if let Some(owner) = owner {
                return Err(Error::Invalid {
                    field: "cluster uid",
                    problem: format!("`{uid}` is already used by cluster `{owner}`"),
                });
            }
            let record = ClusterRecord {
                name: name.to_owned(),
                uid: uid.to_owned(),
                spec_yaml: spec_yaml.to_owned(),
                spec_hash: spec_hash.to_owned(),
                version: 1,
                phase: ClusterPhase::Pending,
                deletion_started_at: None,
                created_at: now,
                updated_at: now,
            };
            transaction
                .execute(
                    &format!("INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?7)"),
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
                .query_map([], ClusterRow::read)
                .map_err(database(action))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(database(action))?;
            rows.into_iter().map(ClusterRow::into_record).collect()
        })
    }

    fn update_cluster_spec(
        &self,
        name: &str,
        expected_version: u64,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        self.write(
            &format!("updating the spec of cluster `{name}`"),
            |transaction| {
                let current = load_cluster(transaction, name)?;
                check_version(&current, expected_version)?;
                let mut next = current.clone();
                next.spec_yaml = spec_yaml.to_owned();
                next.spec_hash = spec_hash.to_owned();
                if current.deletion_started_at.is_some() && next != current {
                    return Err(Error::ClusterDeleting {
                        cluster: name.to_owned(),
                        requested: "an updated spec".into(),
                    });
                }
                save_change(transaction, current, next, now)
            },
        )
    }

    fn set_cluster_phase(
        &self,
        name: &str,
        expected_version: u64,
        phase: ClusterPhase,
        now: Timestamp,
    ) -> Result<ClusterRecord> {
        self.write(
            &format!("setting the phase of cluster `{name}`"),
            |transaction| {
                let current = load_cluster(transaction, name)?;
                check_version(&current, expected_version)?;
                let mut next = current.clone();
                if phase.is_deletion() {
                    start_deletion(&mut next, phase, now);
                } else if current.deletion_started_at.is_some() {
                    return Err(Error::ClusterDeleting {
                        cluster: name.to_owned(),
                        requested: phase.to_string(),
                    });
                } else {
                    next.phase = phase;
                }
                save_change(transaction, current, next, now)
            },
        )
    }

    fn mark_deleting(&self, name: &str, now: Timestamp) -> Result<ClusterRecord> {
        self.write(
            &format!("marking cluster `{name}` for deletion"),
            |transaction| {
                let current = load_cluster(transaction, name)?;
                let mut next = current.clone();
                let phase = match current.phase {
                    ClusterPhase::Deleted => ClusterPhase::Deleted,
                    _ => ClusterPhase::Deleting,
                };
                start_deletion(&mut next, phase, now);
                save_change(transaction, current, next, now)
            },
        )
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
            match force {
                _ if nodes.is_empty() => {}
                ForceDelete::Now => {}
                ForceDelete::No => {
                    return Err(Error::ClusterHasNodes {
                        cluster: name.to_owned(),
                        nodes: nodes.iter().map(|node| node.node.name.clone()).collect(),
                    })
                }
                ForceDelete::IfStuckFor(required) => {
                    let stuck_for = cluster.deleting_for(now);
                    if stuck_for.is_none_or(|stuck_for| stuck_for < required) {
                        return Err(Error::DeletionNotStuck {
                            cluster: name.to_owned(),
                            stuck_for,
                            required,
                        });
                    }
                }
            }
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
                // A concurrent holder learns on its next renewal (`LockLost`).
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

    fn upsert_node(&self, cluster: &str, node: &Node, now: Timestamp) -> Result<NodeRecord> {
        check_name("node", &node.name)?;
        check_name("node pool", &node.pool)?;
        let action = format!("recording node `{}` of cluster `{cluster}`", node.name);
        self.write(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            if let Some(clash) = find_clash(transaction, cluster, node)? {
                return Err(clash);
            }
            let existing = select_nodes(
                transaction,
                "cluster = ?1 AND name = ?2",
                &[&cluster, &node.name],
                &action,
            )?
            .pop();
            if let Some(existing) = existing.filter(|existing| existing.node == *node) {
                return Ok(existing);
            }
            // Portable upsert (SQLite 3.24+, PostgreSQL 9.5+); `created_at`
            // keeps its first value.
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
            select_nodes(
                transaction,
                "cluster = ?1 AND name = ?2",
                &[&cluster, &node.name],
                &action,
            )?
            .pop()
            .ok_or_else(|| Error::Corrupt {
                what: format!("node `{}` of cluster `{cluster}`", node.name),
                problem: "the row just written cannot be read back".into(),
            })
        })
    }

    fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>> {
        let action = format!("reading node `{node}` of cluster `{cluster}`");
        self.read(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            Ok(select_nodes(
                transaction,
                "cluster = ?1 AND name = ?2",
                &[&cluster, &node],
                &action,
            )?
            .pop())
        })
    }

    fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>> {
        let action = format!("listing nodes of cluster `{cluster}`");
        self.read(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            select_nodes(transaction, "cluster = ?1", &[&cluster], &action)
        })
    }

    fn delete_node(&self, cluster: &str, node: &str) -> Result<RemovedNode> {
        let action = format!("deleting node `{node}` of cluster `{cluster}`");
        self.write(&action, |transaction| {
            let record = select_nodes(
                transaction,
                "cluster = ?1 AND name = ?2",
                &[&cluster, &node],
                &action,
            )?
            .pop();
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

    fn ensure_secret(&self, cluster: &str, name: &str, value: &str) -> Result<String> {
        super::secrets::ensure_secret(self, cluster, name, value)
    }

    fn secret(&self, cluster: &str, name: &str) -> Result<Option<String>> {
        super::secrets::secret(self, cluster, name)
    }

    fn record_addons(&self, cluster: &str, records: &[AddonRecord]) -> Result<()> {
        let action = format!("recording the add-ons of cluster `{cluster}`");
        self.write(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            for record in records {
                transaction
                    .execute(
                        "INSERT INTO cluster_addons (cluster, addon, component, version, digest, delivery, node, message, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                         ON CONFLICT (cluster, addon) DO UPDATE SET component = excluded.component, \
                         version = excluded.version, digest = excluded.digest, delivery = excluded.delivery, \
                         node = excluded.node, message = excluded.message, updated_at = excluded.updated_at",
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
                .prepare(
                    "SELECT addon, component, version, digest, delivery, node, message, updated_at \
                     FROM cluster_addons WHERE cluster = ?1 ORDER BY addon",
                )
                .map_err(database(&action))?;
            let rows = statement
                .query_map(params![cluster], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, Option<String>>(5)?,
                        row.get::<_, Option<String>>(6)?,
                        row.get::<_, i64>(7)?,
                    ))
                })
                .map_err(database(&action))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(database(&action))?;
            rows.into_iter()
                .map(
                    |(addon, component, version, digest, delivery, node, message, at)| {
                        let delivery = parse_stored(AddonDelivery::parse, &delivery, || {
                            format!("delivery of add-on `{addon}` of cluster `{cluster}`")
                        })?;
                        Ok(AddonRecord {
                            addon,
                            component,
                            version,
                            digest,
                            delivery,
                            node,
                            message,
                            updated_at: Timestamp::from_unix_seconds(at),
                        })
                    },
                )
                .collect()
        })
    }

    fn replace_secret(
        &self,
        cluster: &str,
        name: &str,
        expected: &str,
        value: &str,
    ) -> Result<String> {
        super::secrets::replace_secret(self, cluster, name, expected, value)
    }
}
