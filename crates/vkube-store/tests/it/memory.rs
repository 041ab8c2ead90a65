//! What only the memory store has: snapshots standing in for a killed
//! process, and faults injected behind the `Arc<dyn StateStore>` the
//! runtime holds.

use std::sync::Arc;

use vkube_store::{Error, InjectedFault, IntentAction, MemoryStore, Operation, StateStore, Store};

use crate::journal::{start_a_clone, the_next_run_finds_what_the_crash_left};
use crate::{at, create, fence, range_pool, Backend};

/// `journal::open_intents_survive_a_crash_and_reopen` with a snapshot for
/// the killed process: the applier stops mid-clone, the next run starts
/// from what was stored and finds exactly the half-done work.
#[tokio::test]
async fn a_crash_mid_clone_restarts_from_a_snapshot() {
    let Backend::Memory { store, keys } = Backend::memory() else {
        unreachable!()
    };
    store
        .create_pools(&[range_pool("lab", 0, 10, 20)], false)
        .await
        .unwrap();
    let applier: Arc<dyn StateStore> = Arc::new(store.clone());
    let (id, generation) = start_a_clone(&applier).await;
    assert_eq!(generation, 1);
    // Killed here: no completion, no release. The next process starts
    // from what was stored.
    let restarted = Backend::Memory {
        store: store.snapshot(),
        keys,
    };
    the_next_run_finds_what_the_crash_left(&restarted, id).await;
    // The snapshot is a state of its own: the dead run's is untouched.
    let open = applier.open_intents("prod").await.unwrap();
    assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), [id]);
}

/// A test keeps a handle to inject faults while the code under test holds
/// the trait object; a refused write changes nothing.
#[tokio::test]
async fn faults_reach_the_code_holding_the_trait_object() {
    let store = MemoryStore::new();
    let runtime: Arc<dyn StateStore> = Arc::new(store.clone());
    create(&runtime, "prod", "uid-1", "spec", "h", at(0)).await;
    let prod = fence(&runtime, "prod").await;
    let before = store.write_count();
    store.fail_next(Operation::RecordIntent);
    let error = runtime
        .record_intent(
            &prod,
            None,
            IntentAction::CreateFolder,
            &serde_json::json!({}),
            at(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Database { .. }), "{error:?}");
    let fault = InjectedFault::of(&error).unwrap();
    assert_eq!(
        (fault.operation, fault.write, fault.applied),
        (Operation::RecordIntent, Some(before + 1), false)
    );
    assert!(runtime.open_intents("prod").await.unwrap().is_empty());
    assert_eq!(store.write_log().last(), Some(&Operation::RecordIntent));
}
