//! The Kubernetes-aware lifecycle against the fake vCenter and the fake
//! cluster ([`FakeCluster`]), with simulated kubelets: a powered-on node
//! VM registers its Node object (not Ready) on the next look and becomes
//! Ready on the one after; a control-plane node also joins etcd. Rolling
//! control-plane changes, drains, PodDisruptionBudgets, health checks and
//! `--wait ready`.

use std::cell::RefCell;
use std::collections::BTreeSet;

use vkube_kube::ConditionStatus;

use super::*;
use crate::WaitFor;

/// Kubelets of the fake cluster's nodes.
#[derive(Default)]
struct Kubelets {
    /// Registered, not Ready yet.
    joining: RefCell<BTreeSet<String>>,
    /// VMs whose kubelet never starts.
    broken: RefCell<BTreeSet<String>>,
}

impl Kubelets {
    /// One look: powered-on VMs register, registered ones become Ready.
    fn tick(&self, harness: &Harness) {
        let now = harness.clock.now();
        let registered: BTreeSet<String> = harness.kube.node_names().into_iter().collect();
        for name in self.joining.take() {
            harness.kube.set_ready(&name, ConditionStatus::True, now);
        }
        for (name, vm) in harness.vsphere.vms() {
            if vm.power_state == "poweredOn"
                && !registered.contains(&name)
                && !self.broken.borrow().contains(&name)
            {
                let control_plane = name.contains("-cp-");
                harness
                    .kube
                    .register(&name, ConditionStatus::False, now, control_plane);
                self.joining.borrow_mut().insert(name);
            }
        }
    }
}

fn ready_options() -> ApplyOptions {
    ApplyOptions {
        wait: WaitFor::Ready,
        kube_poll: Duration::from_secs(2),
        timeout: Duration::from_secs(600),
        ..options()
    }
}

/// Three control-plane nodes and two workers.
fn three_control_plane_nodes() -> String {
    spec_text().replacen("replicas: 1", "replicas: 3", 1)
}

async fn harness_for(text: &str) -> Harness {
    let mut harness = Harness::new().await;
    harness.spec = crate::parse_spec(harness.store.as_ref(), text)
        .await
        .expect("spec validates");
    harness
}

/// The cluster of `text`, applied until every node is Ready, with its kubelets.
async fn live(text: &str) -> (Harness, Kubelets) {
    let harness = harness_for(text).await;
    let kubelets = Kubelets::default();
    done(
        harness
            .roll(&harness.spec, &ready_options(), &kubelets, |_| {})
            .await,
    );
    (harness, kubelets)
}

impl Harness {
    /// `text`, validated against this state.
    async fn parsed(&self, text: &str) -> ClusterSpec {
        crate::parse_spec(self.store.as_ref(), text)
            .await
            .expect("spec validates")
    }

    /// Reconcile `spec` with `--wait ready` while the kubelets run, checking
    /// `invariant` after every pass.
    async fn roll(
        &self,
        spec: &ClusterSpec,
        options: &ApplyOptions,
        kubelets: &Kubelets,
        mut invariant: impl FnMut(&Harness),
    ) -> Outcome {
        let (outcome, _) = self
            .reconcile(spec, options, 400, |_| {
                kubelets.tick(self);
                invariant(self);
            })
            .await;
        outcome
    }

    /// Control-plane nodes Ready and schedulable.
    fn serving_control_plane(&self) -> usize {
        let ready: Vec<String> = self.kube.node_names();
        ready
            .iter()
            .filter(|n| n.contains("-cp-"))
            .filter(|n| self.kube.is_serving(n))
            .count()
    }
}

fn done(outcome: Outcome) -> ApplyReport {
    match outcome {
        Outcome::Done(report) => report,
        other => panic!("not done: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_control_plane_cpu_change_replaces_one_node_at_a_time_and_never_loses_quorum() {
    let (harness, kubelets) = live(&three_control_plane_nodes()).await;
    assert_eq!(harness.kube.member_names().len(), 3);

    let bigger = three_control_plane_nodes().replacen("    cpu: 2\n", "    cpu: 4\n", 1);
    let spec = harness.parsed(&bigger).await;
    let mut most_out = 0;
    let report = done(
        harness
            .roll(&spec, &ready_options(), &kubelets, |h| {
                // Three Ready, schedulable control-plane nodes and three
                // healthy etcd members at every look.
                assert!(h.serving_control_plane() >= 3, "{:?}", h.kube.calls());
                assert!(h.kube.member_names().len() >= 3, "{:?}", h.kube.calls());
                let cp_vms = h
                    .vsphere
                    .vms()
                    .keys()
                    .filter(|n| n.contains("-cp-"))
                    .count();
                most_out = most_out.max(cp_vms.saturating_sub(3));
            })
            .await,
    );
    assert_eq!(most_out, 1, "one surge node at a time");
    let cp: Vec<String> = harness
        .vsphere
        .vms()
        .into_iter()
        .filter(|(n, _)| n.contains("-cp-"))
        .map(|(n, vm)| {
            assert_eq!(vm.num_cpus, 4, "{n}");
            n
        })
        .collect();
    assert_eq!(cp, ["t1-cp-3", "t1-cp-4", "t1-cp-5"]);
    assert_eq!(harness.kube.member_names(), cp);
    // Each old node: drained, its member removed, its Node deleted, then
    // its VM destroyed; never before its replacement was Ready.
    let calls = harness.kube.calls();
    for (old, new) in [
        ("t1-cp-0", "t1-cp-3"),
        ("t1-cp-1", "t1-cp-4"),
        ("t1-cp-2", "t1-cp-5"),
    ] {
        let at = |what: &str| {
            calls
                .iter()
                .position(|c| c == what)
                .unwrap_or_else(|| panic!("no `{what}` in {calls:?}"))
        };
        assert!(at(&format!("drain {old}")) < at(&format!("delete {old}")));
        assert!(report
            .executed
            .iter()
            .any(|e| e == &format!("remove etcd member {old}")));
        assert!(at(&format!("ready {new}")) < at(&format!("drain {old}")));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn scale_down_drains_before_destroying_and_a_pdb_stops_the_drain_naming_it() {
    let (harness, kubelets) = live(&spec_text()).await;

    let smaller = spec_text().replace("replicas: 2", "replicas: 1");
    let spec = harness.parsed(&smaller).await;
    harness.kube.block_drain("t1-workers-1", "web-pdb");
    let Outcome::Failed(error) = harness
        .roll(&spec, &ready_options(), &kubelets, |_| {})
        .await
    else {
        panic!("a blocked drain fails the apply");
    };
    let message = error.to_string();
    assert!(message.contains("default/web-pdb"), "{message}");
    assert!(message.contains("t1-workers-1"), "{message}");
    assert!(
        harness.vsphere.vms().contains_key("t1-workers-1"),
        "VM kept"
    );
    assert!(harness
        .kube
        .node_names()
        .contains(&"t1-workers-1".to_string()));

    let forced = ApplyOptions {
        force_drain: true,
        ..ready_options()
    };
    done(harness.roll(&spec, &forced, &kubelets, |_| {}).await);
    assert!(!harness.vsphere.vms().contains_key("t1-workers-1"));
    assert!(!harness
        .kube
        .node_names()
        .contains(&"t1-workers-1".to_string()));
    let calls = harness.kube.calls();
    let drain = calls
        .iter()
        .rposition(|c| c == "drain t1-workers-1")
        .unwrap();
    let delete = calls
        .iter()
        .position(|c| c == "delete t1-workers-1")
        .unwrap();
    assert!(drain < delete, "{calls:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_unhealthy_worker_is_replaced_within_max_unhealthy() {
    let text = spec_text().replace("replicas: 2", "replicas: 3").replace(
        "      placementDomains: [az1]\n",
        "      placementDomains: [az1]\n      healthCheck: {unhealthyConditions: [{type: Ready, status: \"False\", timeout: 5m}], maxUnhealthy: 40%}\n",
    );
    let (harness, kubelets) = live(&text).await;

    // Two of three unhealthy: more than 40% allows; nothing is replaced.
    let now = harness.clock.now();
    for node in ["t1-workers-0", "t1-workers-1"] {
        harness.kube.set_ready(node, ConditionStatus::False, now);
    }
    harness.clock.sleep(Duration::from_secs(600)).await;
    let quick = ApplyOptions {
        wait: WaitFor::Created,
        timeout: Duration::from_secs(30),
        ..ready_options()
    };
    let Outcome::Failed(error) = harness.roll(&harness.spec, &quick, &kubelets, |_| {}).await
    else {
        panic!("held past the timeout");
    };
    assert!(error.to_string().contains("maxUnhealthy"), "{error}");
    assert_eq!(harness.vsphere.vms().len(), 4, "nothing replaced");

    // One of three: replaced.
    harness
        .kube
        .set_ready("t1-workers-0", ConditionStatus::True, harness.clock.now());
    done(
        harness
            .roll(&harness.spec, &ready_options(), &kubelets, |_| {})
            .await,
    );
    let vms = harness.vsphere.vms();
    assert!(!vms.contains_key("t1-workers-1"), "the unhealthy node went");
    assert!(vms.contains_key("t1-workers-3"), "and was replaced");
    assert_eq!(vms.len(), 4);
}

#[tokio::test(flavor = "current_thread")]
async fn with_the_api_unreachable_wait_created_works_and_wait_ready_names_the_nodes() {
    let harness = Harness::new().await;
    harness.kube.set_reachable(false);
    let created = ApplyOptions {
        wait: WaitFor::Created,
        ..ready_options()
    };
    done(
        harness
            .roll(&harness.spec, &created, &Kubelets::default(), |_| {})
            .await,
    );
    assert_eq!(harness.vsphere.vms().len(), 3);

    let short = ApplyOptions {
        timeout: Duration::from_secs(60),
        ..ready_options()
    };
    let Outcome::Failed(error) = harness
        .roll(&harness.spec, &short, &Kubelets::default(), |_| {})
        .await
    else {
        panic!("times out");
    };
    let message = error.to_string();
    for node in NODES {
        assert!(message.contains(&format!("`{node}`")), "{message}");
    }
    assert!(message.contains("never registered"), "{message}");
    assert!(message.contains("did not answer"), "{message}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_node_object_without_a_vm_is_deleted_and_a_vm_deleted_out_of_band_comes_back() {
    let (harness, kubelets) = live(&spec_text()).await;
    harness.kube.register(
        "t1-workers-7",
        ConditionStatus::Unknown,
        harness.clock.now(),
        false,
    );
    harness.vsphere.remove_vm("t1-workers-0");
    done(
        harness
            .roll(&harness.spec, &ready_options(), &kubelets, |_| {})
            .await,
    );
    assert!(!harness
        .kube
        .node_names()
        .contains(&"t1-workers-7".to_string()));
    assert_eq!(harness.vsphere.vms().len(), 3);
    assert!(harness.kube.node_names().len() >= 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_rolling_control_plane_change_waits_while_an_etcd_member_is_unhealthy() {
    let (harness, kubelets) = live(&three_control_plane_nodes()).await;
    harness.kube.set_member_healthy("t1-cp-1", false);
    let bigger = three_control_plane_nodes().replacen("    cpu: 2\n", "    cpu: 4\n", 1);
    let spec = harness.parsed(&bigger).await;
    let short = ApplyOptions {
        timeout: Duration::from_secs(60),
        ..ready_options()
    };
    let Outcome::Failed(error) = harness.roll(&spec, &short, &kubelets, |_| {}).await else {
        panic!("held past the timeout");
    };
    let message = error.to_string();
    assert!(message.contains("still waiting"), "{message}");
    assert!(message.contains("t1-cp-1"), "{message}");
    let cp = harness
        .vsphere
        .vms()
        .keys()
        .filter(|n| n.contains("-cp-"))
        .count();
    assert_eq!(cp, 3, "no surge node while etcd is degraded");
    assert!(!harness.kube.calls().iter().any(|c| c.starts_with("drain")));
}

#[tokio::test(flavor = "current_thread")]
async fn describe_shows_the_vsphere_and_the_kubernetes_side_and_one_line_without_the_api() {
    let (harness, _) = live(&spec_text()).await;
    let holder = FakeHolder::new("describer", &[]);
    let ctx = harness.context(&holder);
    let describe = || {
        crate::describe::describe(
            &harness.vsphere,
            harness.store.as_ref(),
            "t1",
            &ctx,
            Duration::from_secs(5),
        )
    };
    let view = describe().await.expect("describe");
    assert_eq!(view.api, "ready");
    for node in &view.nodes {
        assert_eq!(node.power_state, "poweredOn", "{node:?}");
        assert_eq!(node.phase, "Registered", "{node:?}");
        let kube = node.kubernetes.as_ref().expect("the Kubernetes side");
        assert!(kube.registered && kube.ready == "True", "{node:?}");
    }

    harness.kube.set_reachable(false);
    let view = describe().await.expect("describe without the API");
    assert!(view.api.starts_with("unreachable: "), "{}", view.api);
    assert!(!view.api.contains('\n'), "one line: {}", view.api);
    assert_eq!(view.nodes.len(), 3);
    assert!(view
        .nodes
        .iter()
        .all(|n| n.kubernetes.is_none() && n.power_state == "poweredOn"));
}

#[tokio::test(flavor = "current_thread")]
async fn delete_takes_workers_first_then_the_control_plane_newest_first_without_draining() {
    let (harness, _) = live(&three_control_plane_nodes()).await;
    let calls_before = harness.kube.calls().len();
    harness.delete(ForceDelete::No).await.expect("delete");
    let destroyed: Vec<String> = harness
        .vsphere
        .changes()
        .iter()
        .filter_map(|c| c.strip_prefix("destroy ").map(str::to_owned))
        .filter(|c| !c.starts_with("folder "))
        .collect();
    let (workers, control_plane) = destroyed.split_at(2);
    let mut workers = workers.to_vec();
    workers.sort();
    assert_eq!(workers, ["t1-workers-0", "t1-workers-1"]);
    assert_eq!(control_plane, ["t1-cp-2", "t1-cp-1", "t1-cp-0"]);
    assert_eq!(harness.kube.calls().len(), calls_before, "nothing drained");
}

#[tokio::test(flavor = "current_thread")]
async fn a_plan_shows_the_drain_and_the_node_object_before_the_vm_once_kubernetes_knows_the_node() {
    let (harness, _) = live(&spec_text()).await;
    let smaller = spec_text().replace("replicas: 2", "replicas: 1");
    let spec = harness.parsed(&smaller).await;
    let holder = FakeHolder::new("planner", &[]);
    let preview = crate::plan_only(
        &harness.vsphere,
        harness.store.as_ref(),
        &spec,
        &harness.context(&holder),
        &NoProgress,
    )
    .await
    .expect("plan");
    assert!(preview.kubernetes_read);
    let steps: Vec<String> = preview
        .steps
        .iter()
        .map(|s| {
            let (kind, node) = crate::StepKind::of(s);
            format!("{kind} {}", node.unwrap_or_default())
        })
        .collect();
    assert_eq!(
        steps,
        [
            "drain node t1-workers-1",
            "delete node object t1-workers-1",
            "delete node t1-workers-1",
            "release address t1-workers-1",
        ]
    );
    assert!(
        harness.vsphere.vms().contains_key("t1-workers-1"),
        "nothing changed"
    );
    assert!(!harness.kube.calls().iter().any(|c| c.starts_with("drain")));
}
