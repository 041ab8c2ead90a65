//! Intents and events through `Journal`, including an intent left open by
//! a process that crashed mid-action.

use std::time::Duration;

use serde_json::json;
use vkube_store::{
    ApplyLocks, ClusterStore, Error, EventLevel, IntentAction, IntentId, IntentOutcome, Journal,
    LeaseFilter, NodePhase, SqliteStore, Store,
};

use crate::{at, marked_lines, node, range_pool, spawn_child, TestState};

const CRASH_ENV: &str = "VKUBE_IT_CRASH_CHILD";

#[test]
fn intents_open_and_complete() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", "spec", "h", at(0))
        .unwrap();
    let detail = json!({"vm": "prod-cp-0", "template": "ubuntu-2404"});
    let clone = store
        .record_intent(
            "prod",
            Some("prod-cp-0"),
            IntentAction::CreateNode,
            &detail,
            at(10),
        )
        .unwrap();
    let folder = store
        .record_intent(
            "prod",
            None,
            IntentAction::CreateFolder,
            &json!(null),
            at(10),
        )
        .unwrap();
    assert!(folder > clone);

    let open = store.open_intents("prod").unwrap();
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
        .complete_intent(folder, IntentOutcome::Succeeded, at(11))
        .unwrap();
    assert_eq!(
        (done.completed_at, done.outcome),
        (Some(at(11)), Some(IntentOutcome::Succeeded))
    );
    let failed = store
        .complete_intent(
            clone,
            IntentOutcome::Failed("no space on `ds1`".into()),
            at(12),
        )
        .unwrap();
    assert_eq!(
        failed.outcome,
        Some(IntentOutcome::Failed("no space on `ds1`".into()))
    );
    // Completing again keeps the first outcome.
    let again = store
        .complete_intent(clone, IntentOutcome::Succeeded, at(13))
        .unwrap();
    assert_eq!(again, failed);
    assert!(store.open_intents("prod").unwrap().is_empty());

    let error = store
        .complete_intent(IntentId::from_raw(999), IntentOutcome::Succeeded, at(14))
        .unwrap_err();
    assert_eq!(error.to_string(), "intent 999 not found");
    assert!(matches!(
        store.record_intent("nope", None, IntentAction::CreateFolder, &json!({}), at(1)),
        Err(Error::ClusterNotFound { .. })
    ));
    assert!(matches!(
        store.open_intents("nope"),
        Err(Error::ClusterNotFound { .. })
    ));
}

#[test]
fn intent_ids_are_never_reused() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("a", "uid-a", "spec", "h", at(0))
        .unwrap();
    let first = store
        .record_intent("a", None, IntentAction::CreateFolder, &json!({}), at(1))
        .unwrap();
    store
        .remove_cluster("a", vkube_store::ForceDelete::No, at(2))
        .unwrap();
    store
        .create_cluster("a", "uid-b", "spec", "h", at(3))
        .unwrap();
    let second = store
        .record_intent("a", None, IntentAction::CreateFolder, &json!({}), at(4))
        .unwrap();
    assert!(second > first);
    // The removed cluster's intent is gone, so a stale holder cannot close
    // the new cluster's intent by accident.
    assert!(matches!(
        store.complete_intent(first, IntentOutcome::Succeeded, at(5)),
        Err(Error::IntentNotFound { .. })
    ));
}

#[test]
fn events_are_kept_in_order_newest_last() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_cluster("prod", "uid-1", "spec", "h", at(0))
        .unwrap();
    store
        .create_cluster("dev", "uid-2", "spec", "h", at(0))
        .unwrap();
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
        .unwrap();
    assert_eq!((last.level, last.at), (EventLevel::Error, at(101)));

    let events = store.events("prod", 100).unwrap();
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
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(tail, ["node 4", "no space on `ds1`"]);
    assert!(store.events("prod", 0).unwrap().is_empty());
    assert_eq!(store.events("dev", usize::MAX).unwrap().len(), 5);
    assert!(matches!(
        store.append_event("prod", at(1), EventLevel::Info, "", "m", None),
        Err(Error::Invalid {
            field: "event kind",
            ..
        })
    ));
    drop(store);
    assert_eq!(state.open().events("prod", 100).unwrap(), events);
}

/// Child side: `VKUBE_IT_CRASH_CHILD=<state path>`. Does what an applier
/// does before a clone (lock, lease, node record, intent), then dies
/// without completing anything.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let store = SqliteStore::open(path).unwrap();
    let lock = store
        .acquire_apply_lock(
            "prod",
            "crashed-applier",
            at(1_000),
            Duration::from_secs(60),
        )
        .unwrap();
    store
        .create_cluster("prod", "uid-1", "spec", "h", at(1_000))
        .unwrap();
    let lease = store.allocate("lab", "prod", "prod-cp-0").unwrap();
    let mut record = node("prod-cp-0", "cp", 0);
    record.ip = Some(lease.address);
    record.phase = NodePhase::Creating;
    store.upsert_node("prod", &record, at(1_001)).unwrap();
    let id = store
        .record_intent(
            "prod",
            Some("prod-cp-0"),
            IntentAction::CreateNode,
            &serde_json::json!({"vm": "prod-cp-0"}),
            at(1_002),
        )
        .unwrap();
    println!("INTENT {id} {}", lock.generation);
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // Killed mid-clone: no completion, no lock release, no destructors.
    std::process::abort();
}

#[test]
fn open_intents_survive_a_crash_and_reopen() {
    let state = TestState::new();
    state
        .open()
        .create_pools(&[range_pool("lab", 0, 10, 20)], false)
        .unwrap();
    let output = spawn_child(
        "journal::crash_child",
        CRASH_ENV,
        state.path().display().to_string(),
    )
    .wait_with_output()
    .unwrap();
    assert!(!output.status.success(), "the child should have aborted");
    let lines = marked_lines(&output.stdout, "INTENT ");
    assert_eq!(
        lines.len(),
        1,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let id: i64 = lines[0].split(' ').next().unwrap().parse().unwrap();

    // The next run: the lock is still the dead applier's until it expires.
    let store = state.open();
    let error = store
        .acquire_apply_lock("prod", "next-applier", at(1_030), Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(error, Error::Locked { ref holder, .. } if holder == "crashed-applier"));
    let lock = store
        .acquire_apply_lock("prod", "next-applier", at(1_060), Duration::from_secs(60))
        .unwrap();
    assert_eq!(lock.taken_over_from.as_deref(), Some("crashed-applier"));

    // What may be half-done is written down.
    let open = store.open_intents("prod").unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id.get(), id);
    assert_eq!(
        (open[0].action, open[0].node.as_deref()),
        (IntentAction::CreateNode, Some("prod-cp-0"))
    );
    assert_eq!(open[0].detail["vm"], "prod-cp-0");
    let node = store.node("prod", "prod-cp-0").unwrap().unwrap();
    assert_eq!(node.node.phase, NodePhase::Creating);
    let leases = store.leases(&LeaseFilter::default()).unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(Some(leases[0].address), node.node.ip);

    // It observes vCenter, finds the VM, and closes the intent.
    store
        .complete_intent(
            open[0].id,
            IntentOutcome::Abandoned("found VM `vm-42`".into()),
            at(1_061),
        )
        .unwrap();
    store.release_apply_lock(&lock).unwrap();
    drop(store);

    let store = state.open();
    assert!(store.open_intents("prod").unwrap().is_empty());
    let closed = store
        .complete_intent(IntentId::from_raw(id), IntentOutcome::Succeeded, at(2_000))
        .unwrap();
    assert_eq!(
        closed.outcome,
        Some(IntentOutcome::Abandoned("found VM `vm-42`".into()))
    );
    assert_eq!(closed.completed_at, Some(at(1_061)));
    // Re-allocating for the node is idempotent: no second address.
    assert_eq!(
        store.allocate("lab", "prod", "prod-cp-0").unwrap(),
        leases[0]
    );
}
