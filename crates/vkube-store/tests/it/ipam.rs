//! Pools and leases through the `Store` trait.

use vkube_store::{Error, LeaseFilter, Store};

use crate::{range_pool, subnet_pool, TestState};

#[test]
fn create_list_show_delete() {
    let state = TestState::new();
    let store = state.open();
    let records = store
        .create_pools(
            &[range_pool("b", 1, 10, 20), range_pool("a", 0, 10, 20)],
            false,
        )
        .unwrap();
    assert_eq!(records.len(), 2);
    let names: Vec<String> = store
        .pools()
        .unwrap()
        .iter()
        .map(|r| r.pool.name().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let record = store.pool("a").unwrap();
    assert_eq!(
        (record.allocated, record.capacity, record.owner.clone()),
        (0, 11, None)
    );

    assert!(matches!(
        store.create_pools(&[range_pool("a", 5, 10, 20)], false),
        Err(Error::PoolExists { .. })
    ));
    assert!(store.delete_pool("a", false).unwrap().is_empty());
    assert!(matches!(store.pool("a"), Err(Error::PoolNotFound { .. })));
    assert!(matches!(
        store.delete_pool("a", false),
        Err(Error::PoolNotFound { .. })
    ));
}

#[test]
fn create_is_all_or_nothing_and_checks_overlap() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .unwrap();
    let error = store
        .create_pools(
            &[range_pool("new", 7, 10, 20), range_pool("b", 0, 15, 30)],
            false,
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "pool `b` overlaps pool `a` at 10.0.0.15-10.0.0.20 (pass `--allow-overlap` if this is intended)"
    );
    assert!(
        matches!(store.pool("new"), Err(Error::PoolNotFound { .. })),
        "rolled back"
    );
    store
        .create_pools(&[range_pool("b", 0, 15, 30)], true)
        .unwrap();
    assert_eq!(store.pools().unwrap().len(), 2);
}

#[test]
fn allocation_is_lowest_first_and_idempotent() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .unwrap();
    let first = store.allocate("a", "prod", "cp-0").unwrap();
    assert_eq!(first.address.to_string(), "10.0.0.10");
    assert_eq!(first.prefix, 24);
    assert_eq!(first.gateway.to_string(), "10.0.0.1");
    assert_eq!(first.name_servers[0].to_string(), "10.0.0.53");
    assert_eq!(first.search_domains, ["lab.example.com"]);
    assert_eq!(store.allocate("a", "prod", "cp-0").unwrap(), first);
    assert_eq!(
        store
            .allocate("a", "prod", "cp-1")
            .unwrap()
            .address
            .to_string(),
        "10.0.0.11"
    );
    // Same node name in another cluster is another owner.
    assert_eq!(
        store
            .allocate("a", "dev", "cp-0")
            .unwrap()
            .address
            .to_string(),
        "10.0.0.12"
    );
    assert_eq!(store.pool("a").unwrap().allocated, 3);
}

#[test]
fn exhaustion_names_pool_and_counts() {
    let state = TestState::new();
    let store = state.open();
    // /29: .0 network, .7 broadcast, .1 gateway, so .2-.6 = 5 addresses.
    store
        .create_pools(&[subnet_pool("tiny", "10.9.0.0/29", "10.9.0.1")], false)
        .unwrap();
    for node in 0..5 {
        store.allocate("tiny", "c", &format!("n{node}")).unwrap();
    }
    let error = store.allocate("tiny", "c", "n5").unwrap_err();
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
            .allocate("tiny", "c", "n0")
            .unwrap()
            .address
            .to_string(),
        "10.9.0.2"
    );
    // Releasing one frees exactly that address for the next node.
    store.release_node("c", "n2").unwrap();
    assert_eq!(
        store
            .allocate("tiny", "c", "n5")
            .unwrap()
            .address
            .to_string(),
        "10.9.0.4"
    );
}

#[test]
fn restricted_pool_belongs_to_first_cluster() {
    let state = TestState::new();
    let store = state.open();
    let mut raw = range_pool("r", 0, 10, 20).to_raw();
    raw.restrict_to_cluster = true;
    store
        .create_pools(&[raw.validate().unwrap()], false)
        .unwrap();
    store.allocate("r", "prod", "cp-0").unwrap();
    assert_eq!(store.pool("r").unwrap().owner.as_deref(), Some("prod"));
    let error = store.allocate("r", "dev", "cp-0").unwrap_err();
    assert_eq!(
        error.to_string(),
        "pool `r` is restricted to cluster `prod`; cluster `dev` cannot allocate from it"
    );
    store.allocate("r", "prod", "cp-1").unwrap();
    // Releasing nodes keeps the claim; releasing the cluster gives it up.
    store.release_node("prod", "cp-0").unwrap();
    store.release_node("prod", "cp-1").unwrap();
    assert!(matches!(
        store.allocate("r", "dev", "x"),
        Err(Error::PoolRestricted { .. })
    ));
    store.release_cluster("prod").unwrap();
    assert_eq!(store.pool("r").unwrap().owner, None);
    store.allocate("r", "dev", "cp-0").unwrap();
    assert_eq!(store.pool("r").unwrap().owner.as_deref(), Some("dev"));
}

#[test]
fn unrestricted_pool_is_shared() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_pools(&[range_pool("s", 0, 10, 20)], false)
        .unwrap();
    store.allocate("s", "prod", "cp-0").unwrap();
    store.allocate("s", "dev", "cp-0").unwrap();
    assert_eq!(store.pool("s").unwrap().owner, None);
}

#[test]
fn release_per_node_and_per_cluster() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_pools(
            &[range_pool("a", 0, 10, 20), range_pool("b", 1, 10, 20)],
            false,
        )
        .unwrap();
    for node in ["cp-0", "cp-1", "w-0"] {
        store.allocate("a", "prod", node).unwrap();
    }
    store.allocate("b", "prod", "cp-0").unwrap();
    store.allocate("a", "dev", "cp-0").unwrap();

    let released = store.release_node("prod", "cp-0").unwrap();
    assert_eq!(released.len(), 2, "one lease in each pool");
    assert!(
        store.release_node("prod", "cp-0").unwrap().is_empty(),
        "retry is a no-op"
    );

    let prod = LeaseFilter {
        cluster: Some("prod".into()),
        ..LeaseFilter::default()
    };
    let nodes: Vec<String> = store
        .leases(&prod)
        .unwrap()
        .into_iter()
        .map(|l| l.node)
        .collect();
    assert_eq!(nodes, ["cp-1", "w-0"]);

    assert_eq!(store.release_cluster("prod").unwrap().len(), 2);
    assert!(store.leases(&prod).unwrap().is_empty());
    let all = store.leases(&LeaseFilter::default()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].cluster, "dev");
}

#[test]
fn delete_refuses_while_allocated_unless_forced() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .unwrap();
    store.allocate("a", "prod", "cp-0").unwrap();
    store.allocate("a", "prod", "cp-1").unwrap();
    let error = store.delete_pool("a", false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "pool `a` has 2 allocated address(es); release them first or pass `--force`"
    );
    assert_eq!(store.delete_pool("a", true).unwrap().len(), 2);
    assert!(store.leases(&LeaseFilter::default()).unwrap().is_empty());
}

#[test]
fn leases_listed_by_pool_in_address_order() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_pools(&[range_pool("a", 0, 2, 250)], false)
        .unwrap();
    for node in 0..12 {
        store.allocate("a", "c", &format!("n{node}")).unwrap();
    }
    let filter = LeaseFilter {
        pool: Some(vkube_core::ipam::PoolName::new("a").unwrap()),
        cluster: None,
    };
    let addresses: Vec<String> = store
        .leases(&filter)
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
        store.leases(&missing),
        Err(Error::PoolNotFound { .. })
    ));
}

#[test]
fn ipv6_range_pool() {
    let state = TestState::new();
    let store = state.open();
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
    store.create_pools(&[pool], false).unwrap();
    let addresses: Vec<String> = (0..2)
        .map(|n| {
            store
                .allocate("v6", "c", &format!("n{n}"))
                .unwrap()
                .address
                .to_string()
        })
        .collect();
    assert_eq!(addresses, ["2001:db8::2", "2001:db8::3"]);
    assert_eq!(
        store.allocate("v6", "c", "n9").unwrap_err().to_string(),
        "pool `v6` is full: 2 of 2 in use"
    );
}

#[test]
fn rejects_empty_owner_names() {
    let state = TestState::new();
    let store = state.open();
    store
        .create_pools(&[range_pool("a", 0, 10, 20)], false)
        .unwrap();
    assert_eq!(
        store.allocate("a", "", "n").unwrap_err().to_string(),
        "cluster name is required"
    );
    assert!(matches!(
        store.allocate("a", "c", ""),
        Err(Error::Invalid { field: "node", .. })
    ));
}

#[test]
fn threads_sharing_one_store() {
    let state = TestState::new();
    let store = std::sync::Arc::new(state.open());
    store
        .create_pools(&[range_pool("a", 0, 2, 254)], false)
        .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|n| {
                        store
                            .allocate("a", "c", &format!("t{thread}-n{n}"))
                            .unwrap()
                            .address
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200);
}

/// The low-water mark only speeds up the search: with it cleared, the
/// chunked scan over many leases still finds the lowest free address, and
/// releases below the mark are reused lowest first.
#[test]
fn low_water_mark_is_only_a_hint() {
    let state = TestState::new();
    let store = state.open();
    let mut raw = subnet_pool("big", "10.60.0.0/22", "10.60.0.1").to_raw();
    raw.exclude = vec!["10.60.1.0-10.60.1.9".into()];
    store
        .create_pools(&[raw.validate().unwrap()], false)
        .unwrap();
    let addresses: Vec<_> = (0..600)
        .map(|n| {
            store
                .allocate("big", "c", &format!("n{n}"))
                .unwrap()
                .address
        })
        .collect();
    assert_eq!(addresses[0].to_string(), "10.60.0.2");
    assert_eq!(
        addresses[254].to_string(),
        "10.60.1.10",
        "skips the exclusion"
    );
    assert_eq!(addresses[599].to_string(), "10.60.2.99");

    rusqlite::Connection::open(state.path())
        .unwrap()
        .execute("UPDATE ip_pools SET low_water_key = NULL", [])
        .unwrap();
    assert_eq!(
        store
            .allocate("big", "c", "n600")
            .unwrap()
            .address
            .to_string(),
        "10.60.2.100"
    );

    store.release_node("c", "n400").unwrap();
    store.release_node("c", "n3").unwrap();
    assert_eq!(
        store.allocate("big", "c", "a").unwrap().address,
        addresses[3]
    );
    assert_eq!(
        store.allocate("big", "c", "b").unwrap().address,
        addresses[400]
    );
    assert_eq!(
        store.allocate("big", "c", "d").unwrap().address.to_string(),
        "10.60.2.101"
    );
}
