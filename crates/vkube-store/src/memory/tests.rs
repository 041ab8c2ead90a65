//! The memory store's own hooks: faults, write counting, snapshots, handles
//! and keys in memory. Its answers to the store traits are checked by the
//! conformance suite (`tests/it`), as the other stores' are.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use vkube_core::ipam::{IpPool, RawIpPool, RawRange};

use super::*;
use crate::{
    ApplyLocks, BackendKind, ClusterPhase, ClusterStore, CredentialStore, Error, IntentAction,
    IntentOutcome, Journal, LeaseFilter, Node, NodePhase, StateStore, Store, Timestamp,
};

const TTL: Duration = Duration::from_secs(60);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds)
}

fn pool() -> IpPool {
    RawIpPool {
        name: "lab".into(),
        range: Some(RawRange {
            start: "10.0.0.10".into(),
            end: "10.0.0.20".into(),
        }),
        prefix: Some(24),
        gateway: Some("10.0.0.1".into()),
        name_servers: vec!["192.0.2.53".into()],
        ..RawIpPool::default()
    }
    .validate()
    .unwrap()
}

fn planned(name: &str, index: u32) -> Node {
    Node {
        name: name.into(),
        pool: "cp".into(),
        index,
        domain: None,
        vm_id: None,
        ip: None,
        phase: NodePhase::Planned,
        spec_hash: "h".into(),
    }
}

/// What an applier does for one node: lock, record the cluster, lease,
/// node record, intent, "clone", completion, phase, release. Idempotent
/// up to the intent (a rerun finds what the last run left), so a crashed
/// run can simply be run again once its lock has expired.
async fn apply_one_node(store: &dyn StateStore, holder: &str, now: i64) -> Result<()> {
    let lock = store
        .acquire_apply_lock("prod", holder, at(now), TTL)
        .await?;
    let fence = lock.fence();
    let cluster = store
        .create_cluster(&fence, "uid-1", "spec", "h", at(now))
        .await?;
    for intent in store.open_intents("prod").await? {
        let found = IntentOutcome::Abandoned("looked again".into());
        store
            .complete_intent(&fence, intent.id, found, at(now))
            .await?;
    }
    let lease = store.allocate(&fence, "lab", "prod-cp-0").await?;
    let mut node = planned("prod-cp-0", 0);
    node.ip = Some(lease.address);
    store.upsert_node(&fence, &node, at(now)).await?;
    let detail = json!({"vm": "prod-cp-0"});
    let intent = store
        .record_intent(
            &fence,
            Some("prod-cp-0"),
            IntentAction::CreateNode,
            &detail,
            at(now),
        )
        .await?;
    node.phase = NodePhase::PoweredOn;
    node.vm_id = Some("vm-42".into());
    store.upsert_node(&fence, &node, at(now + 1)).await?;
    store
        .complete_intent(&fence, intent, IntentOutcome::Succeeded, at(now + 1))
        .await?;
    if cluster.phase != ClusterPhase::Ready {
        store
            .set_cluster_phase(&fence, cluster.version, ClusterPhase::Ready, at(now + 1))
            .await?;
    }
    store.release_apply_lock(&lock).await?;
    Ok(())
}

/// The fence of holder `a`'s apply lock on `prod`.
async fn prod_lock(store: &MemoryStore) -> crate::Fence {
    store
        .acquire_apply_lock("prod", "a", at(0), TTL)
        .await
        .unwrap()
        .fence()
}

/// Cluster `prod` recorded under [`prod_lock`]'s fence.
async fn prod_cluster(store: &MemoryStore) -> crate::Fence {
    let fence = prod_lock(store).await;
    store
        .create_cluster(&fence, "uid-1", "spec", "h", at(0))
        .await
        .unwrap();
    fence
}

async fn with_pool() -> MemoryStore {
    let store = MemoryStore::new();
    store.create_pools(&[pool()], false).await.unwrap();
    store
}

#[test]
fn is_a_state_store_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<MemoryStore>();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    assert_eq!(store.kind(), BackendKind::Memory);
    assert_eq!(store.location(), "memory:");
    assert_eq!(store.key_file(), std::path::Path::new(""));
}

#[tokio::test]
async fn a_refused_write_changes_nothing_and_the_next_one_goes_through() {
    let store = with_pool().await;
    let fence = prod_cluster(&store).await;
    let before = store.dump();
    store.fail_next(Operation::UpsertNode);
    let error = store
        .upsert_node(&fence, &planned("n0", 0), at(1))
        .await
        .unwrap_err();
    let fault = InjectedFault::of(&error).expect("the injected fault");
    assert_eq!(
        (fault.operation, fault.write, fault.applied),
        (Operation::UpsertNode, Some(4), false)
    );
    assert_eq!(store.dump(), before);
    store
        .upsert_node(&fence, &planned("n0", 0), at(1))
        .await
        .unwrap();
    assert_eq!(store.nodes("prod").await.unwrap().len(), 1);
    assert_eq!(
        store.write_log(),
        [
            Operation::CreatePools,
            Operation::AcquireApplyLock,
            Operation::CreateCluster,
            Operation::UpsertNode,
            Operation::UpsertNode
        ]
    );
}

#[tokio::test]
async fn a_lost_answer_keeps_the_change_and_a_retry_sees_it() {
    let store = with_pool().await;
    let fence = prod_lock(&store).await;
    store.inject(Fault::next(Operation::Allocate).after_commit());
    let error = store.allocate(&fence, "lab", "n0").await.unwrap_err();
    assert!(InjectedFault::of(&error).unwrap().applied);
    let leases = store.leases(&LeaseFilter::default()).await.unwrap();
    assert_eq!(leases.len(), 1);
    // Allocation is idempotent: the retry gets the lease the lost answer had.
    assert_eq!(
        store.allocate(&fence, "lab", "n0").await.unwrap(),
        leases[0]
    );

    // A version write whose answer was lost: the retry meets `Conflict`.
    let created = store
        .create_cluster(&fence, "uid-1", "spec", "h", at(0))
        .await
        .unwrap();
    store.inject(Fault::at_write(1).after_commit());
    assert!(store
        .set_cluster_phase(&fence, created.version, ClusterPhase::Ready, at(1))
        .await
        .is_err());
    assert!(matches!(
        store
            .set_cluster_phase(&fence, created.version, ClusterPhase::Ready, at(1))
            .await,
        Err(Error::Conflict { actual: 2, .. })
    ));
}

#[tokio::test]
async fn reads_can_fail_too_and_are_not_counted() {
    let store = MemoryStore::new();
    store.fail_next(Operation::Clusters);
    let error = store.clusters().await.unwrap_err();
    assert_eq!(InjectedFault::of(&error).unwrap().write, None);
    assert!(store.clusters().await.unwrap().is_empty());
    store.fail_next(Operation::SchemaVersion);
    assert!(store.schema_version().await.is_err());
    assert_eq!(
        store.schema_version().await.unwrap(),
        MemoryStore::latest_schema_version()
    );
    assert_eq!(store.write_count(), 0);
    store.fail_next(Operation::Pools);
    store.clear_faults();
    assert!(store.pools().await.is_ok());
}

/// The crash test the runtime's tests run: count a scenario's writes, then
/// for each write N make it fail, restart from a snapshot of what was
/// stored, run again and check the outcome. Deterministic: the same N
/// always stops at the same place with the same state.
#[tokio::test]
async fn crash_at_every_write_then_restart_from_a_snapshot() {
    let template = with_pool().await;
    let probe = template.snapshot();
    apply_one_node(&probe, "first", 1_000).await.unwrap();
    let writes = probe.write_count();
    assert_eq!(writes, 9, "{:?}", probe.write_log());

    for n in 1..=writes {
        let crashed = template.snapshot();
        crashed.fail_at_write(n);
        let error = apply_one_node(&crashed, "first", 1_000).await.unwrap_err();
        let fault = InjectedFault::of(&error).unwrap();
        assert_eq!(fault.write, Some(n));
        assert_eq!(fault.operation, probe.write_log()[n as usize - 1]);
        // Deterministic: the same crash leaves the same state.
        let again = template.snapshot();
        again.fail_at_write(n);
        assert!(apply_one_node(&again, "first", 1_000).await.is_err());
        assert_eq!(again.dump(), crashed.dump(), "write {n}");

        // The process died here; the next one starts from what was stored,
        // after the dead holder's lock expired.
        let restarted = crashed.snapshot();
        assert_eq!(restarted.write_count(), 0);
        apply_one_node(&restarted, "second", 2_000).await.unwrap();
        let node = restarted.node("prod", "prod-cp-0").await.unwrap().unwrap();
        assert_eq!(node.node.phase, NodePhase::PoweredOn);
        assert!(restarted.open_intents("prod").await.unwrap().is_empty());
        assert_eq!(
            restarted.leases(&LeaseFilter::default()).await.unwrap(),
            probe.leases(&LeaseFilter::default()).await.unwrap(),
            "the same address after a crash at write {n}"
        );
        assert_eq!(
            restarted.cluster("prod").await.unwrap().phase,
            ClusterPhase::Ready
        );
    }
    // The template itself never changed.
    assert_eq!(template.write_count(), 1);
    assert!(template.clusters().await.unwrap().is_empty());
}

#[tokio::test]
async fn snapshots_are_independent_and_keep_secrets_readable() {
    let store = with_pool().await;
    let fence = prod_cluster(&store).await;
    store
        .ensure_secret("prod", "pki", "key material")
        .await
        .unwrap();
    store.fail_at_write(1);

    let copy = store.snapshot();
    assert_eq!(copy.dump(), store.dump());
    assert_eq!(copy.write_count(), 0);
    // No fault came along; the copy's writes stay in the copy.
    copy.upsert_node(&fence, &planned("n0", 0), at(1))
        .await
        .unwrap();
    assert!(store.node("prod", "n0").await.unwrap().is_none());
    assert!(store
        .upsert_node(&fence, &planned("n0", 0), at(1))
        .await
        .is_err());
    assert_eq!(
        copy.secret("prod", "pki").await.unwrap().as_deref(),
        Some("key material")
    );
    // Rotating the copy's key leaves the original's alone.
    copy.rotate_key().await.unwrap();
    assert_eq!(
        store.secret("prod", "pki").await.unwrap().as_deref(),
        Some("key material")
    );
    assert_eq!(
        copy.secret("prod", "pki").await.unwrap().as_deref(),
        Some("key material")
    );
}

#[tokio::test]
async fn handles_share_the_state_the_faults_and_the_count() {
    let store = MemoryStore::new();
    let clone = store.clone();
    let reopened = store.reopen().unwrap();
    clone.create_pools(&[pool()], false).await.unwrap();
    assert_eq!(reopened.pools().await.unwrap().len(), 1);
    reopened.fail_next(Operation::DeletePool);
    assert!(store.delete_pool("lab", false).await.is_err());
    assert_eq!(clone.write_count(), 2);
}

#[tokio::test]
async fn keys_in_memory_seal_and_rotate_without_files() {
    let store = MemoryStore::new();
    let fence = prod_cluster(&store).await;
    store
        .ensure_secret("prod", "pki", "very secret")
        .await
        .unwrap();
    store
        .set_credentials("cloud", "u@vsphere.local", "pw", at(0))
        .await
        .unwrap();
    let dump = store.dump().to_string();
    assert!(
        !dump.contains("very secret") && dump.contains("sealed:v1:"),
        "{dump}"
    );
    let rotation = store.rotate_key().await.unwrap();
    assert_eq!(rotation.resealed, 2);
    assert_eq!(rotation.key_file, std::path::PathBuf::new());
    assert_ne!(rotation.old_key, rotation.new_key);
    let dump = store.dump();
    let sealed = dump["cluster_secrets"][0]["value"].as_str().unwrap();
    assert!(sealed.starts_with(&format!("sealed:v1:{}:", rotation.new_key)));
    // Handles on the same state share the rotated key.
    let reopened = store.reopen().unwrap();
    assert_eq!(
        reopened.secret("prod", "pki").await.unwrap().as_deref(),
        Some("very secret")
    );
    assert_eq!(reopened.credentials("cloud").await.unwrap().password, "pw");
    // A value from another in-memory store does not open here.
    store.write_raw_secret("prod", "pki", sealed).unwrap();
    let stranger = MemoryStore::new();
    // The same holder and generation: a fence the stranger admits.
    let again = stranger
        .acquire_apply_lock("prod", "a", at(0), TTL)
        .await
        .unwrap();
    assert_eq!(again.fence(), fence);
    stranger
        .create_cluster(&fence, "uid-1", "spec", "h", at(0))
        .await
        .unwrap();
    stranger.write_raw_secret("prod", "pki", sealed).unwrap();
    let error = stranger.secret("prod", "pki").await.unwrap_err();
    assert!(error.to_string().contains("in-memory state"), "{error}");
}
