//! The observed topology as people and placement read it: region → zone →
//! compute cluster, with each cluster's hosts, datastores (shared, partial
//! or local) and networks. Built from tags alone, so it works on any
//! vCenter, including ones vkube did not set up. Also resolves zone names to
//! compute clusters and datastores, for cluster specs that say "place this
//! pool in zones az1, az2".

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::error::Error;
use super::observed::{ClusterFacts, ObjectRef, Observed};
use super::spec::Categories;
use super::{TYPE_CLUSTER, TYPE_DATACENTER, TYPE_DATASTORE};

/// How a datastore is reachable from a compute cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DatastoreAccess {
    /// Mounted by every host of the cluster.
    Shared,
    /// Mounted by some of the cluster's hosts.
    Partial,
    /// A single host's local datastore.
    Local,
}

impl DatastoreAccess {
    /// Lowercase word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            DatastoreAccess::Shared => "shared",
            DatastoreAccess::Partial => "partial",
            DatastoreAccess::Local => "local",
        }
    }
}

/// A datastore seen from a compute cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreView {
    /// Inventory path.
    pub path: String,
    /// How the cluster reaches it.
    pub access: DatastoreAccess,
    /// Its zone tag, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// A compute cluster in a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Inventory path.
    pub path: String,
    /// Host paths.
    pub hosts: Vec<String>,
    /// Datastores mounted by any of its hosts.
    pub datastores: Vec<DatastoreView>,
    /// Network paths its hosts are attached to.
    pub networks: Vec<String>,
}

/// A zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneView {
    /// Zone tag name.
    pub name: String,
    /// Compute clusters carrying the tag (within this region).
    pub compute_clusters: Vec<ClusterView>,
    /// Datastores carrying the tag.
    pub tagged_datastores: Vec<String>,
    /// Datastores mounted by every host of the zone's clusters.
    pub shared_datastores: Vec<String>,
}

/// A region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionView {
    /// Region tag name; none for zones whose datacenter has no region tag.
    pub name: Option<String>,
    /// Datacenters carrying the tag.
    pub datacenters: Vec<String>,
    /// Zones in the region.
    pub zones: Vec<ZoneView>,
}

/// The observed topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyView {
    /// Region category name.
    pub region_category: String,
    /// Zone category name.
    pub zone_category: String,
    /// Whether each category exists.
    pub categories_found: bool,
    /// Regions by name; the untagged pseudo-region last.
    pub regions: Vec<RegionView>,
}

/// Where a zone puts things.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Zone tag name.
    pub zone: String,
    /// Region tag name.
    pub region: Option<String>,
    /// Compute cluster paths.
    pub compute_clusters: Vec<String>,
    /// Datastores to use: those tagged with the zone and reachable by all
    /// its hosts, or, when none are tagged, every datastore reachable by all
    /// its hosts.
    pub datastores: Vec<String>,
}

impl TopologyView {
    /// Build the view from observed tags and inventory.
    pub fn build(observed: &Observed, categories: &Categories) -> TopologyView {
        let region_category = categories.region.as_str();
        let zone_category = categories.zone.as_str();
        let clusters = observed.clusters_by_id();
        let region_of_datacenter = |dc: &str| -> Option<String> {
            observed
                .tags_on(region_category, &ObjectRef::new(TYPE_DATACENTER, dc))
                .first()
                .map(|t| t.name.clone())
        };
        let mut regions: BTreeMap<Option<String>, RegionView> = BTreeMap::new();
        for tag in observed.tags_of(region_category) {
            let datacenters = observed
                .objects_of(&tag.id)
                .into_iter()
                .filter(|o| o.type_name == TYPE_DATACENTER)
                .map(|o| observed.path_of(o))
                .collect();
            regions.insert(
                Some(tag.name.clone()),
                RegionView {
                    name: Some(tag.name.clone()),
                    datacenters,
                    zones: Vec::new(),
                },
            );
        }
        for tag in observed.tags_of(zone_category) {
            let objects = observed.objects_of(&tag.id);
            let tagged_datastores: Vec<&str> = objects
                .iter()
                .filter(|o| o.type_name == TYPE_DATASTORE)
                .filter_map(|o| observed.datastore(&o.id))
                .map(|d| d.path.as_str())
                .collect();
            let mut by_region: BTreeMap<Option<String>, Vec<&ClusterFacts>> = BTreeMap::new();
            for object in objects.iter().filter(|o| o.type_name == TYPE_CLUSTER) {
                if let Some(cluster) = clusters.get(object.id.as_str()) {
                    by_region
                        .entry(region_of_datacenter(&cluster.datacenter))
                        .or_default()
                        .push(cluster);
                }
            }
            if by_region.is_empty() {
                let region = objects
                    .iter()
                    .filter(|o| o.type_name == TYPE_DATASTORE)
                    .filter_map(|o| observed.datastore(&o.id))
                    .find_map(|d| region_of_datacenter(&d.datacenter));
                by_region.insert(region, Vec::new());
            }
            for (region, members) in by_region {
                let hosts: BTreeSet<String> = members
                    .iter()
                    .flat_map(|c| c.hosts.iter().cloned())
                    .collect();
                let zone = ZoneView {
                    name: tag.name.clone(),
                    compute_clusters: members
                        .iter()
                        .map(|c| cluster_view(observed, zone_category, c))
                        .collect(),
                    tagged_datastores: tagged_datastores.iter().map(|p| p.to_string()).collect(),
                    shared_datastores: observed
                        .datastores_reachable_by_all(&hosts)
                        .iter()
                        .map(|d| d.path.clone())
                        .collect(),
                };
                regions
                    .entry(region.clone())
                    .or_insert_with(|| RegionView {
                        name: region,
                        datacenters: Vec::new(),
                        zones: Vec::new(),
                    })
                    .zones
                    .push(zone);
            }
        }
        let mut regions: Vec<RegionView> = regions.into_values().collect();
        // `None` sorts first in a BTreeMap; show the untagged group last.
        regions.sort_by_key(|r| (r.name.is_none(), r.name.clone()));
        TopologyView {
            region_category: region_category.to_string(),
            zone_category: zone_category.to_string(),
            categories_found: observed.category(region_category).is_some()
                && observed.category(zone_category).is_some(),
            regions,
        }
    }

    /// Every zone name, sorted.
    pub fn zone_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .regions
            .iter()
            .flat_map(|r| r.zones.iter().map(|z| z.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Resolve zone names to compute clusters and datastores, in the order
    /// asked. Fails on the first zone that is not tagged anywhere.
    pub fn placement(&self, zones: &[&str]) -> Result<Vec<Placement>, Error> {
        zones
            .iter()
            .map(|name| {
                let (region, zone) = self
                    .regions
                    .iter()
                    .find_map(|r| r.zones.iter().find(|z| z.name == *name).map(|z| (r, z)))
                    .ok_or_else(|| Error::UnknownZone {
                        zone: name.to_string(),
                        known: self.zone_names(),
                    })?;
                let tagged_shared: Vec<String> = zone
                    .tagged_datastores
                    .iter()
                    .filter(|d| zone.shared_datastores.contains(d))
                    .cloned()
                    .collect();
                Ok(Placement {
                    zone: zone.name.clone(),
                    region: region.name.clone(),
                    compute_clusters: zone
                        .compute_clusters
                        .iter()
                        .map(|c| c.path.clone())
                        .collect(),
                    datastores: if tagged_shared.is_empty() {
                        zone.shared_datastores.clone()
                    } else {
                        tagged_shared
                    },
                })
            })
            .collect()
    }
}

fn cluster_view(observed: &Observed, zone_category: &str, cluster: &ClusterFacts) -> ClusterView {
    let hosts: BTreeSet<&String> = cluster.hosts.iter().collect();
    let mut datastores: Vec<DatastoreView> = observed
        .inventory
        .datastores
        .iter()
        .filter(|d| d.hosts.iter().any(|h| hosts.contains(h)))
        .map(|d| {
            let mounted = hosts.iter().filter(|h| d.hosts.contains(h)).count();
            let access = if d.hosts.len() == 1 {
                DatastoreAccess::Local
            } else if mounted == hosts.len() {
                DatastoreAccess::Shared
            } else {
                DatastoreAccess::Partial
            };
            DatastoreView {
                path: d.path.clone(),
                access,
                zone: observed
                    .tags_on(zone_category, &ObjectRef::new(TYPE_DATASTORE, &d.id))
                    .first()
                    .map(|t| t.name.clone()),
            }
        })
        .collect();
    datastores.sort_by(|a, b| a.path.cmp(&b.path));
    let mut host_paths = Vec::new();
    let mut networks = BTreeSet::new();
    for id in &cluster.hosts {
        match observed.host(id) {
            Some(h) => {
                host_paths.push(h.path.clone());
                networks.extend(h.networks.iter().map(|n| observed.network_path(n)));
            }
            None => host_paths.push(id.clone()),
        }
    }
    host_paths.sort();
    ClusterView {
        path: cluster.path.clone(),
        hosts: host_paths,
        datastores,
        networks: networks.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::observed::fixtures;

    #[test]
    fn regions_hold_zones_hold_clusters() {
        let view = TopologyView::build(&fixtures::tagged(), &Categories::default());
        assert!(view.categories_found);
        let names: Vec<_> = view
            .regions
            .iter()
            .map(|r| r.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["r0", "r1"]);
        let r0 = &view.regions[0];
        assert_eq!(r0.datacenters, ["/DC0"]);
        let zones: Vec<_> = r0.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(zones, ["z00", "z01"]);
        let c = &r0.zones[0].compute_clusters[0];
        assert_eq!(c.path, "/DC0/host/DC0_C0");
        assert_eq!(c.hosts.len(), 3);
        assert_eq!(c.networks, ["/DC0/network/VM Network"]);
        assert_eq!(c.datastores[0].access, DatastoreAccess::Shared);
        assert_eq!(c.datastores[0].zone.as_deref(), Some("z00"));
        assert_eq!(c.datastores[1].zone.as_deref(), Some("z01"));
    }

    #[test]
    fn zones_without_a_region_are_grouped_last() {
        let mut observed = fixtures::tagged();
        observed.tags.attachments.retain(|a| a.tag_id != "tag-r0");
        let view = TopologyView::build(&observed, &Categories::default());
        assert_eq!(view.regions.last().unwrap().name, None);
        assert_eq!(view.regions.last().unwrap().zones.len(), 2);
    }

    #[test]
    fn placement_resolves_zones_to_clusters_and_datastores() {
        let view = TopologyView::build(&fixtures::tagged(), &Categories::default());
        let placement = view.placement(&["z01", "z10"]).unwrap();
        assert_eq!(placement[0].compute_clusters, ["/DC0/host/DC0_C1"]);
        assert_eq!(placement[0].datastores, ["/DC0/datastore/LocalDS_1"]);
        assert_eq!(placement[1].region.as_deref(), Some("r1"));
        let err = view.placement(&["nope"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown zone `nope` (known: `z00`, `z01`, `z10`, `z11`)"
        );
    }
}
