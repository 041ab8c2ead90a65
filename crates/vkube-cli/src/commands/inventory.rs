//! `vkube inventory`: what a cluster can be placed on — datacenters,
//! compute clusters, hosts, datastores, datastore clusters, networks,
//! resource pools, VM folders and templates — from one inventory snapshot.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use vkube_vsphere::{Details, Entity, Inventory, Session};

use crate::output::{human_bytes, print_data, print_table, Format};

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Report {
    datacenters: Vec<Named>,
    compute_clusters: Vec<Cluster>,
    hosts: Vec<Host>,
    datastores: Vec<Datastore>,
    datastore_clusters: Vec<DatastoreCluster>,
    networks: Vec<Network>,
    resource_pools: Vec<Named>,
    vm_folders: Vec<Named>,
    templates: Vec<Named>,
    virtual_machines: usize,
}

#[derive(Serialize)]
struct Named {
    path: String,
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cluster {
    path: String,
    id: String,
    hosts: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Host {
    path: String,
    id: String,
    connection_state: String,
    power_state: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Datastore {
    path: String,
    id: String,
    #[serde(rename = "type")]
    datastore_type: String,
    capacity_bytes: i64,
    free_bytes: i64,
    accessible: bool,
    hosts: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DatastoreCluster {
    path: String,
    id: String,
    capacity_bytes: i64,
    free_bytes: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Network {
    path: String,
    id: String,
    #[serde(rename = "type")]
    network_type: String,
}

fn named(e: &Entity) -> Named {
    Named {
        path: e.path.clone(),
        id: e.id.clone(),
    }
}

fn report(inv: &Inventory) -> Report {
    let mut r = Report::default();
    for e in inv.select(|_| true) {
        match &e.details {
            Details::Datacenter => r.datacenters.push(named(e)),
            Details::ComputeCluster { hosts } => r.compute_clusters.push(Cluster {
                path: e.path.clone(),
                id: e.id.clone(),
                hosts: hosts.len(),
            }),
            Details::Host {
                connection_state,
                power_state,
                ..
            } => r.hosts.push(Host {
                path: e.path.clone(),
                id: e.id.clone(),
                connection_state: connection_state.clone(),
                power_state: power_state.clone(),
            }),
            Details::Datastore {
                datastore_type,
                capacity_bytes,
                free_bytes,
                accessible,
                hosts,
                ..
            } => r.datastores.push(Datastore {
                path: e.path.clone(),
                id: e.id.clone(),
                datastore_type: datastore_type.clone(),
                capacity_bytes: *capacity_bytes,
                free_bytes: *free_bytes,
                accessible: *accessible,
                hosts: hosts.len(),
            }),
            Details::DatastoreCluster {
                capacity_bytes,
                free_bytes,
            } => r.datastore_clusters.push(DatastoreCluster {
                path: e.path.clone(),
                id: e.id.clone(),
                capacity_bytes: *capacity_bytes,
                free_bytes: *free_bytes,
            }),
            Details::Network { network_type, .. } => r.networks.push(Network {
                path: e.path.clone(),
                id: e.id.clone(),
                network_type: network_type.clone(),
            }),
            Details::ResourcePool { .. } => r.resource_pools.push(named(e)),
            Details::Folder { child_types }
                if child_types.iter().any(|t| t == "VirtualMachine") =>
            {
                r.vm_folders.push(named(e))
            }
            Details::VirtualMachine { template: true, .. } => r.templates.push(named(e)),
            Details::VirtualMachine { .. } => r.virtual_machines += 1,
            _ => {}
        }
    }
    r
}

/// Print the placement-relevant inventory.
pub async fn run(session: &Session, format: Format, out: &mut dyn Write) -> Result<()> {
    let inventory = Inventory::load(session).await?;
    let r = report(&inventory);
    if format != Format::Table {
        return print_data(out, format, &r);
    }
    let section = |out: &mut dyn Write, title: &str| writeln!(out, "\n{title}");
    section(out, "DATACENTERS")?;
    print_table(
        out,
        &["PATH", "ID"],
        r.datacenters
            .iter()
            .map(|d| vec![d.path.clone(), d.id.clone()]),
    )?;
    section(out, "COMPUTE CLUSTERS")?;
    print_table(
        out,
        &["PATH", "HOSTS"],
        r.compute_clusters
            .iter()
            .map(|c| vec![c.path.clone(), c.hosts.to_string()]),
    )?;
    section(out, "HOSTS")?;
    print_table(
        out,
        &["PATH", "CONNECTION", "POWER"],
        r.hosts.iter().map(|h| {
            vec![
                h.path.clone(),
                h.connection_state.clone(),
                h.power_state.clone(),
            ]
        }),
    )?;
    section(out, "DATASTORES")?;
    print_table(
        out,
        &["PATH", "TYPE", "CAPACITY", "FREE", "HOSTS", "ACCESSIBLE"],
        r.datastores.iter().map(|d| {
            vec![
                d.path.clone(),
                d.datastore_type.clone(),
                human_bytes(d.capacity_bytes),
                human_bytes(d.free_bytes),
                d.hosts.to_string(),
                if d.accessible {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        }),
    )?;
    section(out, "DATASTORE CLUSTERS")?;
    print_table(
        out,
        &["PATH", "CAPACITY", "FREE"],
        r.datastore_clusters.iter().map(|d| {
            vec![
                d.path.clone(),
                human_bytes(d.capacity_bytes),
                human_bytes(d.free_bytes),
            ]
        }),
    )?;
    section(out, "NETWORKS")?;
    print_table(
        out,
        &["PATH", "TYPE"],
        r.networks
            .iter()
            .map(|n| vec![n.path.clone(), n.network_type.clone()]),
    )?;
    section(out, "RESOURCE POOLS")?;
    print_table(
        out,
        &["PATH"],
        r.resource_pools.iter().map(|p| vec![p.path.clone()]),
    )?;
    section(out, "VM FOLDERS")?;
    print_table(
        out,
        &["PATH"],
        r.vm_folders.iter().map(|p| vec![p.path.clone()]),
    )?;
    section(out, "TEMPLATES")?;
    print_table(
        out,
        &["PATH"],
        r.templates.iter().map(|p| vec![p.path.clone()]),
    )?;
    writeln!(out, "\n{} virtual machines", r.virtual_machines)?;
    Ok(())
}
