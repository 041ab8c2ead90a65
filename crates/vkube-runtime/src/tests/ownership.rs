//! Ownership against the fakes: a second state refuses another state's
//! cluster before any change, `adopt` takes a cluster over from its VMs
//! (and what it cannot restore), the clone-race path never takes another
//! state's VM, another vCenter is refused, and a scale-down stopped at any
//! call leaves exactly one record and one lease per VM.

use std::collections::BTreeMap;
use std::sync::Arc;

use vkube_core::cluster::markers;

use super::*;
use crate::access::cluster_pki;

/// A new state file set up as the first was: pools, cloud credentials.
async fn another_state() -> Arc<dyn StateStore> {
    Arc::new(seeded_store().await)
}

/// `node address` lines of cluster `t1`'s leases in `store`.
async fn lease_lines(store: &dyn StateStore) -> Vec<String> {
    let filter = LeaseFilter {
        pool: None,
        cluster: Some("t1".into()),
    };
    let mut lines: Vec<String> = store
        .leases(&filter)
        .await
        .expect("leases")
        .iter()
        .map(|l| format!("{} {}", l.node, l.address))
        .collect();
    lines.sort();
    lines
}

/// `t1`'s node records in `store`, without their times.
async fn node_records(store: &dyn StateStore) -> Vec<vkube_store::Node> {
    store
        .nodes("t1")
        .await
        .expect("nodes")
        .into_iter()
        .map(|n| n.node)
        .collect()
}

async fn spec(harness: &Harness, workers: u32) -> ClusterSpec {
    crate::parse_spec(harness.store.as_ref(), &spec_with(workers, false))
        .await
        .expect("spec")
}

/// The same spec applied from a second state (a new or lost state file,
/// a colleague's) refuses before any change: no record, no lease, no
/// vCenter call that changes anything, naming the uid, the VMs and the way
/// out. The plan refuses the same way; the first state is unaffected.
#[tokio::test]
async fn a_second_state_refuses_the_cluster_another_state_created() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    let uid = harness.store.cluster("t1").await.expect("cluster").uid;
    let other = another_state().await;
    let before = harness.vsphere.mutations();
    let err = harness
        .apply_to(other.as_ref(), &harness.spec, "colleague", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ForeignVms { .. }), "{err}");
    assert!(err.is_user_error());
    let text = err.to_string();
    for expected in [
        "/DC0/vm/t1",
        uid.as_str(),
        "`t1-cp-0`, `t1-workers-0`, `t1-workers-1`",
        "nothing was changed",
        "does not know cluster `t1`",
        "vkube cluster adopt -f SPEC",
    ] {
        assert!(text.contains(expected), "lacks {expected:?}: {text}");
    }
    assert_eq!(harness.vsphere.mutations(), before, "vCenter untouched");
    assert!(matches!(
        other.cluster("t1").await,
        Err(vkube_store::Error::ClusterNotFound { .. })
    ));
    assert!(
        lease_lines(other.as_ref()).await.is_empty(),
        "no address leased"
    );
    let err = crate::plan_only(
        &harness.vsphere,
        other.as_ref(),
        &harness.spec,
        &harness.context(&FakeHolder::new("planner", &[])),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ForeignVms { .. }), "{err}");
    harness.assert_no_op("run-2", "the first state").await;
}

/// Adopt takes the cluster over from its VMs into a state that lost it:
/// the uid, the node records, the same addresses, the same key material
/// and the add-ons as delivered; vCenter is not touched, adopting again
/// changes nothing, and the next apply is a no-op.
#[tokio::test]
async fn adopt_takes_the_cluster_over_and_the_next_apply_changes_nothing() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    let first = harness.store.cluster("t1").await.expect("cluster");
    let lost = another_state().await;
    let before = harness.vsphere.mutations();
    let report = harness
        .adopt_into(lost.as_ref(), &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(
        harness.vsphere.mutations(),
        before,
        "adopt changes nothing in vCenter"
    );
    assert_eq!(report.uid, first.uid);
    let names: Vec<&str> = report.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, NODES);
    assert!(report
        .nodes
        .iter()
        .all(|n| n.address_from == crate::adopt::AddressSource::BootstrapData));
    assert_eq!(report.pki, "bootstrap data of node `t1-cp-0`");
    assert!(report.pending.is_empty(), "{:?}", report.pending);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        !report.addons.is_empty() && report.addons.iter().all(|l| l.ends_with(": bootstrap")),
        "{:?}",
        report.addons
    );
    let adopted = lost.cluster("t1").await.expect("adopted");
    assert_eq!(
        (
            adopted.uid.as_str(),
            adopted.phase,
            adopted.vcenter_uuid.as_deref()
        ),
        (
            first.uid.as_str(),
            ClusterPhase::Ready,
            Some(fake::FAKE_VCENTER_UUID)
        )
    );
    assert_eq!(
        lease_lines(lost.as_ref()).await,
        lease_lines(harness.store.as_ref()).await
    );
    assert_eq!(
        cluster_pki(lost.as_ref(), "t1").await.expect("pki"),
        cluster_pki(harness.store.as_ref(), "t1")
            .await
            .expect("pki")
    );
    let mut expected = node_records(harness.store.as_ref()).await;
    let mut found = node_records(lost.as_ref()).await;
    for node in expected.iter_mut().chain(found.iter_mut()) {
        node.phase = vkube_store::NodePhase::PoweredOn;
    }
    assert_eq!(found, expected);
    let report = harness
        .apply_to(lost.as_ref(), &harness.spec, "run-2", &[])
        .await
        .expect("apply after adopt");
    assert!(!report.changed && report.addons.is_empty(), "{report:?}");
    assert_eq!(harness.vsphere.mutations(), before, "a no-op");
    harness
        .adopt_into(lost.as_ref(), &AdoptOptions::default())
        .await
        .expect("adopting again");
    assert_eq!(
        lease_lines(lost.as_ref()).await,
        lease_lines(harness.store.as_ref()).await
    );
    // Without the cloud credentials the spec names, nothing is written.
    let bare: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let raws = vkube_core::ipam::parse_pools_yaml(POOLS).expect("pools");
    let pools = vkube_core::ipam::validate_pools(&raws, false).expect("pools");
    bare.create_pools(&pools, false)
        .await
        .expect("pools stored");
    let err = harness
        .adopt_into(bare.as_ref(), &AdoptOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("demo-cloud"), "{err}");
    assert!(bare.cluster("t1").await.is_err(), "nothing recorded");
    assert!(
        lease_lines(bare.as_ref()).await.is_empty(),
        "nothing leased"
    );
    // A state that knows the cluster by another uid is refused.
    let err = harness
        .adopt_into(
            lost.as_ref(),
            &AdoptOptions {
                uid: Some("someone-else".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no VM carries uid `someone-else`"),
        "{err}"
    );
}

/// When no control-plane VM carries the key material any more, adopt
/// refuses (writing nothing) unless `new_pki`; a cluster adopted so may
/// shrink, but never creates a node that would have to join it.
#[tokio::test]
async fn without_key_material_adopt_refuses_unless_new_pki_which_never_grows_the_cluster() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    harness
        .vsphere
        .set_extra_config("t1-cp-0", "guestinfo.userdata", Some("---"));
    harness
        .vsphere
        .set_extra_config("t1-cp-0", "guestinfo.userdata.encoding", None);
    let lost = another_state().await;
    let err = harness
        .adopt_into(lost.as_ref(), &AdoptOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::AdoptRefused { .. })
            && text.contains("key material")
            && text.contains("--new-pki"),
        "{text}"
    );
    assert!(lost.cluster("t1").await.is_err(), "nothing recorded");
    let report = harness
        .adopt_into(
            lost.as_ref(),
            &AdoptOptions {
                new_pki: true,
                ..Default::default()
            },
        )
        .await
        .expect("adopt with a new PKI");
    assert_eq!(report.pki, "new (--new-pki)");
    assert!(
        report.warnings.iter().any(|w| w.contains("cannot join")),
        "{:?}",
        report.warnings
    );
    let before = harness.vsphere.mutations();
    let err = harness
        .apply_to(lost.as_ref(), &spec(&harness, 3).await, "grow", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UntrustedPki { nodes, .. } if nodes == &["t1-workers-2"]),
        "{err}"
    );
    assert_eq!(
        harness.vsphere.mutations(),
        before,
        "refused before any change"
    );
    harness
        .apply_to(lost.as_ref(), &spec(&harness, 1).await, "shrink", &[])
        .await
        .expect("scaling down works");
    let names: Vec<String> = harness.vsphere.vms().into_keys().collect();
    assert_eq!(names, ["t1-cp-0", "t1-workers-0"]);
    assert_eq!(node_records(lost.as_ref()).await.len(), 2);
}

/// An adoption stopped before it stored the key material leaves a record
/// whose VMs exist: an apply refuses (a new PKI would not be trusted by
/// them) until adopt runs again.
#[tokio::test]
async fn an_adoption_stopped_short_blocks_apply_until_adopt_runs_again() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    let lost = seeded_store().await;
    lost.fail_next(Operation::EnsureSecret);
    harness
        .adopt_into(&lost, &AdoptOptions::default())
        .await
        .expect_err("the injected fault");
    assert!(lost.cluster("t1").await.is_ok(), "the record was written");
    let before = harness.vsphere.mutations();
    let err = harness
        .apply_to(&lost, &harness.spec, "run-2", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MissingKeyMaterial { .. }) && err.to_string().contains("adopt"),
        "{err}"
    );
    assert_eq!(harness.vsphere.mutations(), before);
    harness
        .adopt_into(&lost, &AdoptOptions::default())
        .await
        .expect("adopt again");
    let report = harness
        .apply_to(&lost, &harness.spec, "run-3", &[])
        .await
        .expect("apply");
    assert!(!report.changed, "{report:?}");
}

/// A clone that finds its name taken by another state's VM (a real
/// vCenter's `DuplicateName`) fails that node and leaves the VM as it was:
/// its markers are never overwritten, nothing is written into it; the next
/// apply refuses to work beside it.
#[tokio::test]
async fn a_clone_raced_by_another_states_vm_never_takes_it() {
    let harness = Harness::new().await;
    let theirs: BTreeMap<String, String> = markers(
        harness.spec.name(),
        "0ther-uid",
        "workers",
        "t1-workers-0",
        0,
        "their-hash",
        "az1",
    )
    .into_iter()
    .collect();
    harness
        .vsphere
        .race_clone_with("t1-workers-0", theirs.clone());
    let err = harness.apply_as("run-1", &[]).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::NodesFailed { .. })
            && text.contains("t1-workers-0")
            && text.contains("0ther-uid"),
        "{text}"
    );
    let record = harness.store.cluster("t1").await.expect("cluster");
    assert_eq!(
        record.phase,
        ClusterPhase::Degraded,
        "failed nodes degrade it"
    );
    assert!(
        record
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("t1-workers-0") && e.contains("0ther-uid")),
        "{:?}",
        record.last_error
    );
    let vms = harness.vsphere.vms();
    let raced = &vms["t1-workers-0"];
    assert_eq!(raced.extra_config, theirs, "their VM is untouched");
    assert_eq!(raced.power_state, "poweredOff");
    assert!(!vms.contains_key("t1-workers-0#2"));
    let err = harness.apply_as("run-2", &[]).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::ForeignVms {
                known_uid: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("two states claim one cluster"),
        "{err}"
    );
}

/// A cluster lives in one vCenter: against another (a rebuilt one reuses
/// VM ids), apply, plan and delete refuse naming both, changing nothing,
/// the phase included; `--force` forgets the cluster without touching it.
#[tokio::test]
async fn another_vcenter_is_refused_by_apply_plan_and_delete() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    let other = "99999999-8888-7777-6666-555555555555";
    harness.vsphere.set_instance_uuid(Some(other));
    let before = harness.vsphere.mutations();
    let mismatch = |err: &Error| {
        let text = err.to_string();
        matches!(
            err,
            Error::Store(vkube_store::Error::VcenterMismatch { .. })
        ) && err.is_user_error()
            && text.contains(fake::FAKE_VCENTER_UUID)
            && text.contains(other)
            && text.contains("vcenter.example.test")
    };
    let err = harness.apply_as("run-2", &[]).await.unwrap_err();
    assert!(mismatch(&err), "{err}");
    let holder = FakeHolder::new("planner", &[]);
    let err = crate::plan_only(
        &harness.vsphere,
        harness.store.as_ref(),
        &harness.spec,
        &harness.context(&holder),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(mismatch(&err), "{err}");
    let err = harness.delete(ForceDelete::No).await.unwrap_err();
    assert!(mismatch(&err), "{err}");
    assert_eq!(harness.vsphere.mutations(), before, "vCenter untouched");
    let record = harness.store.cluster("t1").await.expect("still known");
    assert_eq!(
        (record.phase, record.vcenter_uuid.as_deref()),
        (ClusterPhase::Ready, Some(fake::FAKE_VCENTER_UUID))
    );
    let report = harness
        .delete(ForceDelete::Now)
        .await
        .expect("forced delete");
    assert_eq!(harness.vsphere.mutations(), before, "still untouched");
    assert_eq!(report.orphans.len(), NODES.len(), "{:?}", report.orphans);
    assert!(harness.store.cluster("t1").await.is_err(), "forgotten");
}

/// A cluster recorded before vkube kept the vCenter gets it on its next
/// apply.
#[tokio::test]
async fn a_cluster_recorded_without_its_vcenter_gets_it_on_the_next_apply() {
    let harness = Harness::new().await;
    harness.vsphere.set_instance_uuid(None);
    harness.apply_as("run-1", &[]).await.expect("apply");
    let record = harness.store.cluster("t1").await.expect("cluster");
    assert_eq!(record.vcenter_uuid, None);
    harness
        .vsphere
        .set_instance_uuid(Some(fake::FAKE_VCENTER_UUID));
    harness
        .assert_no_op("run-2", "filling in the vCenter")
        .await;
    harness.assert_converged("the vCenter recorded").await;
}

/// Mutating calls of scaling the test cluster from three workers to one.
async fn mutating_calls_of_a_scale_down() -> usize {
    let harness = Harness::new().await;
    harness
        .apply_to(
            harness.store.as_ref(),
            &spec(&harness, 3).await,
            "run-1",
            &[],
        )
        .await
        .expect("apply");
    let before = harness.vsphere.mutations();
    harness
        .apply_to(
            harness.store.as_ref(),
            &spec(&harness, 1).await,
            "run-2",
            &[],
        )
        .await
        .expect("scale down");
    harness.vsphere.mutations() - before
}

/// A scale-down killed at any mutating call (after a VM was destroyed but
/// before its node was forgotten, among others) and run again leaves one
/// node record and one lease per VM: `cluster ls` counts what exists.
#[tokio::test]
async fn a_scale_down_stopped_at_any_call_leaves_one_record_and_lease_per_vm() {
    let calls = mutating_calls_of_a_scale_down().await;
    assert!(
        calls >= 6,
        "a scale-down by two makes {calls} mutating calls"
    );
    for n in 1..=calls {
        for injection in [Injection::CrashBefore, Injection::CrashAfter] {
            let context = format!("{injection:?} at mutating call {n} of {calls}");
            let harness = Harness::new().await;
            let (big, small) = (spec(&harness, 3).await, spec(&harness, 1).await);
            harness
                .apply_to(harness.store.as_ref(), &big, "run-1", &[])
                .await
                .expect(&context);
            harness.vsphere.inject(n, injection);
            assert!(
                harness
                    .apply_spec_until_crash(&small, "run-2")
                    .await
                    .is_none(),
                "{context}: the run crashed"
            );
            harness.vsphere.heal();
            harness
                .apply_to(harness.store.as_ref(), &small, "run-3", &["run-2"])
                .await
                .expect(&context);
            let vms: Vec<String> = harness.vsphere.vms().into_keys().collect();
            assert_eq!(vms, ["t1-cp-0", "t1-workers-0"], "{context}");
            let records: Vec<String> = node_records(harness.store.as_ref())
                .await
                .into_iter()
                .map(|n| n.name)
                .collect();
            assert_eq!(records, ["t1-cp-0", "t1-workers-0"], "{context}: records");
            assert_eq!(harness.lease_nodes().await, vms, "{context}: leases");
            let report = harness
                .apply_to(harness.store.as_ref(), &small, "run-4", &[])
                .await
                .expect(&context);
            assert!(!report.changed, "{context}: {report:?}");
        }
    }
}

/// An apply whose lock cannot be renewed stops, and the cluster says why:
/// `Degraded` with the error, until an apply converges.
#[tokio::test]
async fn an_apply_that_loses_its_lock_leaves_the_cluster_degraded() {
    let harness = Harness::new().await;
    let memory = seeded_store().await;
    let store: Arc<dyn StateStore> = Arc::new(memory.clone());
    harness
        .apply_to(store.as_ref(), &harness.spec, "run-1", &[])
        .await
        .expect("apply");
    memory.fail_next(Operation::RenewApplyLock);
    // A scale-down waits for guests to shut down, longer than a third of
    // this lock's time to live: the lock is renewed meanwhile.
    harness.vsphere.make_guests_stubborn();
    let smaller = spec(&harness, 1).await;
    let holder = FakeHolder::new("run-2", &[]);
    let short_lock = ApplyOptions {
        lock_ttl: Duration::from_secs(3),
        ..options()
    };
    let err = crate::apply(
        &harness.vsphere,
        store.as_ref(),
        &smaller,
        &harness.context(&holder),
        &short_lock,
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("renew_apply_lock"), "{err}");
    let record = store.cluster("t1").await.expect("cluster");
    assert_eq!(record.phase, ClusterPhase::Degraded);
    assert!(
        record
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("renew_apply_lock")),
        "{:?}",
        record.last_error
    );
    harness
        .apply_to(store.as_ref(), &smaller, "run-3", &[])
        .await
        .expect("the next apply");
    let record = store.cluster("t1").await.expect("cluster");
    assert_eq!(
        (record.phase, record.last_error),
        (ClusterPhase::Ready, None)
    );
}
