//! What vCenter has, as plain data handed in by the vSphere layer: the
//! inventory facts topology needs (datacenters, compute clusters, hosts,
//! datastores, networks) and the two tag categories with their tags and
//! attachments. Lookup helpers only; no decisions.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A vSphere object as the tagging API names it: type and managed object id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// vAPI type, e.g. `ClusterComputeResource`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Managed object id, e.g. `domain-c7`.
    pub id: String,
}

impl ObjectRef {
    /// A reference of `type_name` with `id`.
    pub fn new(type_name: &str, id: &str) -> Self {
        ObjectRef {
            type_name: type_name.to_string(),
            id: id.to_string(),
        }
    }
}

/// A datacenter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatacenterFacts {
    /// Managed object id.
    pub id: String,
    /// Inventory path, e.g. `/DC0`.
    pub path: String,
}

/// A compute cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFacts {
    /// Managed object id.
    pub id: String,
    /// Inventory path.
    pub path: String,
    /// Id of its datacenter.
    pub datacenter: String,
    /// Ids of its hosts.
    pub hosts: Vec<String>,
}

/// A host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// Managed object id.
    pub id: String,
    /// Inventory path.
    pub path: String,
    /// Ids of the networks it is attached to.
    pub networks: Vec<String>,
}

/// A datastore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreFacts {
    /// Managed object id.
    pub id: String,
    /// Inventory path.
    pub path: String,
    /// Id of its datacenter.
    pub datacenter: String,
    /// Ids of the hosts that mount it.
    pub hosts: Vec<String>,
    /// `VMFS`, `NFS`, `vsan`…
    pub datastore_type: String,
    /// Free space in bytes.
    pub free_bytes: i64,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkFacts {
    /// Managed object id.
    pub id: String,
    /// Inventory path.
    pub path: String,
}

/// The inventory facts topology works on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InventoryFacts {
    /// Datacenters.
    pub datacenters: Vec<DatacenterFacts>,
    /// Compute clusters.
    pub clusters: Vec<ClusterFacts>,
    /// Hosts.
    pub hosts: Vec<HostFacts>,
    /// Datastores.
    pub datastores: Vec<DatastoreFacts>,
    /// Networks.
    pub networks: Vec<NetworkFacts>,
}

/// How many tags of a category one object may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Cardinality {
    /// At most one.
    Single,
    /// Any number.
    Multiple,
}

impl Cardinality {
    /// The vAPI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Cardinality::Single => "SINGLE",
            Cardinality::Multiple => "MULTIPLE",
        }
    }
}

/// A tag category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryFacts {
    /// Category id (`urn:vmomi:InventoryServiceCategory:…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Cardinality.
    pub cardinality: Cardinality,
    /// Object types its tags may be attached to; empty means all.
    pub associable_types: Vec<String>,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagFact {
    /// Tag id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Id of its category.
    pub category_id: String,
    /// Description.
    pub description: String,
}

/// A tag attached to an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Tag id.
    pub tag_id: String,
    /// The object.
    pub object: ObjectRef,
}

/// The region and zone categories (when they exist), their tags, and where
/// those tags are attached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TagFacts {
    /// Categories found (only the two topology categories are loaded).
    pub categories: Vec<CategoryFacts>,
    /// Tags of those categories.
    pub tags: Vec<TagFact>,
    /// Attachments of those tags.
    pub attachments: Vec<Attachment>,
}

/// Everything observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Inventory facts.
    pub inventory: InventoryFacts,
    /// Tag facts.
    pub tags: TagFacts,
}

impl Observed {
    /// A category by name.
    pub fn category(&self, name: &str) -> Option<&CategoryFacts> {
        self.tags.categories.iter().find(|c| c.name == name)
    }

    /// A tag by category name and tag name.
    pub fn tag(&self, category: &str, name: &str) -> Option<&TagFact> {
        let category = self.category(category)?;
        self.tags
            .tags
            .iter()
            .find(|t| t.category_id == category.id && t.name == name)
    }

    /// A tag by id.
    pub fn tag_by_id(&self, id: &str) -> Option<&TagFact> {
        self.tags.tags.iter().find(|t| t.id == id)
    }

    /// Tags of a category (by name), sorted by name.
    pub fn tags_of(&self, category: &str) -> Vec<&TagFact> {
        let Some(category) = self.category(category) else {
            return Vec::new();
        };
        let mut tags: Vec<&TagFact> = self
            .tags
            .tags
            .iter()
            .filter(|t| t.category_id == category.id)
            .collect();
        tags.sort_by(|a, b| a.name.cmp(&b.name));
        tags
    }

    /// Objects a tag is attached to, sorted.
    pub fn objects_of(&self, tag_id: &str) -> Vec<&ObjectRef> {
        let mut out: Vec<&ObjectRef> = self
            .tags
            .attachments
            .iter()
            .filter(|a| a.tag_id == tag_id)
            .map(|a| &a.object)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Tags of a category (by name) attached to an object, sorted by name.
    pub fn tags_on(&self, category: &str, object: &ObjectRef) -> Vec<&TagFact> {
        let Some(category) = self.category(category) else {
            return Vec::new();
        };
        let mut out: Vec<&TagFact> = self
            .tags
            .attachments
            .iter()
            .filter(|a| &a.object == object)
            .filter_map(|a| self.tag_by_id(&a.tag_id))
            .filter(|t| t.category_id == category.id)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.id == b.id);
        out
    }

    /// Inventory path of an object, or `type:id` when it is not in the facts.
    pub fn path_of(&self, object: &ObjectRef) -> String {
        let inv = &self.inventory;
        let found = match object.type_name.as_str() {
            super::TYPE_DATACENTER => inv
                .datacenters
                .iter()
                .find(|d| d.id == object.id)
                .map(|d| &d.path),
            super::TYPE_CLUSTER => inv
                .clusters
                .iter()
                .find(|c| c.id == object.id)
                .map(|c| &c.path),
            super::TYPE_DATASTORE => inv
                .datastores
                .iter()
                .find(|d| d.id == object.id)
                .map(|d| &d.path),
            "HostSystem" => inv
                .hosts
                .iter()
                .find(|h| h.id == object.id)
                .map(|h| &h.path),
            _ => None,
        };
        found
            .cloned()
            .unwrap_or_else(|| format!("{}:{}", object.type_name, object.id))
    }

    /// A datacenter by path.
    pub fn datacenter_at(&self, path: &str) -> Option<&DatacenterFacts> {
        self.inventory.datacenters.iter().find(|d| d.path == path)
    }

    /// A datacenter by id.
    pub fn datacenter(&self, id: &str) -> Option<&DatacenterFacts> {
        self.inventory.datacenters.iter().find(|d| d.id == id)
    }

    /// A compute cluster by path.
    pub fn cluster_at(&self, path: &str) -> Option<&ClusterFacts> {
        self.inventory.clusters.iter().find(|c| c.path == path)
    }

    /// A compute cluster by id.
    pub fn cluster(&self, id: &str) -> Option<&ClusterFacts> {
        self.inventory.clusters.iter().find(|c| c.id == id)
    }

    /// A datastore by path.
    pub fn datastore_at(&self, path: &str) -> Option<&DatastoreFacts> {
        self.inventory.datastores.iter().find(|d| d.path == path)
    }

    /// A datastore by id.
    pub fn datastore(&self, id: &str) -> Option<&DatastoreFacts> {
        self.inventory.datastores.iter().find(|d| d.id == id)
    }

    /// A host by id.
    pub fn host(&self, id: &str) -> Option<&HostFacts> {
        self.inventory.hosts.iter().find(|h| h.id == id)
    }

    /// Path of a network, or its id.
    pub fn network_path(&self, id: &str) -> String {
        self.inventory
            .networks
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.path.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Datastores mounted by every one of `hosts` (none when `hosts` is empty).
    pub fn datastores_reachable_by_all(&self, hosts: &BTreeSet<String>) -> Vec<&DatastoreFacts> {
        if hosts.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<&DatastoreFacts> = self
            .inventory
            .datastores
            .iter()
            .filter(|d| {
                let mounted: BTreeSet<&String> = d.hosts.iter().collect();
                hosts.iter().all(|h| mounted.contains(h))
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Compute clusters by id, for quick lookups.
    pub(crate) fn clusters_by_id(&self) -> BTreeMap<&str, &ClusterFacts> {
        self.inventory
            .clusters
            .iter()
            .map(|c| (c.id.as_str(), c))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A small inventory shaped like the simulator's `-dc 2 -cluster 2 -ds 2`.
    use super::*;
    use crate::topology::{MANAGED_MARKER, TYPE_CLUSTER, TYPE_DATACENTER, TYPE_DATASTORE};

    pub(crate) fn inventory() -> InventoryFacts {
        let mut inv = InventoryFacts::default();
        for dc in 0..2 {
            let dc_id = format!("datacenter-{dc}");
            inv.datacenters.push(DatacenterFacts {
                id: dc_id.clone(),
                path: format!("/DC{dc}"),
            });
            let mut all_hosts = Vec::new();
            for c in 0..2 {
                let hosts: Vec<String> = (0..3).map(|h| format!("host-{dc}{c}{h}")).collect();
                for h in &hosts {
                    inv.hosts.push(HostFacts {
                        id: h.clone(),
                        path: format!("/DC{dc}/host/DC{dc}_C{c}/{h}"),
                        networks: vec![format!("network-{dc}")],
                    });
                }
                all_hosts.extend(hosts.clone());
                inv.clusters.push(ClusterFacts {
                    id: format!("domain-c{dc}{c}"),
                    path: format!("/DC{dc}/host/DC{dc}_C{c}"),
                    datacenter: dc_id.clone(),
                    hosts,
                });
            }
            for ds in 0..2 {
                inv.datastores.push(DatastoreFacts {
                    id: format!("datastore-{dc}{ds}"),
                    path: format!("/DC{dc}/datastore/LocalDS_{ds}"),
                    datacenter: dc_id.clone(),
                    hosts: all_hosts.clone(),
                    datastore_type: "OTHER".into(),
                    free_bytes: 1 << 30,
                });
            }
            inv.networks.push(NetworkFacts {
                id: format!("network-{dc}"),
                path: format!("/DC{dc}/network/VM Network"),
            });
        }
        inv
    }

    pub(crate) fn category(id: &str, name: &str, types: &[&str]) -> CategoryFacts {
        CategoryFacts {
            id: id.into(),
            name: name.into(),
            description: MANAGED_MARKER.into(),
            cardinality: Cardinality::Single,
            associable_types: types.iter().map(|t| t.to_string()).collect(),
        }
    }

    pub(crate) fn tag(id: &str, name: &str, category: &str) -> TagFact {
        TagFact {
            id: id.into(),
            name: name.into(),
            category_id: category.into(),
            description: String::new(),
        }
    }

    pub(crate) fn attach(tag_id: &str, type_name: &str, id: &str) -> Attachment {
        Attachment {
            tag_id: tag_id.into(),
            object: ObjectRef::new(type_name, id),
        }
    }

    /// Fully tagged: regions r0/r1 on DC0/DC1, zones z00.. on clusters,
    /// zNN also on LocalDS_N of its datacenter.
    pub(crate) fn tagged() -> Observed {
        let mut tags = TagFacts {
            categories: vec![
                category("cat-r", "k8s-region", &[TYPE_DATACENTER]),
                category("cat-z", "k8s-zone", &[TYPE_CLUSTER, TYPE_DATASTORE]),
            ],
            ..Default::default()
        };
        for dc in 0..2 {
            tags.tags
                .push(tag(&format!("tag-r{dc}"), &format!("r{dc}"), "cat-r"));
            tags.attachments.push(attach(
                &format!("tag-r{dc}"),
                TYPE_DATACENTER,
                &format!("datacenter-{dc}"),
            ));
            for c in 0..2 {
                let id = format!("tag-z{dc}{c}");
                tags.tags.push(tag(&id, &format!("z{dc}{c}"), "cat-z"));
                tags.attachments
                    .push(attach(&id, TYPE_CLUSTER, &format!("domain-c{dc}{c}")));
                tags.attachments
                    .push(attach(&id, TYPE_DATASTORE, &format!("datastore-{dc}{c}")));
            }
        }
        Observed {
            inventory: inventory(),
            tags,
        }
    }
}
