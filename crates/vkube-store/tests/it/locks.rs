//! Apply locks: exclusion within and across processes, expiry takeover,
//! renewal and release.

use std::time::Duration;

use std::process::{Command, Stdio};

use serde_json::json;
use vkube_store::{
    ClusterPhase, Error, EventLevel, Fence, ForceDelete, IntentAction, IntentOutcome, LeaseFilter,
    NodePhase, STATE_KEY_ENV,
};

use crate::{at, marked_lines, node, range_pool, Backend};

const LOCK_ENV: &str = "VKUBE_IT_LOCK_CHILD";
const LOCK_STATE_ENV: &str = "VKUBE_IT_LOCK_STATE";
const TTL: Duration = Duration::from_secs(60);

async fn one_holder_at_a_time(b: Backend) {
    let store = b.open().await;
    let lock = store
        .acquire_apply_lock("prod", "a", at(1_000), TTL)
        .await
        .unwrap();
    assert_eq!(
        (
            lock.generation,
            lock.acquired_at,
            lock.expires_at,
            lock.taken_over_from.clone()
        ),
        (1, at(1_000), at(1_060), None)
    );
    let error = store
        .acquire_apply_lock("prod", "b", at(1_010), TTL)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Locked { ref holder, expires_in, .. }
            if holder == "a" && expires_in == Duration::from_secs(50)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "cluster `prod` is being applied by `a` (its lock expires in 50s); wait for it to finish or retry later"
    );
    // Other clusters are independent.
    let other = store
        .acquire_apply_lock("dev", "b", at(1_010), TTL)
        .await
        .unwrap();
    assert_eq!(other.generation, 1);

    // The same holder asking again (a retry) renews instead of failing.
    let again = store
        .acquire_apply_lock("prod", "a", at(1_020), TTL)
        .await
        .unwrap();
    assert_eq!(
        (again.generation, again.acquired_at, again.expires_at),
        (1, at(1_000), at(1_080))
    );
    let renewed = store.renew_apply_lock(&lock, at(1_070), TTL).await.unwrap();
    assert_eq!(renewed.expires_at, at(1_130));
    assert!(matches!(
        store.acquire_apply_lock("prod", "b", at(1_100), TTL).await,
        Err(Error::Locked { .. })
    ));
    assert_eq!(store.apply_lock("prod").await.unwrap().unwrap().holder, "a");

    // Released: free for the next holder, with a new generation.
    store.release_apply_lock(&renewed).await.unwrap();
    store.release_apply_lock(&renewed).await.unwrap();
    assert_eq!(store.apply_lock("prod").await.unwrap(), None);
    let next = store
        .acquire_apply_lock("prod", "b", at(1_101), TTL)
        .await
        .unwrap();
    assert_eq!((next.generation, next.taken_over_from), (2, None));
    // A stale token cannot release the new holder's lock.
    store.release_apply_lock(&renewed).await.unwrap();
    assert_eq!(store.apply_lock("prod").await.unwrap().unwrap().holder, "b");
    assert!(matches!(
        store.acquire_apply_lock("prod", "", at(1), TTL).await,
        Err(Error::Invalid {
            field: "holder",
            ..
        })
    ));
    assert!(matches!(
        store
            .acquire_apply_lock("prod", "c", at(1), Duration::ZERO)
            .await,
        Err(Error::Invalid { .. })
    ));
}

async fn expired_lock_is_taken_over_and_the_old_holder_learns_it(b: Backend) {
    let store = b.open().await;
    let old = store
        .acquire_apply_lock("prod", "a", at(1_000), TTL)
        .await
        .unwrap();
    // At expiry exactly, it is free.
    let new = store
        .acquire_apply_lock("prod", "b", at(1_060), TTL)
        .await
        .unwrap();
    assert_eq!(
        (new.generation, new.taken_over_from.as_deref()),
        (2, Some("a"))
    );

    let error = store
        .renew_apply_lock(&old, at(1_061), TTL)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "apply lock of cluster `prod` is no longer held by `a` (now held by `b`); stop applying"
    );
    // The old holder's release changes nothing.
    store.release_apply_lock(&old).await.unwrap();
    let current = store.apply_lock("prod").await.unwrap().unwrap();
    assert_eq!((current.holder.as_str(), current.generation), ("b", 2));

    // A holder may renew after expiry as long as nobody took over.
    let late = store.renew_apply_lock(&new, at(5_000), TTL).await.unwrap();
    assert_eq!(late.expires_at, at(5_060));

    // Removing the cluster drops its lock; the holder learns on renewal.
    store
        .create_cluster(&late.fence(), "uid-1", "spec", "h", at(5_000))
        .await
        .unwrap();
    store
        .remove_cluster("prod", ForceDelete::No, at(5_001))
        .await
        .unwrap();
    assert!(matches!(
        store.renew_apply_lock(&late, at(5_002), TTL).await,
        Err(Error::LockLost {
            now_held_by: None,
            ..
        })
    ));
}

/// Child side: `VKUBE_IT_LOCK_CHILD=<cluster>|<holder>|<now>|<go file or ->|<then>`,
/// the state in `VKUBE_IT_LOCK_STATE` and its key file in `VKUBE_STATE_KEY`.
/// Waits for the go file (so children race), tries the lock, prints the
/// result, then `keep`s it, `release`s it or `abort`s (a crash).
#[tokio::test]
async fn lock_child() {
    let Ok(spec) = std::env::var(LOCK_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [cluster, holder, now, go, then] = parts[..] else {
        panic!("bad {LOCK_ENV}: {spec}");
    };
    let store = vkube_store::open(&std::env::var(LOCK_STATE_ENV).unwrap())
        .await
        .unwrap();
    if go != "-" {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !std::path::Path::new(go).exists() {
            assert!(std::time::Instant::now() < deadline, "no go file");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let now = at(now.parse().unwrap());
    match store.acquire_apply_lock(cluster, holder, now, TTL).await {
        Ok(lock) => {
            println!(
                "LOCK acquired {holder} {} {}",
                lock.generation,
                lock.taken_over_from.as_deref().unwrap_or("-")
            );
            match then {
                "release" => store.release_apply_lock(&lock).await.unwrap(),
                "abort" => {
                    use std::io::Write;
                    std::io::stdout().flush().unwrap();
                    std::process::abort();
                }
                _ => {}
            }
        }
        Err(Error::Locked {
            holder: other,
            expires_in,
            ..
        }) => println!("LOCK locked {holder} {other} {}", expires_in.as_secs()),
        Err(error) => panic!("{error}"),
    }
}

/// Starts a process that tries `cluster`'s lock as `holder` at `now`.
fn run_lock_child(
    b: &Backend,
    cluster: &str,
    holder: &str,
    now: i64,
    go: &str,
    then: &str,
) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "locks::lock_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_ENV, format!("{cluster}|{holder}|{now}|{go}|{then}"))
        .env(LOCK_STATE_ENV, b.location())
        .env(STATE_KEY_ENV, b.key_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn lock_line(child: std::process::Child) -> String {
    let output = child.wait_with_output().unwrap();
    let lines = marked_lines(&output.stdout, "LOCK ");
    assert_eq!(
        lines.len(),
        1,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    lines[0].clone()
}

async fn processes_racing_for_the_lock_get_exactly_one_winner(b: Backend) {
    const PROCESSES: usize = 6;
    let store = b.open().await;
    for round in 0..3 {
        let cluster = format!("prod-{round}");
        let go = b.key_dir().join(format!("go-{round}"));
        let children: Vec<_> = (0..PROCESSES)
            .map(|n| {
                run_lock_child(
                    &b,
                    &cluster,
                    &format!("p{n}"),
                    1_000,
                    &go.display().to_string(),
                    "keep",
                )
            })
            .collect();
        std::fs::write(&go, "").unwrap();
        let lines: Vec<String> = children.into_iter().map(lock_line).collect();
        let winners: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("acquired "))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {lines:?}");
        let winner = winners[0].split(' ').nth(1).unwrap();
        assert_eq!(winners[0], &format!("acquired {winner} 1 -"));
        for line in lines.iter().filter(|l| l.starts_with("locked ")) {
            // `locked <me> <holder> <seconds left>`
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!((fields[2], fields[3]), (winner, "60"), "{line}");
        }
        assert_eq!(
            store.apply_lock(&cluster).await.unwrap().unwrap().holder,
            winner
        );
    }
}

async fn a_crashed_holders_lock_is_taken_over_by_another_process_after_expiry(b: Backend) {
    let store = b.open().await;
    // Process A takes the lock at t=1000 and dies without releasing it.
    let a = run_lock_child(&b, "prod", "a", 1_000, "-", "abort");
    assert_eq!(lock_line(a), "acquired a 1 -");
    // Process B before expiry: refused, naming A.
    assert_eq!(
        lock_line(run_lock_child(&b, "prod", "b", 1_030, "-", "keep")),
        "locked b a 30"
    );
    // This process too.
    assert!(matches!(
        store
            .acquire_apply_lock("prod", "parent", at(1_059), TTL)
            .await,
        Err(Error::Locked { .. })
    ));
    // Process C after expiry takes over and releases cleanly.
    assert_eq!(
        lock_line(run_lock_child(&b, "prod", "c", 1_060, "-", "release")),
        "acquired c 2 a"
    );
    // Free again: this process gets it at once.
    let lock = store
        .acquire_apply_lock("prod", "parent", at(1_061), TTL)
        .await
        .unwrap();
    assert_eq!((lock.generation, lock.taken_over_from), (3, None));
    // And another process is now kept out by it.
    assert_eq!(
        lock_line(run_lock_child(&b, "prod", "d", 1_062, "-", "keep")),
        "locked d parent 59"
    );
}

async fn a_dead_holders_lock_can_be_expired_by_name(b: Backend) {
    let store = b.open().await;
    let ttl = Duration::from_secs(600);
    let dead = store
        .acquire_apply_lock("prod", "host:1:dead", at(100), ttl)
        .await
        .unwrap();
    assert!(store
        .acquire_apply_lock("prod", "host:2:live", at(101), ttl)
        .await
        .is_err());
    assert!(
        !store
            .expire_apply_lock("prod", "someone-else")
            .await
            .unwrap(),
        "only the named holder"
    );
    assert!(store.expire_apply_lock("prod", &dead.holder).await.unwrap());
    let taken = store
        .acquire_apply_lock("prod", "host:2:live", at(102), ttl)
        .await
        .unwrap();
    assert_eq!(taken.taken_over_from.as_deref(), Some("host:1:dead"));
}

/// Fencing: once a holder's lock changed hands, every fenced write of the
/// old holder fails with `LockLost` and changes nothing, while the new
/// holder's writes go through.
async fn a_holder_that_lost_its_lock_cannot_write(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("lab", 0, 10, 20)], false)
        .await
        .unwrap();
    let old = store
        .acquire_apply_lock("prod", "old", at(1_000), TTL)
        .await
        .unwrap();
    let stale = old.fence();
    let created = store
        .create_cluster(&stale, "uid-1", "spec", "h", at(1_000))
        .await
        .unwrap();
    store
        .upsert_node(&stale, &node("prod-cp-0", "cp", 0), at(1_001))
        .await
        .unwrap();
    let intent = store
        .record_intent(
            &stale,
            None,
            IntentAction::CreateFolder,
            &json!({}),
            at(1_002),
        )
        .await
        .unwrap();

    // The old holder stalls past its TTL; a new applier takes over.
    let new = store
        .acquire_apply_lock("prod", "new", at(1_060), TTL)
        .await
        .unwrap();
    assert_eq!(new.taken_over_from.as_deref(), Some("old"));
    let lost = |result: Result<(), Error>, what: &str| match result {
        Err(Error::LockLost {
            ref holder,
            ref now_held_by,
            ..
        }) => {
            assert_eq!(
                (holder.as_str(), now_held_by.as_deref()),
                ("old", Some("new")),
                "{what}"
            );
        }
        other => panic!("{what}: expected LockLost, got {other:?}"),
    };
    let mut moved = node("prod-cp-0", "cp", 0);
    moved.phase = NodePhase::Creating;
    moved.vm_id = Some("vm-1".into());
    lost(
        store.upsert_node(&stale, &moved, at(1_061)).await.map(drop),
        "upsert_node",
    );
    lost(
        store.delete_node(&stale, "prod-cp-0").await.map(drop),
        "delete_node",
    );
    lost(
        store.allocate(&stale, "lab", "prod-cp-0").await.map(drop),
        "allocate",
    );
    lost(
        store.release_node(&stale, "prod-cp-0").await.map(drop),
        "release_node",
    );
    lost(
        store
            .record_intent(
                &stale,
                None,
                IntentAction::CreateFolder,
                &json!({}),
                at(1_061),
            )
            .await
            .map(drop),
        "record_intent",
    );
    lost(
        store
            .complete_intent(&stale, intent, IntentOutcome::Succeeded, at(1_061))
            .await
            .map(drop),
        "complete_intent",
    );
    lost(
        store
            .set_cluster_phase(&stale, created.version, ClusterPhase::Ready, at(1_061))
            .await
            .map(drop),
        "set_cluster_phase",
    );
    lost(
        store
            .update_cluster_spec(&stale, created.version, "other", "h2", at(1_061))
            .await
            .map(drop),
        "update_cluster_spec",
    );
    lost(
        store.record_addons(&stale, &[]).await.map(drop),
        "record_addons",
    );
    lost(
        store
            .create_cluster(&stale, "uid-1", "spec", "h", at(1_061))
            .await
            .map(drop),
        "create_cluster",
    );
    // A made-up fence with the right holder but an old generation is no better.
    assert!(matches!(
        store
            .upsert_node(&Fence::new("prod", "new", 1), &moved, at(1_061))
            .await,
        Err(Error::LockLost { .. })
    ));
    // Nothing changed.
    let recorded = store.node("prod", "prod-cp-0").await.unwrap().unwrap();
    assert_eq!(recorded.node, node("prod-cp-0", "cp", 0));
    assert!(store
        .leases(&LeaseFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.cluster("prod").await.unwrap(), created);
    assert_eq!(store.open_intents("prod").await.unwrap().len(), 1);

    // The new holder writes; it keeps writing after its own expiry as long
    // as nobody took over, like renewal.
    let fence = new.fence();
    store.upsert_node(&fence, &moved, at(1_062)).await.unwrap();
    store
        .complete_intent(
            &fence,
            intent,
            IntentOutcome::Abandoned("checked".into()),
            at(1_062),
        )
        .await
        .unwrap();
    store.allocate(&fence, "lab", "prod-cp-0").await.unwrap();
    store
        .set_cluster_phase(&fence, created.version, ClusterPhase::Ready, at(9_000))
        .await
        .unwrap();

    // Released: its writes are refused too (nobody holds the lock now).
    store.release_apply_lock(&new).await.unwrap();
    match store.delete_node(&fence, "prod-cp-0").await {
        Err(Error::LockLost { now_held_by, .. }) => assert_eq!(now_held_by, None),
        other => panic!("expected LockLost, got {other:?}"),
    }
    // A fence for one cluster does not write another.
    let other = store
        .acquire_apply_lock("dev", "new", at(9_001), TTL)
        .await
        .unwrap();
    assert_eq!(other.generation, 1);
    assert!(matches!(
        store.upsert_node(&fence, &moved, at(9_001)).await,
        Err(Error::LockLost { .. })
    ));
    // Events are history, not a cluster's record: not fenced.
    store
        .append_event(
            "prod",
            at(9_002),
            EventLevel::Warning,
            "LockLost",
            "stopped",
            None,
        )
        .await
        .unwrap();
}

conformance!(
    one_holder_at_a_time,
    expired_lock_is_taken_over_and_the_old_holder_learns_it,
    a_dead_holders_lock_can_be_expired_by_name,
    a_holder_that_lost_its_lock_cannot_write;
    across processes: processes_racing_for_the_lock_get_exactly_one_winner,
    a_crashed_holders_lock_is_taken_over_by_another_process_after_expiry,
);
