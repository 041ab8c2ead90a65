//! `adopt`: take a cluster over from its VMs into a state that does not
//! know it — a lost, emptied or new state file, or a colleague's cluster
//! handed over deliberately — so that apply, scale and delete manage it
//! again instead of refusing (see [`crate::ownership`]) or cloning a
//! second cluster. Adopt changes nothing in vCenter.
//!
//! # What is restored
//!
//! - The cluster record, under the uid its VMs' markers carry, in the
//!   vCenter connected to (its instance UUID recorded).
//! - One node record per VM of that uid: group, index, placement domain
//!   and spec hash from the markers, the VM id, the power state.
//! - Addresses, with static allocation: each node's address as its
//!   bootstrap data's network config sets it, leased again exactly
//!   ([`allocate_address`](vkube_store::Store::allocate_address)) from the
//!   domain's pool (or the stored pool that can give it); a VIP from a
//!   pool likewise, from the kubeadm config's control-plane endpoint. A
//!   booted node whose address cannot be read back is refused: left
//!   unleased, its address would go to another node. A node whose
//!   creation was interrupted before its bootstrap data was written has
//!   no address in use and gets a fresh lease.
//! - The key material (the cluster, etcd and front-proxy CAs and the
//!   service-account key): from the bootstrap data of a control-plane
//!   VM, the first node's (`kubeadm init`) preferred. When no
//!   control-plane VM carries it any more, adoption is refused unless
//!   `new_pki`: a new PKI is made, which the running nodes do not trust —
//!   vkube can then scale down, resize and delete the cluster, but refuses
//!   to create nodes that would have to join it
//!   ([`Error::UntrustedPki`]), and kubeconfigs it issues are not accepted
//!   by the API server.
//! - Add-ons: each add-on the spec renders now is recorded as delivered
//!   with the first node's bootstrap data when that node still carries the
//!   same manifest; any other as pending, which the next apply applies
//!   (server-side apply, so applying what runs already changes nothing).
//!
//! # What is not
//!
//! - The bootstrap token: recorded as expired, so the next node to join
//!   gets a fresh one, created through the API server with the PKI.
//! - The event log, intents and apply history of the lost state.
//! - VMs without vkube markers (reported; the next apply finishes them as
//!   nodes whose creation was interrupted), other uids' VMs (reported; an
//!   apply refuses to work beside them until they are gone), and nodes
//!   whose VMs are gone (nothing to adopt).
//!
//! Safe to run again: in a state that knows the cluster under the same uid
//! it completes what an interrupted adoption left (every write is
//! idempotent); a state that knows it under another uid is refused.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use vkube_core::addons::Manifest;
use vkube_core::cluster::bootstrap::recover::Recovered;
use vkube_core::cluster::{
    cluster_folder, parse_vm_name, plan, vip_lease_node, ClusterPki, ClusterSpec, GroupRole,
    IpAllocation, ObservedNode, Step, Vip, MARKER_CLUSTER_NAME, MARKER_CLUSTER_UID,
};
use vkube_store::{
    AddonDelivery, ClusterPhase, EventLevel, Fence, LeaseFilter, Node, NodePhase, PoolRecord,
    StateStore,
};
use vkube_vsphere::vm::ObservedVm;
use vkube_vsphere::{FolderId, Inventory, VspherePort};

use crate::access::SECRET_PKI;
use crate::addons;
use crate::apply::{acquire_lock, check_pools, record_event, record_spec, recorded_nodes};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::observe::{observe, Observation};
use crate::ownership::{check_vcenter, quoted};
use crate::placement::resolve;
use crate::progress::{Event, EventKind, Progress, StepKind};
use crate::token::{self, StoredToken};

/// Store name of the mark an adoption with a new PKI leaves: the cluster's
/// nodes do not trust its key material.
pub const SECRET_PKI_REPLACED: &str = "pki-replaced";

/// How an adoption runs.
#[derive(Debug, Clone)]
pub struct AdoptOptions {
    /// The uid to adopt when the folder holds VMs of several.
    pub uid: Option<String>,
    /// Adopt without the cluster's key material (see the module docs).
    pub new_pki: bool,
    /// How long the apply lock is held.
    pub lock_ttl: Duration,
}

impl Default for AdoptOptions {
    fn default() -> Self {
        AdoptOptions {
            uid: None,
            new_pki: false,
            lock_ttl: Duration::from_secs(60),
        }
    }
}

/// One adopted node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptedNode {
    /// Node (and VM) name.
    pub name: String,
    /// Its group: `cp` or a node pool.
    pub group: String,
    /// Its index in the group.
    pub index: u32,
    /// Its VM's managed object id.
    pub vm: String,
    /// The VM's power state.
    pub power_state: String,
    /// Its address (leased again with static allocation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Where the address came from.
    pub address_from: AddressSource,
}

/// Where an adopted node's address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AddressSource {
    /// The network config in its bootstrap data.
    BootstrapData,
    /// What its guest reports (DHCP).
    Guest,
    /// A fresh lease: its creation was interrupted before it was given one.
    NewLease,
    /// Unknown yet (DHCP, the guest reports none).
    Unknown,
}

/// What an adoption restored, and what the next apply would do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptReport {
    /// Cluster name.
    pub cluster: String,
    /// The uid adopted.
    pub uid: String,
    /// The vCenter recorded (instance UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcenter: Option<String>,
    /// The nodes adopted.
    pub nodes: Vec<AdoptedNode>,
    /// The VIP leased again from its pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip: Option<IpAddr>,
    /// Where the key material came from.
    pub pki: String,
    /// Add-ons as recorded, as `addon component version: delivery` lines.
    pub addons: Vec<String>,
    /// What `vkube cluster apply` with this spec would do next (empty: the
    /// cluster matches the spec).
    pub pending: Vec<Step>,
    /// What was found but not adopted, and other things to know.
    pub warnings: Vec<String>,
}

/// What the VMs say, decided before anything is written.
struct Findings {
    uid: String,
    observation: Observation,
    nodes: Vec<(ObservedNode, ObservedVm, Option<Recovered>)>,
    pki: Option<(ClusterPki, String)>,
    /// Exact leases: node → (pool, address, source).
    leases: BTreeMap<String, (String, IpAddr)>,
    /// Nodes that get a fresh lease from their pool.
    fresh: BTreeMap<String, String>,
    /// What the add-ons are rendered from (the cloud credentials included).
    facts: addons::AddonFacts,
    warnings: Vec<String>,
}

/// Take cluster `spec` over from its VMs' markers into `store`. See the
/// module docs for what is restored and what is refused.
pub async fn adopt(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    options: &AdoptOptions,
    progress: &dyn Progress,
) -> Result<AdoptReport> {
    check_pools(store, spec).await?;
    let inventory = vsphere.inventory().await?;
    resolve(vsphere, &inventory, spec, progress).await?;
    let name = spec.name().to_string();
    let known = match store.cluster(&name).await {
        Ok(record) => {
            check_vcenter(&record, &vsphere.facts())?;
            Some(record)
        }
        Err(vkube_store::Error::ClusterNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    progress.started(StepKind::Adopt, None);
    let findings = find(
        vsphere,
        store,
        &inventory,
        spec,
        known.as_ref().map(|r| r.uid.as_str()),
        options,
    )
    .await;
    let result = match findings {
        Ok(findings) => match acquire_lock(store, ctx, &name, options.lock_ttl).await {
            Ok(lock) => {
                let fence = lock.fence();
                let result = record(vsphere, store, &fence, spec, ctx, findings, progress).await;
                if let Err(e) = store.release_apply_lock(&lock).await {
                    tracing::warn!("releasing the apply lock of `{name}` failed: {e}");
                }
                result
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let message = result.as_ref().err().map(|e| e.to_string());
    progress.finished(StepKind::Adopt, None, message.as_deref());
    result
}

fn refused(spec: &ClusterSpec, reason: String) -> Error {
    Error::AdoptRefused {
        cluster: spec.name().to_string(),
        reason,
    }
}

/// Reads the folder and decides everything adoption writes.
async fn find(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    inventory: &Inventory,
    spec: &ClusterSpec,
    known_uid: Option<&str>,
    options: &AdoptOptions,
) -> Result<Findings> {
    let folder_path = cluster_folder(spec.folder(), spec.name());
    let Some(folder) = inventory
        .resolve(&folder_path, "cluster folder")
        .ok()
        .and_then(FolderId::of)
    else {
        return Err(refused(
            spec,
            format!("there is no folder `{folder_path}`, so no VM to adopt; `vkube cluster apply` creates the cluster"),
        ));
    };
    let uid = choose_uid(
        spec,
        &vsphere.folder_vms(&folder).await?,
        known_uid,
        options,
    )?;
    let observation = observe(vsphere, inventory, spec, &uid).await?;
    let mut warnings = Vec::new();
    for (other, vms) in &observation.claimants {
        warnings.push(format!(
            "VMs of uid `{other}` ({}) claim this cluster too and are left alone; apply refuses to work beside them until they are deleted with their own state",
            quoted(vms)
        ));
    }
    if !observation.unmarked.is_empty() {
        warnings.push(format!(
            "VMs without vkube markers ({}) are not adopted; the next apply finishes them as nodes whose creation was interrupted, so delete them first if they are not",
            quoted(&observation.unmarked)
        ));
    }
    if !observation.duplicates.is_empty() {
        let names: Vec<String> = observation
            .duplicates
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        warnings.push(format!(
            "second VMs of nodes {} are not adopted; the next apply destroys them",
            quoted(&names)
        ));
    }
    let mut nodes = Vec::new();
    for node in &observation.cluster.nodes {
        if observation.unmarked.contains(&node.name) {
            continue;
        }
        let (_, vm) = &observation.vms[&node.name];
        let recovered = Recovered::from_extra_config(&node.name, &vm.extra_config)?;
        nodes.push((node.clone(), vm.clone(), recovered));
    }
    let pki = recover_pki(spec, &nodes, &mut warnings)?;
    if pki.is_none() && !options.new_pki {
        return Err(refused(
            spec,
            "no control-plane VM carries the cluster's key material in its bootstrap data any more, and without it nodes cannot join nor credentials be issued. Restore the state from a backup, or adopt with `--new-pki` to manage the VMs (scale down, resize, delete) without growing the cluster".into(),
        ));
    }
    let (leases, fresh) = addresses(store, spec, &nodes).await?;
    // Also checks the cloud credentials the spec names are stored.
    let facts = addons::gather(vsphere, inventory, store, spec, &uid).await?;
    Ok(Findings {
        uid,
        observation,
        nodes,
        pki,
        leases,
        fresh,
        facts,
        warnings,
    })
}

/// The uid to adopt: `options.uid`, the state's own, or the only one the
/// folder's VMs of this cluster carry.
fn choose_uid(
    spec: &ClusterSpec,
    vms: &[ObservedVm],
    known_uid: Option<&str>,
    options: &AdoptOptions,
) -> Result<String> {
    let groups = spec.groups();
    let group_names: Vec<&str> = groups.iter().map(|g| g.name()).collect();
    let mut by_uid: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for vm in vms {
        let named = vm.extra_config.get(MARKER_CLUSTER_NAME).map(String::as_str)
            == Some(spec.name().as_str())
            || parse_vm_name(spec.name(), &group_names, &vm.name).is_some();
        if let (true, Some(uid)) = (named, vm.extra_config.get(MARKER_CLUSTER_UID)) {
            by_uid.entry(uid).or_default().push(vm.name.clone());
        }
    }
    let listing = || {
        by_uid
            .iter()
            .map(|(uid, vms)| format!("uid `{uid}` ({})", quoted(vms)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let uid = match (&options.uid, known_uid) {
        (Some(wanted), _) if by_uid.contains_key(wanted.as_str()) => wanted.clone(),
        (Some(wanted), _) => {
            return Err(refused(
                spec,
                format!("no VM carries uid `{wanted}`; found: {}", listing()),
            ))
        }
        (None, Some(known)) if by_uid.contains_key(known) => known.to_owned(),
        (None, _) if by_uid.len() == 1 => by_uid.keys().next().expect("one").to_string(),
        (None, _) if by_uid.is_empty() => {
            return Err(refused(
                spec,
                "no VM in its folder carries vkube's markers of this cluster; `vkube cluster apply` creates it".into(),
            ))
        }
        (None, _) => {
            return Err(refused(
                spec,
                format!(
                    "VMs of several uids claim it ({}); choose one with `--uid`, and delete the other with its own state",
                    listing()
                ),
            ))
        }
    };
    match known_uid {
        Some(known) if known != uid => Err(refused(
            spec,
            format!(
                "this state knows it as uid `{known}`, not `{uid}`; adopt into a state that does not know it (another `--state`), or delete this state's cluster first"
            ),
        )),
        _ => Ok(uid),
    }
}

/// The key material from the control-plane nodes' bootstrap data, the
/// init node's first; `None` when none carries it.
fn recover_pki(
    spec: &ClusterSpec,
    nodes: &[(ObservedNode, ObservedVm, Option<Recovered>)],
    warnings: &mut Vec<String>,
) -> Result<Option<(ClusterPki, String)>> {
    let mut candidates: Vec<(&str, &Recovered)> = nodes
        .iter()
        .filter(|(node, _, _)| {
            spec.group(&node.pool)
                .is_some_and(|g| g.role() == GroupRole::ControlPlane)
        })
        .filter_map(|(node, _, recovered)| Some((node.name.as_str(), recovered.as_ref()?)))
        .collect();
    candidates.sort_by_key(|(name, recovered)| (!recovered.is_init(), *name));
    let mut found: Option<(ClusterPki, String)> = None;
    for (name, recovered) in candidates {
        let Some(pki) = recovered.pki()? else {
            continue;
        };
        match &found {
            None => found = Some((pki, name.to_owned())),
            Some((first, from)) if *first != pki => warnings.push(format!(
                "node `{name}` carries other key material than `{from}`, whose is used"
            )),
            Some(_) => {}
        }
    }
    Ok(found)
}

/// The exact leases (node → pool, address) and fresh ones (node → pool)
/// adoption takes, checked against what the state holds already.
async fn addresses(
    store: &dyn StateStore,
    spec: &ClusterSpec,
    nodes: &[(ObservedNode, ObservedVm, Option<Recovered>)],
) -> Result<(BTreeMap<String, (String, IpAddr)>, BTreeMap<String, String>)> {
    let mut exact = BTreeMap::new();
    let mut fresh = BTreeMap::new();
    let pools = store.pools().await?;
    let name = spec.name().to_string();
    let mut unknown = Vec::new();
    if spec.ip_allocation() == IpAllocation::Static {
        for (node, _, recovered) in nodes {
            let domain_pool = spec
                .placement_domains()
                .iter()
                .find(|d| d.name().as_str() == node.domain)
                .and_then(|d| d.ip_pool())
                .map(|p| p.to_string());
            match recovered.as_ref().and_then(Recovered::address) {
                Some(address) => match pool_for(&pools, domain_pool.as_deref(), address) {
                    Some(pool) => {
                        exact.insert(node.name.clone(), (pool, address));
                    }
                    None => unknown.push(format!("{} ({address}: in no stored pool)", node.name)),
                },
                // Never booted with an address: none is in use.
                None if recovered.is_none() && domain_pool.is_some() => {
                    fresh.insert(node.name.clone(), domain_pool.expect("some"));
                }
                None => unknown.push(node.name.clone()),
            }
        }
    }
    if let Vip::FromPool(pool) = spec.control_plane().vip() {
        let vip = nodes
            .iter()
            .find_map(|(_, _, recovered)| recovered.as_ref()?.api_endpoint());
        match vip {
            Some(address) if pool_for(&pools, Some(pool.as_str()), address).is_some() => {
                exact.insert(vip_lease_node(spec.name()), (pool.to_string(), address));
            }
            Some(address) => unknown.push(format!("the VIP ({address}: not in pool `{pool}`)")),
            None => unknown.push("the VIP".into()),
        }
    }
    if !unknown.is_empty() {
        return Err(refused(
            spec,
            format!(
                "the addresses of {} cannot be read back from the VMs' bootstrap data; left unleased they would be given to other nodes",
                unknown.join(", ")
            ),
        ));
    }
    // Taken by another cluster (or node) of this state: refused before any write.
    let leases = store.leases(&LeaseFilter::default()).await?;
    let clashes: Vec<String> = exact
        .iter()
        .filter_map(|(node, (pool, address))| {
            let other = leases
                .iter()
                .find(|l| l.pool.as_str() == pool && l.address == *address)?;
            (other.cluster != name || other.node != *node).then(|| {
                format!(
                    "{address} of `{node}` is leased to node `{}` of cluster `{}`",
                    other.node, other.cluster
                )
            })
        })
        .collect();
    if !clashes.is_empty() {
        return Err(refused(
            spec,
            format!(
                "this state gave its addresses to others: {}",
                clashes.join("; ")
            ),
        ));
    }
    Ok((exact, fresh))
}

/// The pool that can give `address`: the domain's, else any stored one.
fn pool_for(pools: &[PoolRecord], preferred: Option<&str>, address: IpAddr) -> Option<String> {
    let gives = |record: &&PoolRecord| record.pool.is_allocatable(address);
    pools
        .iter()
        .filter(|r| Some(r.pool.name().as_str()) == preferred)
        .find(gives)
        .or_else(|| pools.iter().find(gives))
        .map(|r| r.pool.name().to_string())
}

/// Writes what [`find`] decided, under the apply lock.
async fn record(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    fence: &Fence,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    findings: Findings,
    progress: &dyn Progress,
) -> Result<AdoptReport> {
    let name = spec.name().to_string();
    let Findings {
        uid,
        mut observation,
        nodes,
        pki,
        leases,
        fresh,
        facts,
        mut warnings,
    } = findings;
    let record = record_spec(vsphere, store, fence, spec, &uid, ctx).await?;
    // Key material first: an apply never runs on adopted VMs without it.
    let pki_from = match &pki {
        Some((pki, from)) => {
            let text = serde_json::to_string(pki).map_err(|e| Error::Corrupt {
                cluster: name.clone(),
                what: "PKI".into(),
                detail: e.to_string(),
            })?;
            if store.ensure_secret(&name, SECRET_PKI, &text).await? != text {
                warnings.push(
                    "this state held other key material for the cluster already, which is kept"
                        .into(),
                );
            }
            format!("bootstrap data of node `{from}`")
        }
        None => {
            let fresh =
                ClusterPki::generate(spec.name(), ctx.clock.now(), &mut |b: &mut [u8]| {
                    ctx.random.fill(b)
                })?;
            let text = serde_json::to_string(&fresh).expect("PKI serializes");
            store.ensure_secret(&name, SECRET_PKI, &text).await?;
            store
                .ensure_secret(
                    &name,
                    SECRET_PKI_REPLACED,
                    "adopted with --new-pki: the nodes do not trust this key material",
                )
                .await?;
            warnings.push("the key material is new (`--new-pki`): nodes vkube would create cannot join, and its kubeconfigs are not trusted".into());
            "new (--new-pki)".into()
        }
    };
    // The token the nodes were given is unknown: expired, so the next
    // joining node gets a fresh one created through the API server.
    let expired = StoredToken::fresh(ctx.clock.now(), Duration::ZERO, &mut |b: &mut [u8]| {
        ctx.random.fill(b)
    });
    token::ensure(store, &name, &expired).await?;
    let mut addresses: BTreeMap<String, IpAddr> = BTreeMap::new();
    for (node, (pool, address)) in &leases {
        let lease = store.allocate_address(fence, pool, node, *address).await?;
        addresses.insert(node.clone(), lease.address);
    }
    for (node, pool) in &fresh {
        let lease = store.allocate(fence, pool, node).await?;
        addresses.insert(node.clone(), lease.address);
    }
    let mut adopted = Vec::new();
    for (node, vm, recovered) in &nodes {
        let guest = vm.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
        let (address, address_from) = match (addresses.get(&node.name), guest) {
            (Some(a), _) if fresh.contains_key(&node.name) => (Some(*a), AddressSource::NewLease),
            (Some(a), _) => (Some(*a), AddressSource::BootstrapData),
            (None, Some(ip)) => (Some(ip), AddressSource::Guest),
            (None, None) => (None, AddressSource::Unknown),
        };
        let phase = match (vm.power_state.as_str(), recovered) {
            (_, None) => NodePhase::Creating,
            ("poweredOn", _) => NodePhase::PoweredOn,
            _ => NodePhase::Created,
        };
        store
            .upsert_node(
                fence,
                &Node {
                    name: node.name.clone(),
                    pool: node.pool.clone(),
                    index: node.index,
                    domain: Some(node.domain.clone()),
                    vm_id: Some(vm.id.clone()),
                    ip: address,
                    phase,
                    spec_hash: node.spec_hash.clone(),
                },
                ctx.timestamp(),
            )
            .await?;
        adopted.push(AdoptedNode {
            name: node.name.clone(),
            group: node.pool.clone(),
            index: node.index,
            vm: vm.id.clone(),
            power_state: vm.power_state.clone(),
            address,
            address_from,
        });
    }
    let init = nodes.iter().find_map(|(node, _, recovered)| {
        recovered
            .as_ref()
            .filter(|r| r.is_init())
            .map(|r| (node.name.as_str(), r))
    });
    let addon_lines = record_addons(store, fence, spec, &facts, init, ctx).await?;
    // What apply would do next decides the phase.
    observation.cluster.recorded = recorded_nodes(store, &name).await?;
    let held = store
        .leases(&LeaseFilter {
            pool: None,
            cluster: Some(name.clone()),
        })
        .await?;
    let lease_map = held.iter().map(|l| (l.node.clone(), l.address)).collect();
    let pending = plan(spec, &observation.cluster, &lease_map).steps;
    let (phase, last_error) = if pending.is_empty() && observation.unmarked.is_empty() {
        (ClusterPhase::Ready, None)
    } else {
        (
            ClusterPhase::Degraded,
            Some(format!(
                "adopted from its VMs; `vkube cluster apply` has {} step(s) to do",
                pending.len() + observation.unmarked.len()
            )),
        )
    };
    let current = store.cluster(&name).await?;
    store
        .set_cluster_status(
            fence,
            current.version,
            phase,
            last_error.as_deref(),
            ctx.timestamp(),
        )
        .await?;
    let names: Vec<String> = adopted.iter().map(|n| n.name.clone()).collect();
    record_event(
        store,
        ctx,
        progress,
        Event {
            cluster: &name,
            level: EventLevel::Info,
            kind: EventKind::Adopted,
            node: None,
            message: &format!(
                "taken over from the markers of {} VM(s) ({}); key material: {pki_from}",
                names.len(),
                quoted(&names)
            ),
        },
    )
    .await;
    for warning in &warnings {
        progress.warn(warning);
    }
    Ok(AdoptReport {
        cluster: name,
        uid,
        vcenter: record.vcenter_uuid.or(vsphere.facts().instance_uuid),
        nodes: adopted,
        vip: leases
            .get(&vip_lease_node(spec.name()))
            .map(|(_, address)| *address),
        pki: pki_from,
        addons: addon_lines,
        pending,
        warnings,
    })
}

/// Records the add-ons the spec renders: delivered with the init node's
/// bootstrap data where it carries the same manifest, else pending. A
/// state that has add-on records already keeps them.
async fn record_addons(
    store: &dyn StateStore,
    fence: &Fence,
    spec: &ClusterSpec,
    facts: &addons::AddonFacts,
    init: Option<(&str, &Recovered)>,
    ctx: &Context<'_>,
) -> Result<Vec<String>> {
    let name = spec.name().to_string();
    if !store.addons(&name).await?.is_empty() {
        return Ok(Vec::new());
    }
    let manifests: Vec<Manifest> = addons::render(store, spec, facts)
        .await?
        .into_iter()
        .filter(addons::has_objects)
        .collect();
    let delivered = |m: &Manifest| {
        init.and_then(|(_, r)| r.addon_manifest(&m.file_name)) == Some(m.yaml.as_str())
    };
    let (bootstrap, pending): (Vec<Manifest>, Vec<Manifest>) =
        manifests.into_iter().partition(|m| delivered(m));
    let mut records = addons::records(
        &bootstrap,
        AddonDelivery::Bootstrap,
        init.map(|(node, _)| node),
        None,
        ctx.timestamp(),
    );
    records.extend(addons::records(
        &pending,
        AddonDelivery::Pending,
        None,
        Some("adopted: what the cluster runs is unknown; the next apply applies this version"),
        ctx.timestamp(),
    ));
    store.record_addons(fence, &records).await?;
    let line = |m: &Manifest, how: &str| {
        format!("{} {} {}: {how}", m.addon.as_str(), m.component, m.version)
    };
    Ok(bootstrap
        .iter()
        .map(|m| line(m, "bootstrap"))
        .chain(pending.iter().map(|m| line(m, "pending")))
        .collect())
}
