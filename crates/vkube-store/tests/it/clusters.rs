//! Clusters and node records through `ClusterStore`: versions, phases,
//! deletion and the force rules, node upserts.

use std::time::Duration;

use vkube_store::{
    ClusterPhase, Error, EventLevel, Fence, ForceDelete, IntentAction, LeaseFilter, NodePhase,
    FORCE_DELETE_AFTER, LAST_ERROR_MAX,
};

use crate::{at, create, fence, node, range_pool, AnyStore, Backend, TESTER};

const SPEC: &str = "name: prod\nnodePools: []\n";

async fn create_read_and_list(b: Backend) {
    let store = b.open().await;
    let created = create(&store, "prod", "uid-1", SPEC, "hash-1", at(100)).await;
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
    assert_eq!(store.cluster("prod").await.unwrap(), created);
    create(&store, "dev", "uid-2", SPEC, "hash-1", at(101)).await;
    let names: Vec<String> = store
        .clusters()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["dev", "prod"]);

    let error = store.cluster("nope").await.unwrap_err();
    assert!(matches!(error, Error::ClusterNotFound { .. }));
    assert_eq!(error.to_string(), "cluster `nope` not found");
}

async fn create_is_idempotent_for_one_uid_only(b: Backend) {
    let store = b.open().await;
    let first = create(&store, "prod", "uid-1", SPEC, "hash-1", at(100)).await;
    // A retry after a lost answer returns the stored record unchanged.
    let retry = create(&store, "prod", "uid-1", "other: spec\n", "hash-2", at(200)).await;
    assert_eq!(retry, first);

    let error = store
        .create_cluster(
            &fence(&store, "prod").await,
            "uid-2",
            SPEC,
            "hash-1",
            at(200),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ClusterExists { .. }), "{error:?}");
    assert_eq!(error.to_string(), "cluster `prod` already exists");

    let error = store
        .create_cluster(
            &fence(&store, "other").await,
            "uid-1",
            SPEC,
            "hash-1",
            at(200),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cluster uid `uid-1` is already used by cluster `prod`"
    );
    assert!(matches!(
        store
            .create_cluster(&Fence::new("", TESTER, 1), "uid-3", SPEC, "h", at(1))
            .await,
        Err(Error::Invalid {
            field: "cluster",
            ..
        })
    ));
}

async fn writes_compare_the_version(b: Backend) {
    let store = b.open().await;
    let v1 = create(&store, "prod", "uid-1", SPEC, "hash-1", at(100)).await;
    let v2 = store
        .set_cluster_phase(
            &fence(&store, "prod").await,
            v1.version,
            ClusterPhase::Provisioning,
            at(110),
        )
        .await
        .unwrap();
    assert_eq!(
        (v2.version, v2.phase, v2.updated_at),
        (2, ClusterPhase::Provisioning, at(110))
    );

    // A second writer still holding version 1 loses, and changes nothing.
    let error = store
        .update_cluster_spec(
            &fence(&store, "prod").await,
            v1.version,
            "changed: true\n",
            "hash-2",
            at(120),
        )
        .await
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
    assert_eq!(store.cluster("prod").await.unwrap(), v2);

    let v3 = store
        .update_cluster_spec(
            &fence(&store, "prod").await,
            2,
            "changed: true\n",
            "hash-2",
            at(130),
        )
        .await
        .unwrap();
    assert_eq!((v3.version, v3.spec_hash.as_str()), (3, "hash-2"));
    assert_eq!(v3.spec_yaml, "changed: true\n");

    // A write that changes nothing keeps version and time, but still checks.
    let same = store
        .set_cluster_phase(
            &fence(&store, "prod").await,
            3,
            ClusterPhase::Provisioning,
            at(140),
        )
        .await
        .unwrap();
    assert_eq!(same, v3);
    assert!(matches!(
        store
            .set_cluster_phase(
                &fence(&store, "prod").await,
                2,
                ClusterPhase::Provisioning,
                at(140)
            )
            .await,
        Err(Error::Conflict { actual: 3, .. })
    ));
    assert!(matches!(
        store
            .set_cluster_phase(
                &fence(&store, "nope").await,
                1,
                ClusterPhase::Ready,
                at(140)
            )
            .await,
        Err(Error::ClusterNotFound { .. })
    ));

    // The version survives reopening.
    drop(store);
    assert_eq!(b.open().await.cluster("prod").await.unwrap().version, 3);
}

async fn deletion_starts_once_and_only_moves_forward(b: Backend) {
    let store = b.open().await;
    let created = create(&store, "prod", "uid-1", SPEC, "hash-1", at(100)).await;
    let ready = store
        .set_cluster_phase(
            &fence(&store, "prod").await,
            created.version,
            ClusterPhase::Ready,
            at(110),
        )
        .await
        .unwrap();

    let deleting = store.mark_deleting("prod", at(200)).await.unwrap();
    assert_eq!(deleting.phase, ClusterPhase::Deleting);
    assert_eq!(deleting.deletion_started_at, Some(at(200)));
    assert_eq!(deleting.version, ready.version + 1);
    // Again later: the first start time stays, nothing is written.
    assert_eq!(
        store.mark_deleting("prod", at(900)).await.unwrap(),
        deleting
    );
    assert_eq!(
        deleting.deleting_for(at(260)),
        Some(Duration::from_secs(60))
    );

    // The applier that read `ready` notices the deletion through the version.
    assert!(matches!(
        store
            .set_cluster_phase(
                &fence(&store, "prod").await,
                ready.version,
                ClusterPhase::Ready,
                at(210)
            )
            .await,
        Err(Error::Conflict { .. })
    ));
    let error = store
        .set_cluster_phase(
            &fence(&store, "prod").await,
            deleting.version,
            ClusterPhase::Ready,
            at(210),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cluster `prod` is being deleted; it cannot become `Ready`"
    );
    assert!(matches!(
        store
            .update_cluster_spec(
                &fence(&store, "prod").await,
                deleting.version,
                "x: 1\n",
                "hash-2",
                at(210)
            )
            .await,
        Err(Error::ClusterDeleting { .. })
    ));
    let deleted = store
        .set_cluster_phase(
            &fence(&store, "prod").await,
            deleting.version,
            ClusterPhase::Deleted,
            at(300),
        )
        .await
        .unwrap();
    assert_eq!(
        (deleted.phase, deleted.deletion_started_at),
        (ClusterPhase::Deleted, Some(at(200)))
    );
    assert_eq!(
        store.mark_deleting("prod", at(400)).await.unwrap().phase,
        ClusterPhase::Deleted
    );

    // Setting `Deleting` directly also records the start.
    let other = create(&store, "dev", "uid-2", SPEC, "hash-1", at(100)).await;
    let other = store
        .set_cluster_phase(
            &fence(&store, "dev").await,
            other.version,
            ClusterPhase::Deleting,
            at(500),
        )
        .await
        .unwrap();
    assert_eq!(other.deletion_started_at, Some(at(500)));
}

/// A cluster with two nodes, each holding a lease from pool `lab`, plus an
/// open intent, an event and its apply lock; deletion started at `t0`.
async fn populated(store: &AnyStore, name: &str, uid: &str, third: u8, t0: i64) {
    let pool = format!("lab-{name}");
    store
        .create_pools(&[range_pool(&pool, third, 10, 20)], false)
        .await
        .unwrap();
    store
        .create_cluster(&fence(store, name).await, uid, SPEC, "hash-1", at(t0 - 100))
        .await
        .unwrap();
    for (index, node_name) in ["cp-0", "cp-1"].into_iter().enumerate() {
        let node_name = format!("{name}-{node_name}");
        let lease = store
            .allocate(&fence(store, name).await, &pool, &node_name)
            .await
            .unwrap();
        let mut record = node(&node_name, "cp", index as u32);
        record.ip = Some(lease.address);
        record.vm_id = Some(format!("vm-{index}"));
        record.phase = NodePhase::PoweredOn;
        store
            .upsert_node(&fence(store, name).await, &record, at(t0 - 50))
            .await
            .unwrap();
    }
    store
        .record_intent(
            &fence(store, name).await,
            Some(&format!("{name}-cp-1")),
            IntentAction::DeleteNode,
            &serde_json::json!({}),
            at(t0),
        )
        .await
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
        .await
        .unwrap();
    let lock = store.apply_lock(name).await.unwrap().unwrap();
    assert_eq!((lock.holder.as_str(), lock.generation), (TESTER, 1));
    store.mark_deleting(name, at(t0)).await.unwrap();
}

async fn remove_refuses_while_nodes_remain_unless_forced(b: Backend) {
    let store = b.open().await;
    populated(&store, "prod", "uid-1", 0, 1_000).await;

    let error = store
        .remove_cluster("prod", ForceDelete::No, at(1_010))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cluster `prod` still has 2 node record(s) (`prod-cp-0`, `prod-cp-1`) whose VMs may exist; finish deleting it, or pass `--force`"
    );

    // Stuck for 5 minutes: the 15-minute rule refuses, naming both.
    let error = store
        .remove_cluster("prod", ForceDelete::if_stuck(), at(1_000 + 5 * 60))
        .await
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
        store
            .remove_cluster("prod", ForceDelete::if_stuck(), at(1_000 + 15 * 60 - 1))
            .await,
        Err(Error::DeletionNotStuck { .. })
    ));
    // Everything is still there.
    assert_eq!(store.nodes("prod").await.unwrap().len(), 2);
    assert_eq!(
        store.leases(&LeaseFilter::default()).await.unwrap().len(),
        2
    );

    // Stuck for 16 minutes: allowed.
    let removed = store
        .remove_cluster("prod", ForceDelete::if_stuck(), at(1_000 + 16 * 60))
        .await
        .unwrap();
    assert_eq!(removed.cluster.name, "prod");
    assert_eq!(removed.nodes.len(), 2);
    assert_eq!(removed.nodes[1].node.vm_id.as_deref(), Some("vm-1"));
    assert_eq!(removed.open_intents.len(), 1);
    assert_eq!(removed.released_leases.len(), 2);
}

async fn remove_before_deletion_started_names_the_rule(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(0)).await;
    store
        .upsert_node(
            &fence(&store, "prod").await,
            &node("prod-cp-0", "cp", 0),
            at(0),
        )
        .await
        .unwrap();
    let error = store
        .remove_cluster("prod", ForceDelete::if_stuck(), at(10_000))
        .await
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
        .await
        .unwrap();
    assert_eq!(removed.nodes.len(), 1);
    assert!(matches!(
        store.cluster("prod").await,
        Err(Error::ClusterNotFound { .. })
    ));
}

async fn remove_with_now_deletes_every_row_and_releases_leases(b: Backend) {
    let store = b.open().await;
    populated(&store, "prod", "uid-1", 0, 1_000).await;
    populated(&store, "keep", "uid-2", 1, 1_000).await;

    let removed = store
        .remove_cluster("prod", ForceDelete::Now, at(1_001))
        .await
        .unwrap();
    let released: Vec<String> = removed
        .released_leases
        .iter()
        .map(|lease| format!("{} {}", lease.node, lease.address))
        .collect();
    assert_eq!(released, ["prod-cp-0 10.0.0.10", "prod-cp-1 10.0.0.11"]);
    drop(store);

    // Reopened: nothing of `prod` is left, and `keep` is untouched.
    let store = b.open().await;
    assert!(matches!(
        store.cluster("prod").await,
        Err(Error::ClusterNotFound { .. })
    ));
    assert!(matches!(
        store.nodes("prod").await,
        Err(Error::ClusterNotFound { .. })
    ));
    assert!(matches!(
        store.events("prod", 10).await,
        Err(Error::ClusterNotFound { .. })
    ));
    assert_eq!(store.apply_lock("prod").await.unwrap(), None);
    let leases = store.leases(&LeaseFilter::default()).await.unwrap();
    assert!(
        leases.iter().all(|lease| lease.cluster == "keep"),
        "{leases:?}"
    );
    assert_eq!(leases.len(), 2);
    assert_eq!(store.pool("lab-prod").await.unwrap().allocated, 0);
    for table in [
        "cluster_nodes",
        "cluster_intents",
        "cluster_events",
        "cluster_secrets",
        "cluster_addons",
        "apply_locks",
    ] {
        let rows = b.strings(&format!(
            "SELECT COUNT(*) FROM {table} WHERE cluster = 'prod'"
        ));
        assert_eq!(rows, ["0"], "{table}");
    }
    assert_eq!(store.nodes("keep").await.unwrap().len(), 2);
    assert_eq!(store.events("keep", 10).await.unwrap().len(), 1);
    assert_eq!(store.open_intents("keep").await.unwrap().len(), 1);

    // Addresses freed by the removal are handed out again, lowest first.
    store
        .create_cluster(&fence(&store, "next").await, "uid-3", SPEC, "h", at(2_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .allocate(&fence(&store, "next").await, "lab-prod", "next-cp-0")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.0.0.10"
    );
    // The removed name can be used again, with a new uid.
    store
        .create_cluster(&fence(&store, "prod").await, "uid-4", SPEC, "h", at(2_000))
        .await
        .unwrap();
    assert!(matches!(
        store
            .remove_cluster("gone", ForceDelete::Now, at(2_000))
            .await,
        Err(Error::ClusterNotFound { .. })
    ));
}

async fn remove_without_nodes_needs_no_force(b: Backend) {
    let store = b.open().await;
    populated(&store, "prod", "uid-1", 0, 1_000).await;
    for node in store.nodes("prod").await.unwrap() {
        let removed = store
            .delete_node(&fence(&store, "prod").await, &node.node.name)
            .await
            .unwrap();
        assert_eq!(removed.node.as_ref(), Some(&node));
        assert_eq!(removed.released_leases.len(), 1);
        assert_eq!(removed.released_leases[0].address, node.node.ip.unwrap());
    }
    assert!(store
        .leases(&LeaseFilter::default())
        .await
        .unwrap()
        .is_empty());
    let removed = store
        .remove_cluster("prod", ForceDelete::No, at(1_001))
        .await
        .unwrap();
    assert!(removed.nodes.is_empty());
    assert!(removed.released_leases.is_empty());
}

async fn node_upsert_is_idempotent(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(0)).await;
    let planned = node("prod-w-0", "workers", 0);
    let first = store
        .upsert_node(&fence(&store, "prod").await, &planned, at(10))
        .await
        .unwrap();
    assert_eq!((first.created_at, first.updated_at), (at(10), at(10)));
    assert_eq!(first.node, planned);
    // Same values again, later: nothing changes, not even `updated_at`.
    assert_eq!(
        store
            .upsert_node(&fence(&store, "prod").await, &planned, at(20))
            .await
            .unwrap(),
        first
    );

    let mut created = planned.clone();
    created.phase = NodePhase::Created;
    created.vm_id = Some("vm-42".into());
    created.ip = Some("10.0.0.10".parse().unwrap());
    created.domain = Some("rack-a".into());
    let second = store
        .upsert_node(&fence(&store, "prod").await, &created, at(30))
        .await
        .unwrap();
    assert_eq!((second.created_at, second.updated_at), (at(10), at(30)));
    assert_eq!(second.node, created);
    assert_eq!(
        store
            .upsert_node(&fence(&store, "prod").await, &created, at(40))
            .await
            .unwrap(),
        second
    );
    drop(store);

    let store = b.open().await;
    assert_eq!(
        store.nodes("prod").await.unwrap(),
        std::slice::from_ref(&second)
    );
    assert_eq!(store.node("prod", "prod-w-0").await.unwrap(), Some(second));
    assert_eq!(store.node("prod", "missing").await.unwrap(), None);
    // The cluster version is untouched by node records.
    assert_eq!(store.cluster("prod").await.unwrap().version, 1);
}

async fn nodes_are_listed_by_pool_then_index_and_never_share_a_vm(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "h", at(0)).await;
    for (name, pool, index) in [
        ("w-10", "workers", 10),
        ("w-2", "workers", 2),
        ("cp-0", "cp", 0),
    ] {
        store
            .upsert_node(
                &fence(&store, "prod").await,
                &node(name, pool, index),
                at(1),
            )
            .await
            .unwrap();
    }
    let names: Vec<String> = store
        .nodes("prod")
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node.name)
        .collect();
    assert_eq!(names, ["cp-0", "w-2", "w-10"]);

    let error = store
        .upsert_node(
            &fence(&store, "prod").await,
            &node("w-dup", "workers", 2),
            at(2),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "node `w-dup` of cluster `prod` cannot have index 2 of pool `workers`: node `w-2` already has it"
    );
    let mut with_vm = node("w-2", "workers", 2);
    with_vm.vm_id = Some("vm-7".into());
    store
        .upsert_node(&fence(&store, "prod").await, &with_vm, at(3))
        .await
        .unwrap();
    let mut clash = node("w-10", "workers", 10);
    clash.vm_id = Some("vm-7".into());
    let error = store
        .upsert_node(&fence(&store, "prod").await, &clash, at(4))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NodeClash { .. }));
    assert_eq!(
        error.to_string(),
        "node `w-10` of cluster `prod` cannot have VM `vm-7`: node `w-2` already has it"
    );
    assert!(matches!(
        store
            .upsert_node(&fence(&store, "nope").await, &node("x", "p", 0), at(5))
            .await,
        Err(Error::ClusterNotFound { .. })
    ));
    // Deleting is idempotent.
    assert!(store
        .delete_node(&fence(&store, "prod").await, "w-2")
        .await
        .unwrap()
        .node
        .is_some());
    let again = store
        .delete_node(&fence(&store, "prod").await, "w-2")
        .await
        .unwrap();
    assert!(again.node.is_none() && again.released_leases.is_empty());
}

async fn secrets_keep_the_first_value_and_go_with_the_cluster(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "hash-1", at(100)).await;
    assert_eq!(store.secret("prod", "pki").await.unwrap(), None);
    assert_eq!(
        store.ensure_secret("prod", "pki", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.ensure_secret("prod", "pki", "second").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.secret("prod", "pki").await.unwrap().as_deref(),
        Some("first")
    );
    assert!(
        store.ensure_secret("nope", "pki", "x").await.is_err(),
        "unknown cluster"
    );
    store
        .remove_cluster("prod", ForceDelete::Now, at(200))
        .await
        .unwrap();
    create(&store, "prod", "uid-2", SPEC, "hash-1", at(300)).await;
    assert_eq!(
        store.secret("prod", "pki").await.unwrap(),
        None,
        "a new cluster of the same name gets new secrets"
    );
}

async fn addon_records_replace_per_addon_and_go_with_the_cluster(b: Backend) {
    use vkube_store::{AddonDelivery, AddonRecord};
    let store = b.open().await;
    create(&store, "prod", "uid-1", SPEC, "hash-1", at(1)).await;
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
            &fence(&store, "prod").await,
            &[
                record("cni", "v1", AddonDelivery::Bootstrap),
                record("csi", "v3", AddonDelivery::Bootstrap),
            ],
        )
        .await
        .unwrap();
    store
        .record_addons(
            &fence(&store, "prod").await,
            &[record("csi", "v4", AddonDelivery::Pending)],
        )
        .await
        .unwrap();
    let addons = store.addons("prod").await.unwrap();
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
        store.addons("nope").await,
        Err(vkube_store::Error::ClusterNotFound { .. })
    ));
    store
        .remove_cluster("prod", vkube_store::ForceDelete::Now, at(9))
        .await
        .unwrap();
    create(&store, "prod", "uid-2", SPEC, "hash-1", at(10)).await;
    assert!(store.addons("prod").await.unwrap().is_empty());
}

/// The vCenter is recorded once; another is refused by name, and the
/// record keeps the first.
async fn the_vcenter_is_recorded_once(b: Backend) {
    let store = b.open().await;
    let created = create(&store, "prod", "uid-1", SPEC, "hash-1", at(100)).await;
    assert_eq!(created.vcenter_uuid, None);
    let prod = fence(&store, "prod").await;
    let recorded = store
        .set_cluster_vcenter(&prod, created.version, "vc-aaaa", at(101))
        .await
        .unwrap();
    assert_eq!(recorded.vcenter_uuid.as_deref(), Some("vc-aaaa"));
    assert_eq!(recorded.version, created.version + 1);
    // The same vCenter again changes nothing.
    let again = store
        .set_cluster_vcenter(&prod, recorded.version, "vc-aaaa", at(102))
        .await
        .unwrap();
    assert_eq!(again, recorded);
    let error = store
        .set_cluster_vcenter(&prod, recorded.version, "vc-bbbb", at(103))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::VcenterMismatch { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("cluster `prod` lives in vCenter vc-aaaa")
            && text.contains("this connection is to vCenter vc-bbbb"),
        "{text}"
    );
    assert!(matches!(
        store
            .set_cluster_vcenter(&prod, recorded.version, "", at(103))
            .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        store
            .set_cluster_vcenter(&prod, created.version, "vc-aaaa", at(103))
            .await,
        Err(Error::Conflict { .. })
    ));
    // Read back, also by a new connection.
    let reopened = b.open().await;
    assert_eq!(
        reopened
            .cluster("prod")
            .await
            .unwrap()
            .vcenter_uuid
            .as_deref(),
        Some("vc-aaaa")
    );
    // Other writes keep it.
    let spec = reopened
        .update_cluster_spec(&prod, recorded.version, "name: prod\n", "hash-2", at(104))
        .await
        .unwrap();
    assert_eq!(spec.vcenter_uuid.as_deref(), Some("vc-aaaa"));
}

/// The last error is set with a phase, kept by phase-only writes, cut to
/// its maximum at a character boundary, and cleared by `None`.
async fn the_last_error_goes_with_the_status(b: Backend) {
    let store = b.open().await;
    let created = create(&store, "prod", "uid-1", SPEC, "hash-1", at(100)).await;
    assert_eq!(created.last_error, None);
    let prod = fence(&store, "prod").await;
    let failed = store
        .set_cluster_status(
            &prod,
            created.version,
            ClusterPhase::Degraded,
            Some("cloning `prod-cp-0`: TaskInProgress"),
            at(101),
        )
        .await
        .unwrap();
    assert_eq!(failed.phase, ClusterPhase::Degraded);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("cloning `prod-cp-0`: TaskInProgress")
    );
    let provisioning = store
        .set_cluster_phase(&prod, failed.version, ClusterPhase::Provisioning, at(102))
        .await
        .unwrap();
    assert_eq!(provisioning.last_error, failed.last_error, "kept");
    // A long message with multi-byte characters is cut, still valid text.
    let long = "é".repeat(LAST_ERROR_MAX);
    let cut = store
        .set_cluster_status(
            &prod,
            provisioning.version,
            ClusterPhase::Degraded,
            Some(&long),
            at(103),
        )
        .await
        .unwrap();
    let kept = cut.last_error.clone().unwrap();
    assert!(kept.len() <= LAST_ERROR_MAX && kept.len() > LAST_ERROR_MAX - 2);
    assert!(long.starts_with(&kept));
    assert_eq!(b.open().await.cluster("prod").await.unwrap(), cut);
    let ready = store
        .set_cluster_status(&prod, cut.version, ClusterPhase::Ready, None, at(104))
        .await
        .unwrap();
    assert_eq!((ready.phase, ready.last_error), (ClusterPhase::Ready, None));
    // Fenced, and refused once deletion started, like the phase.
    store.mark_deleting("prod", at(105)).await.unwrap();
    let version = store.cluster("prod").await.unwrap().version;
    assert!(matches!(
        store
            .set_cluster_status(&prod, version, ClusterPhase::Degraded, Some("x"), at(106))
            .await,
        Err(Error::ClusterDeleting { .. })
    ));
    let stale = Fence::new("prod", "someone-else", 1);
    assert!(matches!(
        store
            .set_cluster_status(&stale, version, ClusterPhase::Deleting, None, at(106))
            .await,
        Err(Error::LockLost { .. })
    ));
}

conformance!(
    create_read_and_list,
    create_is_idempotent_for_one_uid_only,
    writes_compare_the_version,
    deletion_starts_once_and_only_moves_forward,
    remove_refuses_while_nodes_remain_unless_forced,
    remove_before_deletion_started_names_the_rule,
    remove_with_now_deletes_every_row_and_releases_leases,
    remove_without_nodes_needs_no_force,
    node_upsert_is_idempotent,
    nodes_are_listed_by_pool_then_index_and_never_share_a_vm,
    secrets_keep_the_first_value_and_go_with_the_cluster,
    addon_records_replace_per_addon_and_go_with_the_cluster,
    the_vcenter_is_recorded_once,
    the_last_error_goes_with_the_status
);
