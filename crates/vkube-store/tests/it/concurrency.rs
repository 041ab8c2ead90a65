//! Several connections at once, as several vkube processes or server
//! replicas sharing one PostgreSQL would be (on SQLite: several opens of
//! one file). Each test starts its writers together and checks what the
//! store promises whatever the interleaving.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use vkube_store::{ClusterPhase, Error, LeaseFilter};

use crate::{at, fence, node, subnet_pool, AnyStore, Backend};

const TTL: Duration = Duration::from_secs(60);

/// Opens `count` stores (connections) to the same state.
async fn connections(b: &Backend, count: usize) -> Vec<AnyStore> {
    let mut stores = Vec::with_capacity(count);
    for _ in 0..count {
        stores.push(b.open().await);
    }
    stores
}

async fn connections_allocating_from_one_pool_never_share_an_address(b: Backend) {
    const CONNECTIONS: usize = 3;
    const TASKS: usize = 3;
    const EACH: usize = 40;
    let stores = connections(&b, CONNECTIONS).await;
    stores[0]
        .create_pools(&[subnet_pool("shared", "10.70.0.0/22", "10.70.0.1")], false)
        .await
        .unwrap();
    let start = Arc::new(Barrier::new(CONNECTIONS * TASKS));
    let mut tasks = Vec::new();
    for (c, store) in stores.iter().enumerate() {
        for t in 0..TASKS {
            let (store, start) = (store.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                // Clusters are shared between connections, nodes are not.
                let fence = fence(&store, &format!("cluster-{t}")).await;
                start.wait().await;
                let mut told = Vec::new();
                for n in 0..EACH {
                    let node = format!("c{c}-n{n}");
                    let lease = store.allocate(&fence, "shared", &node).await.unwrap();
                    // Asking again is idempotent, also under contention.
                    assert_eq!(
                        store.allocate(&fence, "shared", &node).await.unwrap(),
                        lease
                    );
                    told.push((lease.address, lease.cluster, lease.node));
                }
                told
            }));
        }
    }
    let mut addresses = BTreeSet::new();
    for task in tasks {
        for (address, cluster, node) in task.await.unwrap() {
            assert!(
                addresses.insert(address),
                "{address} handed out twice (last to {cluster}/{node})"
            );
        }
    }
    let total = CONNECTIONS * TASKS * EACH;
    assert_eq!(addresses.len(), total);
    let leases = stores[0].leases(&LeaseFilter::default()).await.unwrap();
    assert_eq!(leases.len(), total);
    // Lowest first with no releases: one block from .2 up.
    let expected: BTreeSet<String> = (2..2 + total)
        .map(|n| format!("10.70.{}.{}", n / 256, n % 256))
        .collect();
    let found: BTreeSet<String> = addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(found, expected);
}

async fn appliers_racing_for_the_lock_get_exactly_one_winner(b: Backend) {
    const APPLIERS: usize = 6;
    let stores = connections(&b, APPLIERS).await;
    for round in 0..5 {
        let cluster = format!("prod-{round}");
        let start = Arc::new(Barrier::new(APPLIERS));
        let tasks: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(n, store)| {
                let (store, start, cluster) = (store.clone(), start.clone(), cluster.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store
                        .acquire_apply_lock(&cluster, &format!("applier-{n}"), at(1_000), TTL)
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(lock) => winners.push(lock),
                Err(Error::Locked { expires_in, .. }) => assert_eq!(expires_in, TTL),
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(winners[0].generation, 1);
        let held = stores[0].apply_lock(&cluster).await.unwrap().unwrap();
        assert_eq!(held.holder, winners[0].holder);
    }
}

async fn first_opens_racing_migrate_once(b: Backend) {
    // The state is empty until the first open: these race to create it.
    let opens: Vec<_> = (0..4)
        .map(|_| async { b.open().await.schema_version().await.unwrap() })
        .collect();
    let versions = futures_util::future::join_all(opens).await;
    let latest = vkube_store::SqliteStore::latest_schema_version();
    assert!(versions.iter().all(|v| *v == latest), "{versions:?}");
    assert_eq!(
        b.strings("SELECT COUNT(*) FROM schema_version"),
        [latest.to_string()]
    );
}

async fn compare_and_set_has_one_winner_per_version(b: Backend) {
    const WRITERS: usize = 5;
    let stores = connections(&b, WRITERS).await;
    let prod = fence(&stores[0], "prod").await;
    let created = stores[0]
        .create_cluster(&prod, "uid-1", "spec", "h", at(1))
        .await
        .unwrap();
    let start = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let (store, start, prod) = (store.clone(), start.clone(), prod.clone());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .update_cluster_spec(&prod, created.version, &format!("spec {n}"), "h2", at(2))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(record) => {
                won += 1;
                assert_eq!(record.version, created.version + 1);
            }
            Err(Error::Conflict { actual, .. }) => assert_eq!(actual, created.version + 1),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        stores[0].cluster("prod").await.unwrap().version,
        created.version + 1
    );
}

async fn first_secret_writer_wins_across_connections(b: Backend) {
    const WRITERS: usize = 5;
    let stores = connections(&b, WRITERS).await;
    let prod = fence(&stores[0], "prod").await;
    stores[0]
        .create_cluster(&prod, "uid-1", "spec", "h", at(1))
        .await
        .unwrap();
    let start = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .ensure_secret("prod", "pki", &format!("key material {n}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut values = BTreeSet::new();
    for task in tasks {
        values.insert(task.await.unwrap());
    }
    assert_eq!(
        values.len(),
        1,
        "every writer uses the stored value: {values:?}"
    );
    let stored = stores[0].secret("prod", "pki").await.unwrap().unwrap();
    assert!(values.contains(&stored));
}

/// A holder writing in a loop while another connection takes its expired
/// lock over: once the takeover has returned, no write of the old holder
/// succeeds (the fence check and the takeover are ordered by the lock
/// row), and the first refusal is `LockLost`.
async fn writes_after_a_takeover_are_refused(b: Backend) {
    let stores = connections(&b, 2).await;
    let old = stores[0]
        .acquire_apply_lock("prod", "old", at(1_000), TTL)
        .await
        .unwrap();
    stores[0]
        .create_cluster(&old.fence(), "uid-1", "spec", "h", at(1_000))
        .await
        .unwrap();
    let taken = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, taken, fence) = (stores[0].clone(), taken.clone(), old.fence());
        tokio::spawn(async move {
            let mut written = 0u32;
            loop {
                let after_takeover = taken.load(Ordering::SeqCst);
                let mut record = node("prod-cp-0", "cp", 0);
                record.spec_hash = format!("h{written}");
                match store.upsert_node(&fence, &record, at(1_001)).await {
                    Ok(_) => {
                        assert!(!after_takeover, "a write after the takeover succeeded");
                        written += 1;
                    }
                    Err(Error::LockLost { now_held_by, .. }) => {
                        assert_eq!(now_held_by.as_deref(), Some("new"));
                        return written;
                    }
                    Err(other) => panic!("{other}"),
                }
            }
        })
    };
    // Let the old holder write a while, then take over.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let new = stores[1]
        .acquire_apply_lock("prod", "new", at(1_060), TTL)
        .await
        .unwrap();
    taken.store(true, Ordering::SeqCst);
    assert_eq!(new.taken_over_from.as_deref(), Some("old"));
    let written = writer.await.unwrap();
    assert!(
        written > 0,
        "the old holder never wrote before the takeover"
    );
    // The last record is one the old holder wrote before it lost the lock.
    let recorded = stores[1].node("prod", "prod-cp-0").await.unwrap().unwrap();
    assert_eq!(recorded.node.spec_hash, format!("h{}", written - 1));
    stores[1]
        .set_cluster_phase(&new.fence(), 1, ClusterPhase::Provisioning, at(1_061))
        .await
        .unwrap();
}

conformance!(
    connections_allocating_from_one_pool_never_share_an_address,
    appliers_racing_for_the_lock_get_exactly_one_winner,
    first_opens_racing_migrate_once,
    compare_and_set_has_one_winner_per_version,
    first_secret_writer_wins_across_connections,
    writes_after_a_takeover_are_refused,
);
