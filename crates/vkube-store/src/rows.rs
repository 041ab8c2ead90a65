//! Rows as both backends store them (TEXT and BIGINT columns), and their
//! parsing into records. Each backend fills these structs from its own
//! row type, by column position in the `*_COLUMNS` lists below.

use std::net::IpAddr;

use vkube_core::ipam::IpPool;

use crate::cluster::{
    AddonDelivery, AddonRecord, ClusterPhase, ClusterRecord, Node, NodePhase, NodeRecord,
};
use crate::error::{Error, Result};
use crate::journal::{Event, EventLevel, Intent, IntentAction, IntentId, IntentOutcome};
use crate::time::Timestamp;

/// `clusters` columns, in [`ClusterRow`] order.
pub(crate) const CLUSTER_COLUMNS: &str = "name, uid, spec_yaml, spec_hash, version, phase, \
     deletion_started_at, created_at, updated_at, vcenter_uuid, last_error";

/// `cluster_nodes` columns, in [`NodeRow`] order.
pub(crate) const NODE_COLUMNS: &str = "cluster, name, node_pool, node_index, domain, vm_id, ip, \
     phase, spec_hash, created_at, updated_at";

/// `cluster_intents` columns, in [`IntentRow`] order (`detail` as text).
pub(crate) const INTENT_COLUMNS: &str =
    "id, cluster, node, action, detail, started_at, completed_at, outcome, outcome_message";

/// `cluster_events` columns, in [`EventRow`] order.
pub(crate) const EVENT_COLUMNS: &str = "id, cluster, at, level, kind, message, node";

/// `cluster_addons` columns, in [`AddonRow`] order.
pub(crate) const ADDON_COLUMNS: &str =
    "addon, component, version, digest, delivery, node, message, updated_at";

/// A stored enum value, or `Corrupt` naming what held it.
pub(crate) fn parse_stored<T>(
    parse: impl FnOnce(&str) -> Option<T>,
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T> {
    parse(text).ok_or_else(|| Error::Corrupt {
        what: what(),
        problem: format!("`{text}` is not a known value"),
    })
}

/// A pool's stored definition (JSON of the camelCase YAML fields).
pub(crate) fn parse_definition(name: &str, json: &str) -> Result<IpPool> {
    serde_json::from_str(json).map_err(|error| Error::Corrupt {
        what: format!("definition of pool `{name}`"),
        problem: error.to_string(),
    })
}

/// A pool's definition as stored.
pub(crate) fn definition_json(pool: &IpPool) -> String {
    serde_json::to_string(pool).expect("a pool always serializes")
}

/// A stored lease address.
pub(crate) fn parse_address(pool: &str, text: &str) -> Result<IpAddr> {
    text.parse().map_err(|_| Error::Corrupt {
        what: format!("address in pool `{pool}`"),
        problem: format!("`{text}` is not an IP address"),
    })
}

/// A stored integer that must fit `T` (a version, an index).
fn fitting<T: TryFrom<i64>>(value: i64, what: impl FnOnce() -> String) -> Result<T> {
    T::try_from(value).map_err(|_| Error::Corrupt {
        what: what(),
        problem: format!("{value} is out of range"),
    })
}

/// A `clusters` row as stored.
pub(crate) struct ClusterRow {
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) spec_yaml: String,
    pub(crate) spec_hash: String,
    pub(crate) version: i64,
    pub(crate) phase: String,
    pub(crate) deletion_started_at: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) vcenter_uuid: Option<String>,
    pub(crate) last_error: Option<String>,
}

impl ClusterRow {
    pub(crate) fn into_record(self) -> Result<ClusterRecord> {
        let phase = parse_stored(ClusterPhase::parse, &self.phase, || {
            format!("phase of cluster `{}`", self.name)
        })?;
        let version = fitting(self.version, || {
            format!("version of cluster `{}`", self.name)
        })?;
        Ok(ClusterRecord {
            name: self.name,
            uid: self.uid,
            spec_yaml: self.spec_yaml,
            spec_hash: self.spec_hash,
            version,
            phase,
            deletion_started_at: self.deletion_started_at.map(Timestamp::from_unix_seconds),
            vcenter_uuid: self.vcenter_uuid,
            last_error: self.last_error,
            created_at: Timestamp::from_unix_seconds(self.created_at),
            updated_at: Timestamp::from_unix_seconds(self.updated_at),
        })
    }
}

/// A `cluster_nodes` row as stored.
pub(crate) struct NodeRow {
    pub(crate) cluster: String,
    pub(crate) name: String,
    pub(crate) pool: String,
    pub(crate) index: i64,
    pub(crate) domain: Option<String>,
    pub(crate) vm_id: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) phase: String,
    pub(crate) spec_hash: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl NodeRow {
    pub(crate) fn into_record(self) -> Result<NodeRecord> {
        let what = |field: &str| {
            format!(
                "{field} of node `{}` in cluster `{}`",
                self.name, self.cluster
            )
        };
        let phase = parse_stored(NodePhase::parse, &self.phase, || what("phase"))?;
        let index = fitting(self.index, || what("index"))?;
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
                index,
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

/// A `cluster_intents` row as stored (`detail` as JSON text).
pub(crate) struct IntentRow {
    pub(crate) id: i64,
    pub(crate) cluster: String,
    pub(crate) node: Option<String>,
    pub(crate) action: String,
    pub(crate) detail: String,
    pub(crate) started_at: i64,
    pub(crate) completed_at: Option<i64>,
    pub(crate) outcome: Option<String>,
    pub(crate) outcome_message: Option<String>,
}

impl IntentRow {
    pub(crate) fn into_intent(self) -> Result<Intent> {
        let what =
            |field: &str| format!("{field} of intent {} (cluster `{}`)", self.id, self.cluster);
        let action = parse_stored(IntentAction::parse, &self.action, || what("action"))?;
        let detail = serde_json::from_str(&self.detail).map_err(|error| Error::Corrupt {
            what: what("detail"),
            problem: error.to_string(),
        })?;
        let outcome = match &self.outcome {
            None => None,
            Some(outcome) => Some(parse_stored(
                |text| IntentOutcome::parse(text, self.outcome_message.clone()),
                outcome,
                || what("outcome"),
            )?),
        };
        Ok(Intent {
            id: IntentId::from_raw(self.id),
            cluster: self.cluster,
            node: self.node,
            action,
            detail,
            started_at: Timestamp::from_unix_seconds(self.started_at),
            completed_at: self.completed_at.map(Timestamp::from_unix_seconds),
            outcome,
        })
    }
}

/// A `cluster_events` row as stored.
pub(crate) struct EventRow {
    pub(crate) sequence: i64,
    pub(crate) cluster: String,
    pub(crate) at: i64,
    pub(crate) level: String,
    pub(crate) kind: String,
    pub(crate) message: String,
    pub(crate) node: Option<String>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> Result<Event> {
        let level = parse_stored(EventLevel::parse, &self.level, || {
            format!(
                "level of event {} (cluster `{}`)",
                self.sequence, self.cluster
            )
        })?;
        Ok(Event {
            sequence: self.sequence,
            cluster: self.cluster,
            at: Timestamp::from_unix_seconds(self.at),
            level,
            kind: self.kind,
            message: self.message,
            node: self.node,
        })
    }
}

/// A `cluster_addons` row as stored (its cluster is known to the caller).
pub(crate) struct AddonRow {
    pub(crate) addon: String,
    pub(crate) component: String,
    pub(crate) version: String,
    pub(crate) digest: String,
    pub(crate) delivery: String,
    pub(crate) node: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) updated_at: i64,
}

impl AddonRow {
    pub(crate) fn into_record(self, cluster: &str) -> Result<AddonRecord> {
        let delivery = parse_stored(AddonDelivery::parse, &self.delivery, || {
            format!("delivery of add-on `{}` of cluster `{cluster}`", self.addon)
        })?;
        Ok(AddonRecord {
            addon: self.addon,
            component: self.component,
            version: self.version,
            digest: self.digest,
            delivery,
            node: self.node,
            message: self.message,
            updated_at: Timestamp::from_unix_seconds(self.updated_at),
        })
    }
}
