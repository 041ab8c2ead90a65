//! The setup plan: what to create and attach so that vCenter carries the
//! topology file's regions and zones. Desired ([`Topology`]) is compared
//! with [`Observed`]; the result lists steps in the order they must run
//! (categories, tags, detaches, attaches) and the conflicts found.
//!
//! Guarantees: a plan never deletes a category or tag, and detaches only
//! under `force`, to resolve a conflict; planning against the state a plan
//! produced yields no steps (re-runs are no-ops). Steps name categories and
//! tags by name, not id, because ids of things not yet created are unknown;
//! the vSphere layer resolves them as it applies.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::error::{Error, Problems};
use super::observed::{Cardinality, ObjectRef, Observed};
use super::spec::Topology;
use super::{
    MANAGED_MARKER, REGION_TYPES, TYPE_CLUSTER, TYPE_DATACENTER, TYPE_DATASTORE, ZONE_TYPES,
};

/// Planning switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Resolve conflicts by detaching the tag in the way instead of refusing.
    pub force: bool,
}

/// One change to vCenter's tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Step {
    /// Create a category.
    CreateCategory {
        /// Category name.
        name: String,
        /// Always single: an object is in one region and one zone.
        cardinality: Cardinality,
        /// Object types its tags may be attached to.
        associable_types: Vec<String>,
        /// Description, carrying [`MANAGED_MARKER`].
        description: String,
    },
    /// Let an existing category's tags be attached to more object types
    /// (vCenter only allows appending to the list).
    AddAssociableTypes {
        /// Category name.
        category: String,
        /// The full new list: the existing types, then the added ones.
        associable_types: Vec<String>,
        /// The types added.
        added: Vec<String>,
    },
    /// Create a tag.
    CreateTag {
        /// Category name.
        category: String,
        /// Tag name.
        name: String,
        /// Description, carrying [`MANAGED_MARKER`].
        description: String,
    },
    /// Detach a tag from an object (only under `--force`, to resolve a conflict).
    Detach {
        /// Category name.
        category: String,
        /// Tag name.
        tag: String,
        /// The object.
        object: ObjectRef,
        /// Its inventory path.
        path: String,
    },
    /// Attach a tag to an object.
    Attach {
        /// Category name.
        category: String,
        /// Tag name.
        tag: String,
        /// The object.
        object: ObjectRef,
        /// Its inventory path.
        path: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateCategory {
                name,
                cardinality,
                associable_types,
                ..
            } => write!(
                f,
                "create category `{name}` ({} cardinality, for {})",
                cardinality.as_str().to_lowercase(),
                associable_types.join(", ")
            ),
            Step::AddAssociableTypes {
                category, added, ..
            } => {
                write!(f, "let category `{category}` tag {}", added.join(", "))
            }
            Step::CreateTag { category, name, .. } => write!(f, "create tag `{category}/{name}`"),
            Step::Detach {
                category,
                tag,
                path,
                ..
            } => write!(f, "detach `{category}/{tag}` from `{path}`"),
            Step::Attach {
                category,
                tag,
                path,
                ..
            } => write!(f, "attach `{category}/{tag}` to `{path}`"),
        }
    }
}

/// Something in vCenter that contradicts the topology file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "conflict",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Conflict {
    /// The object already carries another tag of the (single-cardinality) category.
    ObjectHasOtherTag {
        /// Category name.
        category: String,
        /// The object's path.
        path: String,
        /// The tag it carries.
        existing: String,
        /// The tag the file gives it.
        wanted: String,
    },
    /// The tag is already attached to another object of the same type.
    TagOnOtherObject {
        /// Category name.
        category: String,
        /// Tag name.
        tag: String,
        /// Where the file puts it.
        path: String,
        /// Where it also is.
        other_path: String,
    },
    /// The category exists but lets an object carry several of its tags.
    CategoryNotSingle {
        /// Category name.
        category: String,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::ObjectHasOtherTag { category, path, existing, wanted } => write!(
                f,
                "`{path}` already carries `{category}/{existing}`; the file gives it `{category}/{wanted}`"
            ),
            Conflict::TagOnOtherObject { category, tag, path, other_path } => write!(
                f,
                "`{category}/{tag}` is attached to `{other_path}`; the file puts it on `{path}`"
            ),
            Conflict::CategoryNotSingle { category } => write!(
                f,
                "category `{category}` has multiple cardinality; topology needs single (vCenter cannot change it back: recreate the category or use another name)"
            ),
        }
    }
}

/// The steps to run and the conflicts found. Empty steps and no conflicts
/// means vCenter already matches the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SetupPlan {
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Conflicts; with `force` they are resolved by `Detach` steps, except
    /// [`Conflict::CategoryNotSingle`], which is only reported.
    pub conflicts: Vec<Conflict>,
}

impl SetupPlan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.conflicts.is_empty()
    }
}

/// One desired attachment.
struct Wanted {
    category: String,
    tag: String,
    object: ObjectRef,
    path: String,
    /// Objects of this type carrying the tag elsewhere are conflicts.
    exclusive: bool,
}

/// Plan the changes that make vCenter carry `topology`. Pure and
/// deterministic. Fails with every path that does not resolve in the
/// inventory, naming the field.
pub fn plan_setup(
    topology: &Topology,
    observed: &Observed,
    options: PlanOptions,
) -> Result<SetupPlan, Error> {
    let wanted = resolve(topology, observed)?;
    let mut plan = SetupPlan::default();
    let region_category = topology.categories.region.as_str();
    let zone_category = topology.categories.zone.as_str();

    for (name, kind, types) in [
        (region_category, "region", REGION_TYPES),
        (zone_category, "zone", ZONE_TYPES),
    ] {
        match observed.category(name) {
            None => plan.steps.push(Step::CreateCategory {
                name: name.to_string(),
                cardinality: Cardinality::Single,
                associable_types: types.iter().map(|t| t.to_string()).collect(),
                description: format!("Kubernetes {kind} ({MANAGED_MARKER})"),
            }),
            Some(existing) => {
                if existing.cardinality != Cardinality::Single {
                    plan.conflicts.push(Conflict::CategoryNotSingle {
                        category: name.to_string(),
                    });
                }
                // An empty list means every type is associable.
                let missing: Vec<String> = types
                    .iter()
                    .filter(|t| {
                        !existing.associable_types.is_empty()
                            && !existing.associable_types.iter().any(|e| e == *t)
                    })
                    .map(|t| t.to_string())
                    .collect();
                if !missing.is_empty() {
                    let mut all = existing.associable_types.clone();
                    all.extend(missing.iter().cloned());
                    plan.steps.push(Step::AddAssociableTypes {
                        category: name.to_string(),
                        associable_types: all,
                        added: missing,
                    });
                }
            }
        }
    }

    let mut tags_created = BTreeSet::new();
    for (category, kind, name) in topology
        .regions
        .iter()
        .map(|r| (region_category, "region", r.name.as_str()))
        .chain(
            topology
                .zones
                .iter()
                .map(|z| (zone_category, "zone", z.name.as_str())),
        )
    {
        if observed.tag(category, name).is_none() && tags_created.insert((category, name)) {
            plan.steps.push(Step::CreateTag {
                category: category.to_string(),
                name: name.to_string(),
                description: format!("Kubernetes {kind} {name} ({MANAGED_MARKER})"),
            });
        }
    }

    // Where each tag should be, per object type, for the exclusivity check.
    let mut wanted_on: BTreeMap<(&str, &str), BTreeSet<&ObjectRef>> = BTreeMap::new();
    for w in &wanted {
        wanted_on
            .entry((&w.category, &w.tag))
            .or_default()
            .insert(&w.object);
    }
    let mut detaches = Vec::new();
    let mut attaches = Vec::new();
    let mut reported_elsewhere = BTreeSet::new();
    for w in &wanted {
        let tag = observed.tag(&w.category, &w.tag);
        if w.exclusive {
            if let Some(tag) = tag {
                for other in observed.objects_of(&tag.id) {
                    if other.type_name == w.object.type_name
                        && !wanted_on[&(w.category.as_str(), w.tag.as_str())].contains(other)
                        && reported_elsewhere.insert((tag.id.clone(), other.clone()))
                    {
                        let other_path = observed.path_of(other);
                        plan.conflicts.push(Conflict::TagOnOtherObject {
                            category: w.category.clone(),
                            tag: w.tag.clone(),
                            path: w.path.clone(),
                            other_path: other_path.clone(),
                        });
                        if options.force {
                            detaches.push(Step::Detach {
                                category: w.category.clone(),
                                tag: w.tag.clone(),
                                object: other.clone(),
                                path: other_path,
                            });
                        }
                    }
                }
            }
        }
        if tag.is_some_and(|t| observed.objects_of(&t.id).contains(&&w.object)) {
            continue;
        }
        let others: Vec<_> = observed
            .tags_on(&w.category, &w.object)
            .into_iter()
            .filter(|t| t.name != w.tag)
            .collect();
        for other in &others {
            plan.conflicts.push(Conflict::ObjectHasOtherTag {
                category: w.category.clone(),
                path: w.path.clone(),
                existing: other.name.clone(),
                wanted: w.tag.clone(),
            });
            if options.force {
                detaches.push(Step::Detach {
                    category: w.category.clone(),
                    tag: other.name.clone(),
                    object: w.object.clone(),
                    path: w.path.clone(),
                });
            }
        }
        if others.is_empty() || options.force {
            attaches.push(Step::Attach {
                category: w.category.clone(),
                tag: w.tag.clone(),
                object: w.object.clone(),
                path: w.path.clone(),
            });
        }
    }
    // Both conflict kinds can ask to detach the same tag from the same object.
    let mut seen = BTreeSet::new();
    detaches.retain(|step| seen.insert(step.to_string()));
    plan.steps.extend(detaches);
    plan.steps.extend(attaches);
    Ok(plan)
}

/// Resolve every path of the file in the inventory; all misses reported together.
fn resolve(topology: &Topology, observed: &Observed) -> Result<Vec<Wanted>, Error> {
    let mut problems = Problems::default();
    let mut wanted = Vec::new();
    let region_category = topology.categories.region.to_string();
    let zone_category = topology.categories.zone.to_string();
    for (i, region) in topology.regions.iter().enumerate() {
        match observed.datacenter_at(&region.datacenter) {
            Some(dc) => wanted.push(Wanted {
                category: region_category.clone(),
                tag: region.name.to_string(),
                object: ObjectRef::new(TYPE_DATACENTER, &dc.id),
                path: dc.path.clone(),
                exclusive: true,
            }),
            None => problems.push(
                format!("regions[{i}].datacenter"),
                format!("no datacenter at `{}`", region.datacenter),
            ),
        }
    }
    for (i, zone) in topology.zones.iter().enumerate() {
        match observed.cluster_at(&zone.compute_cluster) {
            Some(cluster) => wanted.push(Wanted {
                category: zone_category.clone(),
                tag: zone.name.to_string(),
                object: ObjectRef::new(TYPE_CLUSTER, &cluster.id),
                path: cluster.path.clone(),
                exclusive: true,
            }),
            None => problems.push(
                format!("zones[{i}].computeCluster"),
                format!("no compute cluster at `{}`", zone.compute_cluster),
            ),
        }
        for (j, path) in zone.datastores.iter().enumerate() {
            match observed.datastore_at(path) {
                // Datastores the file does not list may carry the zone too
                // (someone tagged more storage): not a conflict.
                Some(ds) => wanted.push(Wanted {
                    category: zone_category.clone(),
                    tag: zone.name.to_string(),
                    object: ObjectRef::new(TYPE_DATASTORE, &ds.id),
                    path: ds.path.clone(),
                    exclusive: false,
                }),
                None => problems.push(
                    format!("zones[{i}].datastores[{j}]"),
                    format!("no datastore at `{path}`"),
                ),
            }
        }
    }
    problems.into_result(|| wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::observed::fixtures::{self, attach, tag};
    use crate::topology::observed::TagFacts;

    const FILE: &str = "
regions:
  - {name: r0, datacenter: DC0}
  - {name: r1, datacenter: DC1}
zones:
  - {name: z00, region: r0, computeCluster: DC0_C0, datastores: [LocalDS_0]}
  - {name: z01, region: r0, computeCluster: DC0_C1, datastores: [LocalDS_1]}
  - {name: z10, region: r1, computeCluster: DC1_C0, datastores: [LocalDS_0]}
  - {name: z11, region: r1, computeCluster: DC1_C1, datastores: [LocalDS_1]}
";

    fn topology() -> Topology {
        Topology::from_yaml(FILE, "t.yaml").unwrap()
    }

    fn lines(plan: &SetupPlan) -> Vec<String> {
        plan.steps.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_vcenter_gets_everything_in_order() {
        let observed = Observed {
            inventory: fixtures::inventory(),
            tags: TagFacts::default(),
        };
        let plan = plan_setup(&topology(), &observed, PlanOptions::default()).unwrap();
        assert!(plan.conflicts.is_empty());
        let text = lines(&plan);
        assert_eq!(
            text[0],
            "create category `k8s-region` (single cardinality, for Datacenter)"
        );
        assert_eq!(text[1], "create category `k8s-zone` (single cardinality, for ClusterComputeResource, Datastore)");
        assert_eq!(text[2], "create tag `k8s-region/r0`");
        assert_eq!(text[7], "create tag `k8s-zone/z11`");
        assert_eq!(text[8], "attach `k8s-region/r0` to `/DC0`");
        assert_eq!(text[10], "attach `k8s-zone/z00` to `/DC0/host/DC0_C0`");
        assert_eq!(
            text[11],
            "attach `k8s-zone/z00` to `/DC0/datastore/LocalDS_0`"
        );
        assert_eq!(text.len(), 2 + 6 + 2 + 8);
        let Step::CreateTag { description, .. } = &plan.steps[2] else {
            panic!()
        };
        assert!(description.contains(MANAGED_MARKER));
    }

    #[test]
    fn matching_vcenter_needs_no_changes() {
        let plan = plan_setup(&topology(), &fixtures::tagged(), PlanOptions::default()).unwrap();
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn another_tag_on_the_object_is_a_conflict_naming_both() {
        let mut observed = fixtures::tagged();
        // DC0_C0 carries z01 instead of z00.
        observed
            .tags
            .attachments
            .retain(|a| !(a.tag_id == "tag-z00" && a.object.id == "domain-c00"));
        observed
            .tags
            .attachments
            .push(attach("tag-z01", TYPE_CLUSTER, "domain-c00"));
        let plan = plan_setup(&topology(), &observed, PlanOptions::default()).unwrap();
        let conflicts: Vec<String> = plan.conflicts.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            conflicts,
            vec![
                "`/DC0/host/DC0_C0` already carries `k8s-zone/z01`; the file gives it `k8s-zone/z00`",
                "`k8s-zone/z01` is attached to `/DC0/host/DC0_C0`; the file puts it on `/DC0/host/DC0_C1`",
            ]
        );
        assert!(
            plan.steps.is_empty(),
            "nothing is overwritten without force: {plan:?}"
        );

        let forced = plan_setup(&topology(), &observed, PlanOptions { force: true }).unwrap();
        assert_eq!(
            lines(&forced),
            vec![
                "detach `k8s-zone/z01` from `/DC0/host/DC0_C0`",
                "attach `k8s-zone/z00` to `/DC0/host/DC0_C0`",
            ]
        );
    }

    #[test]
    fn foreign_category_shapes_are_handled() {
        let mut observed = fixtures::tagged();
        observed.tags.categories[0].cardinality = Cardinality::Multiple;
        observed.tags.categories[1].associable_types = vec!["ClusterComputeResource".into()];
        let plan = plan_setup(&topology(), &observed, PlanOptions::default()).unwrap();
        assert_eq!(
            plan.conflicts,
            vec![Conflict::CategoryNotSingle {
                category: "k8s-region".into()
            }]
        );
        assert_eq!(
            plan.steps,
            vec![Step::AddAssociableTypes {
                category: "k8s-zone".into(),
                associable_types: vec!["ClusterComputeResource".into(), "Datastore".into()],
                added: vec!["Datastore".into()],
            }]
        );
        // An empty list means all types.
        observed.tags.categories[1].associable_types.clear();
        observed.tags.categories[0].cardinality = Cardinality::Single;
        assert!(plan_setup(&topology(), &observed, PlanOptions::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn existing_foreign_tags_are_reused() {
        let mut observed = Observed {
            inventory: fixtures::inventory(),
            ..Default::default()
        };
        observed
            .tags
            .categories
            .push(fixtures::category("c", "k8s-region", &[]));
        observed.tags.tags.push(tag("t", "r0", "c"));
        let plan = plan_setup(&topology(), &observed, PlanOptions::default()).unwrap();
        let text = lines(&plan);
        assert!(
            !text.iter().any(|l| l.contains("category `k8s-region`")),
            "{text:?}"
        );
        assert!(
            !text.iter().any(|l| l == "create tag `k8s-region/r0`"),
            "{text:?}"
        );
        assert!(
            text.iter().any(|l| l == "attach `k8s-region/r0` to `/DC0`"),
            "{text:?}"
        );
    }

    #[test]
    fn unresolved_paths_name_their_fields() {
        let file = "{regions: [{name: r, datacenter: DC9}], zones: [{name: z, region: r, computeCluster: C, datastores: [D]}]}";
        let t = Topology::from_yaml(file, "t.yaml").unwrap();
        let err = plan_setup(&t, &fixtures::tagged(), PlanOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid topology: 3 problems\n  regions[0].datacenter: no datacenter at `/DC9`\n  zones[0].computeCluster: no compute cluster at `/DC9/host/C`\n  zones[0].datastores[0]: no datastore at `/DC9/datastore/D`"
        );
    }
}
