//! `vkube ippool`: create, list, show, delete and import IP pools, and list
//! a pool's allocations. Parsing and validation are `vkube_core::ipam`'s;
//! persistence is `vkube_store`'s. This module only maps flags to those
//! calls and renders the results as a table, JSON or YAML.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use vkube_core::ipam::{self, Lease, PoolAddresses, RawIpPool, RawRange};
use vkube_store::{LeaseFilter, PoolRecord, StateLocation};

use crate::output::{print_data, print_table, Format};

/// `vkube ippool …`
#[derive(Debug, Args)]
pub struct IpPoolArgs {
    #[command(subcommand)]
    pub command: IpPoolCommand,
}

/// The `ippool` subcommands.
#[derive(Debug, Subcommand)]
pub enum IpPoolCommand {
    /// Create one pool from flags
    Create(CreateArgs),
    /// List pools with their use
    #[command(alias = "list")]
    Ls,
    /// Show one pool
    Show {
        /// Pool name
        name: String,
    },
    /// Delete a pool (refused while addresses are allocated, unless --force)
    #[command(alias = "rm")]
    Delete {
        /// Pool name
        name: String,
        /// Also release every address allocated from the pool
        #[arg(long)]
        force: bool,
    },
    /// List the addresses allocated from a pool
    Allocations {
        /// Pool name
        pool: String,
        /// Only this cluster's allocations
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Create pools from a YAML file (`pools: [...]`, a list, or one pool); all or none
    Import {
        /// YAML file, or `-` for standard input
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Allow pools that share addresses with other pools
        #[arg(long)]
        allow_overlap: bool,
    },
}

/// Flags of `vkube ippool create`, mirroring the YAML fields.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Pool name
    pub name: String,
    /// Address range START-END, e.g. 10.10.183.10-10.10.183.100
    #[arg(
        long,
        value_name = "START-END",
        conflicts_with = "subnet",
        required_unless_present = "subnet"
    )]
    pub range: Option<String>,
    /// All addresses of a CIDR, e.g. 10.10.183.64/26
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Prefix length of the nodes' network (required with --range; defaults to the subnet's)
    #[arg(long)]
    pub prefix: Option<u8>,
    /// Default gateway
    #[arg(long)]
    pub gateway: String,
    /// DNS servers, comma-separated or repeated
    #[arg(
        long = "name-servers",
        alias = "name-server",
        value_delimiter = ',',
        required = true
    )]
    pub name_servers: Vec<String>,
    /// DNS search domains, comma-separated or repeated
    #[arg(
        long = "search-domains",
        alias = "search-domain",
        value_delimiter = ','
    )]
    pub search_domains: Vec<String>,
    /// Addresses never handed out: A, A-B or a CIDR; comma-separated or repeated
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Reserve the pool for the first cluster that allocates from it
    #[arg(long)]
    pub restrict_to_cluster: bool,
    /// Allow the pool to share addresses with other pools
    #[arg(long)]
    pub allow_overlap: bool,
}

impl CreateArgs {
    fn to_raw(&self) -> RawIpPool {
        let range = self.range.as_deref().map(|text| {
            let (start, end) = text.split_once('-').unwrap_or((text, ""));
            RawRange {
                start: start.trim().to_owned(),
                end: end.trim().to_owned(),
            }
        });
        RawIpPool {
            name: self.name.clone(),
            range,
            subnet: self.subnet.clone(),
            prefix: self.prefix,
            gateway: Some(self.gateway.clone()),
            name_servers: self.name_servers.clone(),
            search_domains: self.search_domains.clone(),
            exclude: self.exclude.clone(),
            restrict_to_cluster: self.restrict_to_cluster,
        }
    }
}

/// Runs an `ippool` subcommand against the state file at `state`, writing
/// results to `out`.
pub async fn run(
    args: &IpPoolArgs,
    state: &StateLocation,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let store = super::open_state(state).await?;
    match &args.command {
        IpPoolCommand::Create(create) => {
            let pool = create
                .to_raw()
                .validate()
                .with_context(|| format!("creating IP pool `{}`", create.name))?;
            let records = store
                .create_pools(&[pool], create.allow_overlap)
                .await
                .with_context(|| format!("creating IP pool `{}`", create.name))?;
            print_created(out, format, &records)
        }
        IpPoolCommand::Import {
            file,
            allow_overlap,
        } => {
            let text = read_file(file)?;
            let context = || format!("importing IP pools from `{}`", file.display());
            let raws = ipam::parse_pools_yaml(&text).with_context(context)?;
            let pools = ipam::validate_pools(&raws, *allow_overlap).with_context(context)?;
            let records = store
                .create_pools(&pools, *allow_overlap)
                .await
                .with_context(context)?;
            print_created(out, format, &records)
        }
        IpPoolCommand::Ls => {
            let records = store.pools().await.context("listing IP pools")?;
            match format {
                Format::Table => print_pool_table(out, &records),
                _ => print_data(out, format, &records),
            }
        }
        IpPoolCommand::Show { name } => {
            let record = store
                .pool(name)
                .await
                .with_context(|| format!("showing IP pool `{name}`"))?;
            match format {
                Format::Table => print_pool_details(out, &record),
                _ => print_data(out, format, &record),
            }
        }
        IpPoolCommand::Delete { name, force } => {
            let released = store
                .delete_pool(name, *force)
                .await
                .with_context(|| format!("deleting IP pool `{name}`"))?;
            match format {
                Format::Table if released.is_empty() => {
                    Ok(writeln!(out, "deleted IP pool `{name}`")?)
                }
                Format::Table => Ok(writeln!(
                    out,
                    "deleted IP pool `{name}` and released {} address(es)",
                    released.len()
                )?),
                _ => print_data(
                    out,
                    format,
                    &Deleted {
                        pool: name,
                        released: &released,
                    },
                ),
            }
        }
        IpPoolCommand::Allocations { pool, cluster } => {
            let pool_name = vkube_core::ipam::PoolName::new(pool)
                .map_err(|problem| anyhow::anyhow!("pool name {problem}"))
                .with_context(|| format!("listing allocations of IP pool `{pool}`"))?;
            let filter = LeaseFilter {
                pool: Some(pool_name),
                cluster: cluster.clone(),
            };
            let leases = store
                .leases(&filter)
                .await
                .with_context(|| format!("listing allocations of IP pool `{pool}`"))?;
            match format {
                Format::Table => print_lease_table(out, &leases),
                _ => print_data(out, format, &leases),
            }
        }
    }
}

/// Whether `error` is one the user can fix (bad input, missing or busy
/// pool, full pool), as opposed to an unexpected failure (exit code 1
/// versus 2).
pub fn is_user_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if cause.downcast_ref::<ipam::Error>().is_some() {
            return true;
        }
        match cause.downcast_ref::<vkube_store::Error>() {
            Some(
                vkube_store::Error::Database { .. }
                | vkube_store::Error::Io { .. }
                | vkube_store::Error::Corrupt { .. },
            ) => false,
            Some(_) => true,
            None => cause.downcast_ref::<FileError>().is_some(),
        }
    })
}

/// The import file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading `{}`", path.display())]
struct FileError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn read_file(path: &Path) -> Result<String> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(path)
            .and_then(|mut file| file.read_to_string(&mut text))
            .map(|_| ())
    };
    result.map_err(|source| FileError {
        path: path.to_owned(),
        source,
    })?;
    Ok(text)
}

#[derive(Serialize)]
struct Deleted<'a> {
    pool: &'a str,
    released: &'a [Lease],
}

fn print_created(out: &mut dyn Write, format: Format, records: &[PoolRecord]) -> Result<()> {
    match format {
        Format::Table => {
            for record in records {
                writeln!(
                    out,
                    "created IP pool `{}`: {} address(es) in {}",
                    record.pool.name(),
                    record.capacity,
                    addresses(record)
                )?;
            }
            Ok(())
        }
        _ => print_data(out, format, &records),
    }
}

fn addresses(record: &PoolRecord) -> String {
    match record.pool.addresses() {
        PoolAddresses::Range(range) => range.to_string(),
        PoolAddresses::Subnet(cidr) => cidr.to_string(),
    }
}

fn owner(record: &PoolRecord) -> String {
    match (&record.owner, record.pool.restrict_to_cluster()) {
        (Some(owner), _) => owner.clone(),
        (None, true) => "(first cluster)".into(),
        (None, false) => "(shared)".into(),
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn print_pool_table(out: &mut dyn Write, records: &[PoolRecord]) -> Result<()> {
    let rows = records.iter().map(|record| {
        vec![
            record.pool.name().to_string(),
            addresses(record),
            format!("/{}", record.pool.prefix()),
            record.pool.gateway().to_string(),
            format!("{}/{}", record.allocated, record.capacity),
            owner(record),
        ]
    });
    print_table(
        out,
        &["NAME", "ADDRESSES", "PREFIX", "GATEWAY", "USED", "CLUSTER"],
        rows,
    )
}

fn print_pool_details(out: &mut dyn Write, record: &PoolRecord) -> Result<()> {
    let pool = &record.pool;
    let kind = match pool.addresses() {
        PoolAddresses::Range(_) => "range",
        PoolAddresses::Subnet(_) => "subnet",
    };
    let rows = [
        ("Name", pool.name().to_string()),
        ("Addresses", format!("{} ({kind})", addresses(record))),
        ("Network", pool.network().to_string()),
        ("Gateway", pool.gateway().to_string()),
        ("Name servers", join(pool.name_servers())),
        ("Search domains", join(pool.search_domains())),
        ("Excluded", join(pool.exclude())),
        (
            "Restricted",
            if pool.restrict_to_cluster() {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        ("Cluster", owner(record)),
        (
            "Used",
            format!("{} of {}", record.allocated, record.capacity),
        ),
    ];
    for (label, value) in rows {
        writeln!(out, "{:<15} {value}", format!("{label}:"))?;
    }
    Ok(())
}

fn print_lease_table(out: &mut dyn Write, leases: &[Lease]) -> Result<()> {
    let rows = leases.iter().map(|lease| {
        vec![
            format!("{}/{}", lease.address, lease.prefix),
            lease.cluster.clone(),
            lease.node.clone(),
        ]
    });
    print_table(out, &["ADDRESS", "CLUSTER", "NODE"], rows)
}
