//! Pools and leases through the `Store` trait.

use vkube_store::{Error, Fence, LeaseFilter};

use crate::{fence, range_pool, subnet_pool, Backend, TESTER};

async fn create_list_show_delete(b: Backend) {
    let store = b.open().await;
    let records = store
        .create_pools(
            &[range_pool("b", 1, 10, 20), range_pool("a", 0, 10, 20)],
            false,
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    let names: Vec<String> = store
        .pools()
        .await
        .unwrap()
        .iter()
        .map(|r| r.pool.name().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let record = store.pool("a").await.unwrap();
    assert_eq!(
        (record.allocated, record.capacity, record.owner.clone()),
        (0, 11, None)
    );

    assert!(matches!(
        store
            .create_pools(&[range_pool("a", 5, 10, 20)], false)
            .await,
        Err(Error::PoolExists { .. })
    ));
    assert!(store.delete_pool("a", false).await.unwrap().is_empty());
    assert!(matches!(
        store.pool("a").await,
        Err(Error::PoolNotFound { .. })
    ));
    assert!(matches!(
        store.delete_pool("a", false).await,
        Err(Error::PoolNotFound { .. })
    ));
}

async fn create_is_all_or_nothing_and_checks_overlap(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .await
        .unwrap();
    let error = store
        .create_pools(
            &[range_pool("new", 7, 10, 20), range_pool("b", 0, 15, 30)],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "pool `b` overlaps pool `a` at 10.0.0.15-10.0.0.20 (pass `--allow-overlap` if this is intended)"
    );
    assert!(
        matches!(store.pool("new").await, Err(Error::PoolNotFound { .. })),
        "rolled back"
    );
    store
        .create_pools(&[range_pool("b", 0, 15, 30)], true)
        .await
        .unwrap();
    assert_eq!(store.pools().await.unwrap().len(), 2);
}

async fn allocation_is_lowest_first_and_idempotent(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .await
        .unwrap();
    let first = store
        .allocate(&fence(&store, "prod").await, "a", "cp-0")
        .await
        .unwrap();
    assert_eq!(first.address.to_string(), "10.0.0.10");
    assert_eq!(first.prefix, 24);
    assert_eq!(first.gateway.to_string(), "10.0.0.1");
    assert_eq!(first.name_servers[0].to_string(), "192.0.2.53");
    assert_eq!(first.search_domains, ["lab.example.com"]);
    assert_eq!(
        store
            .allocate(&fence(&store, "prod").await, "a", "cp-0")
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        store
            .allocate(&fence(&store, "prod").await, "a", "cp-1")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.0.0.11"
    );
    // Same node name in another cluster is another owner.
    assert_eq!(
        store
            .allocate(&fence(&store, "dev").await, "a", "cp-0")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.0.0.12"
    );
    assert_eq!(store.pool("a").await.unwrap().allocated, 3);
}

async fn exhaustion_names_pool_and_counts(b: Backend) {
    let store = b.open().await;
    // /29: .0 network, .7 broadcast, .1 gateway, so .2-.6 = 5 addresses.
    store
        .create_pools(&[subnet_pool("tiny", "10.9.0.0/29", "10.9.0.1")], false)
        .await
        .unwrap();
    for node in 0..5 {
        store
            .allocate(&fence(&store, "c").await, "tiny", &format!("n{node}"))
            .await
            .unwrap();
    }
    let error = store
        .allocate(&fence(&store, "c").await, "tiny", "n5")
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        Error::PoolFull {
            used: 5,
            total: 5,
            ..
        }
    ));
    assert_eq!(error.to_string(), "pool `tiny` is full: 5 of 5 in use");
    // An existing lease is still returned when full.
    assert_eq!(
        store
            .allocate(&fence(&store, "c").await, "tiny", "n0")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.9.0.2"
    );
    // Releasing one frees exactly that address for the next node.
    store
        .release_node(&fence(&store, "c").await, "n2")
        .await
        .unwrap();
    assert_eq!(
        store
            .allocate(&fence(&store, "c").await, "tiny", "n5")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.9.0.4"
    );
}

async fn restricted_pool_belongs_to_first_cluster(b: Backend) {
    let store = b.open().await;
    let mut raw = range_pool("r", 0, 10, 20).to_raw();
    raw.restrict_to_cluster = true;
    store
        .create_pools(&[raw.validate().unwrap()], false)
        .await
        .unwrap();
    store
        .allocate(&fence(&store, "prod").await, "r", "cp-0")
        .await
        .unwrap();
    assert_eq!(
        store.pool("r").await.unwrap().owner.as_deref(),
        Some("prod")
    );
    let error = store
        .allocate(&fence(&store, "dev").await, "r", "cp-0")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "pool `r` is restricted to cluster `prod`; cluster `dev` cannot allocate from it"
    );
    store
        .allocate(&fence(&store, "prod").await, "r", "cp-1")
        .await
        .unwrap();
    // Releasing nodes keeps the claim; releasing the cluster gives it up.
    store
        .release_node(&fence(&store, "prod").await, "cp-0")
        .await
        .unwrap();
    store
        .release_node(&fence(&store, "prod").await, "cp-1")
        .await
        .unwrap();
    assert!(matches!(
        store.allocate(&fence(&store, "dev").await, "r", "x").await,
        Err(Error::PoolRestricted { .. })
    ));
    store.release_cluster("prod").await.unwrap();
    assert_eq!(store.pool("r").await.unwrap().owner, None);
    store
        .allocate(&fence(&store, "dev").await, "r", "cp-0")
        .await
        .unwrap();
    assert_eq!(store.pool("r").await.unwrap().owner.as_deref(), Some("dev"));
}

async fn unrestricted_pool_is_shared(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("s", 0, 10, 20)], false)
        .await
        .unwrap();
    store
        .allocate(&fence(&store, "prod").await, "s", "cp-0")
        .await
        .unwrap();
    store
        .allocate(&fence(&store, "dev").await, "s", "cp-0")
        .await
        .unwrap();
    assert_eq!(store.pool("s").await.unwrap().owner, None);
}

async fn release_per_node_and_per_cluster(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(
            &[range_pool("a", 0, 10, 20), range_pool("b", 1, 10, 20)],
            false,
        )
        .await
        .unwrap();
    for node in ["cp-0", "cp-1", "w-0"] {
        store
            .allocate(&fence(&store, "prod").await, "a", node)
            .await
            .unwrap();
    }
    store
        .allocate(&fence(&store, "prod").await, "b", "cp-0")
        .await
        .unwrap();
    store
        .allocate(&fence(&store, "dev").await, "a", "cp-0")
        .await
        .unwrap();

    let released = store
        .release_node(&fence(&store, "prod").await, "cp-0")
        .await
        .unwrap();
    assert_eq!(released.len(), 2, "one lease in each pool");
    assert!(
        store
            .release_node(&fence(&store, "prod").await, "cp-0")
            .await
            .unwrap()
            .is_empty(),
        "retry is a no-op"
    );

    let prod = LeaseFilter {
        cluster: Some("prod".into()),
        ..LeaseFilter::default()
    };
    let nodes: Vec<String> = store
        .leases(&prod)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.node)
        .collect();
    assert_eq!(nodes, ["cp-1", "w-0"]);

    assert_eq!(store.release_cluster("prod").await.unwrap().len(), 2);
    assert!(store.leases(&prod).await.unwrap().is_empty());
    let all = store.leases(&LeaseFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].cluster, "dev");
}

async fn delete_refuses_while_allocated_unless_forced(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .await
        .unwrap();
    store
        .allocate(&fence(&store, "prod").await, "a", "cp-0")
        .await
        .unwrap();
    store
        .allocate(&fence(&store, "prod").await, "a", "cp-1")
        .await
        .unwrap();
    let error = store.delete_pool("a", false).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "pool `a` has 2 allocated address(es); release them first or pass `--force`"
    );
    assert_eq!(store.delete_pool("a", true).await.unwrap().len(), 2);
    assert!(store
        .leases(&LeaseFilter::default())
        .await
        .unwrap()
        .is_empty());
}

async fn leases_listed_by_pool_in_address_order(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("a", 0, 2, 250)], false)
        .await
        .unwrap();
    for node in 0..12 {
        store
            .allocate(&fence(&store, "c").await, "a", &format!("n{node}"))
            .await
            .unwrap();
    }
    let filter = LeaseFilter {
        pool: Some(vkube_core::ipam::PoolName::new("a").unwrap()),
        cluster: None,
    };
    let addresses: Vec<String> = store
        .leases(&filter)
        .await
        .unwrap()
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    assert_eq!(addresses.first().unwrap(), "10.0.0.2");
    assert_eq!(addresses.last().unwrap(), "10.0.0.13");
    assert!(addresses.windows(2).all(|w| w[0] != w[1]));
    let missing = LeaseFilter {
        pool: Some(vkube_core::ipam::PoolName::new("zz").unwrap()),
        cluster: None,
    };
    assert!(matches!(
        store.leases(&missing).await,
        Err(Error::PoolNotFound { .. })
    ));
}

async fn ipv6_range_pool(b: Backend) {
    let store = b.open().await;
    let pool = vkube_core::ipam::RawIpPool {
        name: "v6".into(),
        range: Some(vkube_core::ipam::RawRange {
            start: "2001:db8::".into(),
            end: "2001:db8::3".into(),
        }),
        prefix: Some(64),
        gateway: Some("2001:db8::1".into()),
        name_servers: vec!["2001:db8::53".into()],
        ..Default::default()
    }
    .validate()
    .unwrap();
    store.create_pools(&[pool], false).await.unwrap();
    let c = fence(&store, "c").await;
    let mut addresses = Vec::new();
    for n in 0..2 {
        let lease = store.allocate(&c, "v6", &format!("n{n}")).await.unwrap();
        addresses.push(lease.address.to_string());
    }
    assert_eq!(addresses, ["2001:db8::2", "2001:db8::3"]);
    assert_eq!(
        store
            .allocate(&fence(&store, "c").await, "v6", "n9")
            .await
            .unwrap_err()
            .to_string(),
        "pool `v6` is full: 2 of 2 in use"
    );
}

async fn rejects_empty_owner_names(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .await
        .unwrap();
    assert_eq!(
        store
            .allocate(&Fence::new("", TESTER, 1), "a", "n")
            .await
            .unwrap_err()
            .to_string(),
        "cluster name is required"
    );
    assert!(matches!(
        store.allocate(&fence(&store, "c").await, "a", "").await,
        Err(Error::Invalid { field: "node", .. })
    ));
}

/// Tasks sharing one store (one SQLite connection, or a pool of
/// PostgreSQL connections) never get the same address.
async fn tasks_sharing_one_store(b: Backend) {
    let store = b.open().await;
    store
        .create_pools(&[range_pool("a", 0, 2, 254)], false)
        .await
        .unwrap();
    let fence = fence(&store, "c").await;
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let (store, fence) = (store.clone(), fence.clone());
            tokio::spawn(async move {
                let mut addresses = Vec::new();
                for n in 0..50 {
                    let node = format!("t{task}-n{n}");
                    addresses.push(store.allocate(&fence, "a", &node).await.unwrap().address);
                }
                addresses
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200);
}

/// The low-water mark only speeds up the search: with it cleared, the
/// chunked scan over many leases still finds the lowest free address, and
/// releases below the mark are reused lowest first.
async fn low_water_mark_is_only_a_hint(b: Backend) {
    let store = b.open().await;
    let mut raw = subnet_pool("big", "10.60.0.0/22", "10.60.0.1").to_raw();
    raw.exclude = vec!["10.60.1.0-10.60.1.9".into()];
    store
        .create_pools(&[raw.validate().unwrap()], false)
        .await
        .unwrap();
    let c = fence(&store, "c").await;
    let mut addresses = Vec::new();
    for n in 0..600 {
        let lease = store.allocate(&c, "big", &format!("n{n}")).await.unwrap();
        addresses.push(lease.address);
    }
    assert_eq!(addresses[0].to_string(), "10.60.0.2");
    assert_eq!(
        addresses[254].to_string(),
        "10.60.1.10",
        "skips the exclusion"
    );
    assert_eq!(addresses[599].to_string(), "10.60.2.99");

    b.execute("UPDATE ip_pools SET low_water_key = NULL");
    assert_eq!(
        store
            .allocate(&fence(&store, "c").await, "big", "n600")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.60.2.100"
    );

    store
        .release_node(&fence(&store, "c").await, "n400")
        .await
        .unwrap();
    store
        .release_node(&fence(&store, "c").await, "n3")
        .await
        .unwrap();
    assert_eq!(
        store
            .allocate(&fence(&store, "c").await, "big", "a")
            .await
            .unwrap()
            .address,
        addresses[3]
    );
    assert_eq!(
        store
            .allocate(&fence(&store, "c").await, "big", "b")
            .await
            .unwrap()
            .address,
        addresses[400]
    );
    assert_eq!(
        store
            .allocate(&fence(&store, "c").await, "big", "d")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.60.2.101"
    );
}

/// Exact addresses (a cluster taken over from its VMs gets back what its
/// nodes use): idempotent, refused when taken, held otherwise, or not the
/// pool's to give; restricted pools are claimed as by `allocate`, and
/// `allocate` skips an exact lease.
async fn exact_addresses_are_leased_once(b: Backend) {
    let store = b.open().await;
    let mut restricted = range_pool("r", 1, 10, 20).to_raw();
    restricted.restrict_to_cluster = true;
    store
        .create_pools(
            &[range_pool("lab", 0, 10, 20), restricted.validate().unwrap()],
            false,
        )
        .await
        .unwrap();
    let prod = fence(&store, "prod").await;
    let address = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
    let lease = store
        .allocate_address(&prod, "lab", "cp-0", address("10.0.0.12"))
        .await
        .unwrap();
    assert_eq!(
        (lease.address, lease.node.as_str(), lease.cluster.as_str()),
        (address("10.0.0.12"), "cp-0", "prod")
    );
    assert_eq!(
        store
            .allocate_address(&prod, "lab", "cp-0", address("10.0.0.12"))
            .await
            .unwrap(),
        lease,
        "asking again returns the same lease"
    );
    let refused = |error: Error| match error {
        Error::AddressUnavailable { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    let dev = fence(&store, "dev").await;
    let error = store
        .allocate_address(&dev, "lab", "cp-0", address("10.0.0.12"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "address 10.0.0.12 of pool `lab` cannot be leased to node `cp-0`: it is leased to node `cp-0` of cluster `prod`"
    );
    assert!(refused(
        store
            .allocate_address(&prod, "lab", "cp-0", address("10.0.0.13"))
            .await
            .unwrap_err()
    )
    .contains("holds 10.0.0.12 of this pool already"));
    for outside in ["10.0.0.1", "10.0.0.9", "10.0.0.21", "10.0.9.12"] {
        assert!(
            refused(
                store
                    .allocate_address(&prod, "lab", "cp-1", address(outside))
                    .await
                    .unwrap_err()
            )
            .contains("does not hand it out"),
            "{outside}"
        );
    }
    // The lowest free address goes around the exact lease.
    store
        .allocate_address(&prod, "lab", "cp-1", address("10.0.0.10"))
        .await
        .unwrap();
    let next = store.allocate(&prod, "lab", "cp-2").await.unwrap();
    assert_eq!(next.address, address("10.0.0.11"));
    let next = store.allocate(&prod, "lab", "cp-3").await.unwrap();
    assert_eq!(next.address, address("10.0.0.13"));
    // A restricted pool is claimed by its first exact lease too.
    store
        .allocate_address(&dev, "r", "w-0", address("10.0.1.15"))
        .await
        .unwrap();
    assert_eq!(store.pool("r").await.unwrap().owner.as_deref(), Some("dev"));
    assert!(matches!(
        store
            .allocate_address(&prod, "r", "w-0", address("10.0.1.16"))
            .await,
        Err(Error::PoolRestricted { .. })
    ));
    assert!(matches!(
        store
            .allocate_address(&prod, "nope", "w-0", address("10.0.1.16"))
            .await,
        Err(Error::PoolNotFound { .. })
    ));
    // Fenced like every allocation.
    let stale = Fence::new("prod", "someone-else", 1);
    assert!(matches!(
        store
            .allocate_address(&stale, "lab", "cp-9", address("10.0.0.19"))
            .await,
        Err(Error::LockLost { .. })
    ));
    let leased: Vec<String> = store
        .leases(&LeaseFilter {
            pool: None,
            cluster: Some("prod".into()),
        })
        .await
        .unwrap()
        .iter()
        .map(|l| format!("{} {}", l.node, l.address))
        .collect();
    assert_eq!(
        leased,
        [
            "cp-1 10.0.0.10",
            "cp-2 10.0.0.11",
            "cp-0 10.0.0.12",
            "cp-3 10.0.0.13"
        ]
    );
}

conformance!(
    create_list_show_delete,
    create_is_all_or_nothing_and_checks_overlap,
    allocation_is_lowest_first_and_idempotent,
    exhaustion_names_pool_and_counts,
    restricted_pool_belongs_to_first_cluster,
    unrestricted_pool_is_shared,
    release_per_node_and_per_cluster,
    delete_refuses_while_allocated_unless_forced,
    leases_listed_by_pool_in_address_order,
    ipv6_range_pool,
    rejects_empty_owner_names,
    tasks_sharing_one_store,
    low_water_mark_is_only_a_hint,
    exact_addresses_are_leased_once
);
