//! The topology file: which tag category names regions and zones, which
//! datacenter each region is, and which compute cluster and datastores each
//! zone is.
//!
//! ```yaml
//! categories: {region: k8s-region, zone: k8s-zone}   # optional, these are the defaults
//! regions:
//!   - name: region-a
//!     datacenter: DC0                 # or an inventory path, /Folder/DC0
//!   - name: region-b
//!     datacenter: DC1
//! zones:
//!   - name: zone-a1
//!     region: region-a
//!     computeCluster: DC0_C0          # relative to the region's `host` folder, or absolute
//!     datastores: [LocalDS_0]         # relative to its `datastore` folder, or absolute
//! ```
//!
//! [`RawTopology`] is what the YAML says; [`Topology::validate`] turns it
//! into a [`Topology`] of checked names and absolute inventory paths, or
//! lists every problem. Whether the paths exist is decided later, against
//! the inventory, by [`crate::topology::plan_setup`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::{Error, Problems};
use super::name::{check, TopologyName};

/// Default name of the region category (Deckhouse, Palette, the CSI docs).
pub const DEFAULT_REGION_CATEGORY: &str = "k8s-region";
/// Default name of the zone category.
pub const DEFAULT_ZONE_CATEGORY: &str = "k8s-zone";

/// The topology file as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTopology {
    /// Category names; defaults when omitted.
    #[serde(default)]
    pub categories: RawCategories,
    /// Regions: tag → datacenter.
    #[serde(default)]
    pub regions: Vec<RawRegion>,
    /// Zones: tag → compute cluster and datastores.
    #[serde(default)]
    pub zones: Vec<RawZone>,
}

/// Category names as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCategories {
    /// Region category; `k8s-region` when omitted.
    pub region: Option<String>,
    /// Zone category; `k8s-zone` when omitted.
    pub zone: Option<String>,
}

/// A region as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRegion {
    /// Region tag name.
    pub name: String,
    /// Datacenter name or inventory path.
    pub datacenter: String,
}

/// A zone as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawZone {
    /// Zone tag name.
    pub name: String,
    /// Name of the region the zone is in.
    pub region: String,
    /// Compute cluster: name (in the region's datacenter) or inventory path.
    pub compute_cluster: String,
    /// Datastores to tag with the zone: names or inventory paths.
    #[serde(default)]
    pub datastores: Vec<String>,
}

/// The two category names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Categories {
    /// Category whose tags are regions (on datacenters).
    pub region: TopologyName,
    /// Category whose tags are zones (on compute clusters and datastores).
    pub zone: TopologyName,
}

impl Default for Categories {
    fn default() -> Self {
        Categories {
            region: TopologyName::new(DEFAULT_REGION_CATEGORY).expect("valid default"),
            zone: TopologyName::new(DEFAULT_ZONE_CATEGORY).expect("valid default"),
        }
    }
}

impl Categories {
    /// Categories from optional overrides (e.g. command-line flags), checked.
    pub fn new(region: Option<&str>, zone: Option<&str>) -> Result<Categories, Error> {
        let raw = RawCategories {
            region: region.map(str::to_string),
            zone: zone.map(str::to_string),
        };
        let mut problems = Problems::default();
        let categories = categories(&raw, &mut problems);
        problems.into_result(|| categories)
    }
}

/// A checked region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Region tag name.
    pub name: TopologyName,
    /// Absolute inventory path of the datacenter, e.g. `/DC0`.
    pub datacenter: String,
}

/// A checked zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Zone {
    /// Zone tag name.
    pub name: TopologyName,
    /// Region tag name.
    pub region: TopologyName,
    /// Absolute inventory path of the compute cluster.
    pub compute_cluster: String,
    /// Absolute inventory paths of the datastores.
    pub datastores: Vec<String>,
}

/// A checked topology: names are valid and unique, every zone's region
/// exists, paths are absolute, and no object is claimed twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Category names.
    pub categories: Categories,
    /// Regions, in file order.
    pub regions: Vec<Region>,
    /// Zones, in file order.
    pub zones: Vec<Zone>,
}

/// `/a//b/` → `/a/b`.
pub(crate) fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn categories(raw: &RawCategories, problems: &mut Problems) -> Categories {
    let defaults = Categories::default();
    let mut pick = |field: &str, value: &Option<String>, default: TopologyName| match value {
        None => default,
        Some(v) => TopologyName::new(v).unwrap_or_else(|problem| {
            problems.push(field, problem);
            default
        }),
    };
    let region = pick("categories.region", &raw.region, defaults.region);
    let zone = pick("categories.zone", &raw.zone, defaults.zone);
    if region == zone {
        problems.push(
            "categories.zone",
            format!("must differ from the region category `{region}`"),
        );
    }
    categories_unchecked(region, zone)
}

fn categories_unchecked(region: TopologyName, zone: TopologyName) -> Categories {
    Categories { region, zone }
}

impl Topology {
    /// Parse and validate a topology file; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Topology, Error> {
        let raw: RawTopology = serde_yaml::from_str(text).map_err(|source| Error::Syntax {
            file: file.to_string(),
            line: source.location().map(|l| l.line()),
            source,
        })?;
        Topology::validate(&raw)
    }

    /// Check a raw topology, reporting every problem with its field.
    pub fn validate(raw: &RawTopology) -> Result<Topology, Error> {
        let mut problems = Problems::default();
        let categories = categories(&raw.categories, &mut problems);
        if raw.regions.is_empty() {
            problems.push("regions", "must list at least one region");
        }
        let mut regions = Vec::new();
        let mut region_datacenters: BTreeMap<String, String> = BTreeMap::new();
        let mut datacenters_seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, r) in raw.regions.iter().enumerate() {
            let name = checked_name(&format!("regions[{i}].name"), &r.name, &mut problems);
            let datacenter = if r.datacenter.trim().is_empty() {
                problems.push(format!("regions[{i}].datacenter"), "must not be empty");
                String::new()
            } else {
                normalize(&r.datacenter)
            };
            if let Some(name) = name {
                if region_datacenters.contains_key(name.as_str()) {
                    problems.push(
                        format!("regions[{i}].name"),
                        format!("region `{name}` is listed twice"),
                    );
                } else {
                    region_datacenters.insert(name.to_string(), datacenter.clone());
                }
                if !datacenter.is_empty() {
                    if let Some(first) = datacenters_seen.insert(datacenter.clone(), i) {
                        problems.push(
                            format!("regions[{i}].datacenter"),
                            format!("datacenter `{datacenter}` is already region `{}` (a datacenter carries one region tag)", raw.regions[first].name),
                        );
                    }
                }
                regions.push(Region { name, datacenter });
            }
        }
        let mut zones = Vec::new();
        let mut zone_names = BTreeSet::new();
        let mut clusters_seen: BTreeMap<String, String> = BTreeMap::new();
        let mut datastores_seen: BTreeMap<String, String> = BTreeMap::new();
        for (i, z) in raw.zones.iter().enumerate() {
            let field = |f: &str| format!("zones[{i}].{f}");
            let name = checked_name(&field("name"), &z.name, &mut problems);
            if let Some(name) = &name {
                if !zone_names.insert(name.to_string()) {
                    problems.push(field("name"), format!("zone `{name}` is listed twice"));
                }
            }
            let datacenter = match region_datacenters.get(&z.region) {
                Some(dc) => Some(dc.clone()),
                None => {
                    let known: Vec<String> = raw
                        .regions
                        .iter()
                        .map(|r| format!("`{}`", r.name))
                        .collect();
                    problems.push(
                        field("region"),
                        format!(
                            "unknown region `{}` (regions: {})",
                            z.region,
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                    None
                }
            };
            let dc = datacenter.unwrap_or_default();
            let cluster = if z.compute_cluster.trim().is_empty() {
                problems.push(field("computeCluster"), "must not be empty");
                String::new()
            } else {
                absolute(&z.compute_cluster, &dc, "host")
            };
            if !cluster.is_empty() && !dc.is_empty() && !cluster.starts_with(&format!("{dc}/")) {
                problems.push(
                    field("computeCluster"),
                    format!(
                        "`{cluster}` is not in datacenter `{dc}` of region `{}`",
                        z.region
                    ),
                );
            }
            if let (false, Some(name)) = (cluster.is_empty(), &name) {
                if let Some(other) = clusters_seen.insert(cluster.clone(), name.to_string()) {
                    problems.push(
                        field("computeCluster"),
                        format!("`{cluster}` is already in zone `{other}` (a cluster carries one zone tag)"),
                    );
                }
            }
            let mut datastores = Vec::new();
            for (j, ds) in z.datastores.iter().enumerate() {
                let ds_field = format!("zones[{i}].datastores[{j}]");
                if ds.trim().is_empty() {
                    problems.push(&ds_field, "must not be empty");
                    continue;
                }
                let path = absolute(ds, &dc, "datastore");
                if !dc.is_empty() && !path.starts_with(&format!("{dc}/")) {
                    problems.push(
                        &ds_field,
                        format!(
                            "`{path}` is not in datacenter `{dc}` of region `{}`",
                            z.region
                        ),
                    );
                }
                if let Some(name) = &name {
                    if let Some(other) = datastores_seen.insert(path.clone(), name.to_string()) {
                        problems.push(
                            &ds_field,
                            if other == name.as_str() {
                                format!("`{path}` is listed twice")
                            } else {
                                format!("`{path}` is already in zone `{other}` (a datastore carries one zone tag)")
                            },
                        );
                        continue;
                    }
                }
                datastores.push(path);
            }
            if let (Some(name), Ok(region)) = (name, TopologyName::new(&z.region)) {
                zones.push(Zone {
                    name,
                    region,
                    compute_cluster: cluster,
                    datastores,
                });
            }
        }
        problems.into_result(|| Topology {
            categories,
            regions,
            zones,
        })
    }

    /// The region of a zone.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name.as_str() == name)
    }
}

fn checked_name(field: &str, value: &str, problems: &mut Problems) -> Option<TopologyName> {
    match check(value) {
        Ok(()) => TopologyName::new(value).ok(),
        Err(problem) => {
            problems.push(field, problem);
            None
        }
    }
}

/// An absolute path stays (normalized); a relative one is taken inside the
/// datacenter's `folder` (`host` or `datastore`), as govc does.
fn absolute(path: &str, datacenter: &str, folder: &str) -> String {
    if path.starts_with('/') {
        normalize(path)
    } else {
        normalize(&format!("{datacenter}/{folder}/{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "
regions:
  - {name: region-a, datacenter: DC0}
  - {name: region-b, datacenter: /DC1/}
zones:
  - {name: zone-a1, region: region-a, computeCluster: DC0_C0, datastores: [LocalDS_0]}
  - {name: zone-a2, region: region-a, computeCluster: /DC0/host/DC0_C1}
  - {name: zone-b1, region: region-b, computeCluster: DC1_C0, datastores: [/DC1/datastore/LocalDS_0]}
";

    #[test]
    fn example_resolves_paths_and_defaults() {
        let t = Topology::from_yaml(EXAMPLE, "t.yaml").unwrap();
        assert_eq!(t.categories, Categories::default());
        assert_eq!(t.categories.region.as_str(), "k8s-region");
        assert_eq!(t.regions[0].datacenter, "/DC0");
        assert_eq!(t.regions[1].datacenter, "/DC1");
        assert_eq!(t.zones[0].compute_cluster, "/DC0/host/DC0_C0");
        assert_eq!(t.zones[0].datastores, vec!["/DC0/datastore/LocalDS_0"]);
        assert_eq!(t.zones[1].compute_cluster, "/DC0/host/DC0_C1");
        assert_eq!(t.zones[2].datastores, vec!["/DC1/datastore/LocalDS_0"]);
    }

    fn problems(yaml: &str) -> Vec<String> {
        match Topology::from_yaml(yaml, "t.yaml").unwrap_err() {
            Error::Invalid { problems } => problems.iter().map(|p| p.to_string()).collect(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn every_problem_names_its_field() {
        let cases: &[(&str, &str)] = &[
            ("regions: []", "regions: must list at least one region"),
            ("{categories: {zone: k8s-region}, regions: [{name: r, datacenter: DC0}]}", "categories.zone: must differ"),
            ("{categories: {region: 'a b'}, regions: [{name: r, datacenter: DC0}]}", "categories.region: `a b` contains ` `"),
            ("regions: [{name: r, datacenter: DC0}, {name: r, datacenter: DC1}]", "regions[1].name: region `r` is listed twice"),
            ("regions: [{name: r, datacenter: DC0}, {name: s, datacenter: /DC0}]", "regions[1].datacenter: datacenter `/DC0` is already region `r`"),
            ("{regions: [{name: r, datacenter: DC0}], zones: [{name: z, region: q, computeCluster: C}]}", "zones[0].region: unknown region `q` (regions: `r`)"),
            ("{regions: [{name: r, datacenter: DC0}], zones: [{name: z, region: r, computeCluster: /DC1/host/C}]}", "zones[0].computeCluster: `/DC1/host/C` is not in datacenter `/DC0`"),
            ("{regions: [{name: r, datacenter: DC0}], zones: [{name: z, region: r, computeCluster: C}, {name: y, region: r, computeCluster: C}]}", "zones[1].computeCluster: `/DC0/host/C` is already in zone `z`"),
            ("{regions: [{name: r, datacenter: DC0}], zones: [{name: z, region: r, computeCluster: C}, {name: z, region: r, computeCluster: D}]}", "zones[1].name: zone `z` is listed twice"),
            ("{regions: [{name: r, datacenter: DC0}], zones: [{name: z, region: r, computeCluster: C, datastores: [A]}, {name: y, region: r, computeCluster: D, datastores: [A]}]}", "zones[1].datastores[0]: `/DC0/datastore/A` is already in zone `z`"),
            ("{regions: [{name: r, datacenter: DC0}], zones: [{name: 'z!', region: r, computeCluster: C}]}", "zones[0].name: `z!` contains `!`"),
            ("{regions: [{name: r, datacenter: DC0}], zones: [{name: z, region: r, computeCluster: ''}]}", "zones[0].computeCluster: must not be empty"),
        ];
        for (yaml, expected) in cases {
            let found = problems(yaml);
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{yaml}\nexpected {expected}\nfound {found:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_syntax_errors_with_a_line() {
        let err = Topology::from_yaml("regions:\n  - name: r\n    datacentre: DC0\n", "t.yaml")
            .unwrap_err();
        let Error::Syntax { line, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*line, Some(3));
        assert!(err
            .to_string()
            .starts_with("cannot read topology file `t.yaml` at line 3"));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let found = problems("{regions: [{name: '', datacenter: ''}], zones: [{name: z, region: q, computeCluster: C}]}");
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
