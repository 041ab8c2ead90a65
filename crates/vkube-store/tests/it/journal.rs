//! Intents and events through `Journal`, including an intent left open by
//! a process that crashed mid-action.

use std::time::Duration;

use serde_json::json;
use vkube_store::{
    Error, EventLevel, IntentAction, IntentId, IntentOutcome, LeaseFilter, NodePhase, STATE_KEY_ENV,
};

use std::process::{Command, Stdio};

use crate::{at, create, fence, marked_lines, node, range_pool, AnyStore, Backend};

const CRASH_ENV: &str = "VKUBE_IT_CRASH_CHILD";

async fn intents_open_and_complete(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", "spec", "h", at(0)).await;
    let detail = json!({"vm": "prod-cp-0", "template": "ubuntu-2404"});
    let clone = store
        .record_intent(
            &fence(&store, "prod").await,
            Some("prod-cp-0"),
            IntentAction::CreateNode,
            &detail,
            at(10),
        )
        .await
        .unwrap();
    let folder = store
        .record_intent(
            &fence(&store, "prod").await,
            None,
            IntentAction::CreateFolder,
            &json!(null),
            at(10),
        )
        .await
        .unwrap();
    assert!(folder > clone);

    let open = store.open_intents("prod").await.unwrap();
    assert_eq!(
        open.iter().map(|i| i.id).collect::<Vec<_>>(),
        [clone, folder]
    );
    assert_eq!(open[0].node.as_deref(), Some("prod-cp-0"));
    assert_eq!(open[0].action, IntentAction::CreateNode);
    assert_eq!(open[0].detail, detail);
    assert_eq!(
        (
            open[0].started_at,
            open[0].completed_at,
            open[0].outcome.clone()
        ),
        (at(10), None, None)
    );

    let done = store
        .complete_intent(
            &fence(&store, "prod").await,
            folder,
            IntentOutcome::Succeeded,
            at(11),
        )
        .await
        .unwrap();
    assert_eq!(
        (done.completed_at, done.outcome),
        (Some(at(11)), Some(IntentOutcome::Succeeded))
    );
    let failed = store
        .complete_intent(
            &fence(&store, "prod").await,
            clone,
            IntentOutcome::Failed("no space on `ds1`".into()),
            at(12),
        )
        .await
        .unwrap();
    assert_eq!(
        failed.outcome,
        Some(IntentOutcome::Failed("no space on `ds1`".into()))
    );
    // Completing again keeps the first outcome.
    let again = store
        .complete_intent(
            &fence(&store, "prod").await,
            clone,
            IntentOutcome::Succeeded,
            at(13),
        )
        .await
        .unwrap();
    assert_eq!(again, failed);
    assert!(store.open_intents("prod").await.unwrap().is_empty());

    let error = store
        .complete_intent(
            &fence(&store, "prod").await,
            IntentId::from_raw(999),
            IntentOutcome::Succeeded,
            at(14),
        )
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "intent 999 not found");
    assert!(matches!(
        store
            .record_intent(
                &fence(&store, "nope").await,
                None,
                IntentAction::CreateFolder,
                &json!({}),
                at(1)
            )
            .await,
        Err(Error::ClusterNotFound { .. })
    ));
    assert!(matches!(
        store.open_intents("nope").await,
        Err(Error::ClusterNotFound { .. })
    ));
}

async fn intent_ids_are_never_reused(b: Backend) {
    let store = b.open().await;
    create(&store, "a", "uid-a", "spec", "h", at(0)).await;
    let first = store
        .record_intent(
            &fence(&store, "a").await,
            None,
            IntentAction::CreateFolder,
            &json!({}),
            at(1),
        )
        .await
        .unwrap();
    store
        .remove_cluster("a", vkube_store::ForceDelete::No, at(2))
        .await
        .unwrap();
    create(&store, "a", "uid-b", "spec", "h", at(3)).await;
    let second = store
        .record_intent(
            &fence(&store, "a").await,
            None,
            IntentAction::CreateFolder,
            &json!({}),
            at(4),
        )
        .await
        .unwrap();
    assert!(second > first);
    // The removed cluster's intent is gone, so a stale holder cannot close
    // the new cluster's intent by accident.
    assert!(matches!(
        store
            .complete_intent(
                &fence(&store, "a").await,
                first,
                IntentOutcome::Succeeded,
                at(5)
            )
            .await,
        Err(Error::IntentNotFound { .. })
    ));
}

async fn events_are_kept_in_order_newest_last(b: Backend) {
    let store = b.open().await;
    create(&store, "prod", "uid-1", "spec", "h", at(0)).await;
    create(&store, "dev", "uid-2", "spec", "h", at(0)).await;
    // Several in one second: the sequence keeps their order.
    for n in 0..5 {
        store
            .append_event(
                "prod",
                at(100),
                EventLevel::Info,
                "NodeCreated",
                &format!("node {n}"),
                Some(&format!("prod-w-{n}")),
            )
            .await
            .unwrap();
        store
            .append_event(
                "dev",
                at(100),
                EventLevel::Info,
                "Noise",
                "other cluster",
                None,
            )
            .await
            .unwrap();
    }
    let last = store
        .append_event(
            "prod",
            at(101),
            EventLevel::Error,
            "CloneFailed",
            "no space on `ds1`",
            Some("prod-w-5"),
        )
        .await
        .unwrap();
    assert_eq!((last.level, last.at), (EventLevel::Error, at(101)));

    let events = store.events("prod", 100).await.unwrap();
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "node 0",
            "node 1",
            "node 2",
            "node 3",
            "node 4",
            "no space on `ds1`"
        ]
    );
    assert!(events
        .windows(2)
        .all(|pair| pair[0].sequence < pair[1].sequence));
    assert_eq!(events.last().unwrap(), &last);
    assert_eq!(events[0].node.as_deref(), Some("prod-w-0"));

    // A limit keeps the newest, still newest last.
    let tail: Vec<String> = store
        .events("prod", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(tail, ["node 4", "no space on `ds1`"]);
    assert!(store.events("prod", 0).await.unwrap().is_empty());
    assert_eq!(store.events("dev", usize::MAX).await.unwrap().len(), 5);
    assert!(matches!(
        store
            .append_event("prod", at(1), EventLevel::Info, "", "m", None)
            .await,
        Err(Error::Invalid {
            field: "event kind",
            ..
        })
    ));
    drop(store);
    assert_eq!(b.open().await.events("prod", 100).await.unwrap(), events);
}

/// What an applier does before a clone (lock, cluster, lease, node record,
/// intent), with nothing completed: the state a crash mid-clone leaves.
/// Returns the intent and the lock's generation.
pub async fn start_a_clone(store: &AnyStore) -> (IntentId, u64) {
    let lock = store
        .acquire_apply_lock(
            "prod",
            "crashed-applier",
            at(1_000),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let fence = lock.fence();
    store
        .create_cluster(&fence, "uid-1", "spec", "h", at(1_000))
        .await
        .unwrap();
    let lease = store.allocate(&fence, "lab", "prod-cp-0").await.unwrap();
    let mut record = node("prod-cp-0", "cp", 0);
    record.ip = Some(lease.address);
    record.phase = NodePhase::Creating;
    store.upsert_node(&fence, &record, at(1_001)).await.unwrap();
    let id = store
        .record_intent(
            &fence,
            Some("prod-cp-0"),
            IntentAction::CreateNode,
            &serde_json::json!({"vm": "prod-cp-0"}),
            at(1_002),
        )
        .await
        .unwrap();
    (id, lock.generation)
}

/// Child side: `VKUBE_IT_CRASH_CHILD=<state path or URL>`, the key file
/// in `VKUBE_STATE_KEY`. Opens the state through `vkube_store::open`, does
/// what an applier does before a clone (lock, lease, node record, intent),
/// then dies without completing anything.
#[tokio::test]
async fn crash_child() {
    let Ok(state) = std::env::var(CRASH_ENV) else {
        return;
    };
    let store = vkube_store::open(&state).await.unwrap();
    let (id, generation) = start_a_clone(&store).await;
    println!("INTENT {id} {generation}");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // Killed mid-clone: no completion, no lock release, no destructors.
    std::process::abort();
}

async fn open_intents_survive_a_crash_and_reopen(b: Backend) {
    b.open()
        .await
        .create_pools(&[range_pool("lab", 0, 10, 20)], false)
        .await
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "journal::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, b.location())
        .env(STATE_KEY_ENV, b.key_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let output = child.output().unwrap();
    assert!(!output.status.success(), "the child should have aborted");
    let lines = marked_lines(&output.stdout, "INTENT ");
    assert_eq!(
        lines.len(),
        1,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let id: i64 = lines[0].split(' ').next().unwrap().parse().unwrap();
    the_next_run_finds_what_the_crash_left(&b, IntentId::from_raw(id)).await;
}

/// After [`start_a_clone`] and a crash: the next applier waits for the
/// dead one's lock to expire, finds the open intent, node record and
/// lease, and closes the intent; reopened, all of it stays.
pub async fn the_next_run_finds_what_the_crash_left(b: &Backend, id: IntentId) {
    // The next run: the lock is still the dead applier's until it expires.
    let store = b.open().await;
    let error = store
        .acquire_apply_lock("prod", "next-applier", at(1_030), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Locked { ref holder, .. } if holder == "crashed-applier"));
    let lock = store
        .acquire_apply_lock("prod", "next-applier", at(1_060), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lock.taken_over_from.as_deref(), Some("crashed-applier"));

    // What may be half-done is written down.
    let open = store.open_intents("prod").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, id);
    assert_eq!(
        (open[0].action, open[0].node.as_deref()),
        (IntentAction::CreateNode, Some("prod-cp-0"))
    );
    assert_eq!(open[0].detail["vm"], "prod-cp-0");
    let node = store.node("prod", "prod-cp-0").await.unwrap().unwrap();
    assert_eq!(node.node.phase, NodePhase::Creating);
    let leases = store.leases(&LeaseFilter::default()).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(Some(leases[0].address), node.node.ip);

    // It observes vCenter, finds the VM, and closes the intent.
    store
        .complete_intent(
            &lock.fence(),
            open[0].id,
            IntentOutcome::Abandoned("found VM `vm-42`".into()),
            at(1_061),
        )
        .await
        .unwrap();
    store.release_apply_lock(&lock).await.unwrap();
    drop(store);

    let store = b.open().await;
    assert!(store.open_intents("prod").await.unwrap().is_empty());
    let prod = fence(&store, "prod").await;
    let closed = store
        .complete_intent(&prod, id, IntentOutcome::Succeeded, at(2_000))
        .await
        .unwrap();
    assert_eq!(
        closed.outcome,
        Some(IntentOutcome::Abandoned("found VM `vm-42`".into()))
    );
    assert_eq!(closed.completed_at, Some(at(1_061)));
    // Re-allocating for the node is idempotent: no second address.
    assert_eq!(
        store.allocate(&prod, "lab", "prod-cp-0").await.unwrap(),
        leases[0]
    );
}

conformance!(
    intents_open_and_complete,
    intent_ids_are_never_reused,
    events_are_kept_in_order_newest_last;
    across processes: open_intents_survive_a_crash_and_reopen,
);
