//! Table and golden tests for the planner.

use std::collections::BTreeMap;

use super::spec_tests::example;
use super::*;

/// Observed nodes of `spec` as if created by vkube at the current spec.
pub(crate) fn node(spec: &ClusterSpec, group: &str, index: u32) -> ObservedNode {
    let g = spec.group(group).unwrap();
    ObservedNode {
        name: vm_name(spec.name(), group, index),
        pool: group.into(),
        domain: g.domain_for(index).to_string(),
        spec_hash: g.spec_hash(),
        power_state: PowerState::PoweredOn,
        cpu: g.cpu(),
        memory_mib: g.memory_mib(),
        index,
        kube: KubeNode::NeverRegistered,
        powered_on_for: None,
    }
}

/// A converged cluster: every group at its replicas, indices from 0.
pub(crate) fn converged(spec: &ClusterSpec) -> (ObservedCluster, Leases) {
    let mut nodes = Vec::new();
    for g in spec.groups() {
        for index in 0..g.replicas() {
            nodes.push(node(spec, g.name(), index));
        }
    }
    let leases = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.name.clone(),
                format!("10.20.0.{}", 10 + i).parse().unwrap(),
            )
        })
        .collect();
    (
        ObservedCluster {
            folder_exists: true,
            nodes,
            ..Default::default()
        },
        leases,
    )
}

/// A compact rendering of a plan, one step a line.
pub(crate) fn lines(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|step| match step {
            Step::CreateFolder { path } => format!("create-folder {path}"),
            Step::AllocateAddress { node, pool } => format!("allocate {node} from {pool}"),
            Step::CreateNode {
                node, domain, role, ..
            } => format!("create {node} in {domain} as {role:?}"),
            Step::Reconfigure {
                node,
                cpu,
                memory_mib,
            } => format!("reconfigure {node} {cpu}cpu {memory_mib}MiB"),
            Step::PowerOn { node } => format!("power-on {node}"),
            Step::DeleteNode { node, reason } => format!("delete {node} ({reason:?})"),
            Step::ReleaseAddress { node } => format!("release {node}"),
            Step::ForgetNode { node } => format!("forget {node}"),
            Step::DrainNode {
                node,
                kubelet_unresponsive,
                ..
            } => format!(
                "drain {node}{}",
                if *kubelet_unresponsive {
                    " (kubelet unresponsive)"
                } else {
                    ""
                }
            ),
            Step::RemoveEtcdMember { node, .. } => format!("remove-member {node}"),
            Step::DeleteNodeObject { node, .. } => format!("delete-node-object {node}"),
            Step::UncordonNode { node } => format!("uncordon {node}"),
        })
        .collect()
}

pub(crate) fn spec_with(edit: impl FnOnce(&mut RawClusterSpec)) -> ClusterSpec {
    let mut raw = example().to_raw();
    edit(&mut raw);
    raw.validate().unwrap()
}

/// A new cluster is planned in one pass: workers do not wait for a
/// control plane that is only being created (kubeadm join retries).
#[test]
fn fresh_cluster_creates_folder_control_plane_and_workers_in_one_pass() {
    let spec = example();
    let plan = plan(&spec, &ObservedCluster::default(), &Leases::new());
    let mut expected = vec!["create-folder /DC0/vm/demo".to_string()];
    for (node, domain, role) in [
        ("demo-cp-0", "az1", "Init"),
        ("demo-cp-1", "az1", "ControlPlane"),
        ("demo-cp-2", "az1", "ControlPlane"),
        ("demo-workers-0", "az1", "Worker"),
        ("demo-workers-1", "az2", "Worker"),
        ("demo-workers-2", "az1", "Worker"),
        ("demo-infra-0", "az2", "Worker"),
        ("demo-infra-1", "az1", "Worker"),
    ] {
        expected.push(format!("allocate {node} from nodes"));
        expected.push(format!("create {node} in {domain} as {role}"));
        expected.push(format!("power-on {node}"));
    }
    assert_eq!(lines(&plan), expected);
}

#[test]
fn workers_follow_once_control_plane_exists_round_robin() {
    let spec = example();
    let (mut observed, mut leases) = converged(&spec);
    observed.nodes.retain(|n| n.pool == "cp");
    leases.retain(|node, _| node.starts_with("demo-cp"));
    let plan = plan(&spec, &observed, &leases);
    assert_eq!(
        lines(&plan),
        [
            "allocate demo-workers-0 from nodes",
            "create demo-workers-0 in az1 as Worker",
            "power-on demo-workers-0",
            "allocate demo-workers-1 from nodes",
            "create demo-workers-1 in az2 as Worker",
            "power-on demo-workers-1",
            "allocate demo-workers-2 from nodes",
            "create demo-workers-2 in az1 as Worker",
            "power-on demo-workers-2",
            "allocate demo-infra-0 from nodes",
            "create demo-infra-0 in az2 as Worker",
            "power-on demo-infra-0",
            "allocate demo-infra-1 from nodes",
            "create demo-infra-1 in az1 as Worker",
            "power-on demo-infra-1",
        ]
    );
}

#[test]
fn converged_cluster_has_empty_plan() {
    let spec = example();
    let (observed, leases) = converged(&spec);
    assert!(plan(&spec, &observed, &leases).is_empty());
}

#[test]
fn plan_table() {
    type Setup = fn(&ClusterSpec, &mut ObservedCluster, &mut Leases) -> ClusterSpec;
    let cases: Vec<(&str, Setup, &[&str])> = vec![
        (
            "scale-down removes newest first and releases",
            |_, _, _| spec_with(|r| r.spec.node_pools[0].replicas = 1),
            &[
                "delete demo-workers-2 (ScaleDown)",
                "release demo-workers-2",
                "delete demo-workers-1 (ScaleDown)",
                "release demo-workers-1",
            ],
        ),
        (
            "scale-up continues after the highest index",
            |_, observed, _| {
                observed.nodes.retain(|n| n.name != "demo-workers-2");
                spec_with(|r| r.spec.node_pools[0].replicas = 4)
            },
            &[
                "create demo-workers-2 in az1 as Worker",
                "power-on demo-workers-2",
                "allocate demo-workers-3 from nodes",
                "create demo-workers-3 in az2 as Worker",
                "power-on demo-workers-3",
            ],
        ),
        (
            "powered-off node is powered on",
            |spec, observed, _| {
                observed.nodes[4].power_state = PowerState::PoweredOff;
                spec.clone()
            },
            &["power-on demo-workers-1"],
        ),
        (
            "drifted size is reconfigured",
            |spec, observed, _| {
                observed.nodes[0].cpu = 8;
                spec.clone()
            },
            &["reconfigure demo-cp-0 2cpu 4096MiB"],
        ),
        (
            "removed pool goes newest first",
            |_, _, _| {
                spec_with(|r| {
                    r.spec.node_pools.remove(1);
                })
            },
            &[
                "delete demo-infra-1 (PoolRemoved)",
                "release demo-infra-1",
                "delete demo-infra-0 (PoolRemoved)",
                "release demo-infra-0",
            ],
        ),
        (
            "version change rolls control plane first, one surge node",
            |_, _, _| spec_with(|r| r.spec.kubernetes_version = "v1.30.3".into()),
            &[
                "allocate demo-cp-3 from nodes",
                "create demo-cp-3 in az1 as ControlPlane",
                "power-on demo-cp-3",
            ],
        ),
        (
            "surge present: delete oldest stale, workers wait",
            |_, observed, _| {
                let spec = spec_with(|r| r.spec.kubernetes_version = "v1.30.3".into());
                observed.nodes.push(node(&spec, "cp", 3));
                spec
            },
            &[
                "delete demo-cp-0 (Replaced { by: \"demo-cp-3\" })",
                "release demo-cp-0",
            ],
        ),
        (
            "control plane rolled: first worker pool surges",
            |_, observed, leases| {
                let spec = spec_with(|r| r.spec.kubernetes_version = "v1.30.3".into());
                observed.nodes.retain(|n| n.pool != "cp");
                leases.retain(|n, _| !n.starts_with("demo-cp"));
                for index in 3..6 {
                    observed.nodes.push(node(&spec, "cp", index));
                    leases.insert(format!("demo-cp-{index}"), "10.20.0.100".parse().unwrap());
                }
                spec
            },
            &[
                "allocate demo-workers-3 from nodes",
                "create demo-workers-3 in az2 as Worker",
                "power-on demo-workers-3",
            ],
        ),
        (
            "domain change replaces misplaced nodes",
            |_, _, _| {
                spec_with(|r| {
                    r.spec.node_pools[0].placement_domains = vec!["az2".into(), "az1".into()]
                })
            },
            &[
                "allocate demo-workers-3 from nodes",
                "create demo-workers-3 in az1 as Worker",
                "power-on demo-workers-3",
            ],
        ),
        (
            "stale leases from an interrupted run are released",
            |spec, _, leases| {
                leases.insert("demo-workers-7".into(), "10.20.0.99".parse().unwrap());
                spec.clone()
            },
            &["release demo-workers-7"],
        ),
        (
            "vip from pool is allocated first",
            |_, _, _| {
                spec_with(|r| {
                    r.spec.control_plane.vip = Some(RawVip {
                        address: None,
                        from_pool: Some("nodes".into()),
                    })
                })
            },
            &["allocate demo-vip from nodes"],
        ),
        (
            "dhcp allocates nothing",
            |_, observed, leases| {
                observed.nodes.retain(|n| n.name != "demo-infra-1");
                leases.clear();
                spec_with(|r| r.spec.ip_allocation = Some("dhcp".into()))
            },
            &[
                "create demo-infra-1 in az1 as Worker",
                "power-on demo-infra-1",
            ],
        ),
    ];
    for (name, setup, expected) in cases {
        let base = example();
        let (mut observed, mut leases) = converged(&base);
        let spec = setup(&base, &mut observed, &mut leases);
        let found = lines(&plan(&spec, &observed, &leases));
        assert_eq!(
            found,
            expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "case `{name}`"
        );
    }
}

/// Runs plan → apply (simulated) until converged; every pass must make
/// progress and the end state must have no duplicate names.
fn converge(
    spec: &ClusterSpec,
    mut observed: ObservedCluster,
    mut leases: Leases,
) -> (ObservedCluster, Leases, usize) {
    let mut next_address = 150u8;
    for pass in 0..100 {
        let plan = plan(spec, &observed, &leases);
        assert!(plan.holds.is_empty(), "{:?}", plan.holds);
        if plan.is_empty() {
            return (observed, leases, pass);
        }
        for step in plan.steps {
            match step {
                Step::CreateFolder { .. } => observed.folder_exists = true,
                Step::AllocateAddress { node, .. } => {
                    leases.insert(node, format!("10.20.0.{next_address}").parse().unwrap());
                    next_address += 1;
                }
                Step::CreateNode { .. } => {
                    let new = created_node(&step);
                    assert!(
                        observed.nodes.iter().all(|n| n.name != new.name),
                        "duplicate {}",
                        new.name
                    );
                    observed.recorded.insert(new.name.clone());
                    observed.nodes.push(new);
                }
                Step::Reconfigure {
                    node,
                    cpu,
                    memory_mib,
                } => {
                    let n = observed.nodes.iter_mut().find(|n| n.name == node).unwrap();
                    (n.cpu, n.memory_mib) = (cpu, memory_mib);
                }
                Step::PowerOn { node } => {
                    observed
                        .nodes
                        .iter_mut()
                        .find(|n| n.name == node)
                        .unwrap()
                        .power_state = PowerState::PoweredOn
                }
                Step::DeleteNode { node, .. } => {
                    observed.nodes.retain(|n| n.name != node);
                    observed.recorded.remove(&node);
                }
                Step::ReleaseAddress { node } => {
                    assert!(leases.remove(&node).is_some(), "released {node} twice");
                }
                Step::ForgetNode { node } => {
                    assert!(observed.recorded.remove(&node), "forgot {node} twice");
                    leases.remove(&node);
                }
                other => panic!("a cluster Kubernetes never saw needs no {other:?}"),
            }
        }
    }
    panic!("did not converge in 100 passes");
}

#[test]
fn rolling_upgrade_converges_one_node_at_a_time() {
    let base = example();
    let (observed, leases) = converged(&base);
    let upgraded = spec_with(|r| r.spec.kubernetes_version = "v1.31.0".into());
    let (observed, leases, passes) = converge(&upgraded, observed, leases);
    // 8 nodes, each one surge pass and one delete pass.
    assert_eq!(passes, 16);
    let mut names: Vec<&str> = observed.nodes.iter().map(|n| n.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "demo-cp-3",
            "demo-cp-4",
            "demo-cp-5",
            "demo-infra-2",
            "demo-infra-3",
            "demo-workers-3",
            "demo-workers-4",
            "demo-workers-5"
        ]
    );
    assert_eq!(leases.len(), 8);
    assert!(leases.keys().all(|node| names.contains(&node.as_str())));
    // Round-robin still balanced: workers 3,4,5 → az2, az1, az2.
    let domains: BTreeMap<&str, &str> = observed
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.domain.as_str()))
        .collect();
    assert_eq!(domains["demo-workers-4"], "az1");
    assert_eq!(domains["demo-infra-2"], "az2");
}

#[test]
fn fresh_cluster_converges() {
    let spec = example();
    let (observed, leases, passes) = converge(&spec, ObservedCluster::default(), Leases::new());
    assert_eq!(passes, 1, "control plane and workers in one pass");
    assert_eq!(observed.nodes.len(), 8);
    assert_eq!(leases.len(), 8);
}

#[test]
fn plan_serializes_for_cli_output() {
    let spec = example();
    let (mut observed, mut leases) = converged(&spec);
    observed.nodes.retain(|n| n.name != "demo-infra-1");
    leases.remove("demo-infra-1");
    observed.nodes[0].power_state = PowerState::PoweredOff;
    let json = serde_json::to_string_pretty(&plan(&spec, &observed, &leases)).unwrap();
    let hash = spec.group("infra").unwrap().spec_hash();
    assert_eq!(
        json,
        format!(
            r#"{{
  "steps": [
    {{
      "step": "powerOn",
      "node": "demo-cp-0"
    }},
    {{
      "step": "allocateAddress",
      "node": "demo-infra-1",
      "pool": "nodes"
    }},
    {{
      "step": "createNode",
      "node": "demo-infra-1",
      "pool": "infra",
      "index": 1,
      "domain": "az1",
      "role": "worker",
      "specHash": "{hash}",
      "cpu": 2,
      "memoryMiB": 4096
    }},
    {{
      "step": "powerOn",
      "node": "demo-infra-1"
    }}
  ]
}}"#
        )
    );
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back.steps.len(), 4);
}

/// A scale-down stopped after destroying the VMs but before forgetting
/// the nodes: their records (and leases) are forgotten, one step each, and
/// nothing else happens; nodes that are planned again, and workers waiting
/// for the control plane, keep theirs.
#[test]
fn records_without_vms_are_forgotten_with_their_leases() {
    let spec = example();
    let (mut observed, mut leases) = converged(&spec);
    observed.recorded = observed.nodes.iter().map(|n| n.name.clone()).collect();
    observed
        .recorded
        .extend(["demo-workers-3".into(), "demo-workers-4".into()]);
    leases.insert("demo-workers-3".into(), "10.20.0.40".parse().unwrap());
    assert_eq!(
        lines(&plan(&spec, &observed, &leases)),
        ["forget demo-workers-3", "forget demo-workers-4"],
        "one step per stale record, the lease with it"
    );
    // A record whose VM is gone but wanted again is created, not forgotten.
    let mut missing = observed.clone();
    missing.nodes.retain(|n| n.name != "demo-workers-2");
    missing.recorded.remove("demo-workers-3");
    missing.recorded.remove("demo-workers-4");
    let steps = lines(&plan(&spec, &missing, &leases));
    assert!(
        steps.contains(&"create demo-workers-2 in az1 as Worker".to_string()),
        "{steps:?}"
    );
    assert!(!steps.iter().any(|s| s.starts_with("forget")), "{steps:?}");
    // While the control plane changes (a stale node rolls), workers keep
    // their records.
    let mut unsettled = observed.clone();
    unsettled
        .nodes
        .iter_mut()
        .find(|n| n.name == "demo-cp-0")
        .expect("cp-0")
        .spec_hash = "old".into();
    let steps = lines(&plan(&spec, &unsettled, &leases));
    assert!(
        !steps.iter().any(|s| s.starts_with("forget demo-workers")),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.starts_with("create demo-cp-")),
        "{steps:?}"
    );
    // A control plane only being created holds nothing back.
    let mut growing = observed.clone();
    growing.nodes.retain(|n| n.name != "demo-cp-2");
    let steps = lines(&plan(&spec, &growing, &leases));
    assert!(
        steps.contains(&"forget demo-workers-3".to_string())
            && steps.contains(&"create demo-cp-2 in az1 as ControlPlane".to_string()),
        "{steps:?}"
    );
}

/// Workers are held back while the control plane changes (a roll), or
/// grows once etcd or Kubernetes knows it (one careful join at a time),
/// but not while a new control plane is created.
#[test]
fn workers_wait_for_a_changing_or_known_control_plane_only() {
    let spec = example();
    let (converged_nodes, leases) = converged(&spec);
    let worker_steps = |observed: &ObservedCluster| -> Vec<String> {
        lines(&plan(&spec, observed, &leases))
            .into_iter()
            .filter(|s| s.contains("demo-workers-") || s.contains("demo-infra-"))
            .collect()
    };
    // A worker missing, the control plane new and incomplete: planned.
    let mut new = converged_nodes.clone();
    new.nodes
        .retain(|n| n.name != "demo-cp-2" && n.name != "demo-workers-2");
    assert!(
        worker_steps(&new).contains(&"create demo-workers-2 in az1 as Worker".to_string()),
        "{:?}",
        worker_steps(&new)
    );
    // The same with the control plane known to etcd: held back.
    let mut known = new.clone();
    known.etcd = Some(EtcdView::default());
    assert_eq!(worker_steps(&known), Vec::<String>::new());
    // A stale control-plane node: held back.
    let mut rolling = converged_nodes.clone();
    rolling.nodes.retain(|n| n.name != "demo-workers-2");
    let first = rolling
        .nodes
        .iter_mut()
        .find(|n| n.name == "demo-cp-0")
        .expect("cp-0");
    first.spec_hash = "old".into();
    assert_eq!(worker_steps(&rolling), Vec::<String>::new());
}

/// The VM a `CreateNode` step makes, as the next pass observes it: powered
/// off, never registered.
pub(super) fn created_node(step: &Step) -> ObservedNode {
    let Step::CreateNode {
        node,
        pool,
        index,
        domain,
        spec_hash,
        cpu,
        memory_mib,
        ..
    } = step.clone()
    else {
        panic!("not a CreateNode step: {step:?}");
    };
    ObservedNode {
        name: node,
        pool,
        domain,
        spec_hash,
        power_state: PowerState::PoweredOff,
        cpu,
        memory_mib,
        index,
        kube: KubeNode::NeverRegistered,
        powered_on_for: None,
    }
}
