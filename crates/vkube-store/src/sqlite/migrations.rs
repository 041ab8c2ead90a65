//! Versioned schema migrations for the SQLite store.
//!
//! Each migration is applied once, in order, inside one `BEGIN IMMEDIATE`
//! transaction together with its `schema_version` row, so concurrent
//! processes opening a fresh file cannot both apply it. The PostgreSQL
//! store has the same versions with PostgreSQL's types
//! (`postgres/migrations.rs`); a new migration goes into both, with the
//! same version and description. Never edit a released migration; add a
//! new one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// `(version, description, SQL)`, in order, versions starting at 1.
pub(crate) const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "IP pools and leases",
        r#"
CREATE TABLE ip_pools (
    name          TEXT NOT NULL PRIMARY KEY,
    -- The validated pool as JSON (the camelCase YAML fields).
    definition    TEXT NOT NULL,
    -- For restrictToCluster pools: the cluster that claimed the pool.
    owner_cluster TEXT,
    -- Address key below which every allocatable address is leased: where
    -- the search for the lowest free address starts. Only a speed-up;
    -- uniqueness never depends on it.
    low_water_key TEXT,
    created_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE ip_leases (
    pool_name    TEXT NOT NULL REFERENCES ip_pools (name),
    -- Canonical text form (RFC 5952 for IPv6), so equal addresses are equal strings.
    address      TEXT NOT NULL,
    -- The address as 32 lowercase hex digits, so text order is address order.
    address_key  TEXT NOT NULL,
    cluster      TEXT NOT NULL,
    node         TEXT NOT NULL,
    allocated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
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
-- Times are whole Unix seconds passed in by the caller (BIGINT: PostgreSQL's
-- INTEGER is 32-bit). Enums are stored as their variant names.
CREATE TABLE clusters (
    name                TEXT NOT NULL PRIMARY KEY,
    uid                 TEXT NOT NULL UNIQUE,
    spec_yaml           TEXT NOT NULL,
    spec_hash           TEXT NOT NULL,
    -- Compare-and-set: every change runs
    -- `UPDATE ... SET version = version + 1 WHERE name = ? AND version = ?`.
    version             BIGINT NOT NULL,
    phase               TEXT NOT NULL,
    deletion_started_at BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- vkube's record of what it did per node; vCenter stays the truth.
CREATE TABLE cluster_nodes (
    cluster    TEXT NOT NULL REFERENCES clusters (name),
    name       TEXT NOT NULL,
    node_pool  TEXT NOT NULL,
    node_index BIGINT NOT NULL,
    domain     TEXT,
    -- Managed object id; NULL until the clone returned. NULLs never clash.
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

-- The operation journal. AUTOINCREMENT so an id is never reused, even
-- after the newest rows are deleted (PostgreSQL: GENERATED ALWAYS AS
-- IDENTITY, which never reuses either).
CREATE TABLE cluster_intents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster         TEXT NOT NULL REFERENCES clusters (name),
    node            TEXT,
    action          TEXT NOT NULL,
    -- JSON (PostgreSQL: JSONB).
    detail          TEXT NOT NULL,
    started_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    outcome         TEXT,
    outcome_message TEXT
);

CREATE INDEX cluster_intents_open ON cluster_intents (cluster, id) WHERE completed_at IS NULL;

CREATE TABLE cluster_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL REFERENCES clusters (name),
    at      BIGINT NOT NULL,
    level   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    node    TEXT
);

CREATE INDEX cluster_events_by_cluster ON cluster_events (cluster, id);

-- One row per cluster ever locked; no foreign key, since the first apply
-- locks the name before the cluster is recorded. A released lock keeps its
-- row (holder NULL) so `generation` keeps increasing.
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
-- Key material vkube generated for a cluster, so later nodes join the same
-- control plane. The state file is 0600; PostgreSQL deployments should
-- encrypt this column (pgcrypto) or keep it in a secret store.
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
-- The vCenter user a cluster's CPI and CSI run as, by name
-- (`spec.cloudCredentials`). `password` is sealed (see sealing.rs), as is
-- every `cluster_secrets.value` from this version on: rows written before
-- are sealed when the store is first opened by this version.
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
-- What vkube delivered of each add-on (CNI, CPI, CSI, StorageClasses), so
-- later applies update only what changed and `vkube cluster addons` can
-- say what is installed.
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
pub(crate) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// Brings the schema up to [`latest`]; returns the version found before.
pub(crate) fn migrate(connection: &mut Connection, path: &Path) -> Result<u32> {
    let database = |action: &str| {
        let action = action.to_owned();
        move |source| Error::database(action, source)
    };
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(database("starting schema migration"))?;
    transaction
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version     INTEGER NOT NULL PRIMARY KEY,
                description TEXT NOT NULL,
                applied_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
            )",
        )
        .map_err(database("creating table `schema_version`"))?;
    let found: u32 = transaction
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(database("reading the schema version"))?;
    if found > latest() {
        return Err(Error::SchemaTooNew {
            state: path.display().to_string(),
            found,
            supported: latest(),
        });
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|(version, _, _)| *version > found)
    {
        transaction
            .execute_batch(sql)
            .map_err(database(&format!("applying schema migration {version}")))?;
        transaction
            .execute(
                "INSERT INTO schema_version (version, description) VALUES (?1, ?2)",
                rusqlite::params![version, description],
            )
            .map_err(database(&format!("recording schema migration {version}")))?;
    }
    transaction
        .commit()
        .map_err(database("committing schema migration"))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    /// A schema version means the same tables on both backends.
    #[test]
    fn both_backends_know_the_same_migrations() {
        let versions = |list: &[(u32, &'static str, &str)]| -> Vec<(u32, &'static str)> {
            list.iter().map(|(v, d, _)| (*v, *d)).collect()
        };
        assert_eq!(
            versions(super::MIGRATIONS),
            versions(crate::postgres::migrations::MIGRATIONS)
        );
        assert!(super::MIGRATIONS
            .iter()
            .enumerate()
            .all(|(i, (v, _, _))| *v as usize == i + 1));
    }
}
