//! Upgrading a state file written by an older vkube.

use vkube_store::{LeaseFilter, SqliteStore};

use crate::{at, fence, AnyStore, TestState};

/// Schema version 1 exactly as released (frozen here on purpose: the
/// migration itself must never change).
const V1: &str = r#"
CREATE TABLE schema_version (
    version     INTEGER NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE ip_pools (
    name          TEXT NOT NULL PRIMARY KEY,
    definition    TEXT NOT NULL,
    owner_cluster TEXT,
    low_water_key TEXT,
    created_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE ip_leases (
    pool_name    TEXT NOT NULL REFERENCES ip_pools (name),
    address      TEXT NOT NULL,
    address_key  TEXT NOT NULL,
    cluster      TEXT NOT NULL,
    node         TEXT NOT NULL,
    allocated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (pool_name, address),
    UNIQUE (pool_name, address_key),
    UNIQUE (pool_name, cluster, node)
);
CREATE INDEX ip_leases_by_owner ON ip_leases (cluster, node);
INSERT INTO schema_version (version, description) VALUES (1, 'IP pools and leases');
"#;

#[tokio::test]
async fn a_version_1_file_is_upgraded_in_place() {
    let state = TestState::new();
    {
        let connection = rusqlite::Connection::open(state.path()).unwrap();
        connection.execute_batch(V1).unwrap();
        let pool = crate::range_pool("lab", 0, 10, 20);
        connection
            .execute(
                "INSERT INTO ip_pools (name, definition) VALUES ('lab', ?1)",
                [serde_json::to_string(&pool).unwrap()],
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO ip_leases (pool_name, address, address_key, cluster, node)
                 VALUES ('lab', '10.0.0.10', '0000000000000000000000000a00000a', 'prod', 'prod-cp-0')",
                [],
            )
            .unwrap();
    }

    let store: AnyStore = std::sync::Arc::new(SqliteStore::open(state.path()).await.unwrap());
    let prod = fence(&store, "prod").await;
    assert_eq!(
        store.schema_version().await.unwrap(),
        SqliteStore::latest_schema_version()
    );
    assert!(SqliteStore::latest_schema_version() >= 2);
    // Old data is intact and used.
    let leases = store.leases(&LeaseFilter::default()).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].address.to_string(), "10.0.0.10");
    assert_eq!(
        store
            .allocate(&prod, "lab", "prod-cp-1")
            .await
            .unwrap()
            .address
            .to_string(),
        "10.0.0.11"
    );
    // New tables work, and a cluster adopting the old leases releases them on removal.
    store
        .create_cluster(&prod, "uid-1", "spec", "h", at(1))
        .await
        .unwrap();
    let removed = store
        .remove_cluster("prod", vkube_store::ForceDelete::No, at(2))
        .await
        .unwrap();
    assert_eq!(removed.released_leases.len(), 2);
    drop(store);

    let connection = rusqlite::Connection::open(state.path()).unwrap();
    let versions: Vec<u32> = connection
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        (1..=SqliteStore::latest_schema_version()).collect::<Vec<_>>()
    );
}
