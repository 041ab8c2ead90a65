//! The Kubernetes side of an apply: reading the cluster's Nodes and etcd
//! for the planner each pass, the steps that act on them (drain, etcd
//! member removal, Node deletion, uncordon), and the waits they bring
//! (`--wait ready`, the plan's holds), each bounded by the apply's timeout.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use vkube_core::cluster::{ObservedCluster, Plan, Step};
use vkube_kube::{ClusterApi, DrainOptions};
use vkube_store::{EventLevel, IntentAction, NodePhase, NodeRecord};

use super::{NodeStepDone, Run, WaitFor};
use crate::error::{Error, Result};
use crate::kube_view::{self, EtcdSide, KubeSide};
use crate::observe::Observation;
use crate::progress::{EventKind, StepKind};
use crate::reconcile::RunState;

/// The cluster's node records, by name.
pub(super) type Records = BTreeMap<String, NodeRecord>;

impl Run<'_> {
    /// Whether this pass asks Kubernetes: when waiting for readiness, or
    /// once any node was seen registered (its removal then drains it).
    fn asks_kube(&self, records: &Records) -> bool {
        self.options.wait == WaitFor::Ready
            || records
                .values()
                .any(|r| kube_view::seen_registered(r.node.phase))
    }

    /// What reads this cluster's Kubernetes side.
    fn reader(&self) -> Reader<'_> {
        Reader {
            store: self.store,
            spec: self.spec,
            pki: &self.pki,
            ctx: self.ctx,
            timeout: self.options.api_timeout,
        }
    }

    /// Fill the observation's Kubernetes side for the planner, and record
    /// what changed (a node registered, a drained node uncordoned by
    /// someone, a node Ready).
    pub(super) async fn observe_kube(
        &self,
        observation: &mut Observation,
        records: &Records,
    ) -> Result<()> {
        let side = if self.asks_kube(records) {
            self.reader().read(observation, records).await
        } else {
            KubeSide::default()
        };
        let now = self.ctx.clock.now();
        let changes = kube_view::fill(&mut observation.cluster, &side, records, self.spec, now);
        for node in &mut observation.cluster.nodes {
            // Since its power-on, for the health check's startup timeout.
            if let Some(record) = records.get(&node.name) {
                if !node.kube.is_known() && record.node.phase == NodePhase::PoweredOn {
                    node.powered_on_for = Some(self.now().duration_since(record.updated_at));
                }
            }
        }
        for change in changes {
            let first = records
                .get(&change.node)
                .is_some_and(|r| !kube_view::seen_registered(r.node.phase));
            self.set_phase(&change.node, change.phase).await?;
            if first {
                self.event(
                    EventLevel::Info,
                    EventKind::NodeRegistered,
                    "its Node object appeared in the cluster's API",
                    Some(&change.node),
                )
                .await;
            }
        }
        *self.kube.lock().unwrap_or_else(|p| p.into_inner()) = side;
        Ok(())
    }

    /// Write `phase` into `node`'s record, if it has one.
    async fn set_phase(&self, node: &str, phase: NodePhase) -> Result<()> {
        if let Some(record) = self.store.node(&self.name(), node).await? {
            if record.node.phase != phase {
                let mut n = record.node;
                n.phase = phase;
                self.store.upsert_node(&self.fence, &n, self.now()).await?;
            }
        }
        Ok(())
    }

    /// This pass's API client; an error naming why there is none.
    fn api(&self) -> Result<std::sync::Arc<dyn ClusterApi>> {
        let side = self.kube.lock().unwrap_or_else(|p| p.into_inner());
        side.api.clone().ok_or_else(|| {
            Error::Kubernetes(vkube_kube::Error::Unreachable {
                endpoint: "the cluster's API server".into(),
                reason: side
                    .unreachable
                    .clone()
                    .unwrap_or_else(|| "not asked this pass".into()),
            })
        })
    }

    /// Run a step that acts on Kubernetes or etcd.
    pub(super) async fn kube_step(&self, step: &Step) -> Result<NodeStepDone> {
        match step {
            Step::DrainNode {
                node,
                reason,
                kubelet_unresponsive,
            } => {
                let api = self.api()?;
                let options = DrainOptions {
                    timeout: self.options.drain_timeout,
                    force: self.options.force_drain,
                    ..DrainOptions::default()
                };
                let detail = serde_json::json!({
                    "reason": reason.to_string(),
                    "force": options.force,
                    "kubeletUnresponsive": kubelet_unresponsive,
                });
                self.with_intent(Some(node), IntentAction::DrainNode, detail, async {
                    match api.drain(node, &options).await {
                        Ok(report) => {
                            tracing::info!(
                                "{node}: {} pod(s) evicted, {} deleted",
                                report.evicted.len(),
                                report.deleted.len()
                            );
                            Ok(())
                        }
                        // Gone already: nothing to drain.
                        Err(vkube_kube::Error::NotFound { .. }) => Ok(()),
                        // An unresponsive kubelet never confirms its pods
                        // stopped: their deletion is accepted, and the Node
                        // object's removal frees them.
                        Err(vkube_kube::Error::DrainTimedOut {
                            blocked,
                            terminating,
                            ..
                        }) if *kubelet_unresponsive && blocked.is_empty() => {
                            tracing::info!(
                                "{node}: the kubelet does not answer; {} pod(s) left terminating",
                                terminating.len()
                            );
                            Ok(())
                        }
                        Err(e) => Err(e.into()),
                    }
                })
                .await?;
                self.set_phase(node, NodePhase::Drained).await?;
            }
            Step::RemoveEtcdMember { node, reason } => {
                let etcd = self
                    .kube
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .etcd
                    .clone()
                    .ok_or_else(|| Error::Input {
                        what: format!("removing the etcd member of `{node}`"),
                        problem: "etcd was not read this pass".into(),
                    })?;
                if let Some(id) = etcd.ids.get(node).copied() {
                    let detail = serde_json::json!({ "reason": reason.to_string(), "member": id.to_string() });
                    self.with_intent(Some(node), IntentAction::RemoveEtcdMember, detail, async {
                        match etcd.client.remove_member(id).await {
                            // Removed since this pass read etcd: done.
                            Ok(_) | Err(vkube_kube::etcd::EtcdError::NoSuchMember { .. }) => Ok(()),
                            Err(e) => Err(Error::from(e)),
                        }
                    })
                    .await?;
                }
            }
            Step::DeleteNodeObject { node, reason } => {
                let api = self.api()?;
                let detail = serde_json::json!({ "reason": reason.to_string() });
                self.with_intent(Some(node), IntentAction::DeleteNodeObject, detail, async {
                    api.delete_node(node).await.map_err(Error::from)
                })
                .await?;
            }
            Step::UncordonNode { node } => {
                let api = self.api()?;
                self.with_intent(
                    Some(node),
                    IntentAction::UncordonNode,
                    serde_json::json!({}),
                    async { api.uncordon(node).await.map_err(Error::from) },
                )
                .await?;
                self.set_phase(node, NodePhase::Registered).await?;
            }
            _ => unreachable!("only Kubernetes steps come here"),
        }
        Ok(NodeStepDone::Finished(None))
    }

    /// The pass found no step to run: what the plan holds on is waited
    /// for (reported once per change), until the apply's timeout.
    pub(super) async fn hold(&self, plan: &Plan, state: &mut RunState) -> Result<Duration> {
        let holds: Vec<String> = plan.holds.iter().map(ToString::to_string).collect();
        if holds != state.holds_reported {
            for hold in &plan.holds {
                self.event(
                    EventLevel::Info,
                    EventKind::Holding,
                    &hold.to_string(),
                    hold.node.as_deref(),
                )
                .await;
                self.progress.warn(&format!("waiting: {hold}"));
            }
            state.holds_reported = holds.clone();
        }
        if self.waited(state) >= self.options.timeout {
            return Err(Error::StillHeld {
                cluster: self.name(),
                timeout: self.options.timeout,
                holds,
            });
        }
        Ok(self.options.kube_poll)
    }

    /// With `--wait ready`, once vCenter matches the spec: the add-ons are
    /// brought up to date, then every node must be registered and Ready.
    /// `Some(pause)` while some are not, until the apply's timeout.
    pub(super) async fn wait_ready(
        &self,
        observed: &ObservedCluster,
        state: &mut RunState,
    ) -> Result<Option<Duration>> {
        if self.options.wait != WaitFor::Ready {
            return Ok(None);
        }
        if !state.addons_synced {
            self.sync_addons(&mut state.report).await?;
            state.addons_synced = true;
        }
        let (never_registered, not_ready) = kube_view::not_ready(observed);
        for node in &observed.nodes {
            let waiting = state.address_wait.contains_key(&node.name);
            if node.kube.is_ready() {
                if state.ready_waits.remove(&node.name) {
                    self.progress
                        .finished(StepKind::WaitForReady, Some(&node.name), None);
                    self.event(
                        EventLevel::Info,
                        EventKind::NodeReady,
                        "Ready",
                        Some(&node.name),
                    )
                    .await;
                }
            } else if !waiting && state.ready_waits.insert(node.name.clone()) {
                self.progress
                    .started(StepKind::WaitForReady, Some(&node.name));
            }
        }
        if never_registered.is_empty() && not_ready.is_empty() {
            return Ok(None);
        }
        if self.waited(state) >= self.options.timeout {
            let api = self
                .kube
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unreachable
                .clone();
            let error = Error::NotReady {
                cluster: self.name(),
                timeout: self.options.timeout,
                never_registered,
                not_ready,
                api,
            };
            for node in std::mem::take(&mut state.ready_waits) {
                self.progress.finished(
                    StepKind::WaitForReady,
                    Some(&node),
                    Some("not Ready in time"),
                );
            }
            return Err(error);
        }
        Ok(Some(self.options.kube_poll))
    }

    /// How long this run has been going.
    fn waited(&self, state: &RunState) -> Duration {
        state
            .started
            .and_then(|s| self.ctx.clock.now().duration_since(s).ok())
            .unwrap_or_default()
    }
}

/// Reads a cluster's Nodes and etcd: for a pass of an apply, or a plan.
pub(crate) struct Reader<'a> {
    pub store: &'a dyn vkube_store::StateStore,
    pub spec: &'a vkube_core::cluster::ClusterSpec,
    pub pki: &'a vkube_core::cluster::ClusterPki,
    pub ctx: &'a crate::context::Context<'a>,
    pub timeout: Duration,
}

impl Reader<'_> {
    /// Read the Nodes and, when Kubernetes knows a control-plane node,
    /// etcd. Never fails: what could not be read is left out.
    pub(crate) async fn read(&self, observation: &Observation, records: &Records) -> KubeSide {
        let unreachable = |why: String| KubeSide {
            unreachable: Some(why),
            ..KubeSide::default()
        };
        let api =
            match crate::access::cluster_api(self.store, self.spec, self.ctx, self.timeout).await {
                Ok(api) => api,
                Err(e) => return unreachable(e.to_string()),
            };
        let nodes = match api.nodes().await {
            Ok(nodes) => nodes,
            Err(e) => return unreachable(e.to_string()),
        };
        let nodes: BTreeMap<_, _> = nodes.into_iter().map(|n| (n.name.clone(), n)).collect();
        let control_plane: Vec<&str> = observation
            .cluster
            .nodes
            .iter()
            .filter(|n| n.is_control_plane())
            .map(|n| n.name.as_str())
            .collect();
        let known = control_plane.iter().any(|n| {
            nodes.contains_key(*n)
                || records
                    .get(*n)
                    .is_some_and(|r| kube_view::seen_registered(r.node.phase))
        });
        let etcd = if known {
            self.read_etcd(api.as_ref(), observation, records, &control_plane)
                .await
        } else {
            None
        };
        KubeSide {
            api: Some(api),
            nodes,
            unreachable: None,
            etcd,
        }
    }

    async fn read_etcd(
        &self,
        api: &dyn ClusterApi,
        observation: &Observation,
        records: &Records,
        control_plane: &[&str],
    ) -> Option<EtcdSide> {
        let addresses = addresses(observation, records);
        let cp_addresses: Vec<IpAddr> = control_plane
            .iter()
            .filter_map(|n| addresses.get(*n).copied())
            .collect();
        let endpoints = kube_view::etcd_endpoints(api, &cp_addresses).await;
        let read = async {
            let access = crate::kube::etcd_access(self.pki, &endpoints, self.ctx, self.timeout)?;
            let client = self.ctx.cluster.etcd(&access)?;
            let health = client.health().await?;
            Ok::<_, Error>((client, health))
        };
        match read.await {
            Ok((client, health)) => {
                let (view, ids) = kube_view::etcd_view(&health, &addresses);
                Some(EtcdSide { client, view, ids })
            }
            Err(e) => {
                tracing::warn!("etcd of `{}` could not be read: {e}", self.spec.name());
                None
            }
        }
    }
}

/// Each node's address: its lease, else what its guest reports.
fn addresses(observation: &Observation, records: &Records) -> BTreeMap<String, IpAddr> {
    observation
        .cluster
        .nodes
        .iter()
        .filter_map(|n| {
            let recorded = records.get(&n.name).and_then(|r| r.node.ip);
            let reported = observation
                .vms
                .get(&n.name)
                .and_then(|(_, vm)| vm.ip.as_deref())
                .and_then(|ip| ip.parse().ok());
            Some((n.name.clone(), recorded.or(reported)?))
        })
        .collect()
}

/// Whether `step` acts on Kubernetes or etcd (not on vCenter).
pub(super) fn is_kube_step(step: &Step) -> bool {
    matches!(
        step,
        Step::DrainNode { .. }
            | Step::RemoveEtcdMember { .. }
            | Step::DeleteNodeObject { .. }
            | Step::UncordonNode { .. }
    )
}
