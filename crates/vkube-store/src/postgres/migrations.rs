//! Versioned schema migrations for the PostgreSQL store.
//!
//! The same versions, in the same order and with the same descriptions as
//! the SQLite store's (a test holds them together), so a schema version
//! means the same tables on both. Each run takes a transaction-scoped
//! advisory lock first, so concurrent first connections (several replicas
//! starting at once) queue and every migration is applied exactly once,
//! together with its `schema_version` row. Never edit a released
//! migration; add a new one.
//!
//! Differences from SQLite: ids are `BIGINT GENERATED ALWAYS AS IDENTITY`
//! (never reused), intent detail is JSONB, address keys compare in the "C"
//! collation whatever the database's locale, and times the store never
//! reads default to `now()`.

use super::{commit, pg, write, PgStore};
use crate::error::{Error, Result};

/// Advisory lock key serializing migrations: "vkube" and 1.
const MIGRATION_LOCK: i64 = 0x766b_7562_6500_0001;

/// `(version, description, SQL)`, in order, versions starting at 1.
pub(crate) const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "IP pools and leases",
        r#"
CREATE TABLE ip_pools (
    name          TEXT NOT NULL PRIMARY KEY,
    -- The validated pool as JSON text (the camelCase YAML fields).
    definition    TEXT NOT NULL,
    -- For restrictToCluster pools: the cluster that claimed the pool.
    owner_cluster TEXT,
    -- Address key below which every allocatable address is leased (a
    -- speed-up only).
    low_water_key TEXT COLLATE "C",
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE ip_leases (
    pool_name    TEXT NOT NULL REFERENCES ip_pools (name),
    -- Canonical text form (RFC 5952 for IPv6).
    address      TEXT NOT NULL,
    -- 32 lowercase hex digits: in the "C" collation, text order is address order.
    address_key  TEXT COLLATE "C" NOT NULL,
    cluster      TEXT NOT NULL,
    node         TEXT NOT NULL,
    allocated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The database itself refuses a second lease of one address.
    PRIMARY KEY (pool_name, address),
    UNIQUE (pool_name, address_key),
    UNIQUE (pool_name, cluster, node)
);

CREATE INDEX ip_leases_by_owner ON ip_leases (cluster, node);
"#,
    ),
    (
        2,
        "clusters, nodes, intents, events and apply locks",
        r#"
-- Times are whole Unix seconds passed in by the caller. Enums are stored as
-- their variant names.
CREATE TABLE clusters (
    name                TEXT NOT NULL PRIMARY KEY,
    uid                 TEXT NOT NULL UNIQUE,
    spec_yaml           TEXT NOT NULL,
    spec_hash           TEXT NOT NULL,
    -- Compare-and-set: `UPDATE ... WHERE name = $1 AND version = $2`.
    version             BIGINT NOT NULL,
    phase               TEXT NOT NULL,
    deletion_started_at BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE cluster_nodes (
    cluster    TEXT NOT NULL REFERENCES clusters (name),
    name       TEXT NOT NULL,
    node_pool  TEXT NOT NULL,
    node_index BIGINT NOT NULL,
    domain     TEXT,
    vm_id      TEXT,
    ip         TEXT,
    phase      TEXT NOT NULL,
    spec_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (cluster, name),
    UNIQUE (cluster, node_pool, node_index),
    UNIQUE (cluster, vm_id)
);

CREATE TABLE cluster_intents (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster         TEXT NOT NULL REFERENCES clusters (name),
    node            TEXT,
    action          TEXT NOT NULL,
    detail          JSONB NOT NULL,
    started_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    outcome         TEXT,
    outcome_message TEXT
);

CREATE INDEX cluster_intents_open ON cluster_intents (cluster, id) WHERE completed_at IS NULL;

CREATE TABLE cluster_events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster TEXT NOT NULL REFERENCES clusters (name),
    at      BIGINT NOT NULL,
    level   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    node    TEXT
);

CREATE INDEX cluster_events_by_cluster ON cluster_events (cluster, id);

-- One row per cluster ever locked (no foreign key: the first apply locks
-- the name before the cluster is recorded). A released lock keeps its row
-- (holder NULL) so `generation` keeps increasing.
CREATE TABLE apply_locks (
    cluster     TEXT NOT NULL PRIMARY KEY,
    holder      TEXT,
    generation  BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
"#,
    ),
    (
        3,
        "cluster secrets (PKI, bootstrap token)",
        r#"
-- Every value is sealed by vkube before it reaches SQL (sealing.rs).
CREATE TABLE cluster_secrets (
    cluster TEXT NOT NULL REFERENCES clusters (name),
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);
"#,
    ),
    (
        4,
        "named cloud credentials; secrets sealed at rest",
        r#"
-- `password` is sealed like every cluster secret.
CREATE TABLE cloud_credentials (
    name       TEXT NOT NULL PRIMARY KEY,
    username   TEXT NOT NULL,
    password   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    ),
    (
        5,
        "cluster add-ons delivered",
        r#"
CREATE TABLE cluster_addons (
    cluster    TEXT NOT NULL REFERENCES clusters (name),
    addon      TEXT NOT NULL,
    component  TEXT NOT NULL,
    version    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    delivery   TEXT NOT NULL,
    node       TEXT,
    message    TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (cluster, addon)
);
"#,
    ),
    (
        6,
        "cluster vCenter identity and last apply error",
        r#"
-- The instance UUID of the vCenter a cluster lives in (set once; applies
-- against another vCenter are refused), and why its last apply stopped.
ALTER TABLE clusters ADD COLUMN vcenter_uuid TEXT;
ALTER TABLE clusters ADD COLUMN last_error TEXT;
"#,
    ),
];

/// The schema version this build writes.
pub(super) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// Brings the schema up to [`latest`]; returns the version found before.
pub(super) async fn migrate(store: &PgStore) -> Result<u32> {
    let action = "migrating the schema";
    let mut client = store.client(action).await?;
    let transaction = write(&mut client, action).await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg("waiting for other vkube processes migrating the schema"))?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version     INTEGER NOT NULL PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg("creating table `schema_version`"))?;
    let found: i32 = transaction
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(pg("reading the schema version"))?
        .get(0);
    let found = u32::try_from(found).unwrap_or_default();
    if found > latest() {
        return Err(Error::SchemaTooNew {
            state: store.location.clone(),
            found,
            supported: latest(),
        });
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|(version, _, _)| *version > found)
    {
        transaction
            .batch_execute(sql)
            .await
            .map_err(pg(format!("applying schema migration {version}")))?;
        transaction
            .execute(
                "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
                &[&i32::try_from(*version).unwrap_or(i32::MAX), description],
            )
            .await
            .map_err(pg(format!("recording schema migration {version}")))?;
    }
    commit(transaction, "committing schema migration").await?;
    Ok(found)
}

/// The schema version of the database.
pub(super) async fn current(store: &PgStore) -> Result<u32> {
    let action = "reading the schema version";
    let client = store.client(action).await?;
    let version: i32 = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(pg(action))?
        .get(0);
    Ok(u32::try_from(version).unwrap_or_default())
}
