//! `apply`: converge vCenter to a cluster spec, pass by pass.
//!
//! Each pass starts fresh: observe the cluster folder (one property read),
//! read the leases, plan (pure), and execute the plan's steps — folder and
//! addresses first, then node steps in parallel (bounded), then address
//! releases. A pass never waits: a guest asked to shut down, or a DHCP node
//! without its address yet, makes it come back later. Between passes only
//! the store and the run's [`RunState`] (failed nodes, waits begun) carry
//! over.
//!
//! # Guarantees
//! - Safe to kill at any point and run again: VM names are deterministic,
//!   the cluster folder is dedicated, a VM found without markers (or
//!   without a record: a clone carries its bootstrap data from the start)
//!   is adopted and finished, a clone that races an existing name is
//!   adopted (`DuplicateName`), and address allocation is idempotent per
//!   node.
//! - The fewest tasks per node: the clone spec carries everything known
//!   before the clone (settings, markers, a MAC vkube chose and the
//!   bootstrap data rendered for it, power-on); one observation then fixes
//!   only what vCenter did not apply.
//! - Intent is written to the store before every vCenter change; intents
//!   left open by a crashed run are closed as abandoned (observation, not
//!   the journal, decides what happens next).
//! - One failed node does not stop the others; it is reported and retried
//!   by the next run.
//! - The lock is held for the whole of `apply`, and for each pass of
//!   [`reconcile_once`](crate::reconcile_once); a lost lock stops the work.
//!
//! - Once a node was seen registered with Kubernetes (or with
//!   [`WaitFor::Ready`]), each pass reads the cluster's Nodes and etcd
//!   ([`kubernetes`]): a node Kubernetes knows is drained, its etcd member
//!   removed and its Node object deleted before its VM goes, and a
//!   replacement must be Ready first; what the plan waits for is waited
//!   for, bounded by [`ApplyOptions::timeout`].
//! - Each node's steps run as one chain, in plan order, each after the one
//!   before succeeded; chains run in parallel, `parallel` at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::Semaphore;
use vkube_core::addons::Manifest;
use vkube_core::cluster::bootstrap::{self, token::BootstrapToken, NodeBootstrap};
use vkube_core::cluster::{
    cluster_folder, markers, plan, vip_lease_node, ClusterPki, ClusterSpec, GroupRole,
    IpAllocation, Leases, NodeRole, Step, Vip, MARKER_CLUSTER_UID,
};
use vkube_core::ipam::Lease;
use vkube_store::{
    AddonDelivery, ClusterPhase, ClusterRecord, EventLevel, Fence, IntentAction, IntentOutcome,
    LeaseFilter, Node, NodePhase, StateStore, Timestamp, LAST_ERROR_MAX,
};
use vkube_vsphere::vm::{CloneRequest, VmSettings};
use vkube_vsphere::{DatastoreId, Fault, FolderId, PlacementQuery, VmId, VspherePort};

use crate::context::Context;
use crate::error::{Error, NodeFailure, Result};
use crate::guest;
use crate::kube_view::KubeSide;
use crate::macs::NodeMacs;
use crate::observe::{observe, observe_folder, Observation};
use crate::ownership;
use crate::placement::{resolve, Placement, StorageTarget};
use crate::progress::{Event, EventKind, Progress, StepKind};
use crate::reconcile::RunState;

/// How an apply runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Node operations in flight at once.
    pub parallel: usize,
    /// Passes before giving up (a rolling change needs several).
    pub max_passes: usize,
    /// How long a guest shutdown may take before a hard power-off.
    pub power_off_grace: Duration,
    /// How long the apply lock is held without renewal.
    pub lock_ttl: Duration,
    /// With DHCP: how long a powered-on node may take to report its address.
    pub ip_wait: Duration,
    /// Lifetime of a new bootstrap token.
    pub token_ttl: Duration,
    /// Timeout of each call to the cluster's API server (add-on updates,
    /// new bootstrap tokens, Node reads).
    pub api_timeout: Duration,
    /// What the apply waits for once vCenter matches the spec.
    pub wait: WaitFor,
    /// How long the apply may wait in all: for nodes to be Ready, and for
    /// what the plan holds on (a replacement to be Ready, etcd to heal).
    pub timeout: Duration,
    /// How long one node's drain may take (PodDisruptionBudgets refusing
    /// evictions are retried until then).
    pub drain_timeout: Duration,
    /// At the drain timeout, delete the pods whose eviction is still
    /// refused instead of failing the node's removal.
    pub force_drain: bool,
    /// How often Kubernetes is looked at again while waiting.
    pub kube_poll: Duration,
}

/// What `apply` waits for once vCenter matches the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// Every node's VM exists, configured and powered on. Kubernetes is
    /// asked only about nodes it was seen to know before (to drain them
    /// before removal).
    #[default]
    Created,
    /// Also: every node registered with Kubernetes and `Ready` (after the
    /// add-ons, which bring the CNI, are delivered).
    Ready,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallel: 8,
            max_passes: 60,
            power_off_grace: Duration::from_secs(60),
            lock_ttl: Duration::from_secs(60),
            ip_wait: Duration::from_secs(600),
            token_ttl: crate::token::DEFAULT_TOKEN_TTL,
            api_timeout: Duration::from_secs(10),
            wait: WaitFor::Created,
            timeout: Duration::from_secs(30 * 60),
            drain_timeout: vkube_kube::DEFAULT_DRAIN_TIMEOUT,
            force_drain: false,
            kube_poll: Duration::from_secs(5),
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Cluster name.
    pub cluster: String,
    /// Passes run.
    pub passes: usize,
    /// Steps executed, as `step node` lines.
    pub executed: Vec<String>,
    /// Whether anything changed.
    pub changed: bool,
    /// vCenter API round trips used.
    pub round_trips: u64,
    /// Add-on deliveries, as `addon component version: how` lines.
    pub addons: Vec<String>,
    /// Warnings that did not stop the apply (e.g. an add-on update that
    /// waits for the API server).
    pub warnings: Vec<String>,
}

/// What `plan` shows: the next steps, without changing anything.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPreview {
    /// Cluster name.
    pub cluster: String,
    /// Whether the store knows the cluster already.
    pub known: bool,
    /// The cluster folder path.
    pub folder: String,
    /// The next batch of steps (empty: converged).
    pub steps: Vec<Step>,
    /// Nodes found half-created, to be finished.
    pub unfinished: Vec<String>,
    /// What the plan waits for before its next steps (a replacement to be
    /// Ready, etcd, the API server), one line each.
    pub holds: Vec<String>,
    /// Whether the cluster's Kubernetes was read for this plan (once a
    /// node was seen registered): drains and etcd steps then show.
    pub kubernetes_read: bool,
}

use crate::access::{self, SECRET_PKI};

mod kubernetes;

/// Field manager of vkube's server-side applies.
const FIELD_MANAGER: &str = "vkube";
use crate::addons::{self, AddonFacts};
use crate::token::{self, StoredToken};

async fn leases_of(store: &dyn StateStore, cluster: &str) -> Result<Vec<Lease>> {
    Ok(store
        .leases(&LeaseFilter {
            pool: None,
            cluster: Some(cluster.to_string()),
        })
        .await?)
}

fn lease_map(leases: &[Lease]) -> Leases {
    leases.iter().map(|l| (l.node.clone(), l.address)).collect()
}

/// Parse and validate a spec, its pools included, without touching vCenter:
/// what a front end does before connecting.
pub async fn parse_spec(store: &dyn StateStore, text: &str) -> Result<ClusterSpec> {
    let spec = ClusterSpec::from_yaml(text)?;
    check_pools(store, &spec).await?;
    Ok(spec)
}

/// The pools the spec takes addresses from exist, fit it, and can still
/// give it the addresses it needs.
pub async fn check_pools(store: &dyn StateStore, spec: &ClusterSpec) -> Result<()> {
    if spec.ip_allocation() == IpAllocation::Static
        || matches!(spec.control_plane().vip(), Vip::FromPool(_))
    {
        let records = store.pools().await?;
        let pools: Vec<_> = records.iter().map(|r| r.pool.clone()).collect();
        spec.check_pools(&pools)?;
        // What each pool can still give this cluster: its free addresses
        // plus those the cluster holds already (a re-apply needs no more).
        let held = leases_of(store, &spec.name().to_string()).await?;
        let available = records
            .iter()
            .map(|r| {
                let own = held.iter().filter(|l| l.pool == *r.pool.name()).count() as u128;
                let free = r.capacity.saturating_sub(u128::from(r.allocated));
                (r.pool.name().to_string(), free + own)
            })
            .collect();
        spec.check_capacity(&available)?;
    }
    Ok(())
}

/// The plan for `spec` against vCenter now — and against the cluster's
/// Kubernetes and etcd once a node was seen registered, as `apply` reads
/// them — changing nothing.
pub async fn plan_only(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    progress: &dyn Progress,
) -> Result<PlanPreview> {
    check_pools(store, spec).await?;
    let inventory = vsphere.inventory().await?;
    resolve(vsphere, &inventory, spec, progress).await?;
    let name = spec.name().to_string();
    let (record, mut observation) = check_ownership(vsphere, store, &inventory, spec).await?;
    let leases = if record.is_some() {
        observation.cluster.recorded = recorded_nodes(store, &name).await?;
        lease_map(&leases_of(store, &name).await?)
    } else {
        Leases::new()
    };
    let mut kubernetes_read = false;
    if record.is_some() {
        let records: kubernetes::Records = store
            .nodes(&name)
            .await?
            .into_iter()
            .map(|r| (r.node.name.clone(), r))
            .collect();
        if records
            .values()
            .any(|r| crate::kube_view::seen_registered(r.node.phase))
        {
            let pki = access::cluster_pki(store, &name).await?;
            let reader = kubernetes::Reader {
                store,
                spec,
                pki: &pki,
                ctx,
                timeout: ApplyOptions::default().api_timeout,
            };
            let side = reader.read(&observation, &records).await;
            crate::kube_view::fill(
                &mut observation.cluster,
                &side,
                &records,
                spec,
                ctx.clock.now(),
            );
            kubernetes_read = true;
        }
    }
    let planned = plan(spec, &observation.cluster, &leases);
    Ok(PlanPreview {
        cluster: name,
        known: record.is_some(),
        folder: cluster_folder(spec.folder(), spec.name()),
        steps: planned.steps,
        unfinished: observation.unfinished,
        holds: planned.holds.iter().map(ToString::to_string).collect(),
        kubernetes_read,
    })
}

/// Everything a pass needs, shared by the parallel node steps.
pub(crate) struct Run<'a> {
    vsphere: &'a dyn VspherePort,
    store: &'a dyn StateStore,
    spec: &'a ClusterSpec,
    uid: String,
    placement: Placement,
    pki: ClusterPki,
    /// The PKI was made anew when the cluster was adopted: its nodes do
    /// not trust it, so no node may join with it.
    pki_replaced: bool,
    token: tokio::sync::Mutex<StoredToken>,
    facts: AddonFacts,
    /// Rendered once the VIP is known (first needed by the init node).
    manifests: std::sync::Mutex<Option<Vec<Manifest>>>,
    /// The apply lock's fence: every write of this run carries it, so a
    /// run that lost its lock cannot write over its successor.
    fence: Fence,
    /// The inventory as the run found it (the spec's objects; node VMs are
    /// read from the cluster folder each pass).
    inventory: vkube_vsphere::Inventory,
    /// The cluster folder, once found or created: passes read only it.
    folder: std::sync::Mutex<Option<FolderId>>,
    /// What this pass read from the cluster's API server and etcd.
    kube: std::sync::Mutex<KubeSide>,
    /// The cluster folder as the ownership check read it, for the first pass.
    seen: std::sync::Mutex<Option<Observation>>,
    /// The MACs of the nodes this run creates.
    macs: NodeMacs,
    options: &'a ApplyOptions,
    progress: &'a dyn Progress,
    ctx: &'a Context<'a>,
}

impl Run<'_> {
    fn name(&self) -> String {
        self.spec.name().to_string()
    }

    async fn event(&self, level: EventLevel, kind: EventKind, message: &str, node: Option<&str>) {
        record_event(
            self.store,
            self.ctx,
            self.progress,
            Event {
                cluster: &self.name(),
                level,
                kind,
                node,
                message,
            },
        )
        .await;
    }

    fn now(&self) -> Timestamp {
        self.ctx.timestamp()
    }

    /// A client for the cluster's API server.
    async fn cluster_api(&self) -> Result<std::sync::Arc<dyn vkube_kube::ClusterApi>> {
        access::cluster_api(self.store, self.spec, self.ctx, self.options.api_timeout).await
    }

    /// Run `work` between an intent row and its completion.
    async fn with_intent<T>(
        &self,
        node: Option<&str>,
        action: IntentAction,
        detail: serde_json::Value,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let intent = self
            .store
            .record_intent(&self.fence, node, action, &detail, self.now())
            .await?;
        let result = work.await;
        let outcome = match &result {
            Ok(_) => IntentOutcome::Succeeded,
            Err(e) => IntentOutcome::Failed(e.to_string()),
        };
        self.store
            .complete_intent(&self.fence, intent, outcome, self.now())
            .await?;
        result
    }

    fn vip(&self, leases: &[Lease]) -> Option<IpAddr> {
        match self.spec.control_plane().vip() {
            Vip::Address(address) => Some(*address),
            Vip::FromPool(_) => {
                let node = vip_lease_node(self.spec.name());
                leases.iter().find(|l| l.node == node).map(|l| l.address)
            }
        }
    }

    fn settings(
        &self,
        node: &str,
        group: &str,
        index: u32,
        domain: &str,
        spec_hash: &str,
    ) -> VmSettings {
        let group_spec = self.spec.group(group).expect("planned group exists");
        let placement = &self.placement.domains[domain];
        VmSettings {
            num_cpus: Some(group_spec.cpu() as i32),
            memory_mib: Some(i64::from(group_spec.memory_mib())),
            disk_gib: group_spec.disk_gib().map(i64::from),
            network: Some(placement.network.clone()),
            mac: None,
            extra_config: markers(
                self.spec.name(),
                &self.uid,
                group,
                node,
                index,
                spec_hash,
                domain,
            )
            .into_iter()
            .collect(),
            disk_uuid_enabled: true,
            annotation: Some(format!(
                "vkube cluster `{}` ({}), node `{node}`; managed by vkube, do not edit",
                self.spec.name(),
                self.uid
            )),
        }
    }

    async fn datastore_for(
        &self,
        domain: &str,
        folder: &FolderId,
        node: &str,
    ) -> Result<DatastoreId> {
        let placement = &self.placement.domains[domain];
        Ok(match &placement.storage {
            StorageTarget::Datastore(ds) => ds.clone(),
            StorageTarget::DatastoreCluster(pod) => {
                self.vsphere
                    .recommend_datastore(&PlacementQuery {
                        pod: pod.clone(),
                        template: self.placement.template.clone(),
                        folder: folder.clone(),
                        pool: placement.resource_pool.clone(),
                        name: node.to_owned(),
                    })
                    .await?
            }
        })
    }

    /// Clone (or adopt) one node with everything known before the clone in
    /// the clone spec — settings, markers, a MAC chosen now and the
    /// bootstrap data rendered for it, and power-on — then observe it once
    /// and fix only what vCenter did not apply (a vCenter applies the whole
    /// spec: one task; the simulator ignores CPU, memory, flags and
    /// power-on: one reconfiguration, and the plan's power-on step).
    #[allow(clippy::too_many_arguments)]
    async fn create_node(
        &self,
        folder: &FolderId,
        node: &str,
        group: &str,
        index: u32,
        domain: &str,
        role: NodeRole,
        spec_hash: &str,
    ) -> Result<VmId> {
        let mac = self.macs.for_node(self.vsphere, &self.uid, node).await?;
        let plain = self.settings(node, group, index, domain, spec_hash);
        let settings = self.with_bootstrap(node, group, role, plain, &mac).await?;
        let detail =
            serde_json::json!({ "node": node, "group": group, "index": index, "domain": domain });
        let vm = self
            .with_intent(Some(node), IntentAction::CreateNode, detail, async {
                let request = CloneRequest {
                    name: node.to_string(),
                    template: self.placement.template.clone(),
                    folder: folder.clone(),
                    pool: self.placement.domains[domain].resource_pool.clone(),
                    datastore: self.datastore_for(domain, folder, node).await?,
                    linked_snapshot: self.placement.linked_snapshot.clone(),
                    settings: settings.clone(),
                    power_on: true,
                };
                match self.vsphere.clone_vm(&request).await {
                    Ok(vm) => Ok(vm),
                    // A clone from an interrupted run got there first: adopt it.
                    Err(e) if e.is(&Fault::DuplicateName) => find_vm(self, folder, node).await,
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        let record =
            |phase| self.record_node(node, group, index, domain, spec_hash, Some(&vm), phase);
        record(NodePhase::Creating).await?;
        // An adopted VM may carry another MAC: it is set to the one the
        // bootstrap data was rendered for, in the same reconfiguration.
        self.vsphere.ensure_settings(&vm, &settings).await?;
        record(NodePhase::Created).await?;
        Ok(vm)
    }

    /// Finish a VM whose creation was interrupted: its settings, and the
    /// bootstrap data rendered for the MAC it has (`mac`, observed).
    async fn finish_node(
        &self,
        vm: &VmId,
        node: &str,
        group: &str,
        role: NodeRole,
        settings: &VmSettings,
        mac: &str,
    ) -> Result<()> {
        let settings = self
            .with_bootstrap(node, group, role, settings.clone(), mac)
            .await?;
        self.vsphere.ensure_settings(vm, &settings).await?;
        Ok(())
    }

    /// `settings` with the node's NIC on `mac` and its bootstrap data
    /// (guestinfo) rendered for that MAC. The init node's add-ons are
    /// recorded here, before any VM gets them (intent first): a run killed
    /// in between finishes this node with the same manifests.
    async fn with_bootstrap(
        &self,
        node: &str,
        group: &str,
        role: NodeRole,
        mut settings: VmSettings,
        mac: &str,
    ) -> Result<VmSettings> {
        let leases = leases_of(self.store, &self.name()).await?;
        let lease = leases.iter().find(|l| l.node == node);
        let vip = self.vip(&leases).ok_or_else(|| Error::Corrupt {
            cluster: self.name(),
            what: "control-plane VIP lease".into(),
            detail: "missing".into(),
        })?;
        let token = self.token_for(role).await?;
        let addons = if role == NodeRole::Init {
            self.manifests().await?
        } else {
            Vec::new()
        };
        let input = NodeBootstrap {
            spec: self.spec,
            node,
            group,
            role,
            mac_address: mac,
            lease,
            vip,
            token: &token,
            token_ttl: self.options.token_ttl,
            pki: &self.pki,
            addons: &addons,
        };
        for (key, value) in bootstrap::guestinfo::render(&input)? {
            settings.extra_config.insert(key, value);
        }
        settings.mac = Some(mac.to_owned());
        if role == NodeRole::Init {
            let records = addons::records(
                &addons,
                AddonDelivery::Bootstrap,
                Some(node),
                None,
                self.now(),
            );
            self.store.record_addons(&self.fence, &records).await?;
        }
        Ok(settings)
    }

    /// Brings the cluster's add-ons up to what the spec renders now: every
    /// manifest whose digest differs from what was delivered (or that is
    /// still pending) is applied through the API server. An unreachable
    /// API server does not fail the apply: the update is recorded as
    /// pending, reported as a warning, and retried by the next apply.
    async fn sync_addons(&self, report: &mut ApplyReport) -> Result<()> {
        let name = self.name();
        let delivered = self.store.addons(&name).await?;
        // Nothing delivered yet: the first control-plane node is still to
        // be created, and gets the add-ons with its bootstrap data.
        if delivered.is_empty() {
            return Ok(());
        }
        let manifests = self.manifests().await?;
        let changed = addons::changed(&manifests, &delivered);
        if changed.is_empty() {
            return Ok(());
        }
        self.progress.started(StepKind::UpdateAddons, None);
        let result = async {
            let api = self.cluster_api().await?;
            for manifest in &changed {
                api.apply_manifest(&manifest.yaml, FIELD_MANAGER).await?;
                let records = addons::records(
                    std::slice::from_ref(*manifest),
                    AddonDelivery::Applied,
                    None,
                    None,
                    self.now(),
                );
                self.store.record_addons(&self.fence, &records).await?;
                report.addons.push(format!(
                    "{} {} {}: applied",
                    manifest.addon.as_str(),
                    manifest.component,
                    manifest.version
                ));
            }
            Ok::<_, Error>(())
        }
        .await;
        let message = result.as_ref().err().map(|e| e.to_string());
        self.progress
            .finished(StepKind::UpdateAddons, None, message.as_deref());
        if let Err(e) = result {
            let message = e.to_string();
            let pending: Vec<Manifest> = changed
                .iter()
                .filter(|m| {
                    !report
                        .addons
                        .iter()
                        .any(|line| line.starts_with(&format!("{} ", m.addon.as_str())))
                })
                .map(|m| (*m).clone())
                .collect();
            let records = addons::records(
                &pending,
                AddonDelivery::Pending,
                None,
                Some(&message),
                self.now(),
            );
            self.store.record_addons(&self.fence, &records).await?;
            for m in &pending {
                report.addons.push(format!(
                    "{} {} {}: pending",
                    m.addon.as_str(),
                    m.component,
                    m.version
                ));
            }
            let warning = format!(
                "{} add-on update(s) wait for the API server and are retried by the next apply: {message}",
                pending.len()
            );
            self.progress.warn(&warning);
            self.event(
                EventLevel::Warning,
                EventKind::AddonsPending,
                &warning,
                None,
            )
            .await;
            report.warnings.push(warning);
        } else {
            self.event(
                EventLevel::Info,
                EventKind::AddonsApplied,
                &format!("{} add-on(s) updated", changed.len()),
                None,
            )
            .await;
        }
        Ok(())
    }

    /// The add-on manifests (rendered on first use), without empty ones.
    async fn manifests(&self) -> Result<Vec<Manifest>> {
        let cached = self
            .manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(manifests) = cached {
            return Ok(manifests);
        }
        let rendered = addons::render(self.store, self.spec, &self.facts).await?;
        let manifests: Vec<Manifest> = rendered.into_iter().filter(addons::has_objects).collect();
        *self.manifests.lock().unwrap_or_else(|p| p.into_inner()) = Some(manifests.clone());
        Ok(manifests)
    }

    /// The token a node of `role` gets. The init node creates its token
    /// itself, so any token recorded with a fresh expiry will do; a joining
    /// node needs one the cluster knows and that outlives its boot, so an
    /// expiring token is replaced by a new one created through the API.
    async fn token_for(&self, role: NodeRole) -> Result<BootstrapToken> {
        let mut current = self.token.lock().await;
        let now = self.ctx.clock.now();
        if current.usable_at(now) {
            return Ok(current.token.clone());
        }
        let fresh = StoredToken::fresh(now, self.options.token_ttl, &mut |b: &mut [u8]| {
            self.ctx.random.fill(b)
        });
        if role != NodeRole::Init {
            let api = self.cluster_api().await?;
            let expires = fresh.expires().expect("fresh tokens expire");
            api.ensure_bootstrap_token(
                fresh.token.id(),
                fresh.token.secret(),
                expires,
                "vkube: joins nodes of this cluster",
            )
            .await?;
            self.event(
                EventLevel::Info,
                EventKind::TokenRenewed,
                &format!(
                    "bootstrap token `{}` created in the cluster",
                    fresh.token.id()
                ),
                None,
            )
            .await;
        }
        *current = token::replace(self.store, &self.name(), &current, &fresh).await?;
        Ok(current.token.clone())
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_node(
        &self,
        node: &str,
        group: &str,
        index: u32,
        domain: &str,
        spec_hash: &str,
        vm: Option<&VmId>,
        phase: NodePhase,
    ) -> Result<()> {
        let ip = leases_of(self.store, &self.name())
            .await?
            .into_iter()
            .find(|l| l.node == node)
            .map(|l| l.address);
        let record = Node {
            name: node.to_string(),
            pool: group.to_string(),
            index,
            domain: Some(domain.to_string()),
            vm_id: vm.map(|v| v.id().to_owned()),
            ip,
            phase,
            spec_hash: spec_hash.to_string(),
        };
        self.store
            .upsert_node(&self.fence, &record, self.now())
            .await?;
        Ok(())
    }

    /// Run one node step. `created` holds VMs cloned earlier in this pass;
    /// `shutdowns` the nodes whose guests were asked to shut down, and when.
    async fn node_step(
        &self,
        step: &Step,
        observation: &Observation,
        created: &BTreeMap<String, VmId>,
        shutdowns: &BTreeMap<String, SystemTime>,
    ) -> Result<NodeStepDone> {
        let folder = observation.folder.clone();
        let vm_of = |node: &str| {
            observation
                .vms
                .get(node)
                .map(|(r, _)| r.clone())
                .or_else(|| created.get(node).cloned())
        };
        match step {
            Step::CreateNode {
                node,
                pool,
                index,
                domain,
                role,
                spec_hash,
                ..
            } => {
                let folder = folder.expect("the folder step ran first");
                self.create_node(&folder, node, pool, *index, domain, *role, spec_hash)
                    .await
                    .map(|vm| NodeStepDone::Finished(Some(vm)))
            }
            Step::Reconfigure {
                node,
                cpu,
                memory_mib,
            } => {
                let Some(vm) = vm_of(node) else {
                    return Ok(NodeStepDone::Finished(None));
                };
                let settings = VmSettings {
                    num_cpus: Some(*cpu as i32),
                    memory_mib: Some(i64::from(*memory_mib)),
                    ..Default::default()
                };
                let detail = serde_json::json!({ "cpu": cpu, "memoryMiB": memory_mib });
                self.with_intent(Some(node), IntentAction::ReconfigureNode, detail, async {
                    self.vsphere
                        .ensure_settings(&vm, &settings)
                        .await
                        .map(|_| NodeStepDone::Finished(None))
                        .map_err(Error::from)
                })
                .await
            }
            Step::PowerOn { node } => {
                let Some(vm) = vm_of(node) else {
                    return Ok(NodeStepDone::Finished(None));
                };
                self.with_intent(
                    Some(node),
                    IntentAction::PowerOnNode,
                    serde_json::json!({}),
                    async { self.vsphere.power_on(&vm).await.map_err(Error::from) },
                )
                .await?;
                if let Some(record) = self.store.node(&self.name(), node).await? {
                    let mut n = record.node;
                    n.phase = NodePhase::PoweredOn;
                    self.store.upsert_node(&self.fence, &n, self.now()).await?;
                }
                Ok(NodeStepDone::Finished(None))
            }
            Step::DeleteNode { node, reason } => {
                let detail = serde_json::to_value(reason).unwrap_or_default();
                if let Some(vm) = vm_of(node) {
                    let running = observation
                        .vms
                        .get(node)
                        .is_some_and(|(_, o)| o.power_state == "poweredOn");
                    let grace = self.options.power_off_grace;
                    // A running guest is asked to shut down first and given
                    // `grace` to do so; the run comes back rather than wait.
                    if running && !grace.is_zero() {
                        match shutdowns.get(node) {
                            None => {
                                let asked = self
                                    .with_intent(
                                        Some(node),
                                        IntentAction::PowerOffNode,
                                        serde_json::json!({ "guestShutdown": true }),
                                        async {
                                            self.vsphere
                                                .shutdown_guest(&vm)
                                                .await
                                                .map_err(Error::from)
                                        },
                                    )
                                    .await;
                                if asked.is_ok() {
                                    return Ok(NodeStepDone::ShutdownRequested);
                                }
                                // No guest to ask (no VMware Tools): power off at once.
                            }
                            Some(since) => {
                                let waited = self
                                    .ctx
                                    .clock
                                    .now()
                                    .duration_since(*since)
                                    .unwrap_or_default();
                                if waited < grace {
                                    return Ok(NodeStepDone::AwaitingShutdown(grace - waited));
                                }
                            }
                        }
                    }
                    self.with_intent(Some(node), IntentAction::DeleteNode, detail, async {
                        self.vsphere.power_off(&vm).await?;
                        self.vsphere.destroy_vm(&vm).await.map_err(Error::from)
                    })
                    .await?;
                }
                // Only after the VM is gone: forget the node and free its address.
                self.store.delete_node(&self.fence, node).await?;
                Ok(NodeStepDone::Finished(None))
            }
            step if kubernetes::is_kube_step(step) => self.kube_step(step).await,
            _ => Ok(NodeStepDone::Finished(None)),
        }
    }

    /// With DHCP, nodes powered on without an address hold the run back
    /// until they report one (recorded then) or `ip_wait` passes (a failure
    /// naming the cause). Returns how long to wait before looking again,
    /// when some node is still silent. No call: the addresses come with the
    /// observation.
    async fn check_addresses(
        &self,
        observation: &Observation,
        state: &mut RunState,
    ) -> Option<Duration> {
        let now = self.ctx.clock.now();
        let mut wait: Option<Duration> = None;
        for (node, (_, vm)) in &observation.vms {
            if vm.power_state != "poweredOn" || state.failed.contains_key(node) {
                continue;
            }
            match &vm.ip {
                Some(ip) => {
                    let waited = state.address_wait.remove(node).is_some();
                    let recorded = self.store.node(&self.name(), node).await.ok().flatten();
                    let known = recorded.as_ref().is_some_and(|r| r.node.ip.is_some());
                    if waited {
                        self.progress
                            .finished(StepKind::WaitForAddress, Some(node), None);
                    }
                    if let (false, Some(record), Ok(address)) =
                        (known, recorded, ip.parse::<IpAddr>())
                    {
                        self.event(
                            EventLevel::Info,
                            EventKind::AddressReported,
                            &format!("the guest reports {ip}"),
                            Some(node),
                        )
                        .await;
                        let mut n = record.node;
                        n.ip = Some(address);
                        let _ = self.store.upsert_node(&self.fence, &n, self.now()).await;
                    }
                }
                None => {
                    let since = *state.address_wait.entry(node.clone()).or_insert_with(|| {
                        self.progress.started(StepKind::WaitForAddress, Some(node));
                        now
                    });
                    let waited = now.duration_since(since).unwrap_or_default();
                    if waited >= self.options.ip_wait {
                        let message = format!(
                            "no IP address reported within {}s: is DHCP serving the node's network?",
                            self.options.ip_wait.as_secs()
                        );
                        self.progress.finished(
                            StepKind::WaitForAddress,
                            Some(node),
                            Some(&message),
                        );
                        state.address_wait.remove(node);
                        state.failed.insert(
                            node.clone(),
                            NodeFailure {
                                node: node.clone(),
                                step: StepKind::WaitForAddress,
                                message,
                            },
                        );
                        continue;
                    }
                    // A calm pace: half the time waited so far, 0.5 s to 5 s.
                    let pause = (waited / 2)
                        .clamp(ADDRESS_POLL.0, ADDRESS_POLL.1)
                        .min(self.options.ip_wait - waited);
                    wait = Some(wait.map_or(pause, |w| w.min(pause)));
                }
            }
        }
        wait
    }

    /// Destroy second VMs of a node (never the node's address: the node stays).
    async fn remove_duplicates(&self, observation: &Observation) -> Result<()> {
        for (node, vm) in &observation.duplicates {
            self.progress.started(StepKind::RemoveDuplicate, Some(node));
            guest::power_off(self.vsphere, self.ctx.clock, vm, Duration::ZERO).await?;
            self.vsphere.destroy_vm(vm).await?;
            self.progress
                .finished(StepKind::RemoveDuplicate, Some(node), None);
            self.event(
                EventLevel::Warning,
                EventKind::DuplicateRemoved,
                &format!("a second VM `{vm}` of this node was destroyed"),
                Some(node),
            )
            .await;
        }
        Ok(())
    }

    /// Finish nodes whose creation was interrupted after the clone.
    async fn finish_unfinished(&self, observation: &Observation) -> Vec<NodeFailure> {
        let mut failures = Vec::new();
        let cp_nodes: BTreeSet<&str> = observation
            .cluster
            .nodes
            .iter()
            .filter(|n| {
                self.spec
                    .group(&n.pool)
                    .is_some_and(|g| g.role() == GroupRole::ControlPlane)
            })
            .map(|n| n.name.as_str())
            .collect();
        for name in &observation.unfinished {
            let Some(node) = observation.cluster.nodes.iter().find(|n| &n.name == name) else {
                continue;
            };
            let Some((vm, observed)) = observation.vms.get(name) else {
                continue;
            };
            let mac = observed.mac.clone().unwrap_or_default();
            let group = self.spec.group(&node.pool).expect("observed group exists");
            let role = match group.role() {
                GroupRole::ControlPlane if cp_nodes.iter().all(|n| *n >= name.as_str()) => {
                    NodeRole::Init
                }
                GroupRole::ControlPlane => NodeRole::ControlPlane,
                GroupRole::Worker => NodeRole::Worker,
            };
            let settings =
                self.settings(name, &node.pool, node.index, &node.domain, &node.spec_hash);
            self.progress.started(StepKind::FinishNode, Some(name));
            let result = self
                .finish_node(vm, name, &node.pool, role, &settings, &mac)
                .await;
            let message = result.as_ref().err().map(|e| e.to_string());
            self.progress
                .finished(StepKind::FinishNode, Some(name), message.as_deref());
            match result {
                Ok(()) => {
                    self.event(
                        EventLevel::Info,
                        EventKind::NodeAdopted,
                        "finished a node whose creation was interrupted",
                        Some(name),
                    )
                    .await;
                    let _ = self
                        .record_node(
                            name,
                            &node.pool,
                            node.index,
                            &node.domain,
                            &node.spec_hash,
                            Some(vm),
                            NodePhase::Created,
                        )
                        .await;
                }
                Err(e) => failures.push(NodeFailure {
                    node: name.clone(),
                    step: StepKind::FinishNode,
                    message: e.to_string(),
                }),
            }
        }
        failures
    }
}

/// The VM named `name` in the cluster folder, after a clone of that name
/// failed with `DuplicateName`: an interrupted run's clone, adopted. A VM
/// of that name with another uid's markers is another state's: refused,
/// never taken.
async fn find_vm(run: &Run<'_>, folder: &FolderId, name: &str) -> Result<VmId> {
    let vms = run.vsphere.folder_vms(folder).await?;
    let found = vms.into_iter().find(|v| v.name == name).ok_or_else(|| {
        Error::Vsphere(vkube_vsphere::Error::NotFound {
            kind: "VM".into(),
            path: name.into(),
            parent: "cluster folder".into(),
            missing: name.into(),
        })
    })?;
    match found.extra_config.get(MARKER_CLUSTER_UID) {
        Some(uid) if *uid != run.uid => Err(Error::ForeignVms {
            cluster: run.name(),
            folder: cluster_folder(run.spec.folder(), run.spec.name()),
            known_uid: Some(run.uid.clone()),
            found: BTreeMap::from([(uid.clone(), vec![name.to_owned()])]),
            unmarked: Vec::new(),
        }),
        _ => Ok(VmId::new(found.id)),
    }
}

/// The names of the nodes the store has records of.
pub(crate) async fn recorded_nodes(
    store: &dyn StateStore,
    cluster: &str,
) -> Result<BTreeSet<String>> {
    Ok(store
        .nodes(cluster)
        .await?
        .into_iter()
        .map(|n| n.node.name)
        .collect())
}

async fn load_secrets(
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    token_ttl: Duration,
) -> Result<(ClusterPki, StoredToken)> {
    let name = spec.name().to_string();
    let fresh_pki = ClusterPki::generate(spec.name(), ctx.clock.now(), &mut |b: &mut [u8]| {
        ctx.random.fill(b)
    })?;
    let pki_json = serde_json::to_string(&fresh_pki).map_err(|e| Error::Corrupt {
        cluster: name.clone(),
        what: "PKI".into(),
        detail: e.to_string(),
    })?;
    store.ensure_secret(&name, SECRET_PKI, &pki_json).await?;
    let pki = access::cluster_pki(store, &name).await?;
    let fresh_token = StoredToken::fresh(ctx.clock.now(), token_ttl, &mut |b: &mut [u8]| {
        ctx.random.fill(b)
    });
    let token = token::ensure(store, &name, &fresh_token).await?;
    Ok((pki, token))
}

/// Converge vCenter to `spec`: [`reconcile`](crate::reconcile) passes under
/// one hold of the apply lock until the plan is empty, waiting between
/// them as the passes ask (guest shutdowns, DHCP addresses). See the module
/// docs for the guarantees; `ctx` gives the time, randomness and lock
/// holder, `progress` hears about every step and event.
pub async fn apply(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    options: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport> {
    let start_trips = vsphere.round_trips();
    let mut state = RunState::default();
    let mut report = locked(vsphere, store, spec, ctx, options, progress, async |run| {
        let mut passes = 0;
        loop {
            match run.pass(&mut state).await? {
                Pass::Converged => return run.finish(&mut state).await,
                Pass::Stepped { then } => {
                    passes += 1;
                    if passes == options.max_passes {
                        return Err(run.not_converged(&state));
                    }
                    ctx.clock.sleep(then).await;
                }
                Pass::Waiting(pause) => ctx.clock.sleep(pause).await,
            }
        }
    })
    .await?;
    report.round_trips = vsphere.round_trips() - start_trips;
    Ok(report)
}

/// Resolve the spec, take the cluster's apply lock (renewed while `work`
/// runs), prepare a [`Run`] and hand it to `work`; release the lock after.
pub(crate) async fn locked<T>(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    options: &ApplyOptions,
    progress: &dyn Progress,
    work: impl AsyncFnOnce(&Run<'_>) -> Result<T>,
) -> Result<T> {
    check_pools(store, spec).await?;
    let inventory = vsphere.inventory().await?;
    let placement = resolve(vsphere, &inventory, spec, progress).await?;
    let name = spec.name().to_string();
    let lock = acquire_lock(store, ctx, &name, options.lock_ttl).await?;
    let fence = lock.fence();
    // Renew the lock while working, so a killed run's lock expires soon but
    // a long run keeps it.
    let renew = async {
        let mut held = lock.clone();
        loop {
            ctx.clock.sleep(options.lock_ttl / 3).await;
            match store
                .renew_apply_lock(&held, ctx.timestamp(), options.lock_ttl)
                .await
            {
                Ok(renewed) => held = renewed,
                Err(e) => return e,
            }
        }
    };
    // Refusals change nothing, the phase included; a failure once the
    // run started leaves the cluster `Degraded` with the error.
    let started = std::cell::Cell::new(false);
    let guarded = async {
        let (known, seen) = check_ownership(vsphere, store, &inventory, spec).await?;
        started.set(true);
        let run = prepare(
            vsphere, store, &fence, spec, placement, inventory, ctx, options, progress,
        )
        .await?;
        // The ownership check read the folder with the cluster's uid: the
        // first pass starts from that read.
        if known.is_some() {
            *run.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        }
        work(&run).await
    };
    // Biased: the work is polled first, so runs are deterministic under a
    // fake clock.
    let result = tokio::select! {
        biased;
        result = guarded => result,
        lost = renew => Err(lost.into()),
    };
    if let Err(error) = &result {
        if started.get() {
            record_failure(store, &fence, &name, error, ctx, progress).await;
        }
    }
    if let Err(e) = store.release_apply_lock(&lock).await {
        tracing::warn!("releasing the apply lock of `{name}` failed: {e}");
    }
    result
}

/// Take the cluster's apply lock. A lock whose holder is known to be gone
/// (an apply that was killed) is taken over at once.
pub(crate) async fn acquire_lock(
    store: &dyn StateStore,
    ctx: &Context<'_>,
    cluster: &str,
    ttl: Duration,
) -> Result<vkube_store::ApplyLock> {
    let holder = ctx.holder.id();
    match store
        .acquire_apply_lock(cluster, &holder, ctx.timestamp(), ttl)
        .await
    {
        Err(vkube_store::Error::Locked { holder: other, .. }) if ctx.holder.is_gone(&other) => {
            tracing::info!(
                "taking over the apply lock of `{cluster}` from `{other}`, which no longer runs"
            );
            store.expire_apply_lock(cluster, &other).await?;
            Ok(store
                .acquire_apply_lock(cluster, &holder, ctx.timestamp(), ttl)
                .await?)
        }
        other => Ok(other?),
    }
}

/// The cluster's spec hash as recorded: each group's hash, in order.
pub(crate) fn spec_hash(spec: &ClusterSpec) -> String {
    spec.groups()
        .iter()
        .map(|g| g.spec_hash())
        .collect::<Vec<_>>()
        .join(",")
}

/// Records `spec` as the cluster's desired spec: a new cluster with
/// `new_uid`, or the known one updated; and the vCenter the cluster lives
/// in, when not recorded yet (clusters recorded before vkube kept it).
pub(crate) async fn record_spec(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    fence: &Fence,
    spec: &ClusterSpec,
    new_uid: &str,
    ctx: &Context<'_>,
) -> Result<ClusterRecord> {
    let name = spec.name().to_string();
    let spec_yaml = spec.to_yaml();
    let spec_hash = spec_hash(spec);
    let record = match store.cluster(&name).await {
        Ok(existing) if existing.spec_yaml != spec_yaml => {
            store
                .update_cluster_spec(
                    fence,
                    existing.version,
                    &spec_yaml,
                    &spec_hash,
                    ctx.timestamp(),
                )
                .await?
        }
        Ok(existing) => existing,
        Err(vkube_store::Error::ClusterNotFound { .. }) => {
            store
                .create_cluster(fence, new_uid, &spec_yaml, &spec_hash, ctx.timestamp())
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    match (&record.vcenter_uuid, vsphere.facts().instance_uuid) {
        (None, Some(uuid)) => Ok(store
            .set_cluster_vcenter(fence, record.version, &uuid, ctx.timestamp())
            .await?),
        _ => Ok(record),
    }
}

/// What an apply refuses before it changes anything: a cluster recorded
/// in another vCenter, VMs in the folder that another state created (see
/// [`crate::ownership`]), and a known cluster whose VMs exist while the
/// state lost its key material (an adoption that stopped short: a new PKI
/// would not be trusted by them). Returns the cluster's record, if known.
pub(crate) async fn check_ownership(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    inventory: &vkube_vsphere::Inventory,
    spec: &ClusterSpec,
) -> Result<(Option<ClusterRecord>, Observation)> {
    let name = spec.name().to_string();
    let record = match store.cluster(&name).await {
        Ok(record) => Some(record),
        Err(vkube_store::Error::ClusterNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(record) = &record {
        ownership::check_vcenter(record, &vsphere.facts())?;
    }
    let uid = record.as_ref().map(|r| r.uid.as_str());
    let observation = observe(vsphere, inventory, spec, uid.unwrap_or_default()).await?;
    ownership::check_claims(spec, uid, &observation)?;
    let marked: Vec<String> = observation
        .vms
        .keys()
        .filter(|node| !observation.unmarked.contains(node))
        .cloned()
        .collect();
    if record.is_some() && !marked.is_empty() && store.secret(&name, SECRET_PKI).await?.is_none() {
        return Err(Error::MissingKeyMaterial {
            cluster: name,
            nodes: marked,
        });
    }
    Ok((record, observation))
}

/// After an apply stopped with `error`: the cluster is `Degraded` with the
/// error as its last error, and an event says so. Best effort: a write
/// that fails (the lock was taken over, the store is down) is logged.
async fn record_failure(
    store: &dyn StateStore,
    fence: &Fence,
    name: &str,
    error: &Error,
    ctx: &Context<'_>,
    progress: &dyn Progress,
) {
    let Ok(record) = store.cluster(name).await else {
        return;
    };
    if record.phase.is_deletion() {
        return;
    }
    let message = error.to_string();
    if let Err(e) = store
        .set_cluster_status(
            fence,
            record.version,
            ClusterPhase::Degraded,
            Some(&message),
            ctx.timestamp(),
        )
        .await
    {
        tracing::warn!("recording the failed apply of `{name}` failed: {e}");
        return;
    }
    let mut line = message;
    if line.len() > LAST_ERROR_MAX {
        let mut end = LAST_ERROR_MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    record_event(
        store,
        ctx,
        progress,
        Event {
            cluster: name,
            level: EventLevel::Error,
            kind: EventKind::ApplyFailed,
            node: None,
            message: &line,
        },
    )
    .await;
}

/// Record the spec, load the cluster's secrets and add-on facts, close the
/// intents a stopped run left open: what every pass starts from.
#[allow(clippy::too_many_arguments)]
async fn prepare<'a>(
    vsphere: &'a dyn VspherePort,
    store: &'a dyn StateStore,
    fence: &Fence,
    spec: &'a ClusterSpec,
    placement: Placement,
    inventory: vkube_vsphere::Inventory,
    ctx: &'a Context<'a>,
    options: &'a ApplyOptions,
    progress: &'a dyn Progress,
) -> Result<Run<'a>> {
    let name = spec.name().to_string();
    let record = record_spec(vsphere, store, fence, spec, &ctx.hex_id(16), ctx).await?;
    let pki_replaced = store
        .secret(&name, crate::adopt::SECRET_PKI_REPLACED)
        .await?
        .is_some();
    let (pki, token) = load_secrets(store, spec, ctx, options.token_ttl).await?;
    let facts = addons::gather(vsphere, &inventory, store, spec, &record.uid).await?;
    let folder = inventory
        .resolve(
            &cluster_folder(spec.folder(), spec.name()),
            "cluster folder",
        )
        .ok()
        .and_then(FolderId::of);
    let run = Run {
        vsphere,
        store,
        spec,
        uid: record.uid.clone(),
        placement,
        pki,
        pki_replaced,
        token: tokio::sync::Mutex::new(token),
        facts,
        manifests: std::sync::Mutex::new(None),
        fence: fence.clone(),
        inventory,
        folder: std::sync::Mutex::new(folder),
        kube: std::sync::Mutex::new(KubeSide::default()),
        seen: std::sync::Mutex::new(None),
        macs: NodeMacs::default(),
        options,
        progress,
        ctx,
    };
    for intent in store.open_intents(&name).await? {
        store
            .complete_intent(
                fence,
                intent.id,
                IntentOutcome::Abandoned("an earlier apply stopped before finishing".into()),
                ctx.timestamp(),
            )
            .await?;
        run.event(
            EventLevel::Warning,
            EventKind::IntentAbandoned,
            &format!("{:?} was interrupted; re-observing", intent.action),
            intent.node.as_deref(),
        )
        .await;
    }
    store
        .set_cluster_phase(
            fence,
            store.cluster(&name).await?.version,
            ClusterPhase::Provisioning,
            ctx.timestamp(),
        )
        .await?;
    Ok(run)
}

/// What one pass did.
pub(crate) enum Pass {
    /// The plan is empty: nothing left to do but [`Run::finish`].
    Converged,
    /// Steps ran; plan again after `then`.
    Stepped {
        /// How long to let vCenter be before the next pass.
        then: Duration,
    },
    /// Nothing could be done yet (a guest shutting down, an address to
    /// come); look again after this long.
    Waiting(Duration),
}

impl Run<'_> {
    /// The cluster folder's VMs: one read of the folder the run knows, or,
    /// before it is known, one lookup by name under the parent folder
    /// (never the whole inventory). A folder removed behind the run's back
    /// is looked up again.
    async fn observe(&self) -> Result<Observation> {
        let mut observation = self.observe_vcenter().await?;
        // A clone carries its bootstrap data from the start: one whose run
        // was killed before recording it is finished (and recorded) too.
        let recorded = recorded_nodes(self.store, &self.name()).await?;
        for node in observation.vms.keys() {
            if !recorded.contains(node) && !observation.unfinished.contains(node) {
                observation.unfinished.push(node.clone());
            }
        }
        Ok(observation)
    }

    /// The cluster folder's VMs, as vCenter shows them.
    async fn observe_vcenter(&self) -> Result<Observation> {
        if let Some(seen) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Ok(seen);
        }
        let known = self
            .folder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(folder) = known {
            match observe_folder(self.vsphere, Some(&folder), self.spec, &self.uid).await {
                Err(Error::Vsphere(e)) if e.is(&vkube_vsphere::Fault::ManagedObjectNotFound) => {}
                other => return other,
            }
        }
        let found = self
            .vsphere
            .find_folder(&self.placement.parent_folder, self.spec.name().as_str())
            .await?;
        *self.folder.lock().unwrap_or_else(|p| p.into_inner()) = found.clone();
        observe_folder(self.vsphere, found.as_ref(), self.spec, &self.uid).await
    }

    /// One pass: observe, finish half-done nodes, plan, execute the next
    /// steps. Never waits: what must be waited for is a [`Pass::Waiting`].
    pub(crate) async fn pass(&self, state: &mut RunState) -> Result<Pass> {
        let spec = self.spec;
        state.report.cluster = self.name();
        state.report.passes += 1;
        let inventory = &self.inventory;
        let mut observation = self.observe().await?;
        if !observation.duplicates.is_empty() {
            self.remove_duplicates(&observation).await?;
            observation = self.observe().await?;
        }
        if !observation.unfinished.is_empty() {
            for failure in self.finish_unfinished(&observation).await {
                state.failed.insert(failure.node.clone(), failure);
            }
            observation = self.observe().await?;
        }
        // With DHCP, nothing goes on while a powered-on node lacks its address.
        if spec.ip_allocation() == IpAllocation::Dhcp {
            if let Some(pause) = self.check_addresses(&observation, state).await {
                return Ok(Pass::Waiting(pause));
            }
        }
        let leases = leases_of(self.store, &self.name()).await?;
        let records: kubernetes::Records = self
            .store
            .nodes(&self.name())
            .await?
            .into_iter()
            .map(|r| (r.node.name.clone(), r))
            .collect();
        observation.cluster.recorded = records.keys().cloned().collect();
        state.started.get_or_insert_with(|| self.ctx.clock.now());
        self.observe_kube(&mut observation, &records).await?;
        let planned = plan(spec, &observation.cluster, &lease_map(&leases));
        // A node that failed in this run is not retried until the next run.
        let steps: Vec<Step> = planned
            .steps
            .iter()
            .filter(|s| {
                StepKind::of(s)
                    .1
                    .is_none_or(|n| !state.failed.contains_key(n))
            })
            .cloned()
            .collect();
        if steps.is_empty() {
            // A failed node ends the run (its error is the report); else
            // what the plan holds on, then readiness, are waited for.
            if state.failed.is_empty() && !planned.holds.is_empty() {
                return Ok(Pass::Waiting(self.hold(&planned, state).await?));
            }
            if state.failed.is_empty() {
                if let Some(pause) = self.wait_ready(&observation.cluster, state).await? {
                    return Ok(Pass::Waiting(pause));
                }
            }
            return Ok(Pass::Converged);
        }
        if self.pki_replaced {
            let joining: Vec<String> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::CreateNode { node, role, .. } if *role != NodeRole::Init => {
                        Some(node.clone())
                    }
                    _ => None,
                })
                .collect();
            if !joining.is_empty() {
                return Err(Error::UntrustedPki {
                    cluster: self.name(),
                    nodes: joining,
                });
            }
        }
        // The cluster's CPI/CSI user is checked before anything is created
        // for nodes that will run with its credentials.
        if !state.cloud_user_checked && steps.iter().any(|s| matches!(s, Step::CreateNode { .. })) {
            let node_vms: Vec<String> = observation
                .vms
                .keys()
                .map(|n| format!("{}/{n}", cluster_folder(spec.folder(), spec.name())))
                .collect();
            crate::cloud::check_cloud_user(
                self.vsphere,
                inventory,
                spec,
                &self.facts.credentials.username,
                &node_vms,
            )
            .await?;
            state.cloud_user_checked = true;
        }
        // Deletions whose guests are still shutting down are looked at
        // again, not announced again.
        let only_waiting = steps.iter().all(
            |s| matches!(s, Step::DeleteNode { node, .. } if state.shutdowns.contains_key(node)),
        );
        if !only_waiting {
            self.progress.pass(state.report.passes, &steps);
            state.report.changed = true;
        }
        let work = run_pass(self, &steps, &mut observation, state).await?;
        Ok(match work {
            PassWork {
                acted: false,
                shutdown_wait: Some(left),
                ..
            } => Pass::Waiting(left.min(SHUTDOWN_POLL)),
            PassWork { shutdown_wait, .. } => Pass::Stepped {
                then: shutdown_wait.map_or(Duration::ZERO, |w| w.min(SHUTDOWN_POLL)),
            },
        })
    }

    /// After the last pass: bring the add-ons up to date, set the phase,
    /// and report (or fail with the nodes that failed in this run).
    pub(crate) async fn finish(&self, state: &mut RunState) -> Result<ApplyReport> {
        let name = self.name();
        // Failed nodes stop the run here; the caller records the cluster
        // as degraded with this error.
        if !state.failed.is_empty() {
            return Err(Error::NodesFailed {
                cluster: name,
                failures: std::mem::take(&mut state.failed).into_values().collect(),
            });
        }
        if !state.addons_synced {
            self.sync_addons(&mut state.report).await?;
        }
        self.store
            .set_cluster_status(
                &self.fence,
                self.store.cluster(&name).await?.version,
                ClusterPhase::Ready,
                None,
                self.now(),
            )
            .await?;
        self.event(
            EventLevel::Info,
            EventKind::Applied,
            &format!("converged after {} pass(es)", state.report.passes),
            None,
        )
        .await;
        Ok(state.report.clone())
    }

    /// Passes kept finding work (the caller records the cluster as degraded).
    pub(crate) fn not_converged(&self, state: &RunState) -> Error {
        Error::NotConverged {
            cluster: self.name(),
            passes: state.report.passes,
        }
    }
}

/// How often a guest asked to shut down is looked at.
const SHUTDOWN_POLL: Duration = Duration::from_secs(1);
/// Shortest and longest pause between looks for a DHCP address.
const ADDRESS_POLL: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(5));

/// What the steps of a pass did.
struct PassWork {
    /// Whether anything was changed or asked of vCenter or the store.
    acted: bool,
    /// The shortest time a deletion waits for its guest to shut down.
    shutdown_wait: Option<Duration>,
    /// vCenter stopped answering during the pass (the first such error):
    /// the apply stops.
    vcenter_silent: Option<String>,
    /// Nodes whose chain stopped before its end (a guest shutting down):
    /// their addresses stay leased.
    unfinished: BTreeSet<String>,
}

/// Whether `step` belongs to its node's chain (not the pass's folder,
/// address or record steps).
fn is_chain_step(step: &Step) -> bool {
    matches!(
        step,
        Step::CreateNode { .. }
            | Step::Reconfigure { .. }
            | Step::PowerOn { .. }
            | Step::DeleteNode { .. }
    ) || kubernetes::is_kube_step(step)
}

/// How a node step ended.
enum NodeStepDone {
    /// Done; the VM when one was cloned.
    Finished(Option<VmId>),
    /// The guest of a node to delete was asked to shut down.
    ShutdownRequested,
    /// The guest of a node to delete is still shutting down (this long left).
    AwaitingShutdown(Duration),
}

async fn run_pass(
    run: &Run<'_>,
    steps: &[Step],
    observation: &mut Observation,
    state: &mut RunState,
) -> Result<PassWork> {
    let mut work = PassWork {
        acted: false,
        shutdown_wait: None,
        vcenter_silent: None,
        unfinished: BTreeSet::new(),
    };
    // Folder and addresses first: node steps need them.
    for step in steps {
        match step {
            Step::CreateFolder { path } => {
                run.progress.started(StepKind::CreateFolder, None);
                let name = run.spec.name().to_string();
                let parent = run.placement.parent_folder.clone();
                let folder = run
                    .with_intent(
                        None,
                        IntentAction::CreateFolder,
                        serde_json::json!({ "path": path }),
                        async {
                            run.vsphere
                                .ensure_folder(&parent, &name)
                                .await
                                .map_err(Error::from)
                        },
                    )
                    .await?;
                run.progress.finished(StepKind::CreateFolder, None, None);
                run.event(EventLevel::Info, EventKind::FolderCreated, path, None)
                    .await;
                *run.folder.lock().unwrap_or_else(|p| p.into_inner()) = Some(folder.clone());
                observation.folder = Some(folder);
                state.report.executed.push(format!("create folder {path}"));
                work.acted = true;
            }
            Step::AllocateAddress { node, pool } => {
                let lease = run.store.allocate(&run.fence, pool.as_str(), node).await?;
                run.event(
                    EventLevel::Info,
                    EventKind::AddressAllocated,
                    &format!("{} from pool `{pool}`", lease.address),
                    Some(node),
                )
                .await;
                state
                    .report
                    .executed
                    .push(format!("allocate address {node} {}", lease.address));
                work.acted = true;
            }
            _ => {}
        }
    }
    // One chain per node, in plan order (drain → etcd member → Node object
    // → VM; or clone → power-on): each step after the one before it
    // succeeded. Chains run in parallel, `parallel` at a time.
    let mut chains: Vec<(&str, Vec<&Step>)> = Vec::new();
    for step in steps {
        if !is_chain_step(step) {
            continue;
        }
        let node = StepKind::of(step).1.expect("node steps name their node");
        match chains.iter_mut().find(|(n, _)| *n == node) {
            Some((_, chain)) => chain.push(step),
            None => chains.push((node, vec![step])),
        }
    }
    run_chains(run, &chains, observation, state, &mut work).await;
    if let Some(detail) = work.vcenter_silent.take() {
        return Err(Error::VcenterSilent { detail });
    }
    for step in steps {
        match step {
            Step::ReleaseAddress { node }
                if !state.failed.contains_key(node) && !work.unfinished.contains(node) =>
            {
                run.store.release_node(&run.fence, node).await?;
                state
                    .report
                    .executed
                    .push(format!("release address {node}"));
                work.acted = true;
            }
            Step::ForgetNode { node } => {
                run.progress.started(StepKind::ForgetNode, Some(node));
                let removed = run.store.delete_node(&run.fence, node).await?;
                run.progress
                    .finished(StepKind::ForgetNode, Some(node), None);
                run.event(
                    EventLevel::Warning,
                    EventKind::NodeForgotten,
                    &format!(
                        "its VM is gone and nothing recreates it: record dropped, {} address(es) released",
                        removed.released_leases.len()
                    ),
                    Some(node),
                )
                .await;
                state.report.executed.push(format!("forget node {node}"));
                work.acted = true;
            }
            _ => {}
        }
    }
    Ok(work)
}

/// Run each node's chain of steps, at most `parallel` chains at a time;
/// record each step's outcome. A chain stops at its first failure, or when
/// a deletion waits for its guest to shut down.
async fn run_chains(
    run: &Run<'_>,
    chains: &[(&str, Vec<&Step>)],
    observation: &Observation,
    state: &mut RunState,
    work: &mut PassWork,
) {
    let limit = Semaphore::new(run.options.parallel.max(1));
    let shutdowns = &state.shutdowns;
    // Once vCenter stops answering, steps not started yet are not started:
    // each would only wait out its own deadline.
    let silent: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let outcomes = futures::future::join_all(chains.iter().map(|(node, chain)| {
        let (limit, silent) = (&limit, &silent);
        async move {
            let _permit = limit.acquire().await.expect("semaphore open");
            let mut created = BTreeMap::new();
            let mut results = Vec::new();
            for step in chain {
                let (what, _) = StepKind::of(step);
                let stopped = silent.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(reason) = stopped {
                    results.push((*step, Err(Error::NotStarted { reason })));
                    break;
                }
                run.progress.started(what, Some(node));
                let result = run.node_step(step, observation, &created, shutdowns).await;
                if let Err(Error::Vsphere(e)) = &result {
                    if e.is_no_answer() {
                        silent
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert_with(|| e.to_string());
                    }
                }
                let message = result.as_ref().err().map(|e| e.to_string());
                run.progress.finished(what, Some(node), message.as_deref());
                let go_on = matches!(result, Ok(NodeStepDone::Finished(_)));
                if let Ok(NodeStepDone::Finished(Some(vm))) = &result {
                    created.insert(node.to_string(), vm.clone());
                }
                results.push((*step, result));
                if !go_on {
                    break;
                }
            }
            let complete = results.len() == chain.len()
                && results
                    .last()
                    .is_some_and(|(_, r)| matches!(r, Ok(NodeStepDone::Finished(_))));
            (*node, complete, results)
        }
    }))
    .await;
    work.vcenter_silent = silent.into_inner().unwrap_or_else(|p| p.into_inner());
    for (node, complete, results) in outcomes {
        if !complete {
            work.unfinished.insert(node.to_string());
        }
        for (step, result) in results {
            record_outcome(run, step, result, state, work).await;
        }
    }
}

/// Report and record how one node step ended.
async fn record_outcome(
    run: &Run<'_>,
    step: &Step,
    result: Result<NodeStepDone>,
    state: &mut RunState,
    work: &mut PassWork,
) {
    let (what, node) = StepKind::of(step);
    let node = node.unwrap_or_default().to_string();
    let kind = what.event().expect("node steps record events");
    match result {
        Ok(NodeStepDone::Finished(_)) => {
            work.acted = true;
            state.shutdowns.remove(&node);
            run.event(EventLevel::Info, kind, &format!("{what} done"), Some(&node))
                .await;
            state.report.executed.push(format!("{what} {node}"));
        }
        Ok(NodeStepDone::ShutdownRequested) => {
            work.acted = true;
            state.shutdowns.insert(node, run.ctx.clock.now());
            let grace = run.options.power_off_grace;
            work.shutdown_wait = Some(work.shutdown_wait.map_or(grace, |w| w.min(grace)));
        }
        Ok(NodeStepDone::AwaitingShutdown(left)) => {
            work.shutdown_wait = Some(work.shutdown_wait.map_or(left, |w| w.min(left)));
        }
        Err(e) => {
            work.acted = true;
            run.event(EventLevel::Error, kind, &e.to_string(), Some(&node))
                .await;
            state.failed.insert(
                node.clone(),
                NodeFailure {
                    node,
                    step: what,
                    message: e.to_string(),
                },
            );
        }
    }
}

/// Record `event` in the journal and tell `progress`; a journal failure is
/// logged, never fatal (the event is a record, not state).
pub(crate) async fn record_event(
    store: &dyn StateStore,
    ctx: &Context<'_>,
    progress: &dyn Progress,
    event: Event<'_>,
) {
    if let Err(e) = store
        .append_event(
            event.cluster,
            ctx.timestamp(),
            event.level,
            event.kind.as_str(),
            event.message,
            event.node,
        )
        .await
    {
        tracing::warn!("recording an event failed: {e}");
    }
    progress.event(&event);
}
