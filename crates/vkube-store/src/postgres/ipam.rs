//! IP pools and leases in PostgreSQL: the [`Store`] implementation.
//!
//! Allocation locks the pool row `FOR UPDATE` before it reads the leases,
//! so allocators of one pool queue and each sees the leases the one before
//! it committed; the unique keys on `ip_leases` back that up.

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use vkube_core::ipam::{IpPool, Lease, PoolName};

use super::lock::fenced;
use super::{commit, pg, read, write, PgStore};
use crate::error::{Error, Result};
use crate::lock::Fence;
use crate::rows::{definition_json, parse_address, parse_definition};
use crate::rules::{address_key, check_name, claim, exact_lease, FreeScan, ScanStep};
use crate::store::{check_new_pools, LeaseFilter, PoolRecord, Store};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A stored pool: definition, owner and low-water mark.
struct PoolRow {
    pool: IpPool,
    owner: Option<String>,
    low_water: Option<String>,
}

/// Records `cluster` as the owner of restricted pool `pool`.
async fn claim_pool(
    client: &impl GenericClient,
    pool: &str,
    cluster: &str,
    action: &str,
) -> Result<()> {
    client
        .execute(
            "UPDATE ip_pools SET owner_cluster = $2 WHERE name = $1",
            &[&pool, &cluster],
        )
        .await
        .map_err(pg(action))?;
    Ok(())
}

/// The pool, or `PoolNotFound`; `locking` is e.g. `FOR UPDATE`.
async fn load_pool(
    client: &impl GenericClient,
    name: &str,
    locking: &str,
    action: &str,
) -> Result<PoolRow> {
    let row = client
        .query_opt(
            &format!(
                "SELECT definition, owner_cluster, low_water_key FROM ip_pools WHERE name = $1 {locking}"
            ),
            &[&name],
        )
        .await
        .map_err(pg(action))?
        .ok_or_else(|| Error::PoolNotFound {
            pool: name.to_owned(),
        })?;
    Ok(PoolRow {
        pool: parse_definition(name, row.get(0))?,
        owner: row.get(1),
        low_water: row.get(2),
    })
}

async fn count_leases(client: &impl GenericClient, pool: &str, action: &str) -> Result<u64> {
    let count: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM ip_leases WHERE pool_name = $1",
            &[&pool],
        )
        .await
        .map_err(pg(action))?
        .get(0);
    Ok(u64::try_from(count).unwrap_or_default())
}

async fn record(
    client: &impl GenericClient,
    pool: IpPool,
    owner: Option<String>,
    action: &str,
) -> Result<PoolRecord> {
    let allocated = count_leases(client, pool.name().as_str(), action).await?;
    let capacity = pool.capacity();
    Ok(PoolRecord {
        pool,
        owner,
        allocated,
        capacity,
    })
}

async fn all_pools(
    client: &impl GenericClient,
    action: &str,
) -> Result<Vec<(IpPool, Option<String>)>> {
    let rows = client
        .query(
            "SELECT name, definition, owner_cluster FROM ip_pools ORDER BY name COLLATE \"C\"",
            &[],
        )
        .await
        .map_err(pg(action))?;
    rows.iter()
        .map(|row| Ok((parse_definition(row.get(0), row.get(1))?, row.get(2))))
        .collect()
}

/// Leases matching a WHERE clause over `ip_leases l`, sorted by pool then
/// address, each filled in from its pool's definition.
async fn select_leases(
    client: &impl GenericClient,
    condition: &str,
    parameters: Params<'_>,
    action: &str,
) -> Result<Vec<Lease>> {
    let rows = client
        .query(
            &format!(
                "SELECT l.pool_name, l.address, l.cluster, l.node, p.definition
                 FROM ip_leases l JOIN ip_pools p ON p.name = l.pool_name
                 WHERE {condition}"
            ),
            parameters,
        )
        .await
        .map_err(pg(action))?;
    let mut pools: HashMap<String, IpPool> = HashMap::new();
    let mut leases = Vec::with_capacity(rows.len());
    for row in &rows {
        let pool_name: String = row.get(0);
        if !pools.contains_key(&pool_name) {
            let pool = parse_definition(&pool_name, row.get(4))?;
            pools.insert(pool_name.clone(), pool);
        }
        let address = parse_address(&pool_name, row.get(1))?;
        leases.push(Lease::new(
            &pools[&pool_name],
            address,
            row.get(2),
            row.get(3),
        ));
    }
    leases.sort_by(|a, b| (&a.pool, a.address).cmp(&(&b.pool, b.address)));
    Ok(leases)
}

/// The lowest free address of `pool` (see [`FreeScan`]).
async fn find_free(
    client: &impl GenericClient,
    pool: &PoolRow,
    action: &str,
) -> Result<Option<IpAddr>> {
    let name = pool.pool.name().as_str();
    let mut scan = FreeScan::new(&pool.pool, pool.low_water.as_deref());
    loop {
        let keys: Vec<String> = client
            .query(
                "SELECT address_key FROM ip_leases WHERE pool_name = $1 AND address_key >= $2
                 ORDER BY address_key LIMIT $3",
                &[&name, &scan.start_key(), &i64::from(FreeScan::CHUNK)],
            )
            .await
            .map_err(pg(action))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        match scan.feed(&keys)? {
            ScanStep::Free(address) => return Ok(Some(address)),
            ScanStep::Full => return Ok(None),
            ScanStep::More => {}
        }
    }
}

/// Releases the leases of one node, or of the whole cluster (which also
/// gives up its claim on restricted pools), inside the caller's
/// transaction. Locks the pools involved first, in name order.
pub(super) async fn release_leases(
    client: &impl GenericClient,
    cluster: &str,
    node: Option<&str>,
    action: &str,
) -> Result<Vec<Lease>> {
    client
        .query(
            "SELECT name FROM ip_pools
             WHERE name IN (SELECT pool_name FROM ip_leases
                            WHERE cluster = $1 AND ($2::text IS NULL OR node = $2))
                OR ($2::text IS NULL AND owner_cluster = $1)
             ORDER BY name FOR UPDATE",
            &[&cluster, &node],
        )
        .await
        .map_err(pg(action))?;
    let leases = select_leases(
        client,
        "l.cluster = $1 AND ($2::text IS NULL OR l.node = $2)",
        &[&cluster, &node],
        action,
    )
    .await?;
    for lease in &leases {
        client
            .execute(
                "UPDATE ip_pools SET low_water_key = $2
                 WHERE name = $1 AND (low_water_key IS NULL OR low_water_key > $2)",
                &[&lease.pool.as_str(), &address_key(lease.address)],
            )
            .await
            .map_err(pg(action))?;
    }
    if node.is_none() {
        client
            .execute(
                "UPDATE ip_pools SET owner_cluster = NULL WHERE owner_cluster = $1",
                &[&cluster],
            )
            .await
            .map_err(pg(action))?;
    }
    client
        .execute(
            "DELETE FROM ip_leases WHERE cluster = $1 AND ($2::text IS NULL OR node = $2)",
            &[&cluster, &node],
        )
        .await
        .map_err(pg(action))?;
    Ok(leases)
}

#[async_trait]
impl Store for PgStore {
    async fn create_pools(&self, pools: &[IpPool], allow_overlap: bool) -> Result<Vec<PoolRecord>> {
        let action = "creating pools";
        let mut client = self.client(action).await?;
        let transaction = write(&mut client, action).await?;
        // Pool creation is rare: a table lock keeps the overlap check and
        // the inserts together against concurrent creators (allocations
        // and creation wait for each other only while either runs).
        transaction
            .batch_execute("LOCK TABLE ip_pools IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(pg(action))?;
        let known: Vec<IpPool> = all_pools(&transaction, action)
            .await?
            .into_iter()
            .map(|(pool, _)| pool)
            .collect();
        let records = check_new_pools(&known, pools, allow_overlap)?;
        for pool in pools {
            transaction
                .execute(
                    "INSERT INTO ip_pools (name, definition) VALUES ($1, $2)",
                    &[&pool.name().as_str(), &definition_json(pool)],
                )
                .await
                .map_err(pg(format!("creating pool `{}`", pool.name())))?;
        }
        commit(transaction, action).await?;
        Ok(records)
    }

    async fn pool(&self, name: &str) -> Result<PoolRecord> {
        let action = format!("reading pool `{name}`");
        let mut client = self.client(&action).await?;
        let transaction = read(&mut client, &action).await?;
        let row = load_pool(&transaction, name, "", &action).await?;
        record(&transaction, row.pool, row.owner, &action).await
    }

    async fn pools(&self) -> Result<Vec<PoolRecord>> {
        let action = "listing pools";
        let mut client = self.client(action).await?;
        let transaction = read(&mut client, action).await?;
        let mut records = Vec::new();
        for (pool, owner) in all_pools(&transaction, action).await? {
            records.push(record(&transaction, pool, owner, action).await?);
        }
        Ok(records)
    }

    async fn delete_pool(&self, name: &str, force: bool) -> Result<Vec<Lease>> {
        let action = format!("deleting pool `{name}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        let row = load_pool(&transaction, name, "FOR UPDATE", &action).await?;
        let leases = select_leases(&transaction, "l.pool_name = $1", &[&name], &action).await?;
        if !leases.is_empty() && !force {
            return Err(Error::PoolInUse {
                pool: row.pool.name().clone(),
                allocated: leases.len() as u64,
            });
        }
        for sql in [
            "DELETE FROM ip_leases WHERE pool_name = $1",
            "DELETE FROM ip_pools WHERE name = $1",
        ] {
            transaction
                .execute(sql, &[&name])
                .await
                .map_err(pg(&action))?;
        }
        commit(transaction, &action).await?;
        Ok(leases)
    }

    async fn allocate(&self, fence: &Fence, pool_name: &str, node: &str) -> Result<Lease> {
        let cluster = fence.cluster();
        check_name("cluster", cluster)?;
        check_name("node", node)?;
        let action = format!("allocating from pool `{pool_name}` for `{cluster}`/`{node}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        let row = load_pool(&transaction, pool_name, "FOR UPDATE", &action).await?;
        let existing = transaction
            .query_opt(
                "SELECT address FROM ip_leases WHERE pool_name = $1 AND cluster = $2 AND node = $3",
                &[&pool_name, &cluster, &node],
            )
            .await
            .map_err(pg(&action))?;
        if let Some(existing) = existing {
            let address = parse_address(pool_name, existing.get(0))?;
            return Ok(Lease::new(&row.pool, address, cluster, node));
        }
        if claim(&row.pool, row.owner.as_deref(), cluster)? {
            claim_pool(&transaction, pool_name, cluster, &action).await?;
        }
        let Some(address) = find_free(&transaction, &row, &action).await? else {
            // Returning drops the transaction: the ownership claim rolls back.
            let used = count_leases(&transaction, pool_name, &action).await?;
            return Err(Error::PoolFull {
                pool: row.pool.name().clone(),
                used: used.into(),
                total: row.pool.capacity(),
            });
        };
        let key = address_key(address);
        transaction
            .execute(
                "INSERT INTO ip_leases (pool_name, address, address_key, cluster, node)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&pool_name, &address.to_string(), &key, &cluster, &node],
            )
            .await
            .map_err(pg(&action))?;
        // Everything from the old mark up to `address` is now taken.
        transaction
            .execute(
                "UPDATE ip_pools SET low_water_key = $2 WHERE name = $1",
                &[&pool_name, &key],
            )
            .await
            .map_err(pg(&action))?;
        commit(transaction, &action).await?;
        Ok(Lease::new(&row.pool, address, cluster, node))
    }

    async fn allocate_address(
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
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        // Locking the pool row queues this behind every other allocator.
        let row = load_pool(&transaction, pool_name, "FOR UPDATE", &action).await?;
        let holder: Option<(String, String)> = transaction
            .query_opt(
                "SELECT cluster, node FROM ip_leases WHERE pool_name = $1 AND address_key = $2",
                &[&pool_name, &address_key(address)],
            )
            .await
            .map_err(pg(&action))?
            .map(|found| (found.get(0), found.get(1)));
        let held = transaction
            .query_opt(
                "SELECT address FROM ip_leases WHERE pool_name = $1 AND cluster = $2 AND node = $3",
                &[&pool_name, &cluster, &node],
            )
            .await
            .map_err(pg(&action))?
            .map(|found| parse_address(pool_name, found.get(0)))
            .transpose()?;
        let holder = holder.as_ref().map(|(c, n)| (c.as_str(), n.as_str()));
        if !exact_lease(&row.pool, address, node, holder, held)? {
            if claim(&row.pool, row.owner.as_deref(), cluster)? {
                claim_pool(&transaction, pool_name, cluster, &action).await?;
            }
            // The low-water mark stays: addresses below it are all still leased.
            transaction
                .execute(
                    "INSERT INTO ip_leases (pool_name, address, address_key, cluster, node)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &pool_name,
                        &address.to_string(),
                        &address_key(address),
                        &cluster,
                        &node,
                    ],
                )
                .await
                .map_err(pg(&action))?;
            commit(transaction, &action).await?;
        }
        Ok(Lease::new(&row.pool, address, cluster, node))
    }

    async fn release_node(&self, fence: &Fence, node: &str) -> Result<Vec<Lease>> {
        let cluster = fence.cluster();
        let action = format!("releasing leases of `{cluster}`/`{node}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        fenced(&transaction, fence, &action).await?;
        let leases = release_leases(&transaction, cluster, Some(node), &action).await?;
        commit(transaction, &action).await?;
        Ok(leases)
    }

    async fn release_cluster(&self, cluster: &str) -> Result<Vec<Lease>> {
        let action = format!("releasing leases of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        let leases = release_leases(&transaction, cluster, None, &action).await?;
        commit(transaction, &action).await?;
        Ok(leases)
    }

    async fn leases(&self, filter: &LeaseFilter) -> Result<Vec<Lease>> {
        let action = "listing leases";
        let mut client = self.client(action).await?;
        let transaction = read(&mut client, action).await?;
        let pool = filter.pool.as_ref().map(PoolName::as_str);
        if let Some(pool) = pool {
            load_pool(&transaction, pool, "", action).await?;
        }
        select_leases(
            &transaction,
            "($1::text IS NULL OR l.pool_name = $1) AND ($2::text IS NULL OR l.cluster = $2)",
            &[&pool, &filter.cluster],
            action,
        )
        .await
    }
}
