//! The planner with Kubernetes in view: drains, etcd membership, readiness
//! gates, the API server unreachable, health remediation and orphans. A
//! small simulation plays the runtime, the kubelets and etcd pass by pass.

use std::collections::BTreeSet;
use std::time::Duration;

use super::plan_tests::{converged, created_node, lines, node, spec_with};
use super::spec_tests::example;
use super::*;

const MINUTE: Duration = Duration::from_secs(60);

fn registered(ready: ConditionStatus, held_for: Duration) -> KubeNode {
    KubeNode::Registered(RegisteredNode {
        ready,
        ready_held_for: held_for,
        ..RegisteredNode::ready(held_for)
    })
}

/// A converged cluster Kubernetes knows: every node Ready for an hour, the
/// API server answering, etcd with every control-plane node healthy.
fn live(spec: &ClusterSpec) -> (ObservedCluster, Leases) {
    let (mut observed, leases) = converged(spec);
    for n in &mut observed.nodes {
        n.kube = registered(ConditionStatus::True, 60 * MINUTE);
        n.powered_on_for = Some(60 * MINUTE);
    }
    observed.api = ApiView::Reachable;
    let members: Vec<String> = observed
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .map(|n| n.name.clone())
        .collect();
    observed.etcd = Some(EtcdView {
        healthy: members.iter().cloned().collect(),
        members,
    });
    (observed, leases)
}

fn find<'a>(observed: &'a mut ObservedCluster, name: &str) -> &'a mut ObservedNode {
    observed
        .nodes
        .iter_mut()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn registered_mut<'a>(observed: &'a mut ObservedCluster, name: &str) -> &'a mut RegisteredNode {
    match &mut find(observed, name).kube {
        KubeNode::Registered(r) => r,
        other => panic!("{name} is not registered: {other:?}"),
    }
}

fn with_health(check: &str, edit: impl FnOnce(&mut RawClusterSpec)) -> ClusterSpec {
    let check: RawHealthCheck = serde_yaml::from_str(check).unwrap();
    spec_with(|r| {
        r.spec.control_plane.health_check = Some(check.clone());
        for pool in &mut r.spec.node_pools {
            pool.health_check = Some(check.clone());
        }
        edit(r);
    })
}

/// [`live`] with the default health check on every group.
fn live_with_default_health_checks() -> (ClusterSpec, ObservedCluster, Leases) {
    let spec = with_health("{}", |_| {});
    let (observed, leases) = live(&spec);
    (spec, observed, leases)
}

fn holds(plan: &Plan) -> Vec<String> {
    plan.holds.iter().map(ToString::to_string).collect()
}

/// Plays the runtime, the kubelets and etcd: steps change the observation
/// as their execution would, and [`Sim::tick`] moves joining nodes on.
/// Every step is checked against the safety rules as it runs.
struct Sim {
    observed: ObservedCluster,
    leases: Leases,
    next_address: u8,
    /// Nodes created by the plans.
    created: BTreeSet<String>,
    /// Every step run, as `lines` renders it.
    log: Vec<String>,
}

impl Sim {
    fn new((observed, leases): (ObservedCluster, Leases)) -> Sim {
        Sim {
            observed,
            leases,
            next_address: 150,
            created: BTreeSet::new(),
            log: Vec::new(),
        }
    }

    fn etcd(&mut self) -> &mut EtcdView {
        self.observed.etcd.as_mut().expect("etcd read")
    }

    fn apply(&mut self, plan: &Plan) {
        for step in &plan.steps {
            self.log.extend(lines(&Plan {
                steps: vec![step.clone()],
                holds: Vec::new(),
            }));
            self.run(step);
            self.check_invariants();
        }
    }

    fn run(&mut self, step: &Step) {
        match step.clone() {
            Step::CreateFolder { .. } => self.observed.folder_exists = true,
            Step::AllocateAddress { node, .. } => {
                let address = format!("10.20.0.{}", self.next_address).parse().unwrap();
                self.next_address += 1;
                assert!(self.leases.insert(node, address).is_none());
            }
            Step::CreateNode { .. } => {
                let new = created_node(step);
                assert!(
                    self.observed.node(&new.name).is_none(),
                    "duplicate {}",
                    new.name
                );
                self.created.insert(new.name.clone());
                self.observed.nodes.push(new);
            }
            Step::Reconfigure {
                node,
                cpu,
                memory_mib,
            } => {
                let n = find(&mut self.observed, &node);
                (n.cpu, n.memory_mib) = (cpu, memory_mib);
            }
            Step::PowerOn { node } => {
                let n = find(&mut self.observed, &node);
                n.power_state = PowerState::PoweredOn;
                n.powered_on_for = Some(Duration::ZERO);
            }
            Step::DrainNode { node, reason, .. } => {
                if let DeleteReason::Replaced { by } = &reason {
                    let by = self.observed.node(by).unwrap();
                    assert!(
                        by.kube.is_ready(),
                        "drained {node} before {} is Ready",
                        by.name
                    );
                }
                let r = registered_mut(&mut self.observed, &node);
                (r.cordoned, r.drained) = (true, true);
            }
            Step::RemoveEtcdMember { node, .. } => {
                let etcd = self.etcd();
                assert!(etcd.is_member(&node), "{node} is no member");
                etcd.members.retain(|m| *m != node);
                etcd.healthy.remove(&node);
            }
            Step::DeleteNodeObject { node, .. } => {
                if let Some(n) = self.observed.nodes.iter_mut().find(|n| n.name == node) {
                    assert!(matches!(n.kube, KubeNode::Registered(_)));
                    n.kube = KubeNode::Deregistered;
                } else {
                    self.observed.orphan_node_objects.retain(|o| *o != node);
                }
            }
            Step::DeleteNode { node, .. } => {
                let n = self.observed.node(&node).unwrap().clone();
                if n.kube.is_known() {
                    assert_eq!(n.kube, KubeNode::Deregistered, "{node}'s Node object first");
                }
                if let Some(etcd) = &self.observed.etcd {
                    assert!(!etcd.is_member(&node), "{node}'s etcd member first");
                }
                self.observed.nodes.retain(|n| n.name != node);
            }
            Step::ReleaseAddress { node } => {
                assert!(self.leases.remove(&node).is_some(), "released {node} twice");
            }
            Step::ForgetNode { node } => {
                assert!(self.observed.recorded.remove(&node), "forgot {node} twice");
                self.leases.remove(&node);
            }
            Step::UncordonNode { node } => {
                let r = registered_mut(&mut self.observed, &node);
                (r.cordoned, r.drained) = (false, false);
            }
        }
    }

    /// Time passes: a powered-on node registers NotReady (a control-plane
    /// node's etcd member added, not started), then, a tick later, becomes
    /// Ready (its member healthy).
    fn tick(&mut self) {
        let names: Vec<String> = self.observed.nodes.iter().map(|n| n.name.clone()).collect();
        for name in names {
            let n = find(&mut self.observed, &name);
            if n.power_state != PowerState::PoweredOn {
                continue;
            }
            n.powered_on_for = n.powered_on_for.map(|d| d + MINUTE);
            let control_plane = n.is_control_plane();
            match &n.kube {
                KubeNode::NeverRegistered => {
                    n.kube = registered(ConditionStatus::False, Duration::ZERO);
                    if control_plane {
                        self.etcd().members.push(name);
                    }
                }
                KubeNode::Registered(r) if r.ready == ConditionStatus::False => {
                    n.kube = registered(ConditionStatus::True, Duration::ZERO);
                    if control_plane {
                        self.etcd().healthy.insert(name);
                    }
                }
                _ => {}
            }
        }
    }

    /// etcd keeps a healthy quorum; vkube takes at most one control-plane
    /// node out at a time: joining (created, not yet Ready and a healthy
    /// member), cordoned, removed from etcd, or deregistered.
    fn check_invariants(&self) {
        let Some(etcd) = &self.observed.etcd else {
            return;
        };
        let healthy = etcd
            .members
            .iter()
            .filter(|m| etcd.healthy.contains(*m))
            .count();
        assert!(
            healthy >= quorum_of(etcd.members.len()),
            "etcd lost quorum: {etcd:?}\n{}",
            self.log.join("\n")
        );
        let out: Vec<&str> = self
            .observed
            .nodes
            .iter()
            .filter(|n| n.is_control_plane())
            .filter(|n| {
                let joining = self.created.contains(&n.name)
                    && !(n.kube.is_ready() && etcd.is_healthy_member(&n.name));
                let cordoned = n.kube.registered().is_some_and(|r| r.cordoned);
                let left = n.kube.is_known() && !etcd.is_member(&n.name);
                joining || cordoned || left || n.kube == KubeNode::Deregistered
            })
            .map(|n| n.name.as_str())
            .collect();
        assert!(
            out.len() <= 1,
            "control-plane nodes out at once: {out:?}\n{}",
            self.log.join("\n")
        );
    }

    /// As [`converge`](Self::converge), but every pass's run is killed
    /// after its first `1 + pass % len` steps: the next pass must pick up
    /// where it stopped.
    fn converge_killed(&mut self, spec: &ClusterSpec) {
        for pass in 0..200 {
            let mut plan = plan(spec, &self.observed, &self.leases);
            if plan.is_converged() {
                return;
            }
            if !plan.steps.is_empty() {
                plan.steps.truncate(1 + pass % plan.steps.len());
            }
            self.apply(&plan);
            // The kubelets only move on every other pass: some passes see
            // the same world as the killed one.
            if pass % 2 == 1 {
                self.tick();
            }
        }
        panic!("did not converge:\n{}", self.log.join("\n"));
    }

    /// Plans and applies until converged; returns every pass's holds.
    fn converge(&mut self, spec: &ClusterSpec) -> Vec<Vec<String>> {
        let mut all_holds = Vec::new();
        for _ in 0..100 {
            let plan = plan(spec, &self.observed, &self.leases);
            if plan.is_converged() {
                return all_holds;
            }
            all_holds.push(holds(&plan));
            self.apply(&plan);
            self.tick();
        }
        panic!("did not converge:\n{}", self.log.join("\n"));
    }
}

#[test]
fn a_control_plane_cpu_change_replaces_one_node_at_a_time_keeping_etcd_quorum() {
    let base = example();
    let mut sim = Sim::new(live(&base));
    let bigger = spec_with(|r| r.spec.control_plane.cpu = 4);
    let holds = sim.converge(&bigger);

    let mut control_plane: Vec<&str> = sim
        .observed
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .map(|n| n.name.as_str())
        .collect();
    control_plane.sort();
    assert_eq!(control_plane, ["demo-cp-3", "demo-cp-4", "demo-cp-5"]);
    assert!(sim
        .observed
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .all(|n| n.cpu == 4 && n.kube.is_ready()));
    let etcd = sim.observed.etcd.clone().unwrap();
    assert_eq!(etcd.members, ["demo-cp-3", "demo-cp-4", "demo-cp-5"]);
    assert_eq!(etcd.healthy.len(), 3);
    // Workers are untouched: their spec did not change.
    assert_eq!(sim.observed.nodes.len(), 8);

    // Each old node goes in order, only after its replacement is Ready.
    let old_removals: Vec<&String> = sim
        .log
        .iter()
        .filter(|l| l.contains("demo-cp-0") || l.contains("demo-cp-3"))
        .collect();
    assert_eq!(
        old_removals,
        [
            "allocate demo-cp-3 from nodes",
            "create demo-cp-3 in az1 as ControlPlane",
            "power-on demo-cp-3",
            "drain demo-cp-0",
            "remove-member demo-cp-0",
            "delete-node-object demo-cp-0",
            "delete demo-cp-0 (Replaced { by: \"demo-cp-3\" })",
            "release demo-cp-0",
        ]
    );
    // The plan said what it waited for: each replacement's readiness.
    for replacement in ["demo-cp-3", "demo-cp-4", "demo-cp-5"] {
        let waited = format!("waiting for `{replacement}` to be Ready");
        assert!(
            holds.iter().flatten().any(|h| h.ends_with(&waited)),
            "{holds:?}"
        );
    }
    // Creations interleave with removals: never two new nodes at once.
    let at = |prefix: &str| -> Vec<usize> {
        sim.log
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(prefix))
            .map(|(i, _)| i)
            .collect()
    };
    let (creations, removals) = (at("create demo-cp"), at("delete demo-cp"));
    assert_eq!(creations.len(), 3);
    assert_eq!(removals.len(), 3);
    for i in 0..3 {
        assert!(creations[i] < removals[i]);
        if i + 1 < 3 {
            assert!(removals[i] < creations[i + 1], "{}", sim.log.join("\n"));
        }
    }
}

#[test]
fn a_rolling_change_killed_at_every_step_still_converges_safely() {
    let mut sim = Sim::new(live(&example()));
    let upgraded = spec_with(|r| r.spec.kubernetes_version = "v1.30.3".into());
    sim.converge_killed(&upgraded);
    let hash = upgraded.group("cp").unwrap().spec_hash();
    let control_plane: Vec<&ObservedNode> = sim
        .observed
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .collect();
    assert_eq!(control_plane.len(), 3);
    assert!(control_plane.iter().all(|n| n.spec_hash == hash));
    assert_eq!(sim.observed.nodes.len(), 8);
    assert_eq!(sim.leases.len(), 8);
    assert!(sim.observed.nodes.iter().all(|n| n.kube.is_ready()));
    assert_eq!(sim.observed.etcd.as_ref().unwrap().members.len(), 3);
    // Nothing was drained twice: a done step is never planned again.
    let drains: Vec<&String> = sim.log.iter().filter(|l| l.starts_with("drain")).collect();
    let unique: BTreeSet<&&String> = drains.iter().collect();
    assert_eq!(drains.len(), unique.len(), "{drains:?}");
}

#[test]
fn a_killed_removal_resumes_at_the_first_step_not_done() {
    let spec = spec_with(|r| r.spec.control_plane.cpu = 4);
    let (mut observed, leases) = live(&example());
    // The surge node is Ready and joined; the old node was drained and its
    // member removed when the run died.
    let mut surge = node(&spec, "cp", 3);
    surge.kube = registered(ConditionStatus::True, MINUTE);
    observed.nodes.push(surge);
    let etcd = observed.etcd.as_mut().unwrap();
    etcd.members = vec!["demo-cp-1".into(), "demo-cp-2".into(), "demo-cp-3".into()];
    etcd.healthy = etcd.members.iter().cloned().collect();
    let r = registered_mut(&mut observed, "demo-cp-0");
    (r.cordoned, r.drained) = (true, true);
    let mut leases = leases;
    leases.insert("demo-cp-3".into(), "10.20.0.99".parse().unwrap());
    assert_eq!(
        lines(&plan(&spec, &observed, &leases)),
        [
            "delete-node-object demo-cp-0",
            "delete demo-cp-0 (Replaced { by: \"demo-cp-3\" })",
            "release demo-cp-0",
        ]
    );
    // Killed again after the Node object went: only the VM is left to go.
    find(&mut observed, "demo-cp-0").kube = KubeNode::Deregistered;
    assert_eq!(
        lines(&plan(&spec, &observed, &leases)),
        [
            "delete demo-cp-0 (Replaced { by: \"demo-cp-3\" })",
            "release demo-cp-0",
        ]
    );
}

#[test]
fn worker_scale_down_drains_before_deleting() {
    let (observed, leases) = live(&example());
    let smaller = spec_with(|r| r.spec.node_pools[0].replicas = 1);
    let plan = plan(&smaller, &observed, &leases);
    assert_eq!(
        lines(&plan),
        [
            "drain demo-workers-2",
            "delete-node-object demo-workers-2",
            "delete demo-workers-2 (ScaleDown)",
            "release demo-workers-2",
            "drain demo-workers-1",
            "delete-node-object demo-workers-1",
            "delete demo-workers-1 (ScaleDown)",
            "release demo-workers-1",
        ]
    );
    assert!(plan.holds.is_empty());
    let mut sim = Sim::new((observed, leases));
    sim.converge(&smaller);
    assert_eq!(sim.observed.nodes.len(), 6);
}

#[test]
fn nodes_kubernetes_never_saw_go_as_before_without_drain() {
    let (mut observed, leases) = converged(&example());
    // Even with the API server answering: nothing to drain.
    observed.api = ApiView::Reachable;
    let smaller = spec_with(|r| r.spec.node_pools[0].replicas = 1);
    let plan = plan(&smaller, &observed, &leases);
    assert_eq!(
        lines(&plan),
        [
            "delete demo-workers-2 (ScaleDown)",
            "release demo-workers-2",
            "delete demo-workers-1 (ScaleDown)",
            "release demo-workers-1",
        ]
    );
    assert!(plan.holds.is_empty());
    // A rolling change does not wait for readiness nobody can see.
    let upgraded = spec_with(|r| r.spec.kubernetes_version = "v1.30.3".into());
    observed.nodes.push(node(&upgraded, "cp", 3));
    let plan = super::plan(&upgraded, &observed, &leases);
    assert_eq!(
        lines(&plan),
        [
            "delete demo-cp-0 (Replaced { by: \"demo-cp-3\" })",
            "release demo-cp-0",
        ]
    );
}

#[test]
fn with_the_api_unreachable_creations_proceed_and_removals_of_known_nodes_hold() {
    let (mut observed, mut leases) = live(&example());
    observed.api = ApiView::Unreachable;
    observed.etcd = None;
    for n in &mut observed.nodes {
        n.kube = KubeNode::Unreachable {
            last_seen_ready: true,
        };
    }
    // A worker scale-up is created.
    let bigger = spec_with(|r| r.spec.node_pools[0].replicas = 4);
    let plan = plan(&bigger, &observed, &leases);
    assert_eq!(
        lines(&plan),
        [
            "allocate demo-workers-3 from nodes",
            "create demo-workers-3 in az2 as Worker",
            "power-on demo-workers-3",
        ]
    );
    // A scale-down holds, keeping the lease, and says why.
    let smaller = spec_with(|r| r.spec.node_pools[0].replicas = 2);
    let plan = super::plan(&smaller, &observed, &leases);
    assert!(plan.steps.is_empty(), "{:?}", lines(&plan));
    assert_eq!(
        holds(&plan),
        ["`demo-workers-2`: the API server is unreachable: a node Kubernetes knows is not removed, nor the control plane changed, without it"]
    );
    // A control plane Kubernetes knows is not changed blind.
    let upgraded = spec_with(|r| r.spec.control_plane.cpu = 4);
    let plan = super::plan(&upgraded, &observed, &leases);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.holds[0].node.as_deref(), Some("demo-cp-3"));
    assert_eq!(plan.holds[0].reason, HoldReason::ApiUnreachable);
    // Neither is a node recreated in it.
    observed.nodes.retain(|n| n.name != "demo-cp-2");
    leases.remove("demo-cp-2");
    let plan = super::plan(&example(), &observed, &leases);
    assert!(plan.steps.is_empty(), "{:?}", lines(&plan));
    assert_eq!(plan.holds[0].reason, HoldReason::ApiUnreachable);
}

#[test]
fn a_worker_replacement_must_be_ready_before_its_old_node_drains() {
    let upgraded = spec_with(|r| r.spec.kubernetes_version = "v1.30.3".into());
    let (mut observed, mut leases) = live(&example());
    // The control plane already rolled.
    observed.nodes.retain(|n| !n.is_control_plane());
    for index in 3..6 {
        let mut n = node(&upgraded, "cp", index);
        n.kube = registered(ConditionStatus::True, MINUTE);
        observed.nodes.push(n);
    }
    let etcd = observed.etcd.as_mut().unwrap();
    etcd.members = (3..6).map(|i| format!("demo-cp-{i}")).collect();
    etcd.healthy = etcd.members.iter().cloned().collect();
    leases.retain(|n, _| !n.starts_with("demo-cp"));
    let mut surge = node(&upgraded, "workers", 3);
    surge.kube = registered(ConditionStatus::False, MINUTE);
    observed.nodes.push(surge);
    leases.insert("demo-workers-3".into(), "10.20.0.99".parse().unwrap());
    for n in (3..6).map(|i| format!("demo-cp-{i}")) {
        leases.insert(n, "10.20.0.98".parse().unwrap());
    }
    let plan = plan(&upgraded, &observed, &leases);
    assert!(plan.steps.is_empty(), "{:?}", lines(&plan));
    assert_eq!(
        holds(&plan),
        ["`demo-workers-0`: waiting for `demo-workers-3` to be Ready"]
    );
    registered_mut(&mut observed, "demo-workers-3").ready = ConditionStatus::True;
    assert_eq!(
        lines(&super::plan(&upgraded, &observed, &leases)),
        [
            "drain demo-workers-0",
            "delete-node-object demo-workers-0",
            "delete demo-workers-0 (Replaced { by: \"demo-workers-3\" })",
            "release demo-workers-0",
        ]
    );
}

#[test]
fn unhealthy_workers_are_drained_without_waiting_for_their_pods_and_replaced() {
    let (spec, mut observed, leases) = live_with_default_health_checks();
    find(&mut observed, "demo-workers-1").kube = registered(ConditionStatus::Unknown, 6 * MINUTE);
    // NotReady, but not for long enough.
    find(&mut observed, "demo-infra-0").kube = registered(ConditionStatus::False, 4 * MINUTE);
    let plan = plan(&spec, &observed, &leases);
    assert_eq!(
        lines(&plan),
        [
            "drain demo-workers-1 (kubelet unresponsive)",
            "delete-node-object demo-workers-1",
            "delete demo-workers-1 (Unhealthy { why: \"Ready=Unknown for 6m, longer than 5m\" })",
            "release demo-workers-1",
            "allocate demo-workers-3 from nodes",
            "create demo-workers-3 in az2 as Worker",
            "power-on demo-workers-3",
        ]
    );
    // A pass later its VM is still shutting down, its Node object gone, and
    // the replacement not Ready yet: the VM's removal goes on, held by
    // nothing (a worker without its Node object serves no pods).
    let mut later = observed.clone();
    find(&mut later, "demo-workers-1").kube = KubeNode::Deregistered;
    let mut replacement = find(&mut later, "demo-workers-2").clone();
    replacement.name = "demo-workers-3".into();
    replacement.index = 3;
    replacement.kube = KubeNode::NeverRegistered;
    replacement.powered_on_for = Some(Duration::from_secs(30));
    later.nodes.push(replacement);
    // The node that takes its place is not Ready (not for long enough to be unhealthy).
    find(&mut later, "demo-workers-2").kube = registered(ConditionStatus::False, MINUTE);
    let mut later_leases = leases.clone();
    later_leases.insert("demo-workers-3".into(), "10.20.0.99".parse().unwrap());
    let next = super::plan(&spec, &later, &later_leases);
    assert!(next.holds.is_empty(), "{:?}", holds(&next));
    assert!(
        lines(&next)
            .iter()
            .any(|l| l.starts_with("delete demo-workers-1")),
        "{:?}",
        lines(&next)
    );
    // Without a health check nothing is replaced.
    assert!(super::plan(&example(), &observed, &leases).is_converged());
    // A condition other than Ready, as the spec names it.
    let disk = with_health(
        "{unhealthyConditions: [{type: DiskPressure, status: 'True', timeout: 1m}]}",
        |_| {},
    );
    let (mut observed, leases) = live(&disk);
    registered_mut(&mut observed, "demo-infra-1")
        .other_conditions
        .push(ObservedCondition {
            kind: "DiskPressure".into(),
            status: ConditionStatus::True,
            held_for: 2 * MINUTE,
        });
    let plan = super::plan(&disk, &observed, &leases);
    assert_eq!(
        lines(&plan)[..3],
        [
            "drain demo-infra-1",
            "delete-node-object demo-infra-1",
            "delete demo-infra-1 (Unhealthy { why: \"DiskPressure=True for 2m, longer than 1m\" })",
        ]
    );
}

#[test]
fn nodes_that_never_register_are_replaced_after_the_startup_timeout() {
    let (spec, mut observed, leases) = live_with_default_health_checks();
    let n = find(&mut observed, "demo-infra-1");
    n.kube = KubeNode::NeverRegistered;
    n.powered_on_for = Some(9 * MINUTE);
    assert!(plan(&spec, &observed, &leases).is_converged());
    find(&mut observed, "demo-infra-1").powered_on_for = Some(11 * MINUTE);
    let plan = plan(&spec, &observed, &leases);
    assert_eq!(
        lines(&plan),
        [
            "delete demo-infra-1 (Unhealthy { why: \"not registered 11m after power-on, longer than nodeStartupTimeout 10m\" })",
            "release demo-infra-1",
            "allocate demo-infra-2 from nodes",
            "create demo-infra-2 in az2 as Worker",
            "power-on demo-infra-2",
        ]
    );
    // With the API server unreachable nobody can tell: nothing happens.
    observed.api = ApiView::Unreachable;
    for n in &mut observed.nodes {
        if n.kube.is_known() {
            n.kube = KubeNode::Unreachable {
                last_seen_ready: true,
            };
        }
    }
    observed.etcd = None;
    assert!(super::plan(&spec, &observed, &leases).is_converged());
    // `nodeStartupTimeout: 0` turns the check off.
    let off = with_health("{nodeStartupTimeout: 0}", |_| {});
    observed.api = ApiView::Reachable;
    let (mut live_observed, leases) = live(&off);
    let n = find(&mut live_observed, "demo-infra-1");
    n.kube = KubeNode::NeverRegistered;
    n.powered_on_for = Some(600 * MINUTE);
    assert!(super::plan(&off, &live_observed, &leases).is_converged());
}

#[test]
fn max_unhealthy_stops_remediation_and_says_so() {
    // 40% of 3 workers is 1.
    let spec = with_health("{maxUnhealthy: 40%}", |_| {});
    let (mut observed, leases) = live(&spec);
    find(&mut observed, "demo-workers-0").kube = registered(ConditionStatus::Unknown, 30 * MINUTE);
    let plan_one = plan(&spec, &observed, &leases);
    assert!(lines(&plan_one).contains(&"delete-node-object demo-workers-0".to_string()));
    find(&mut observed, "demo-workers-2").kube = registered(ConditionStatus::False, 30 * MINUTE);
    let plan = plan(&spec, &observed, &leases);
    assert!(plan.steps.is_empty(), "{:?}", lines(&plan));
    assert_eq!(
        holds(&plan),
        ["group `workers`: 2 of 3 nodes are unhealthy (demo-workers-0, demo-workers-2), more than maxUnhealthy 40% allows (1): none is replaced"]
    );
    // The other pool is judged on its own.
    find(&mut observed, "demo-infra-0").kube = registered(ConditionStatus::False, 30 * MINUTE);
    let plan = super::plan(&spec, &observed, &leases);
    assert_eq!(plan.holds.len(), 2, "{:?}", holds(&plan));
    assert!(matches!(
        plan.holds[1].reason,
        HoldReason::MaxUnhealthy {
            allowed: 0,
            total: 2,
            ..
        }
    ));
}

#[test]
fn an_unhealthy_control_plane_node_is_replaced_alone_member_first() {
    let spec = with_health("{}", |_| {});
    let mut sim = Sim::new(live(&spec));
    find(&mut sim.observed, "demo-cp-1").kube = registered(ConditionStatus::Unknown, 10 * MINUTE);
    sim.etcd().healthy.remove("demo-cp-1");
    find(&mut sim.observed, "demo-cp-2").kube = registered(ConditionStatus::Unknown, 10 * MINUTE);
    let plan = plan(&spec, &sim.observed, &sim.leases);
    assert_eq!(
        lines(&plan),
        [
            "drain demo-cp-1 (kubelet unresponsive)",
            "remove-member demo-cp-1",
            "delete-node-object demo-cp-1",
            "delete demo-cp-1 (Unhealthy { why: \"Ready=Unknown for 10m, longer than 5m\" })",
            "release demo-cp-1",
        ]
    );
    assert_eq!(
        holds(&plan),
        ["`demo-cp-2`: waiting for the removal of `demo-cp-1` to finish (one control-plane node at a time)"]
    );
    sim.apply(&plan);
    // Member gone: the replacement joins, then the second unhealthy node goes.
    let next = super::plan(&spec, &sim.observed, &sim.leases);
    assert_eq!(
        lines(&next),
        [
            "allocate demo-cp-3 from nodes",
            "create demo-cp-3 in az1 as ControlPlane",
            "power-on demo-cp-3",
        ]
    );
    assert_eq!(
        holds(&next),
        ["`demo-cp-2`: the control plane has 2 of its 3 nodes: it is completed first"]
    );
    sim.apply(&next);
    // demo-cp-2 recovers meanwhile; the simulation converges.
    find(&mut sim.observed, "demo-cp-2").kube = registered(ConditionStatus::True, MINUTE);
    sim.tick();
    sim.converge(&spec);
    let names: BTreeSet<&str> = sim
        .observed
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["demo-cp-0", "demo-cp-2", "demo-cp-3"])
    );
}

#[test]
fn etcd_quorum_refusals_name_the_node() {
    // Remediating demo-cp-0 while demo-cp-1's member is down too.
    let (spec, mut observed, leases) = live_with_default_health_checks();
    find(&mut observed, "demo-cp-0").kube = registered(ConditionStatus::Unknown, 10 * MINUTE);
    let etcd = observed.etcd.as_mut().unwrap();
    etcd.healthy.remove("demo-cp-1");
    let plan = plan(&spec, &observed, &leases);
    assert!(plan.steps.is_empty(), "{:?}", lines(&plan));
    assert_eq!(
        holds(&plan),
        ["`demo-cp-0`: etcd quorum: removing etcd member `demo-cp-0` would leave 1 healthy of 2, below their quorum of 2 (not healthy: demo-cp-1)"]
    );

    // A rolling change whose surge node joined, with two old members down.
    let upgraded = spec_with(|r| r.spec.control_plane.cpu = 4);
    let (mut observed, mut leases) = live(&example());
    let mut surge = node(&upgraded, "cp", 3);
    surge.kube = registered(ConditionStatus::True, MINUTE);
    observed.nodes.push(surge);
    leases.insert("demo-cp-3".into(), "10.20.0.99".parse().unwrap());
    let etcd = observed.etcd.as_mut().unwrap();
    etcd.members.push("demo-cp-3".into());
    etcd.healthy = BTreeSet::from(["demo-cp-0".into(), "demo-cp-3".into()]);
    let plan = super::plan(&upgraded, &observed, &leases);
    assert!(plan.steps.is_empty(), "{:?}", lines(&plan));
    assert_eq!(
        holds(&plan),
        ["`demo-cp-0`: etcd quorum: only 2 of the 4 etcd members are healthy, below the quorum of 3: etcd cannot remove `demo-cp-0` (not healthy: demo-cp-1, demo-cp-2)"]
    );

    // A surge is not started while a member is down.
    let (mut observed, leases) = live(&example());
    observed.etcd.as_mut().unwrap().healthy.remove("demo-cp-2");
    let plan = super::plan(&upgraded, &observed, &leases);
    assert!(plan.steps.is_empty());
    assert_eq!(
        holds(&plan),
        ["`demo-cp-3`: etcd quorum: adding `demo-cp-3` would make 4 etcd members with 2 healthy, below the quorum of 3 (not healthy: demo-cp-2): heal or replace the unhealthy members first"]
    );

    // The last member never goes: a one-node control plane whose surge
    // never joined etcd.
    let single = spec_with(|r| {
        r.spec.control_plane.replicas = 1;
        r.spec.control_plane.cpu = 4;
    });
    let (mut observed, mut leases) = live(&spec_with(|r| r.spec.control_plane.replicas = 1));
    let mut surge = node(&single, "cp", 1);
    surge.kube = registered(ConditionStatus::True, MINUTE);
    observed.nodes.push(surge);
    leases.insert("demo-cp-1".into(), "10.20.0.99".parse().unwrap());
    let plan = super::plan(&single, &observed, &leases);
    assert_eq!(
        holds(&plan),
        ["`demo-cp-0`: waiting for `demo-cp-1` to join etcd as a healthy member"]
    );
    let mut etcd_view = observed.etcd.clone().unwrap();
    etcd_view.members.push("demo-cp-1".into());
    etcd_view.healthy.insert("demo-cp-1".into());
    observed.etcd = Some(etcd_view);
    assert_eq!(
        lines(&super::plan(&single, &observed, &leases))[..2],
        ["drain demo-cp-0", "remove-member demo-cp-0"]
    );
    assert!(EtcdView {
        members: vec!["demo-cp-0".into()],
        healthy: BTreeSet::from(["demo-cp-0".into()]),
    }
    .check_removal("demo-cp-0")
    .unwrap_err()
    .contains("`demo-cp-0` is the last etcd member"));
}

#[test]
fn a_single_node_control_plane_rolls_through_a_two_member_etcd() {
    let one = spec_with(|r| r.spec.control_plane.replicas = 1);
    let mut sim = Sim::new(live(&one));
    let bigger = spec_with(|r| {
        r.spec.control_plane.replicas = 1;
        r.spec.control_plane.cpu = 4;
    });
    sim.converge(&bigger);
    assert_eq!(sim.observed.etcd.unwrap().members, ["demo-cp-1"]);
}

#[test]
fn orphans_are_cleaned_up_and_vms_deleted_outside_vkube_recreated() {
    let (mut observed, mut leases) = live(&example());
    // demo-cp-2 and demo-workers-1 were deleted in vCenter.
    observed
        .nodes
        .retain(|n| n.name != "demo-cp-2" && n.name != "demo-workers-1");
    observed.orphan_node_objects = vec!["demo-cp-2".into(), "demo-workers-1".into()];
    observed.etcd.as_mut().unwrap().healthy.remove("demo-cp-2");
    leases.remove("demo-cp-2");
    leases.remove("demo-workers-1");
    let mut sim = Sim::new((observed, leases));
    let first = plan(&example(), &sim.observed, &sim.leases);
    assert_eq!(
        lines(&first),
        [
            "delete-node-object demo-cp-2",
            "delete-node-object demo-workers-1",
            "remove-member demo-cp-2",
        ]
    );
    // The control-plane node is recreated once the dead member is gone.
    // (Its name stays taken while its Node object and member are there.)
    assert_eq!(
        holds(&first),
        ["`demo-cp-3`: etcd quorum: adding `demo-cp-3` would make 4 etcd members with 2 healthy, below the quorum of 3 (not healthy: demo-cp-2): heal or replace the unhealthy members first"]
    );
    sim.apply(&first);
    let second = plan(&example(), &sim.observed, &sim.leases);
    assert_eq!(
        lines(&second),
        [
            "allocate demo-cp-2 from nodes",
            "create demo-cp-2 in az1 as ControlPlane",
            "power-on demo-cp-2",
        ]
    );
    sim.apply(&second);
    sim.tick();
    sim.converge(&example());
    assert_eq!(sim.observed.nodes.len(), 8);
    assert!(sim.observed.node("demo-cp-2").is_some());
    assert!(sim.observed.node("demo-workers-2").is_some());
    // A healthy member without a VM is not vkube's to judge.
    let (mut observed, leases) = live(&example());
    let etcd = observed.etcd.as_mut().unwrap();
    etcd.members.push("elsewhere".into());
    etcd.healthy.insert("elsewhere".into());
    assert!(plan(&example(), &observed, &leases).is_converged());
}

#[test]
fn a_node_kept_after_vkube_drained_it_is_uncordoned() {
    let (mut observed, leases) = live(&example());
    let r = registered_mut(&mut observed, "demo-workers-0");
    (r.cordoned, r.drained) = (true, true);
    assert_eq!(
        lines(&plan(&example(), &observed, &leases)),
        ["uncordon demo-workers-0"]
    );
    // Cordoned by someone else: left alone.
    registered_mut(&mut observed, "demo-workers-0").drained = false;
    assert!(plan(&example(), &observed, &leases).is_converged());
}

#[test]
fn a_node_whose_node_object_vanished_is_replaced() {
    let (mut observed, leases) = live(&example());
    find(&mut observed, "demo-infra-0").kube = KubeNode::Deregistered;
    let mut sim = Sim::new((observed, leases));
    sim.converge(&example());
    assert!(sim.observed.node("demo-infra-0").is_none());
    assert!(sim.observed.node("demo-infra-2").is_some());
    assert!(sim
        .log
        .contains(&"delete demo-infra-0 (Replaced { by: \"demo-infra-2\" })".into()));
    assert!(!sim.log.iter().any(|l| l.starts_with("drain demo-infra-0")));
}

#[test]
fn a_control_plane_known_to_kubernetes_gets_one_joining_node_at_a_time() {
    let (mut observed, mut leases) = live(&example());
    observed
        .nodes
        .retain(|n| n.name != "demo-cp-1" && n.name != "demo-cp-2");
    let etcd = observed.etcd.as_mut().unwrap();
    etcd.members = vec!["demo-cp-0".into()];
    etcd.healthy = BTreeSet::from(["demo-cp-0".into()]);
    leases.remove("demo-cp-1");
    leases.remove("demo-cp-2");
    // The init node is not Ready (no CNI yet): joins do not wait for that.
    registered_mut(&mut observed, "demo-cp-0").ready = ConditionStatus::False;
    let mut sim = Sim::new((observed, leases));
    let first = plan(&example(), &sim.observed, &sim.leases);
    assert_eq!(
        lines(&first),
        [
            "allocate demo-cp-1 from nodes",
            "create demo-cp-1 in az1 as ControlPlane",
            "power-on demo-cp-1",
        ]
    );
    sim.apply(&first);
    let waiting = plan(&example(), &sim.observed, &sim.leases);
    assert!(waiting.steps.is_empty());
    assert_eq!(
        holds(&waiting),
        ["`demo-cp-2`: waiting for `demo-cp-1` to join etcd as a healthy member"]
    );
    // Registered, its member added but not started: still waiting.
    sim.tick();
    let waiting = plan(&example(), &sim.observed, &sim.leases);
    assert_eq!(holds(&waiting).len(), 1);
    sim.tick();
    sim.converge(&example());
    assert_eq!(
        sim.observed.etcd.unwrap().members,
        ["demo-cp-0", "demo-cp-1", "demo-cp-2"]
    );
}

#[test]
fn delete_order_takes_workers_first_and_the_oldest_control_plane_node_last() {
    let (mut observed, _) = converged(&example());
    observed.nodes.push(ObservedNode {
        pool: "gone".into(),
        ..node(&example(), "workers", 0)
    });
    observed.nodes.last_mut().unwrap().name = "demo-gone-0".into();
    assert_eq!(
        delete_order(&observed.nodes),
        vec![
            vec![
                "demo-gone-0",
                "demo-infra-0",
                "demo-infra-1",
                "demo-workers-0",
                "demo-workers-1",
                "demo-workers-2",
            ],
            vec!["demo-cp-2"],
            vec!["demo-cp-1"],
            vec!["demo-cp-0"],
        ]
    );
    assert!(delete_order(&[]).is_empty());
}

#[test]
fn plans_with_kubernetes_steps_and_holds_serialize() {
    let (observed, leases) = live(&example());
    let smaller = spec_with(|r| r.spec.node_pools[1].replicas = 1);
    let mut planned = plan(&smaller, &observed, &leases);
    planned.holds.push(Hold {
        group: "cp".into(),
        node: Some("demo-cp-0".into()),
        reason: HoldReason::WaitingForReady {
            node: "demo-cp-3".into(),
        },
    });
    let json = serde_json::to_value(&planned).unwrap();
    assert_eq!(
        json["steps"][0],
        serde_json::json!({
            "step": "drainNode",
            "node": "demo-infra-1",
            "reason": { "kind": "scaleDown" },
            "kubeletUnresponsive": false,
        })
    );
    assert_eq!(json["steps"][1]["step"], "deleteNodeObject");
    assert_eq!(
        json["holds"][0],
        serde_json::json!({
            "group": "cp",
            "node": "demo-cp-0",
            "reason": { "kind": "waitingForReady", "node": "demo-cp-3" },
        })
    );
    let back: Plan = serde_json::from_value(json).unwrap();
    assert_eq!(back, planned);
    let observed_json = serde_json::to_string(&observed).unwrap();
    let read: ObservedCluster = serde_json::from_str(&observed_json).unwrap();
    assert_eq!(read, observed);
    // An observation written before Kubernetes was in view still reads.
    let old: ObservedNode = serde_json::from_str(
        r#"{"name":"demo-cp-0","pool":"cp","domain":"az1","specHash":"x","powerState":"poweredOn","cpu":2,"memoryMiB":4096,"index":0}"#,
    )
    .unwrap();
    assert_eq!(old.kube, KubeNode::NeverRegistered);
}
