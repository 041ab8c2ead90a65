//! Regions and zones against vCenter: read what is there into
//! `vkube_core::topology::Observed` (inventory facts plus the two tag
//! categories), and run the steps of a `SetupPlan`. Deciding what to do is
//! `vkube-core`'s job; this module only observes and acts.

use std::collections::{BTreeMap, BTreeSet};

use vkube_core::topology::{
    Attachment, Cardinality, CategoryFacts, ClusterFacts, DatacenterFacts, DatastoreFacts,
    HostFacts, InventoryFacts, NetworkFacts, ObjectRef, Observed, Step, TagFact, TagFacts,
};

use crate::error::{Error, Result};
use crate::inventory::{Details, Inventory};
use crate::session::Session;
use crate::tagging::{CategorySpec, DynamicId, TagSpec, TaggingClient};

/// The facts topology needs from an inventory snapshot. Pure.
///
/// A datastore's hosts are the union of its `host` mounts and the hosts
/// listing it in their `datastore` property: the two normally agree, but
/// govmomi's simulator creates one object per host for a shared local
/// datastore and keeps only the last host's mount on it.
pub fn inventory_facts(inventory: &Inventory) -> InventoryFacts {
    let datacenter_id = |id: &str| {
        inventory
            .datacenter_of(id)
            .map(|d| d.id.clone())
            .unwrap_or_default()
    };
    let mut mounts: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut facts = InventoryFacts::default();
    for entity in inventory.select(|_| true) {
        match &entity.details {
            Details::Datacenter => facts.datacenters.push(DatacenterFacts {
                id: entity.id.clone(),
                path: entity.path.clone(),
            }),
            Details::ComputeCluster { hosts } => facts.clusters.push(ClusterFacts {
                id: entity.id.clone(),
                path: entity.path.clone(),
                datacenter: datacenter_id(&entity.id),
                hosts: hosts.clone(),
            }),
            Details::Host {
                datastores,
                networks,
                ..
            } => {
                for ds in datastores {
                    mounts
                        .entry(ds.as_str())
                        .or_default()
                        .insert(entity.id.clone());
                }
                facts.hosts.push(HostFacts {
                    id: entity.id.clone(),
                    path: entity.path.clone(),
                    networks: networks.clone(),
                });
            }
            Details::Network { .. } => facts.networks.push(NetworkFacts {
                id: entity.id.clone(),
                path: entity.path.clone(),
            }),
            _ => {}
        }
    }
    for entity in inventory.select(|d| matches!(d, Details::Datastore { .. })) {
        let Details::Datastore {
            hosts,
            datastore_type,
            free_bytes,
            ..
        } = &entity.details
        else {
            continue;
        };
        let mut all: BTreeSet<String> = hosts.iter().cloned().collect();
        all.extend(
            mounts
                .get(entity.id.as_str())
                .into_iter()
                .flatten()
                .cloned(),
        );
        facts.datastores.push(DatastoreFacts {
            id: entity.id.clone(),
            path: entity.path.clone(),
            datacenter: datacenter_id(&entity.id),
            hosts: all.into_iter().collect(),
            datastore_type: datastore_type.clone(),
            free_bytes: *free_bytes,
        });
    }
    facts
}

/// The categories named `names`, their tags, and those tags' attachments.
/// Round trips: categories + 1, then per found category its tags + 1, then
/// one batch for the attachments.
pub async fn observe_tags(tagging: &TaggingClient, names: &[&str]) -> Result<TagFacts> {
    let mut facts = TagFacts::default();
    for id in tagging.category_ids().await? {
        let category = tagging.category(&id).await?;
        if names.contains(&category.name.as_str()) {
            facts.categories.push(CategoryFacts {
                id: category.id,
                name: category.name,
                description: category.description,
                cardinality: if category.cardinality.eq_ignore_ascii_case("SINGLE") {
                    Cardinality::Single
                } else {
                    Cardinality::Multiple
                },
                associable_types: category.associable_types,
            });
        }
    }
    facts.categories.sort_by(|a, b| a.name.cmp(&b.name));
    for category in &facts.categories {
        for tag in tagging.tags_for_category(&category.id).await? {
            facts.tags.push(TagFact {
                id: tag.id,
                name: tag.name,
                category_id: tag.category_id,
                description: tag.description,
            });
        }
    }
    let tag_ids: Vec<String> = facts.tags.iter().map(|t| t.id.clone()).collect();
    for (tag_id, objects) in tagging.attached_objects_on_tags(&tag_ids).await? {
        for object in objects {
            facts.attachments.push(Attachment {
                tag_id: tag_id.clone(),
                object: ObjectRef {
                    type_name: object.type_name,
                    id: object.id,
                },
            });
        }
    }
    facts.attachments.sort();
    Ok(facts)
}

/// Inventory and the two topology categories, observed together.
pub async fn observe(
    session: &Session,
    tagging: &TaggingClient,
    region_category: &str,
    zone_category: &str,
) -> Result<Observed> {
    let inventory = Inventory::load(session).await?;
    let tags = observe_tags(tagging, &[region_category, zone_category]).await?;
    Ok(Observed {
        inventory: inventory_facts(&inventory),
        tags,
    })
}

/// Runs plan steps, resolving the category and tag names they use to ids
/// (those observed, then those it creates).
pub struct Applier<'a> {
    tagging: &'a TaggingClient,
    categories: BTreeMap<String, String>,
    tags: BTreeMap<(String, String), String>,
}

impl<'a> Applier<'a> {
    /// An applier that knows the ids in `observed`.
    pub fn new(tagging: &'a TaggingClient, observed: &Observed) -> Self {
        let categories: BTreeMap<String, String> = observed
            .tags
            .categories
            .iter()
            .map(|c| (c.name.clone(), c.id.clone()))
            .collect();
        let names: BTreeMap<&str, &str> = observed
            .tags
            .categories
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        let tags = observed
            .tags
            .tags
            .iter()
            .filter_map(|t| {
                names
                    .get(t.category_id.as_str())
                    .map(|c| ((c.to_string(), t.name.clone()), t.id.clone()))
            })
            .collect();
        Applier {
            tagging,
            categories,
            tags,
        }
    }

    fn category_id(&self, name: &str) -> Result<String> {
        self.categories.get(name).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "tag category `{name}` neither exists nor is created by the plan"
            ))
        })
    }

    fn tag_id(&self, category: &str, name: &str) -> Result<String> {
        self.tags
            .get(&(category.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "tag `{category}/{name}` neither exists nor is created by the plan"
                ))
            })
    }

    /// Run one step. Safe to retry: a create that finds its name taken
    /// (a concurrent run, or an earlier attempt whose answer was lost)
    /// adopts the existing object; attach and detach are idempotent.
    pub async fn apply(&mut self, step: &Step) -> Result<()> {
        match step {
            Step::CreateCategory {
                name,
                cardinality,
                associable_types,
                description,
            } => {
                let spec = CategorySpec {
                    name: name.clone(),
                    description: description.clone(),
                    cardinality: cardinality.as_str().into(),
                    associable_types: associable_types.clone(),
                };
                let id = match self.tagging.create_category(&spec).await {
                    Ok(id) => id,
                    Err(e) if e.is_already_exists() => {
                        let mut found = None;
                        for id in self.tagging.category_ids().await? {
                            if self.tagging.category(&id).await?.name == *name {
                                found = Some(id);
                                break;
                            }
                        }
                        found.ok_or(e)?
                    }
                    Err(e) => return Err(e),
                };
                self.categories.insert(name.clone(), id);
            }
            Step::AddAssociableTypes {
                category,
                associable_types,
                ..
            } => {
                let id = self.category_id(category)?;
                self.tagging
                    .set_associable_types(&id, category, associable_types)
                    .await?;
            }
            Step::CreateTag {
                category,
                name,
                description,
            } => {
                let category_id = self.category_id(category)?;
                let spec = TagSpec {
                    name: name.clone(),
                    description: description.clone(),
                    category_id: category_id.clone(),
                };
                let id = match self.tagging.create_tag(&spec).await {
                    Ok(id) => id,
                    Err(e) if e.is_already_exists() => self
                        .tagging
                        .tags_for_category(&category_id)
                        .await?
                        .into_iter()
                        .find(|t| t.name == *name)
                        .map(|t| t.id)
                        .ok_or(e)?,
                    Err(e) => return Err(e),
                };
                self.tags.insert((category.clone(), name.clone()), id);
            }
            Step::Attach {
                category,
                tag,
                object,
                ..
            } => {
                let id = self.tag_id(category, tag)?;
                self.tagging.attach(&id, &dynamic_id(object)).await?;
            }
            Step::Detach {
                category,
                tag,
                object,
                ..
            } => {
                let id = self.tag_id(category, tag)?;
                self.tagging.detach(&id, &dynamic_id(object)).await?;
            }
        }
        Ok(())
    }
}

fn dynamic_id(object: &ObjectRef) -> DynamicId {
    DynamicId {
        type_name: object.type_name.clone(),
        id: object.id.clone(),
    }
}
