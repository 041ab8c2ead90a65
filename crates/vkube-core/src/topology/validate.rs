//! Checks of an observed topology, as the vSphere CSI driver and vkube's
//! placement rely on it: every compute cluster in use has exactly one zone
//! tag and its datacenter exactly one region tag; a zone lives in one
//! region; each zone has a datastore all its hosts mount; datastores carry
//! only zones their hosts belong to. With a topology file, also whether
//! vCenter matches it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::error::Error;
use super::name::check;
use super::observed::{Cardinality, ObjectRef, Observed};
use super::plan::{plan_setup, PlanOptions};
use super::spec::{Categories, Topology};
use super::{REGION_TYPES, TYPE_CLUSTER, TYPE_DATACENTER, TYPE_DATASTORE, ZONE_TYPES};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Placement or volume provisioning will go wrong.
    Error,
    /// Odd, but not harmful by itself.
    Warning,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable identifier, e.g. `cluster-zone-missing`.
    pub code: &'static str,
    /// The object concerned: an inventory path, or `category/tag`.
    pub object: String,
    /// What is wrong, starting lowercase.
    pub message: String,
}

struct Findings(Vec<Finding>);

impl Findings {
    fn error(&mut self, code: &'static str, object: impl Into<String>, message: impl Into<String>) {
        self.0.push(Finding {
            severity: Severity::Error,
            code,
            object: object.into(),
            message: message.into(),
        });
    }

    fn warning(
        &mut self,
        code: &'static str,
        object: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(Finding {
            severity: Severity::Warning,
            code,
            object: object.into(),
            message: message.into(),
        });
    }
}

fn names(tags: &[&super::observed::TagFact], category: &str) -> String {
    tags.iter()
        .map(|t| format!("`{category}/{}`", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check the observed topology. `scope`, when given, adds the file's
/// compute clusters to those in use and reports where vCenter differs from
/// the file. Returns findings in check order; none means valid.
pub fn validate(
    observed: &Observed,
    categories: &Categories,
    scope: Option<&Topology>,
) -> Vec<Finding> {
    let rc = categories.region.as_str();
    let zc = categories.zone.as_str();
    let mut f = Findings(Vec::new());

    for (name, kind, types) in [(rc, "region", REGION_TYPES), (zc, "zone", ZONE_TYPES)] {
        match observed.category(name) {
            None => f.error(
                "category-missing",
                name,
                format!("the {kind} category does not exist (create it with `vkube zones setup`)"),
            ),
            Some(category) => {
                if category.cardinality != Cardinality::Single {
                    f.error("category-cardinality", name, "the category has multiple cardinality; an object must be in one region and one zone");
                }
                let missing: Vec<&str> = types
                    .iter()
                    .copied()
                    .filter(|t| {
                        !category.associable_types.is_empty()
                            && !category.associable_types.iter().any(|a| a == t)
                    })
                    .collect();
                if !missing.is_empty() {
                    f.error(
                        "category-types",
                        name,
                        format!("its tags cannot be attached to {}", missing.join(", ")),
                    );
                }
            }
        }
        for tag in observed.tags_of(name) {
            if let Err(problem) = check(&tag.name) {
                f.error(
                    "tag-name",
                    format!("{name}/{}", tag.name),
                    format!("the tag name is not a valid Kubernetes label value: {problem}"),
                );
            }
        }
    }

    for tag in observed.tags_of(rc) {
        for object in observed.objects_of(&tag.id) {
            if object.type_name != TYPE_DATACENTER {
                f.warning(
                    "tag-object-type",
                    observed.path_of(object),
                    format!(
                        "carries region tag `{rc}/{}` but is a {}, not a datacenter",
                        tag.name, object.type_name
                    ),
                );
            }
        }
    }
    for tag in observed.tags_of(zc) {
        for object in observed.objects_of(&tag.id) {
            if object.type_name != TYPE_CLUSTER && object.type_name != TYPE_DATASTORE {
                f.warning("tag-object-type", observed.path_of(object), format!("carries zone tag `{zc}/{}` but is a {}, not a compute cluster or datastore", tag.name, object.type_name));
            }
        }
    }

    // Clusters in use: tagged with a zone, in a datacenter with a region, or in the file.
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for cluster in &observed.inventory.clusters {
        let zoned = !observed
            .tags_on(zc, &ObjectRef::new(TYPE_CLUSTER, &cluster.id))
            .is_empty();
        let regioned = !observed
            .tags_on(rc, &ObjectRef::new(TYPE_DATACENTER, &cluster.datacenter))
            .is_empty();
        let listed =
            scope.is_some_and(|t| t.zones.iter().any(|z| z.compute_cluster == cluster.path));
        if zoned || regioned || listed {
            used.insert(cluster.id.as_str());
        }
    }
    let mut clusters: Vec<_> = observed
        .inventory
        .clusters
        .iter()
        .filter(|c| used.contains(c.id.as_str()))
        .collect();
    clusters.sort_by(|a, b| a.path.cmp(&b.path));
    let mut datacenters_checked = BTreeSet::new();
    for cluster in clusters {
        let zones = observed.tags_on(zc, &ObjectRef::new(TYPE_CLUSTER, &cluster.id));
        match zones.len() {
            0 => f.error(
                "cluster-zone-missing",
                &cluster.path,
                format!("the compute cluster has no `{zc}` tag"),
            ),
            1 => {}
            _ => f.error(
                "cluster-zone-multiple",
                &cluster.path,
                format!(
                    "the compute cluster has {} zone tags: {}",
                    zones.len(),
                    names(&zones, zc)
                ),
            ),
        }
        if datacenters_checked.insert(cluster.datacenter.as_str()) {
            let dc_path = observed
                .datacenter(&cluster.datacenter)
                .map(|d| d.path.clone())
                .unwrap_or_else(|| cluster.datacenter.clone());
            let regions =
                observed.tags_on(rc, &ObjectRef::new(TYPE_DATACENTER, &cluster.datacenter));
            match regions.len() {
                0 => f.error(
                    "datacenter-region-missing",
                    &dc_path,
                    format!("the datacenter of `{}` has no `{rc}` tag", cluster.path),
                ),
                1 => {}
                _ => f.error(
                    "datacenter-region-multiple",
                    &dc_path,
                    format!(
                        "the datacenter has {} region tags: {}",
                        regions.len(),
                        names(&regions, rc)
                    ),
                ),
            }
        }
    }

    for zone in observed.tags_of(zc) {
        let objects = observed.objects_of(&zone.id);
        let members: Vec<_> = objects
            .iter()
            .filter(|o| o.type_name == TYPE_CLUSTER)
            .filter_map(|o| observed.cluster(&o.id))
            .collect();
        let object = format!("{zc}/{}", zone.name);
        let regions: BTreeSet<String> = members
            .iter()
            .flat_map(|c| observed.tags_on(rc, &ObjectRef::new(TYPE_DATACENTER, &c.datacenter)))
            .map(|t| format!("`{}`", t.name))
            .collect();
        if regions.len() > 1 {
            f.error(
                "zone-spans-regions",
                &object,
                format!(
                    "the zone has compute clusters in regions {}; a zone belongs to one region",
                    regions.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let hosts: BTreeSet<String> = members
            .iter()
            .flat_map(|c| c.hosts.iter().cloned())
            .collect();
        if members.is_empty() {
            f.warning("zone-empty", &object, "no compute cluster carries the zone");
        } else if observed.datastores_reachable_by_all(&hosts).is_empty() {
            f.error(
                "zone-no-datastore",
                &object,
                format!(
                    "no datastore is mounted by all {} hosts of the zone",
                    hosts.len()
                ),
            );
        }
        let member_paths: Vec<String> = members.iter().map(|c| format!("`{}`", c.path)).collect();
        for ds in objects
            .iter()
            .filter(|o| o.type_name == TYPE_DATASTORE)
            .filter_map(|o| observed.datastore(&o.id))
        {
            let mounted = ds.hosts.iter().filter(|h| hosts.contains(*h)).count();
            if mounted == 0 {
                f.error(
                    "datastore-foreign-zone",
                    &ds.path,
                    format!(
                        "the datastore carries `{object}` but none of its hosts is in that zone ({})",
                        if member_paths.is_empty() { "which has no compute cluster".to_string() } else { format!("zone hosts are in {}", member_paths.join(", ")) }
                    ),
                );
            } else if mounted < hosts.len() {
                f.warning("datastore-zone-partial", &ds.path, format!("the datastore carries `{object}` but only {mounted} of the zone's {} hosts mount it", hosts.len()));
            }
        }
    }
    for ds in &observed.inventory.datastores {
        let zones = observed.tags_on(zc, &ObjectRef::new(TYPE_DATASTORE, &ds.id));
        if zones.len() > 1 {
            f.error(
                "datastore-zone-multiple",
                &ds.path,
                format!(
                    "the datastore has {} zone tags: {}",
                    zones.len(),
                    names(&zones, zc)
                ),
            );
        }
    }

    if let Some(topology) = scope {
        match plan_setup(topology, observed, PlanOptions::default()) {
            Ok(plan) => {
                for conflict in &plan.conflicts {
                    f.error("file-conflict", "topology file", conflict.to_string());
                }
                for step in &plan.steps {
                    f.error(
                        "file-not-applied",
                        "topology file",
                        format!("vCenter differs from the file: {step} (run `vkube zones setup`)"),
                    );
                }
            }
            Err(Error::Invalid { problems }) => {
                for problem in problems {
                    f.error("file-unresolved", problem.field, problem.message);
                }
            }
            Err(other) => f.error("file-unresolved", "topology file", other.to_string()),
        }
    }
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::observed::fixtures::{self, attach, tag};
    use crate::topology::observed::TagFacts;

    fn codes(findings: &[Finding]) -> Vec<(&'static str, String)> {
        findings
            .iter()
            .map(|f| (f.code, f.object.clone()))
            .collect()
    }

    #[test]
    fn a_well_tagged_vcenter_is_valid() {
        assert_eq!(
            validate(&fixtures::tagged(), &Categories::default(), None),
            vec![]
        );
    }

    #[test]
    fn nothing_tagged_reports_missing_categories_only() {
        let observed = Observed {
            inventory: fixtures::inventory(),
            tags: TagFacts::default(),
        };
        let found = codes(&validate(&observed, &Categories::default(), None));
        assert_eq!(
            found,
            vec![
                ("category-missing", "k8s-region".into()),
                ("category-missing", "k8s-zone".into())
            ]
        );
    }

    #[test]
    fn missing_zone_tag_and_foreign_datastore_are_found() {
        let mut observed = fixtures::tagged();
        observed
            .tags
            .attachments
            .retain(|a| !(a.tag_id == "tag-z01" && a.object.id == "domain-c01"));
        observed
            .tags
            .attachments
            .push(attach("tag-z10", TYPE_DATASTORE, "datastore-01"));
        let findings = validate(&observed, &Categories::default(), None);
        let found = codes(&findings);
        assert!(
            found.contains(&("cluster-zone-missing", "/DC0/host/DC0_C1".into())),
            "{found:?}"
        );
        assert!(
            found.contains(&("datastore-foreign-zone", "/DC0/datastore/LocalDS_1".into())),
            "{found:?}"
        );
        assert!(
            found.contains(&("datastore-zone-multiple", "/DC0/datastore/LocalDS_1".into())),
            "{found:?}"
        );
        // z01 now only tags a datastore.
        assert!(
            found.contains(&("zone-empty", "k8s-zone/z01".into())),
            "{found:?}"
        );
        let foreign = findings
            .iter()
            .find(|f| {
                f.code == "datastore-foreign-zone"
                    && f.object.ends_with("LocalDS_1")
                    && f.message.contains("z10")
            })
            .unwrap();
        assert_eq!(foreign.message, "the datastore carries `k8s-zone/z10` but none of its hosts is in that zone (zone hosts are in `/DC1/host/DC1_C0`)");
    }

    #[test]
    fn region_and_zone_shape_problems() {
        let mut observed = fixtures::tagged();
        // DC1 loses its region; z00 also tags a DC1 cluster in region r0's stead.
        observed.tags.attachments.retain(|a| a.tag_id != "tag-r1");
        observed.tags.tags.push(tag("tag-r9", "r9", "cat-r"));
        observed
            .tags
            .attachments
            .push(attach("tag-r9", TYPE_DATACENTER, "datacenter-1"));
        observed
            .tags
            .attachments
            .push(attach("tag-z00", TYPE_CLUSTER, "domain-c10"));
        observed.tags.tags.push(tag("tag-bad", "bad name", "cat-z"));
        let found = codes(&validate(&observed, &Categories::default(), None));
        assert!(
            found.contains(&("cluster-zone-multiple", "/DC1/host/DC1_C0".into())),
            "{found:?}"
        );
        assert!(
            found.contains(&("zone-spans-regions", "k8s-zone/z00".into())),
            "{found:?}"
        );
        assert!(
            found.contains(&("tag-name", "k8s-zone/bad name".into())),
            "{found:?}"
        );
    }

    #[test]
    fn zones_without_a_common_datastore_are_found() {
        let mut observed = fixtures::tagged();
        for ds in &mut observed.inventory.datastores {
            ds.hosts.truncate(1);
        }
        let found = codes(&validate(&observed, &Categories::default(), None));
        assert!(
            found.contains(&("zone-no-datastore", "k8s-zone/z00".into())),
            "{found:?}"
        );
    }

    #[test]
    fn a_file_scope_reports_what_is_not_applied() {
        let file = "{regions: [{name: r0, datacenter: DC0}], zones: [{name: z00, region: r0, computeCluster: DC0_C0}, {name: z02, region: r0, computeCluster: DC0_C1}]}";
        let topology = Topology::from_yaml(file, "t.yaml").unwrap();
        let findings = validate(&fixtures::tagged(), &Categories::default(), Some(&topology));
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("create tag `k8s-zone/z02`")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("`/DC0/host/DC0_C1` already carries `k8s-zone/z01`")),
            "{messages:?}"
        );
    }
}
