//! Clusters and node records through `ClusterStore`: versions, phases,
//! deletion and the force rules, node upserts.

use std::time::Duration;

use vkube_store::{
    ApplyLocks, ClusterPhase, ClusterStore, Error, EventLevel, ForceDelete, IntentAction, Journal,
    LeaseFilter, NodePhase, Store, FORCE_DELETE_AFTER,
};

use crate::{at, node, range_pool, TestState};

const SPEC: &str = "name: prod\nnodePools: []\n";

#[test]
fn create_read_and_list() {
    let state = TestState::new();
    let store = state.open();
    let created = store
        .create_cluster("prod", "uid-1", SPEC, "hash-1", at(100))
        .unwrap();
    assert_eq!(
        (
            created.version,
            created.phase,
            created.created_at,
            created.updated_at
        ),
        (1, ClusterPhase::Pending, at(100), at(100))
    );
    assert_eq!(created.deletion_started_at, None);
    assert_eq!(store.cluster("prod").unwrap(), created);
    store
        .create_cluster("dev", "uid-2", SPEC, "hash-1", at(101))
        .unwrap();
    let names: Vec<String> = store
        .clusters()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["dev", "prod"]);

    let error = store.cluster("nope").unwrap_err();
    assert!(matches!(error, Error::ClusterNotFound { .. }));
    assert_eq!(error.to_string(), "cluster `nope` not found");
}

#[test]
fn create_is_idempotent_for_one_uid_only() {
    let state = TestState::new();
    let store = state.open();
    let first = store
        .create_cluster("prod", "uid-1", SPEC, "hash-1", at(100))
        .unwrap();
    // A retry after a lost answer returns the stored record unchanged.
    let retry = store
        .create_cluster("prod", "uid-1", "other: spec\n", "hash-2", at(200))
        .unwrap();
    assert_eq!(retry, first);

    let error = store
        .create_cluster("prod", "uid-2", SPEC, "hash-1", at(200))
        .unwrap_err();
    assert!(matches!(error, Error::ClusterExists { .. }), "{error:?}");
    assert_eq!(error.to_string(), "cluster `prod` already exists");

    let error = store
        .create_cluster("other", "uid-1", SPEC, "hash-1", at(200))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cluster uid `uid-1` is already used by cluster `prod`"
    );
    assert!(matches!(
        store.create_cluster("", "uid-3", SPEC, "h", at(1)),
        Err(Error::Invalid {
            field: "cluster",
            ..
        })
    ));
}

#[test]
fn writes_compare_the_version() {
    let state = TestState::new();
    let store = state.open();
    let v1 = store
        .create_cluster("prod", "uid-1", SPEC, "hash-1", at(100))
        .unwrap();
    let v2 = store
        .set_cluster_phase("prod", v1.version, ClusterPhase::Provisioning, at(110))
        .unwrap();
    assert_eq!(
        (v2.version, v2.phase, v2.updated_at),
        (2, ClusterPhase::Provisioning, at(110))
    );

    // A second writer still holding version 1 loses, and changes nothing.
    let error = store
        .update_cluster_spec("prod", v1.version, "changed: true\n", "hash-2", at(120))
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Conflict { ref cluster, expected_version: 1, actual: 2 } if cluster == "prod"
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "cluster `prod` was changed by another writer (expected version 1, found 2); read it again and retry"
    );
    assert_eq!(store.cluster("prod").unwrap(), v2);

    let v3 = store
        .update_cluster_spec("prod", 2, "changed: true\n", "hash-2", at(130))
        .unwrap();
    assert_eq!((v3.version, v3.spec_hash.as_str()), (3, "hash-2"));
    assert_eq!(v3.spec_yaml, "changed: true\n");

    // A write that changes nothing keeps version and time, but still checks.
    let same = store
        .set_cluster_phase("prod", 3, ClusterPhase::Provisioning, at(140))
        .unwrap();
    assert_eq!(same, v3);
    assert!(matches!(
        store.set_cluster_phase("prod", 2, ClusterPhase::Provisioning, at(140)),
        Err(Error::Conflict { actual: 3, .. })
    ));
    assert!(matches!(
        store.set_cluster_phase("nope", 1, ClusterPhase::Ready, at(140)),
        Err(Error::ClusterNotFound { .. })
    ));

    // The version survives reopening.
    drop(store);
    assert_eq!(state.open().cluster("prod").unwrap().version, 3);
}

#[test]
fn deletion_starts_once_and_only_moves_forward() {
    let state = TestState::new();
    let store = state.open();
    let created = store
        .create_cluster("prod", "uid-1", SPEC, "hash-1", at(100))
        .unwrap();
    let ready = store
        .set_cluster_phase("prod", created.version, ClusterPhase::Ready, at(110))
        .unwrap();

    let deleting = store.mark_deleting("prod", at(200)).unwrap();
    assert_eq!(deleting.phase, ClusterPhase::Deleting);
    assert_eq!(deleting.deletion_started_at, Some(at(200)));
    assert_eq!(deleting.version, ready.version + 1);
    // Again later: the first start time stays, nothing is written.
    assert_eq!(store.mark_deleting("prod", at(900)).unwrap(), deleting);
    assert_eq!(
        deleting.deleting_for(at(260)),
        Some(Duration::from_secs(60))
    );

    // The applier that read `ready` notices the deletion through the version.
    assert!(matches!(
        store.set_cluster_phase("prod", ready.version, ClusterPhase::Ready, at(210)),
        Err(Error::Conflict { .. })
    ));
    let error = store
        .set_cluster_phase("prod", deleting.version, ClusterPhase::Ready, at(210))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cluster `prod` is being deleted; it cannot become `Ready`"
    );
    assert!(matches!(
        store.update_cluster_spec("prod", deleting.version, "x: 1\n", "hash-2", at(210)),
        Err(Error::ClusterDeleting { .. })
    ));
    let deleted = store
        .set_cluster_phase("prod", deleting.version, ClusterPhase::Deleted, at(300))
        .unwrap();
    assert_eq!(
        (deleted.phase, deleted.deletion_started_at),
        (ClusterPhase::Deleted, Some(at(200)))
    );
    assert_eq!(
        store.mark_deleting("prod", at(400)).unwrap().phase,
        ClusterPhase::Deleted
    );

    // Setting `Deleting` directly also records the start.
    let other = store
        .create_cluster("dev", "uid-2", SPEC, "hash-1", at(100))
        .unwrap();
    let other = store
        .set_cluster_phase("dev", other.version, ClusterPhase::Deleting, at(500))
        .unwrap();
    assert_eq!(other.deletion_started_at, Some(at(500)));
}

/// A cluster with two nodes, each holding a lease from pool `lab`, plus an
/// open intent, an event and its apply lock; deletion started at `t0`.
fn populated(store: &vkube_store::SqliteStore, name: &str, uid: &str, third: u8, t0: i64) {
    let pool = format!("lab-{name}");
    store
        .create_pools(&[range_pool(&pool, third, 10, 20)], false)
        .unwrap();
    store
        .create_cluster(name, uid, SPEC, "hash-1", at(t0 - 100))
        .unwrap();
    for (index, node_name) in ["cp-0", "cp-1"].into_iter().enumerate() {
        let node_name = format!("{name}-{node_name}");
        let lease = store.allocate(&pool, name, &node_name).unwrap();
        let mut record = node(&node_name, "cp", index as u32);
        record.ip = Some(lease.address);
        record.vm_id = Some(format!("vm-{index}"));
        record.phase = NodePhase::PoweredOn;
        store.upsert_node(name, &record, at(t0 - 50)).unwrap();
    }
    store
        .record_intent(
            name,
            Some(&format!("{name}-cp-1")),
            IntentAction::DeleteNode,
            &serde_json::json!({}),
            at(t0),
        )
        .unwrap();
    store
        .append_event(
            name,
            at(t0),
            EventLevel::Info,
            "DeletionStarted",
            "deleting",
            None,
        )
        .unwrap();
    let lock = store
        .acquire_apply_lock(name, "deleter", at(t0), Duration::from_secs(60))
        .unwrap();
    assert_eq!(lock.generation, 1);
    store.mark_deleting(name, at(t0)).unwrap();
}

#[test]
fn remove_refuses_while_nodes_remain_unless_forced() {
    let state = TestState::new();
    let store = state.open();
    populated(&store, "prod", "uid-1", 0, 1_000);

    let error = store
        .remove_cluster("prod", ForceDelete::No, at(1_010))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cluster `prod` still has 2 node record(s) (`prod-cp-0`, `prod-cp-1`) whose VMs may exist; finish deleting it, or pass `--force`"
    );

    // Stuck for 5 minutes: the 15-minute rule refuses, naming both.
    let error = store
        .remove_cluster("prod", ForceDelete::if_stuck(), at(1_000 + 5 * 60))
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::DeletionNotStuck { stuck_for: Some(stuck_for), required, .. }
                if stuck_for == Duration::from_secs(300) && required == FORCE_DELETE_AFTER
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "deletion of cluster `prod` has been running for 5m; `--force` is allowed once deletion has been stuck for 15m (10m from now), or pass `--force --now`"
    );
    // One second short still refuses.
    assert!(matches!(
        store.remove_cluster("prod", ForceDelete::if_stuck(), at(1_000 + 15 * 60 - 1)),
        Err(Error::DeletionNotStuck { .. })
    ));
    // Everything is still there.
    assert_eq!(store.nodes("prod").unwrap().len(), 2);
    assert_eq!(store.leases(&LeaseFilter::default()).unwrap().len(), 2);

    // Stuck for 16 minutes: allowed.
    let removed = store
        .remove_cluster("prod", ForceDelete::if_stuck(), at(1_000 + 16 * 60))
        .unwrap();
    assert_eq!(removed.cluster.name, "prod");
    assert_eq!(removed.nodes.len(), 2);
    assert_eq!(removed.nodes[1].node.vm_id.as_deref(), Some("vm-1"));
    assert_eq!(removed.open_intents.len(), 1);
    assert_eq!(removed.released_leases.len(), 2);
}

#[test]
fn remove_before_deletion_started_names_the_rule() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(0))
        .unwrap();
    store
        .upsert_node("prod", &node("prod-cp-0", "cp", 0), at(0))
        .unwrap();
    let error = store
        .remove_cluster("prod", ForceDelete::if_stuck(), at(10_000))
        .unwrap_err();
    assert!(matches!(
        error,
        Error::DeletionNotStuck {
            stuck_for: None,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        "deletion of cluster `prod` has not started; run `vkube cluster delete prod` first (`--force` is allowed once deletion has been stuck for 15m), or pass `--force --now`"
    );
    // `--now` skips the wait.
    let removed = store
        .remove_cluster("prod", ForceDelete::Now, at(10_001))
        .unwrap();
    assert_eq!(removed.nodes.len(), 1);
    assert!(matches!(
        store.cluster("prod"),
        Err(Error::ClusterNotFound { .. })
    ));
}

#[test]
fn remove_with_now_deletes_every_row_and_releases_leases() {
    let state = TestState::new();
    let store = state.open();
    populated(&store, "prod", "uid-1", 0, 1_000);
    populated(&store, "keep", "uid-2", 1, 1_000);

    let removed = store
        .remove_cluster("prod", ForceDelete::Now, at(1_001))
        .unwrap();
    let released: Vec<String> = removed
        .released_leases
        .iter()
        .map(|lease| format!("{} {}", lease.node, lease.address))
        .collect();
    assert_eq!(released, ["prod-cp-0 10.0.0.10", "prod-cp-1 10.0.0.11"]);
    drop(store);

    // Reopened: nothing of `prod` is left, and `keep` is untouched.
    let store = state.open();
    assert!(matches!(
        store.cluster("prod"),
        Err(Error::ClusterNotFound { .. })
    ));
    assert!(matches!(
        store.nodes("prod"),
        Err(Error::ClusterNotFound { .. })
    ));
    assert!(matches!(
        store.events("prod", 10),
        Err(Error::ClusterNotFound { .. })
    ));
    assert_eq!(store.apply_lock("prod").unwrap(), None);
    let leases = store.leases(&LeaseFilter::default()).unwrap();
    assert!(
        leases.iter().all(|lease| lease.cluster == "keep"),
        "{leases:?}"
    );
    assert_eq!(leases.len(), 2);
    assert_eq!(store.pool("lab-prod").unwrap().allocated, 0);
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    for table in [
        "cluster_nodes",
        "cluster_intents",
        "cluster_events",
        "apply_locks",
    ] {
        let rows: u32 = connection
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE cluster = 'prod'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 0, "{table}");
    }
    assert_eq!(store.nodes("keep").unwrap().len(), 2);
    assert_eq!(store.events("keep", 10).unwrap().len(), 1);
    assert_eq!(store.open_intents("keep").unwrap().len(), 1);

    // Addresses freed by the removal are handed out again, lowest first.
    store
        .create_cluster("next", "uid-3", SPEC, "h", at(2_000))
        .unwrap();
    assert_eq!(
        store
            .allocate("lab-prod", "next", "next-cp-0")
            .unwrap()
            .address
            .to_string(),
        "10.0.0.10"
    );
    // The removed name can be used again, with a new uid.
    store
        .create_cluster("prod", "uid-4", SPEC, "h", at(2_000))
        .unwrap();
    assert!(matches!(
        store.remove_cluster("gone", ForceDelete::Now, at(2_000)),
        Err(Error::ClusterNotFound { .. })
    ));
}

#[test]
fn remove_without_nodes_needs_no_force() {
    let state = TestState::new();
    let store = state.open();
    populated(&store, "prod", "uid-1", 0, 1_000);
    for node in store.nodes("prod").unwrap() {
        let removed = store.delete_node("prod", &node.node.name).unwrap();
        assert_eq!(removed.node.as_ref(), Some(&node));
        assert_eq!(removed.released_leases.len(), 1);
        assert_eq!(removed.released_leases[0].address, node.node.ip.unwrap());
    }
    assert!(store.leases(&LeaseFilter::default()).unwrap().is_empty());
    let removed = store
        .remove_cluster("prod", ForceDelete::No, at(1_001))
        .unwrap();
    assert!(removed.nodes.is_empty());
    assert!(removed.released_leases.is_empty());
}

#[test]
fn node_upsert_is_idempotent() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(0))
        .unwrap();
    let planned = node("prod-w-0", "workers", 0);
    let first = store.upsert_node("prod", &planned, at(10)).unwrap();
    assert_eq!((first.created_at, first.updated_at), (at(10), at(10)));
    assert_eq!(first.node, planned);
    // Same values again, later: nothing changes, not even `updated_at`.
    assert_eq!(store.upsert_node("prod", &planned, at(20)).unwrap(), first);

    let mut created = planned.clone();
    created.phase = NodePhase::Created;
    created.vm_id = Some("vm-42".into());
    created.ip = Some("10.0.0.10".parse().unwrap());
    created.domain = Some("rack-a".into());
    let second = store.upsert_node("prod", &created, at(30)).unwrap();
    assert_eq!((second.created_at, second.updated_at), (at(10), at(30)));
    assert_eq!(second.node, created);
    assert_eq!(store.upsert_node("prod", &created, at(40)).unwrap(), second);
    drop(store);

    let store = state.open();
    assert_eq!(store.nodes("prod").unwrap(), std::slice::from_ref(&second));
    assert_eq!(store.node("prod", "prod-w-0").unwrap(), Some(second));
    assert_eq!(store.node("prod", "missing").unwrap(), None);
    // The cluster version is untouched by node records.
    assert_eq!(store.cluster("prod").unwrap().version, 1);
}

#[test]
fn nodes_are_listed_by_pool_then_index_and_never_share_a_vm() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "h", at(0))
        .unwrap();
    for (name, pool, index) in [
        ("w-10", "workers", 10),
        ("w-2", "workers", 2),
        ("cp-0", "cp", 0),
    ] {
        store
            .upsert_node("prod", &node(name, pool, index), at(1))
            .unwrap();
    }
    let names: Vec<String> = store
        .nodes("prod")
        .unwrap()
        .into_iter()
        .map(|n| n.node.name)
        .collect();
    assert_eq!(names, ["cp-0", "w-2", "w-10"]);

    let error = store
        .upsert_node("prod", &node("w-dup", "workers", 2), at(2))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "node `w-dup` of cluster `prod` cannot have index 2 of pool `workers`: node `w-2` already has it"
    );
    let mut with_vm = node("w-2", "workers", 2);
    with_vm.vm_id = Some("vm-7".into());
    store.upsert_node("prod", &with_vm, at(3)).unwrap();
    let mut clash = node("w-10", "workers", 10);
    clash.vm_id = Some("vm-7".into());
    let error = store.upsert_node("prod", &clash, at(4)).unwrap_err();
    assert!(matches!(error, Error::NodeClash { .. }));
    assert_eq!(
        error.to_string(),
        "node `w-10` of cluster `prod` cannot have VM `vm-7`: node `w-2` already has it"
    );
    assert!(matches!(
        store.upsert_node("nope", &node("x", "p", 0), at(5)),
        Err(Error::ClusterNotFound { .. })
    ));
    // Deleting is idempotent.
    assert!(store.delete_node("prod", "w-2").unwrap().node.is_some());
    let again = store.delete_node("prod", "w-2").unwrap();
    assert!(again.node.is_none() && again.released_leases.is_empty());
}

#[test]
fn secrets_keep_the_first_value_and_go_with_the_cluster() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "hash-1", at(100))
        .unwrap();
    assert_eq!(store.secret("prod", "pki").unwrap(), None);
    assert_eq!(
        store.ensure_secret("prod", "pki", "first").unwrap(),
        "first"
    );
    assert_eq!(
        store.ensure_secret("prod", "pki", "second").unwrap(),
        "first"
    );
    assert_eq!(
        store.secret("prod", "pki").unwrap().as_deref(),
        Some("first")
    );
    assert!(
        store.ensure_secret("nope", "pki", "x").is_err(),
        "unknown cluster"
    );
    store
        .remove_cluster("prod", ForceDelete::Now, at(200))
        .unwrap();
    store
        .create_cluster("prod", "uid-2", SPEC, "hash-1", at(300))
        .unwrap();
    assert_eq!(
        store.secret("prod", "pki").unwrap(),
        None,
        "a new cluster of the same name gets new secrets"
    );
}

#[test]
fn addon_records_replace_per_addon_and_go_with_the_cluster() {
    use vkube_store::{AddonDelivery, AddonRecord};
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", SPEC, "hash-1", at(1))
        .unwrap();
    let record = |addon: &str, version: &str, delivery| AddonRecord {
        addon: addon.into(),
        component: format!("{addon}-component"),
        version: version.into(),
        digest: format!("sha256-{version}"),
        delivery,
        node: Some("prod-cp-0001".into()),
        message: None,
        updated_at: at(5),
    };
    store
        .record_addons(
            "prod",
            &[
                record("cni", "v1", AddonDelivery::Bootstrap),
                record("csi", "v3", AddonDelivery::Bootstrap),
            ],
        )
        .unwrap();
    store
        .record_addons("prod", &[record("csi", "v4", AddonDelivery::Pending)])
        .unwrap();
    let addons = store.addons("prod").unwrap();
    assert_eq!(addons.len(), 2);
    assert_eq!(
        (addons[0].addon.as_str(), addons[0].version.as_str()),
        ("cni", "v1")
    );
    assert_eq!(
        (addons[1].version.as_str(), addons[1].delivery),
        ("v4", AddonDelivery::Pending)
    );
    assert!(matches!(
        store.addons("nope"),
        Err(vkube_store::Error::ClusterNotFound { .. })
    ));
    store
        .remove_cluster("prod", vkube_store::ForceDelete::Now, at(9))
        .unwrap();
    store
        .create_cluster("prod", "uid-2", SPEC, "hash-1", at(10))
        .unwrap();
    assert!(store.addons("prod").unwrap().is_empty());
}
