//! Apply locks: exclusion within and across processes, expiry takeover,
//! renewal and release.

use std::time::Duration;

use vkube_store::{ApplyLocks, ClusterStore, Error, ForceDelete, SqliteStore};

use crate::{at, marked_lines, spawn_child, TestState};

const LOCK_ENV: &str = "VKUBE_IT_LOCK_CHILD";
const TTL: Duration = Duration::from_secs(60);

#[test]
fn one_holder_at_a_time() {
    let state = TestState::new();
    let store = state.open();
    let lock = store
        .acquire_apply_lock("prod", "a", at(1_000), TTL)
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
        .unwrap();
    assert_eq!(other.generation, 1);

    // The same holder asking again (a retry) renews instead of failing.
    let again = store
        .acquire_apply_lock("prod", "a", at(1_020), TTL)
        .unwrap();
    assert_eq!(
        (again.generation, again.acquired_at, again.expires_at),
        (1, at(1_000), at(1_080))
    );
    let renewed = store.renew_apply_lock(&lock, at(1_070), TTL).unwrap();
    assert_eq!(renewed.expires_at, at(1_130));
    assert!(matches!(
        store.acquire_apply_lock("prod", "b", at(1_100), TTL),
        Err(Error::Locked { .. })
    ));
    assert_eq!(store.apply_lock("prod").unwrap().unwrap().holder, "a");

    // Released: free for the next holder, with a new generation.
    store.release_apply_lock(&renewed).unwrap();
    store.release_apply_lock(&renewed).unwrap();
    assert_eq!(store.apply_lock("prod").unwrap(), None);
    let next = store
        .acquire_apply_lock("prod", "b", at(1_101), TTL)
        .unwrap();
    assert_eq!((next.generation, next.taken_over_from), (2, None));
    // A stale token cannot release the new holder's lock.
    store.release_apply_lock(&renewed).unwrap();
    assert_eq!(store.apply_lock("prod").unwrap().unwrap().holder, "b");
    assert!(matches!(
        store.acquire_apply_lock("prod", "", at(1), TTL),
        Err(Error::Invalid {
            field: "holder",
            ..
        })
    ));
    assert!(matches!(
        store.acquire_apply_lock("prod", "c", at(1), Duration::ZERO),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn expired_lock_is_taken_over_and_the_old_holder_learns_it() {
    let state = TestState::new();
    let store = state.open();
    let old = store
        .acquire_apply_lock("prod", "a", at(1_000), TTL)
        .unwrap();
    // At expiry exactly, it is free.
    let new = store
        .acquire_apply_lock("prod", "b", at(1_060), TTL)
        .unwrap();
    assert_eq!(
        (new.generation, new.taken_over_from.as_deref()),
        (2, Some("a"))
    );

    let error = store.renew_apply_lock(&old, at(1_061), TTL).unwrap_err();
    assert_eq!(
        error.to_string(),
        "apply lock of cluster `prod` is no longer held by `a` (now held by `b`); stop applying"
    );
    // The old holder's release changes nothing.
    store.release_apply_lock(&old).unwrap();
    let current = store.apply_lock("prod").unwrap().unwrap();
    assert_eq!((current.holder.as_str(), current.generation), ("b", 2));

    // A holder may renew after expiry as long as nobody took over.
    let late = store.renew_apply_lock(&new, at(5_000), TTL).unwrap();
    assert_eq!(late.expires_at, at(5_060));

    // Removing the cluster drops its lock; the holder learns on renewal.
    store
        .create_cluster("prod", "uid-1", "spec", "h", at(5_000))
        .unwrap();
    store
        .remove_cluster("prod", ForceDelete::No, at(5_001))
        .unwrap();
    assert!(matches!(
        store.renew_apply_lock(&late, at(5_002), TTL),
        Err(Error::LockLost {
            now_held_by: None,
            ..
        })
    ));
}

/// Child side: `VKUBE_IT_LOCK_CHILD=<path>|<holder>|<now>|<go file or ->|<then>`.
/// Waits for the go file (so children race), tries the lock, prints the
/// result, then `keep`s it, `release`s it or `abort`s (a crash).
#[test]
fn lock_child() {
    let Ok(spec) = std::env::var(LOCK_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [path, holder, now, go, then] = parts[..] else {
        panic!("bad {LOCK_ENV}: {spec}");
    };
    let store = SqliteStore::open(path).unwrap();
    if go != "-" {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !std::path::Path::new(go).exists() {
            assert!(std::time::Instant::now() < deadline, "no go file");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let now = at(now.parse().unwrap());
    match store.acquire_apply_lock("prod", holder, now, TTL) {
        Ok(lock) => {
            println!(
                "LOCK acquired {holder} {} {}",
                lock.generation,
                lock.taken_over_from.as_deref().unwrap_or("-")
            );
            match then {
                "release" => store.release_apply_lock(&lock).unwrap(),
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

fn run_lock_child(
    state: &TestState,
    holder: &str,
    now: i64,
    go: &str,
    then: &str,
) -> std::process::Child {
    spawn_child(
        "locks::lock_child",
        LOCK_ENV,
        format!("{}|{holder}|{now}|{go}|{then}", state.path().display()),
    )
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

#[test]
fn processes_racing_for_the_lock_get_exactly_one_winner() {
    const PROCESSES: usize = 6;
    for round in 0..3 {
        let state = TestState::new();
        drop(state.open());
        let go = state.dir.path().join("go");
        let children: Vec<_> = (0..PROCESSES)
            .map(|n| {
                run_lock_child(
                    &state,
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
            state.open().apply_lock("prod").unwrap().unwrap().holder,
            winner
        );
    }
}

#[test]
fn a_crashed_holders_lock_is_taken_over_by_another_process_after_expiry() {
    let state = TestState::new();
    drop(state.open());
    // Process A takes the lock at t=1000 and dies without releasing it.
    let a = run_lock_child(&state, "a", 1_000, "-", "abort");
    assert_eq!(lock_line(a), "acquired a 1 -");
    // Process B before expiry: refused, naming A.
    assert_eq!(
        lock_line(run_lock_child(&state, "b", 1_030, "-", "keep")),
        "locked b a 30"
    );
    // This process too.
    let store = state.open();
    assert!(matches!(
        store.acquire_apply_lock("prod", "parent", at(1_059), TTL),
        Err(Error::Locked { .. })
    ));
    // Process C after expiry takes over and releases cleanly.
    assert_eq!(
        lock_line(run_lock_child(&state, "c", 1_060, "-", "release")),
        "acquired c 2 a"
    );
    // Free again: this process gets it at once.
    let lock = store
        .acquire_apply_lock("prod", "parent", at(1_061), TTL)
        .unwrap();
    assert_eq!((lock.generation, lock.taken_over_from), (3, None));
    // And another process is now kept out by it.
    assert_eq!(
        lock_line(run_lock_child(&state, "d", 1_062, "-", "keep")),
        "locked d parent 59"
    );
}

#[test]
fn a_dead_holders_lock_can_be_expired_by_name() {
    let state = TestState::new();
    let store = state.open();
    let ttl = Duration::from_secs(600);
    let dead = store
        .acquire_apply_lock("prod", "host:1:dead", at(100), ttl)
        .unwrap();
    assert!(store
        .acquire_apply_lock("prod", "host:2:live", at(101), ttl)
        .is_err());
    assert!(
        !store.expire_apply_lock("prod", "someone-else").unwrap(),
        "only the named holder"
    );
    assert!(store.expire_apply_lock("prod", &dead.holder).unwrap());
    let taken = store
        .acquire_apply_lock("prod", "host:2:live", at(102), ttl)
        .unwrap();
    assert_eq!(taken.taken_over_from.as_deref(), Some("host:1:dead"));
}
