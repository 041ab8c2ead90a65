//! The rules both backends apply the same way: name checks, the version
//! compare-and-set, phase moves, removal's force rules, lock decisions and
//! the search for the lowest free address. The backends only read and
//! write rows; what a write means is decided here, once.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use vkube_core::ipam::{next_free_from, IpPool};

use crate::cluster::{ClusterPhase, ClusterRecord, ForceDelete, Node, NodeRecord, LAST_ERROR_MAX};
use crate::error::{Error, Result};
use crate::lock::{ApplyLock, Fence};
use crate::time::Timestamp;

/// Checks a name given to the store (cluster, node, holder): non-empty, at
/// most 253 characters, no control characters.
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<()> {
    let problem = if value.is_empty() {
        "name is required".to_owned()
    } else if value.len() > 253 {
        format!("name `{value}` is longer than 253 characters")
    } else if value.chars().any(char::is_control) {
        format!(
            "name `{}` contains control characters",
            value.escape_debug()
        )
    } else {
        return Ok(());
    };
    Err(Error::Invalid { field, problem })
}

/// A lock's time to live: at least one second.
/// Checks an intent's node name (when it names one); what recording it is
/// called in messages.
pub(crate) fn intent_to_record(
    fence: &Fence,
    node: Option<&str>,
    action: crate::journal::IntentAction,
) -> Result<String> {
    if let Some(node) = node {
        check_name("node", node)?;
    }
    Ok(format!(
        "recording intent `{action}` for cluster `{}`",
        fence.cluster()
    ))
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl.as_secs() == 0 {
        return Err(Error::Invalid {
            field: "apply lock",
            problem: "time to live must be at least one second".into(),
        });
    }
    Ok(())
}

/// `Conflict` unless `current` is still at `expected_version`.
pub(crate) fn check_version(current: &ClusterRecord, expected_version: u64) -> Result<()> {
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

/// A cluster as [`create_cluster`](crate::ClusterStore::create_cluster)
/// records it.
pub(crate) fn new_cluster(
    name: &str,
    uid: &str,
    spec_yaml: &str,
    spec_hash: &str,
    now: Timestamp,
) -> Result<ClusterRecord> {
    check_name("cluster", name)?;
    check_name("cluster uid", uid)?;
    Ok(ClusterRecord {
        name: name.to_owned(),
        uid: uid.to_owned(),
        spec_yaml: spec_yaml.to_owned(),
        spec_hash: spec_hash.to_owned(),
        version: 1,
        phase: ClusterPhase::Pending,
        deletion_started_at: None,
        vcenter_uuid: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    })
}

/// What `create_cluster` answers when `name` already exists.
pub(crate) fn existing_cluster(existing: ClusterRecord, uid: &str) -> Result<ClusterRecord> {
    if existing.uid == uid {
        Ok(existing)
    } else {
        Err(Error::ClusterExists {
            cluster: existing.name,
        })
    }
}

/// `Invalid` for a uid another cluster already uses.
pub(crate) fn uid_taken(uid: &str, owner: &str) -> Error {
    Error::Invalid {
        field: "cluster uid",
        problem: format!("`{uid}` is already used by cluster `{owner}`"),
    }
}

/// The cluster with a new desired spec.
pub(crate) fn spec_update(
    current: &ClusterRecord,
    expected_version: u64,
    spec_yaml: &str,
    spec_hash: &str,
) -> Result<ClusterRecord> {
    check_version(current, expected_version)?;
    let mut next = current.clone();
    next.spec_yaml = spec_yaml.to_owned();
    next.spec_hash = spec_hash.to_owned();
    if current.deletion_started_at.is_some() && next != *current {
        return Err(Error::ClusterDeleting {
            cluster: current.name.clone(),
            requested: "an updated spec".into(),
        });
    }
    Ok(next)
}

/// The cluster in `phase`; deletion phases also start deletion.
pub(crate) fn phase_update(
    current: &ClusterRecord,
    expected_version: u64,
    phase: ClusterPhase,
    now: Timestamp,
) -> Result<ClusterRecord> {
    check_version(current, expected_version)?;
    let mut next = current.clone();
    if phase.is_deletion() {
        start_deletion(&mut next, phase, now);
    } else if current.deletion_started_at.is_some() {
        return Err(Error::ClusterDeleting {
            cluster: current.name.clone(),
            requested: phase.to_string(),
        });
    } else {
        next.phase = phase;
    }
    Ok(next)
}

/// The cluster in `phase` with `last_error` (cut to [`LAST_ERROR_MAX`]
/// bytes), or without one.
pub(crate) fn status_update(
    current: &ClusterRecord,
    expected_version: u64,
    phase: ClusterPhase,
    last_error: Option<&str>,
    now: Timestamp,
) -> Result<ClusterRecord> {
    let mut next = phase_update(current, expected_version, phase, now)?;
    next.last_error = last_error.map(|error| cut(error, LAST_ERROR_MAX).to_owned());
    Ok(next)
}

/// The longest prefix of `text` of at most `max` bytes that ends at a
/// character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The cluster with its vCenter recorded; `VcenterMismatch` when another
/// one is recorded already.
pub(crate) fn vcenter_update(
    current: &ClusterRecord,
    expected_version: u64,
    vcenter_uuid: &str,
) -> Result<ClusterRecord> {
    check_version(current, expected_version)?;
    check_name("vCenter instance UUID", vcenter_uuid)?;
    match &current.vcenter_uuid {
        Some(recorded) if recorded == vcenter_uuid => Ok(current.clone()),
        Some(recorded) => Err(Error::VcenterMismatch {
            cluster: current.name.clone(),
            recorded: recorded.clone(),
            connected: vcenter_uuid.to_owned(),
        }),
        None if current.deletion_started_at.is_some() => Err(Error::ClusterDeleting {
            cluster: current.name.clone(),
            requested: "recorded in a vCenter".into(),
        }),
        None => {
            let mut next = current.clone();
            next.vcenter_uuid = Some(vcenter_uuid.to_owned());
            Ok(next)
        }
    }
}

/// The cluster marked for deletion (staying `Deleted` if it is).
pub(crate) fn deletion_mark(current: &ClusterRecord, now: Timestamp) -> ClusterRecord {
    let mut next = current.clone();
    let phase = match current.phase {
        ClusterPhase::Deleted => ClusterPhase::Deleted,
        _ => ClusterPhase::Deleting,
    };
    start_deletion(&mut next, phase, now);
    next
}

/// Moves `record` into deletion: phase `phase` and a start time, kept if
/// already set.
fn start_deletion(record: &mut ClusterRecord, phase: ClusterPhase, now: Timestamp) {
    record.phase = phase;
    record.deletion_started_at.get_or_insert(now);
}

/// `next` with the version bumped and `updated_at = now`, or `None` when
/// it equals `current` (nothing to write).
pub(crate) fn bumped(
    current: &ClusterRecord,
    mut next: ClusterRecord,
    now: Timestamp,
) -> Option<ClusterRecord> {
    if next == *current {
        return None;
    }
    next.version = current.version + 1;
    next.updated_at = now;
    Some(next)
}

/// Whether `remove_cluster` may drop `cluster` with `nodes` still recorded.
pub(crate) fn check_removal(
    cluster: &ClusterRecord,
    nodes: &[NodeRecord],
    force: ForceDelete,
    now: Timestamp,
) -> Result<()> {
    match force {
        _ if nodes.is_empty() => Ok(()),
        ForceDelete::Now => Ok(()),
        ForceDelete::No => Err(Error::ClusterHasNodes {
            cluster: cluster.name.clone(),
            nodes: nodes.iter().map(|node| node.node.name.clone()).collect(),
        }),
        ForceDelete::IfStuckFor(required) => {
            let stuck_for = cluster.deleting_for(now);
            if stuck_for.is_none_or(|stuck_for| stuck_for < required) {
                Err(Error::DeletionNotStuck {
                    cluster: cluster.name.clone(),
                    stuck_for,
                    required,
                })
            } else {
                Ok(())
            }
        }
    }
}

/// The names a node write checks.
pub(crate) fn check_node(node: &Node) -> Result<()> {
    check_name("node", &node.name)?;
    check_name("node pool", &node.pool)
}

/// `NodeClash`: `node` would share a VM or a pool index with `other`.
pub(crate) fn node_clash(cluster: &str, node: &Node, other: NodeRecord) -> Error {
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
}

/// Whether `cluster` may lease from `pool`, whose claim is `owner`:
/// `Ok(true)` when it must claim the (restricted, unclaimed) pool now,
/// `Ok(false)` when nothing needs claiming, `PoolRestricted` when another
/// cluster claimed it.
pub(crate) fn claim(pool: &IpPool, owner: Option<&str>, cluster: &str) -> Result<bool> {
    if !pool.restrict_to_cluster() {
        return Ok(false);
    }
    match owner {
        Some(owner) if owner != cluster => Err(Error::PoolRestricted {
            pool: pool.name().clone(),
            owner: owner.to_owned(),
            requested: cluster.to_owned(),
        }),
        Some(_) => Ok(false),
        None => Ok(true),
    }
}

/// Who holds a lease: cluster and node.
pub(crate) type LeaseHolder<'a> = (&'a str, &'a str);

/// What leasing exactly `address` of `pool` to `node` means, given who
/// holds `address` now and which address of the pool the node holds:
/// `Ok(true)` when the node holds it already, `Ok(false)` when it may take
/// it, else `AddressUnavailable` saying why not.
pub(crate) fn exact_lease(
    pool: &IpPool,
    address: IpAddr,
    node: &str,
    holder: Option<LeaseHolder<'_>>,
    held: Option<IpAddr>,
) -> Result<bool> {
    let unavailable = |reason: String| Error::AddressUnavailable {
        pool: pool.name().clone(),
        address,
        node: node.to_owned(),
        reason,
    };
    match (held, holder) {
        (Some(held), _) if held == address => Ok(true),
        (Some(held), _) => Err(unavailable(format!(
            "the node holds {held} of this pool already"
        ))),
        (None, Some((cluster, other))) => Err(unavailable(format!(
            "it is leased to node `{other}` of cluster `{cluster}`"
        ))),
        (None, None) if !pool.is_allocatable(address) => Err(unavailable(
            "the pool does not hand it out (outside its range, excluded, or its gateway)".into(),
        )),
        (None, None) => Ok(false),
    }
}

/// An `apply_locks` row.
#[derive(Debug, Clone)]
pub(crate) struct LockRow {
    pub(crate) holder: Option<String>,
    pub(crate) generation: u64,
    pub(crate) acquired_at: Timestamp,
    pub(crate) expires_at: Timestamp,
}

impl LockRow {
    /// The lock as `apply_lock` reports it: `None` when released.
    pub(crate) fn into_lock(self, cluster: &str) -> Option<ApplyLock> {
        Some(ApplyLock {
            cluster: cluster.to_owned(),
            holder: self.holder?,
            generation: self.generation,
            acquired_at: self.acquired_at,
            expires_at: self.expires_at,
            taken_over_from: None,
        })
    }

    /// Whether `fence` still holds this lock.
    pub(crate) fn admits(&self, fence: &Fence) -> bool {
        self.holder.as_deref() == Some(fence.holder()) && self.generation == fence.generation()
    }
}

/// The lock `holder` gets, given the row as it is (`None`: never locked),
/// or `Locked` naming the live holder.
pub(crate) fn acquisition(
    row: Option<LockRow>,
    cluster: &str,
    holder: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<ApplyLock> {
    let (generation, acquired_at, taken_over_from) = match row {
        None => (1, now, None),
        Some(row) => match row.holder {
            // Ours already: a retry, or a renewal through acquire.
            Some(current) if current == holder => (row.generation, row.acquired_at, None),
            Some(current) if row.expires_at > now => {
                return Err(locked(cluster, current, row.expires_at, now))
            }
            // Expired: its holder stopped renewing (crashed or hung).
            Some(current) => (row.generation + 1, now, Some(current)),
            None => (row.generation + 1, now, None),
        },
    };
    Ok(ApplyLock {
        cluster: cluster.to_owned(),
        holder: holder.to_owned(),
        generation,
        acquired_at,
        expires_at,
        taken_over_from,
    })
}

/// `Locked` by `holder` until `expires_at`.
pub(crate) fn locked(
    cluster: &str,
    holder: String,
    expires_at: Timestamp,
    now: Timestamp,
) -> Error {
    Error::Locked {
        cluster: cluster.to_owned(),
        holder,
        expires_in: expires_at.duration_since(now),
    }
}

/// `LockLost` for `holder`, given the lock row as it is now.
pub(crate) fn lock_lost(cluster: &str, holder: &str, row: Option<LockRow>) -> Error {
    Error::LockLost {
        cluster: cluster.to_owned(),
        holder: holder.to_owned(),
        now_held_by: row
            .and_then(|row| row.holder)
            .filter(|current| current != holder),
    }
}

/// Checks a fence against the lock row read inside the write's
/// transaction: `LockLost` unless it still admits the fence.
pub(crate) fn check_fence(fence: &Fence, row: Option<LockRow>) -> Result<()> {
    match row {
        Some(row) if row.admits(fence) => Ok(()),
        row => Err(lock_lost(fence.cluster(), fence.holder(), row)),
    }
}

/// The address as 32 lowercase hex digits: text order is address order,
/// in SQLite and PostgreSQL alike (`COLLATE "C"` there).
pub(crate) fn address_key(address: IpAddr) -> String {
    let bits = match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    format!("{bits:032x}")
}

/// The address a key stands for, in the family of `like`.
fn key_address(like: IpAddr, key: &str) -> Option<IpAddr> {
    let bits = u128::from_str_radix(key, 16).ok()?;
    Some(match like {
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(bits).ok()?.into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    })
}

/// The search for a pool's lowest free address, reading used addresses in
/// chunks upward from the pool's low-water mark, so a densely used pool
/// costs one short query instead of reading every lease. The backend runs
/// the queries: `SELECT address_key … WHERE address_key >= start_key()
/// ORDER BY address_key LIMIT CHUNK`, handing each chunk to [`feed`].
///
/// [`feed`]: FreeScan::feed
pub(crate) struct FreeScan<'a> {
    pool: &'a IpPool,
    from: IpAddr,
}

/// What one chunk told the search.
pub(crate) enum ScanStep {
    /// The lowest free address.
    Free(IpAddr),
    /// Every allocatable address is leased.
    Full,
    /// Read the next chunk, from the new [`FreeScan::start_key`].
    More,
}

impl<'a> FreeScan<'a> {
    /// How many used addresses one query reads.
    pub(crate) const CHUNK: u32 = 256;

    /// A search starting at the low-water mark, if it is a usable one.
    pub(crate) fn new(pool: &'a IpPool, low_water_key: Option<&str>) -> Self {
        let first = pool.addresses().range().start();
        let from = match low_water_key.and_then(|key| key_address(first, key)) {
            Some(low) if address_key(low) > address_key(first) => low,
            _ => first,
        };
        FreeScan { pool, from }
    }

    /// Where the next chunk starts.
    pub(crate) fn start_key(&self) -> String {
        address_key(self.from)
    }

    /// Takes the next chunk: the used keys from [`start_key`](Self::start_key)
    /// up, ascending, at most [`CHUNK`](Self::CHUNK).
    pub(crate) fn feed(&mut self, keys: &[String]) -> Result<ScanStep> {
        let first = self.pool.addresses().range().start();
        let mut used = BTreeSet::new();
        for key in keys {
            let address = key_address(first, key).ok_or_else(|| Error::Corrupt {
                what: format!("address key in pool `{}`", self.pool.name()),
                problem: format!(
                    "`{key}` is not a {}-family address key",
                    if first.is_ipv4() { "IPv4" } else { "IPv6" }
                ),
            })?;
            used.insert(address);
        }
        let Some(candidate) = next_free_from(self.pool, &used, self.from) else {
            return Ok(ScanStep::Full);
        };
        // A short chunk held every used address from `from` up; otherwise
        // the candidate is only known free if it lies inside the chunk.
        match used.last() {
            Some(last) if keys.len() as u32 == Self::CHUNK && candidate > *last => {
                self.from = candidate;
                Ok(ScanStep::More)
            }
            _ => Ok(ScanStep::Free(candidate)),
        }
    }
}
