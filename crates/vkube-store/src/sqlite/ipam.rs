//! IP pools and leases in SQLite: the [`Store`] implementation.
//!
//! Address choice is `vkube_core::ipam::next_free`; this module only reads
//! the used set and writes the result, inside one transaction.

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};
use vkube_core::ipam::{IpPool, Lease, PoolName};

use super::lock::fenced;
use super::{database, Inner, SqliteStore};
use crate::error::{Error, Result};
use crate::lock::Fence;
use crate::rows::{definition_json, parse_address, parse_definition};
use crate::rules::{address_key, check_name, claim, exact_lease, FreeScan, ScanStep};
use crate::store::{check_new_pools, LeaseFilter, PoolRecord, Store};

/// The lowest free address of `pool` (see [`FreeScan`]).
fn find_free(transaction: &Transaction<'_>, pool: &IpPool, action: &str) -> Result<Option<IpAddr>> {
    let name = pool.name().as_str();
    let low_water: Option<String> = transaction
        .query_row(
            "SELECT low_water_key FROM ip_pools WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .map_err(database(action))?;
    let mut scan = FreeScan::new(pool, low_water.as_deref());
    let mut statement = transaction
        .prepare_cached(
            "SELECT address_key FROM ip_leases WHERE pool_name = ?1 AND address_key >= ?2
             ORDER BY address_key LIMIT ?3",
        )
        .map_err(database(action))?;
    loop {
        let keys = statement
            .query_map(params![name, scan.start_key(), FreeScan::CHUNK], |row| {
                row.get::<_, String>(0)
            })
            .map_err(database(action))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(database(action))?;
        match scan.feed(&keys)? {
            ScanStep::Free(address) => return Ok(Some(address)),
            ScanStep::Full => return Ok(None),
            ScanStep::More => {}
        }
    }
}

/// Records `cluster` as the owner of restricted pool `pool`.
fn claim_pool(
    transaction: &Transaction<'_>,
    pool: &str,
    cluster: &str,
    action: &str,
) -> Result<()> {
    transaction
        .execute(
            "UPDATE ip_pools SET owner_cluster = ?2 WHERE name = ?1",
            [pool, cluster],
        )
        .map_err(database(action))?;
    Ok(())
}

/// Lowers the pool's low-water mark to `address` after a release.
fn lower_water(
    transaction: &Transaction<'_>,
    pool: &str,
    address: IpAddr,
    action: &str,
) -> Result<()> {
    transaction
        .execute(
            "UPDATE ip_pools SET low_water_key = ?2 WHERE name = ?1 AND (low_water_key IS NULL OR low_water_key > ?2)",
            params![pool, address_key(address)],
        )
        .map_err(database(action))?;
    Ok(())
}

/// The pool and its owner, or `PoolNotFound`.
fn load_pool(transaction: &Transaction<'_>, name: &str) -> Result<(IpPool, Option<String>)> {
    let row: Option<(String, Option<String>)> = transaction
        .query_row(
            "SELECT definition, owner_cluster FROM ip_pools WHERE name = ?1",
            [name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(database(format!("reading pool `{name}`")))?;
    let (definition, owner) = row.ok_or_else(|| Error::PoolNotFound {
        pool: name.to_owned(),
    })?;
    Ok((parse_definition(name, &definition)?, owner))
}

fn count_leases(transaction: &Transaction<'_>, pool: &str) -> Result<u64> {
    transaction
        .query_row(
            "SELECT COUNT(*) FROM ip_leases WHERE pool_name = ?1",
            [pool],
            |row| row.get(0),
        )
        .map_err(database(format!("counting leases of pool `{pool}`")))
}

fn record(
    transaction: &Transaction<'_>,
    pool: IpPool,
    owner: Option<String>,
) -> Result<PoolRecord> {
    let allocated = count_leases(transaction, pool.name().as_str())?;
    let capacity = pool.capacity();
    Ok(PoolRecord {
        pool,
        owner,
        allocated,
        capacity,
    })
}

fn all_pools(transaction: &Transaction<'_>) -> Result<Vec<(IpPool, Option<String>)>> {
    let mut statement = transaction
        .prepare("SELECT name, definition, owner_cluster FROM ip_pools ORDER BY name")
        .map_err(database("listing pools"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(database("listing pools"))?;
    let mut pools = Vec::new();
    for row in rows {
        let (name, definition, owner) = row.map_err(database("listing pools"))?;
        pools.push((parse_definition(&name, &definition)?, owner));
    }
    Ok(pools)
}

/// Leases matching a WHERE clause over `ip_leases l`, sorted by pool then
/// address, each filled in from its pool's definition.
fn select_leases(
    transaction: &Transaction<'_>,
    condition: &str,
    parameters: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Lease>> {
    let sql = format!(
        "SELECT l.pool_name, l.address, l.cluster, l.node, p.definition
         FROM ip_leases l JOIN ip_pools p ON p.name = l.pool_name
         WHERE {condition}"
    );
    let mut statement = transaction
        .prepare(&sql)
        .map_err(database("listing leases"))?;
    let rows = statement
        .query_map(parameters, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .map_err(database("listing leases"))?;
    let mut pools: HashMap<String, IpPool> = HashMap::new();
    let mut leases = Vec::new();
    for row in rows {
        let (pool_name, address, cluster, node, definition) =
            row.map_err(database("listing leases"))?;
        if !pools.contains_key(&pool_name) {
            let pool = parse_definition(&pool_name, &definition)?;
            pools.insert(pool_name.clone(), pool);
        }
        let address = parse_address(&pool_name, &address)?;
        leases.push(Lease::new(&pools[&pool_name], address, &cluster, &node));
    }
    leases.sort_by(|a, b| (&a.pool, a.address).cmp(&(&b.pool, b.address)));
    Ok(leases)
}

/// Releases the leases of one node, or of the whole cluster (which also
/// gives up its claim on restricted pools), inside the caller's transaction.
pub(super) fn release_leases(
    transaction: &Transaction<'_>,
    cluster: &str,
    node: Option<&str>,
    action: &str,
) -> Result<Vec<Lease>> {
    let leases = match node {
        Some(node) => select_leases(
            transaction,
            "l.cluster = ?1 AND l.node = ?2",
            &[&cluster, &node],
        )?,
        None => select_leases(transaction, "l.cluster = ?1", &[&cluster])?,
    };
    for lease in &leases {
        lower_water(transaction, lease.pool.as_str(), lease.address, action)?;
    }
    match node {
        Some(node) => transaction
            .execute(
                "DELETE FROM ip_leases WHERE cluster = ?1 AND node = ?2",
                [cluster, node],
            )
            .map_err(database(action))?,
        None => {
            transaction
                .execute(
                    "UPDATE ip_pools SET owner_cluster = NULL WHERE owner_cluster = ?1",
                    [cluster],
                )
                .map_err(database(action))?;
            transaction
                .execute("DELETE FROM ip_leases WHERE cluster = ?1", [cluster])
                .map_err(database(action))?
        }
    };
    Ok(leases)
}

impl Inner {
    fn create_pools(&self, pools: &[IpPool], allow_overlap: bool) -> Result<Vec<PoolRecord>> {
        self.write("creating pools", |transaction| {
            let known: Vec<IpPool> = all_pools(transaction)?
                .into_iter()
                .map(|(pool, _)| pool)
                .collect();
            let records = check_new_pools(&known, pools, allow_overlap)?;
            for pool in pools {
                transaction
                    .execute(
                        "INSERT INTO ip_pools (name, definition) VALUES (?1, ?2)",
                        params![pool.name().as_str(), definition_json(pool)],
                    )
                    .map_err(database(format!("creating pool `{}`", pool.name())))?;
            }
            Ok(records)
        })
    }

    fn pool(&self, name: &str) -> Result<PoolRecord> {
        self.read("reading pool", |transaction| {
            let (pool, owner) = load_pool(transaction, name)?;
            record(transaction, pool, owner)
        })
    }

    fn pools(&self) -> Result<Vec<PoolRecord>> {
        self.read("listing pools", |transaction| {
            all_pools(transaction)?
                .into_iter()
                .map(|(pool, owner)| record(transaction, pool, owner))
                .collect()
        })
    }

    fn delete_pool(&self, name: &str, force: bool) -> Result<Vec<Lease>> {
        self.write("deleting pool", |transaction| {
            let (pool, _) = load_pool(transaction, name)?;
            let leases = select_leases(transaction, "l.pool_name = ?1", &[&name])?;
            if !leases.is_empty() && !force {
                return Err(Error::PoolInUse {
                    pool: pool.name().clone(),
                    allocated: leases.len() as u64,
                });
            }
            let action = format!("deleting pool `{name}`");
            transaction
                .execute("DELETE FROM ip_leases WHERE pool_name = ?1", [name])
                .map_err(database(&action))?;
            transaction
                .execute("DELETE FROM ip_pools WHERE name = ?1", [name])
                .map_err(database(&action))?;
            Ok(leases)
        })
    }

    fn allocate(&self, fence: &Fence, pool_name: &str, node: &str) -> Result<Lease> {
        let cluster = fence.cluster();
        check_name("cluster", cluster)?;
        check_name("node", node)?;
        let action = format!("allocating from pool `{pool_name}` for `{cluster}`/`{node}`");
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            let (pool, owner) = load_pool(transaction, pool_name)?;
            let existing: Option<String> = transaction
                .query_row(
                    "SELECT address FROM ip_leases WHERE pool_name = ?1 AND cluster = ?2 AND node = ?3",
                    [pool_name, cluster, node],
                    |row| row.get(0),
                )
                .optional()
                .map_err(database(&action))?;
            if let Some(address) = existing {
                return Ok(Lease::new(&pool, parse_address(pool_name, &address)?, cluster, node));
            }
            if claim(&pool, owner.as_deref(), cluster)? {
                claim_pool(transaction, pool_name, cluster, &action)?;
            }
            let Some(address) = find_free(transaction, &pool, &action)? else {
                // Returning an error rolls back the ownership claim above too.
                let used = count_leases(transaction, pool_name)?;
                return Err(Error::PoolFull { pool: pool.name().clone(), used: used.into(), total: pool.capacity() });
            };
            transaction
                .execute(
                    "INSERT INTO ip_leases (pool_name, address, address_key, cluster, node) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![pool_name, address.to_string(), address_key(address), cluster, node],
                )
                .map_err(database(&action))?;
            // Everything from the old mark up to `address` is now taken.
            transaction
                .execute(
                    "UPDATE ip_pools SET low_water_key = ?2 WHERE name = ?1",
                    params![pool_name, address_key(address)],
                )
                .map_err(database(&action))?;
            Ok(Lease::new(&pool, address, cluster, node))
        })
    }

    fn allocate_address(
        &self,
        fence: &Fence,
        pool_name: &str,
        node: &str,
        address: IpAddr,
    ) -> Result<Lease> {
        let cluster = fence.cluster();
        check_name("cluster", cluster)?;
        check_name("node", node)?;
        let action = format!("leasing {address} of pool `{pool_name}` to `{cluster}`/`{node}`");
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            let (pool, owner) = load_pool(transaction, pool_name)?;
            let holder: Option<(String, String)> = transaction
                .query_row(
                    "SELECT cluster, node FROM ip_leases WHERE pool_name = ?1 AND address_key = ?2",
                    [pool_name, &address_key(address)],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(database(&action))?;
            let held: Option<String> = transaction
                .query_row(
                    "SELECT address FROM ip_leases WHERE pool_name = ?1 AND cluster = ?2 AND node = ?3",
                    [pool_name, cluster, node],
                    |row| row.get(0),
                )
                .optional()
                .map_err(database(&action))?;
            let held = held.map(|text| parse_address(pool_name, &text)).transpose()?;
            let holder = holder.as_ref().map(|(c, n)| (c.as_str(), n.as_str()));
            if exact_lease(&pool, address, node, holder, held)? {
                return Ok(Lease::new(&pool, address, cluster, node));
            }
            if claim(&pool, owner.as_deref(), cluster)? {
                claim_pool(transaction, pool_name, cluster, &action)?;
            }
            // The low-water mark stays: addresses below it are all still leased.
            transaction
                .execute(
                    "INSERT INTO ip_leases (pool_name, address, address_key, cluster, node) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![pool_name, address.to_string(), address_key(address), cluster, node],
                )
                .map_err(database(&action))?;
            Ok(Lease::new(&pool, address, cluster, node))
        })
    }

    fn release_node(&self, fence: &Fence, node: &str) -> Result<Vec<Lease>> {
        let cluster = fence.cluster();
        let action = format!("releasing leases of `{cluster}`/`{node}`");
        self.write(&action, |transaction| {
            fenced(transaction, fence, &action)?;
            release_leases(transaction, cluster, Some(node), &action)
        })
    }

    fn release_cluster(&self, cluster: &str) -> Result<Vec<Lease>> {
        let action = format!("releasing leases of cluster `{cluster}`");
        self.write(&action, |transaction| {
            release_leases(transaction, cluster, None, &action)
        })
    }

    fn leases(&self, filter: &LeaseFilter) -> Result<Vec<Lease>> {
        self.read("listing leases", |transaction| {
            let pool = filter.pool.as_ref().map(PoolName::as_str);
            if let Some(pool) = pool {
                load_pool(transaction, pool)?;
            }
            select_leases(
                transaction,
                "(?1 IS NULL OR l.pool_name = ?1) AND (?2 IS NULL OR l.cluster = ?2)",
                &[&pool, &filter.cluster],
            )
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_pools(&self, pools: &[IpPool], allow_overlap: bool) -> Result<Vec<PoolRecord>> {
        let pools = pools.to_vec();
        self.run("creating pools", move |store| {
            store.create_pools(&pools, allow_overlap)
        })
        .await
    }

    async fn pool(&self, name: &str) -> Result<PoolRecord> {
        let name = name.to_owned();
        self.run("reading pool", move |store| store.pool(&name))
            .await
    }

    async fn pools(&self) -> Result<Vec<PoolRecord>> {
        self.run("listing pools", |store| store.pools()).await
    }

    async fn delete_pool(&self, name: &str, force: bool) -> Result<Vec<Lease>> {
        let name = name.to_owned();
        self.run("deleting pool", move |store| {
            store.delete_pool(&name, force)
        })
        .await
    }

    async fn allocate(&self, fence: &Fence, pool: &str, node: &str) -> Result<Lease> {
        let (fence, pool, node) = (fence.clone(), pool.to_owned(), node.to_owned());
        self.run("allocating an address", move |store| {
            store.allocate(&fence, &pool, &node)
        })
        .await
    }

    async fn allocate_address(
        &self,
        fence: &Fence,
        pool: &str,
        node: &str,
        address: IpAddr,
    ) -> Result<Lease> {
        let (fence, pool, node) = (fence.clone(), pool.to_owned(), node.to_owned());
        self.run("leasing an address", move |store| {
            store.allocate_address(&fence, &pool, &node, address)
        })
        .await
    }

    async fn release_node(&self, fence: &Fence, node: &str) -> Result<Vec<Lease>> {
        let (fence, node) = (fence.clone(), node.to_owned());
        self.run("releasing leases", move |store| {
            store.release_node(&fence, &node)
        })
        .await
    }

    async fn release_cluster(&self, cluster: &str) -> Result<Vec<Lease>> {
        let cluster = cluster.to_owned();
        self.run("releasing leases", move |store| {
            store.release_cluster(&cluster)
        })
        .await
    }

    async fn leases(&self, filter: &LeaseFilter) -> Result<Vec<Lease>> {
        let filter = filter.clone();
        self.run("listing leases", move |store| store.leases(&filter))
            .await
    }
}
