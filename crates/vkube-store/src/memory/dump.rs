//! Looking at and around a [`MemoryStore`]'s state, as `sqlite3` or `psql`
//! look at the other stores' tables: [`MemoryStore::dump`] shows every
//! row as stored (secrets sealed), and [`MemoryStore::write_raw_secret`]
//! writes a secret's stored form past the sealing. Neither counts as a
//! write nor meets a fault.

use serde_json::{json, Value};

use super::state::State;
use super::MemoryStore;
use crate::error::Result;
use crate::sqlite::migrations::MIGRATIONS;

impl MemoryStore {
    /// The whole state as JSON, one array of rows per table, tables and
    /// columns named as in the SQL stores' schema (`clusters`,
    /// `cluster_nodes`, `cluster_secrets`, …; times as Unix seconds,
    /// secrets and passwords sealed as stored): for a failing test's
    /// diagnostics, and for tests of what is kept at rest. The low-water
    /// mark the SQL stores keep as a search hint has no counterpart here.
    pub fn dump(&self) -> Value {
        dump_state(&self.lock().state)
    }

    /// Stores `stored` as the at-rest form of secret `name` of `cluster`,
    /// bypassing the sealing: what a tool editing the database around
    /// vkube does. A sealed value copied from another row must then fail
    /// to open; a plain value (as versions before sealing wrote) is sealed
    /// by the next [`reopen`](Self::reopen), as opening such a state does.
    /// Fails with `ClusterNotFound`.
    pub fn write_raw_secret(&self, cluster: &str, name: &str, stored: &str) -> Result<()> {
        let mut shared = self.lock();
        let entry = shared.state.cluster_mut(cluster)?;
        entry.secrets.insert(name.to_owned(), stored.to_owned());
        Ok(())
    }
}

fn dump_state(state: &State) -> Value {
    let clusters = state.clusters.values();
    json!({
        "schema_version": MIGRATIONS
            .iter()
            .map(|(version, description, _)| json!({"version": version, "description": description}))
            .collect::<Vec<_>>(),
        "ip_pools": state.pools.values().map(|entry| json!({
            "name": entry.pool.name().as_str(),
            "definition": entry.pool,
            "owner_cluster": entry.owner,
        })).collect::<Vec<_>>(),
        "ip_leases": state.pools.values().flat_map(|entry| {
            entry.leases.iter().map(|(address, holder)| json!({
                "pool_name": entry.pool.name().as_str(),
                "address": address.to_string(),
                "cluster": holder.cluster,
                "node": holder.node,
            }))
        }).collect::<Vec<_>>(),
        "clusters": clusters.clone().map(|entry| {
            let c = &entry.record;
            json!({
                "name": c.name,
                "uid": c.uid,
                "spec_yaml": c.spec_yaml,
                "spec_hash": c.spec_hash,
                "version": c.version,
                "phase": c.phase.as_str(),
                "deletion_started_at": c.deletion_started_at.map(|t| t.unix_seconds()),
                "vcenter_uuid": c.vcenter_uuid,
                "last_error": c.last_error,
                "created_at": c.created_at.unix_seconds(),
                "updated_at": c.updated_at.unix_seconds(),
            })
        }).collect::<Vec<_>>(),
        "cluster_nodes": clusters.clone().flat_map(|entry| entry.nodes.values()).map(|n| json!({
            "cluster": n.cluster,
            "name": n.node.name,
            "node_pool": n.node.pool,
            "node_index": n.node.index,
            "domain": n.node.domain,
            "vm_id": n.node.vm_id,
            "ip": n.node.ip.map(|ip| ip.to_string()),
            "phase": n.node.phase.as_str(),
            "spec_hash": n.node.spec_hash,
            "created_at": n.created_at.unix_seconds(),
            "updated_at": n.updated_at.unix_seconds(),
        })).collect::<Vec<_>>(),
        "cluster_intents": clusters.clone().flat_map(|entry| entry.intents.values()).map(|i| json!({
            "id": i.id.get(),
            "cluster": i.cluster,
            "node": i.node,
            "action": i.action.as_str(),
            "detail": i.detail,
            "started_at": i.started_at.unix_seconds(),
            "completed_at": i.completed_at.map(|t| t.unix_seconds()),
            "outcome": i.outcome.as_ref().map(|o| o.as_str()),
            "outcome_message": i.outcome.as_ref().and_then(|o| o.message()),
        })).collect::<Vec<_>>(),
        "cluster_events": clusters.clone().flat_map(|entry| entry.events.iter()).map(|e| json!({
            "id": e.sequence,
            "cluster": e.cluster,
            "at": e.at.unix_seconds(),
            "level": e.level.as_str(),
            "kind": e.kind,
            "message": e.message,
            "node": e.node,
        })).collect::<Vec<_>>(),
        "cluster_secrets": clusters.clone().flat_map(|entry| {
            entry.secrets.iter().map(|(name, value)| json!({
                "cluster": entry.record.name,
                "name": name,
                "value": value,
            }))
        }).collect::<Vec<_>>(),
        "cluster_addons": clusters.flat_map(|entry| {
            entry.addons.values().map(|a| json!({
                "cluster": entry.record.name,
                "addon": a.addon,
                "component": a.component,
                "version": a.version,
                "digest": a.digest,
                "delivery": a.delivery.as_str(),
                "node": a.node,
                "message": a.message,
                "updated_at": a.updated_at.unix_seconds(),
            }))
        }).collect::<Vec<_>>(),
        "apply_locks": state.locks.iter().map(|(cluster, row)| json!({
            "cluster": cluster,
            "holder": row.holder,
            "generation": row.generation,
            "acquired_at": row.acquired_at.unix_seconds(),
            "expires_at": row.expires_at.unix_seconds(),
        })).collect::<Vec<_>>(),
        "cloud_credentials": state.credentials.iter().map(|(name, row)| json!({
            "name": name,
            "username": row.username,
            "password": row.sealed_password,
            "created_at": row.created_at.unix_seconds(),
            "updated_at": row.updated_at.unix_seconds(),
        })).collect::<Vec<_>>(),
    })
}
