//! Rendering the topology for Kubernetes: the vSphere CSI driver's
//! `[Labels]` section and one StorageClass per zone, pinned to the zone with
//! `allowedTopologies` on the CSI driver's `topology.csi.vmware.com/<category>`
//! labels. Returns text; writing it anywhere is the caller's business.

use std::collections::BTreeMap;

use super::error::Error;
use super::spec::Categories;
use crate::addons::k8s::{storage_class, Labels, Meta, StorageClassBody, Stream};

/// The CSI provisioner name.
pub const CSI_PROVISIONER: &str = "csi.vsphere.vmware.com";
/// Prefix of the node labels the CSI driver sets from tag categories.
pub const CSI_TOPOLOGY_PREFIX: &str = "topology.csi.vmware.com";

/// A zone and its region, as StorageClasses name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ZoneLabel {
    /// Region tag name, when the zone's datacenter has one.
    pub region: Option<String>,
    /// Zone tag name.
    pub zone: String,
}

/// The `[Labels]` section of the CSI driver's `csi-vsphere.conf`.
pub fn render_csi(categories: &Categories) -> String {
    format!(
        "[Labels]\ntopology-categories = \"{},{}\"\n",
        categories.region, categories.zone
    )
}

/// StorageClass name of a zone: `vsphere-` and the zone name lowercased,
/// with characters Kubernetes does not allow in names replaced by `-`.
pub fn storage_class_name(zone: &str) -> String {
    let mut name: String = zone
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        name = "zone".into();
    }
    format!("vsphere-{name}")
}

/// One StorageClass per zone, as a multi-document YAML stream, sorted by
/// zone. Each binds volumes where the pod lands (`WaitForFirstConsumer`) and
/// only within its zone (and region, when known). Fails when two zones
/// would get the same StorageClass name.
pub fn render_storage_classes(
    zones: &[ZoneLabel],
    categories: &Categories,
) -> Result<String, Error> {
    let mut sorted = zones.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    let mut stream = Stream::new("");
    for label in &sorted {
        let name = storage_class_name(&label.zone);
        if let Some(first) = names.insert(name.clone(), &label.zone) {
            return Err(Error::StorageClassClash {
                first: first.to_string(),
                second: label.zone.clone(),
                name,
            });
        }
        let mut topology = vec![(
            format!("{CSI_TOPOLOGY_PREFIX}/{}", categories.zone),
            label.zone.clone(),
        )];
        let comment = match &label.region {
            Some(region) => {
                topology.push((
                    format!("{CSI_TOPOLOGY_PREFIX}/{}", categories.region),
                    region.clone(),
                ));
                format!("zone `{}` in region `{region}`", label.zone)
            }
            None => format!("zone `{}` (its datacenter has no region tag)", label.zone),
        };
        let class = storage_class(
            Meta::cluster(&name, &Labels::managed()),
            StorageClassBody::bound_on_first_consumer(CSI_PROVISIONER).only_where(topology),
        );
        // YAML 1.1-safe: a zone named `on` stays a string for kubectl.
        stream.push_commented(&comment, &class);
    }
    Ok(stream.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(region: Option<&str>, zone: &str) -> ZoneLabel {
        ZoneLabel {
            region: region.map(str::to_string),
            zone: zone.to_string(),
        }
    }

    #[test]
    fn csi_labels_section_lists_region_then_zone() {
        assert_eq!(
            render_csi(&Categories::default()),
            "[Labels]\ntopology-categories = \"k8s-region,k8s-zone\"\n"
        );
        let custom = Categories::new(Some("dc"), Some("az")).unwrap();
        assert_eq!(
            render_csi(&custom),
            "[Labels]\ntopology-categories = \"dc,az\"\n"
        );
    }

    #[test]
    fn one_storage_class_per_zone() {
        let text = render_storage_classes(
            &[label(Some("r1"), "az2"), label(Some("r1"), "az1")],
            &Categories::default(),
        )
        .unwrap();
        let expected = "---
# zone `az1` in region `r1`
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: vsphere-az1
  labels:
    app.kubernetes.io/managed-by: vkube
provisioner: csi.vsphere.vmware.com
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
allowedTopologies:
- matchLabelExpressions:
  - key: topology.csi.vmware.com/k8s-zone
    values:
    - az1
  - key: topology.csi.vmware.com/k8s-region
    values:
    - r1
";
        assert!(text.starts_with(expected), "{text}");
        assert_eq!(text.matches("kind: StorageClass").count(), 2);
        // Each document parses back.
        for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
            let value: serde_yaml::Value = serde_yaml::from_str(doc).unwrap();
            assert_eq!(value["provisioner"], "csi.vsphere.vmware.com");
        }
    }

    #[test]
    fn names_are_kubernetes_names_and_clashes_fail() {
        assert_eq!(storage_class_name("Zone_A1"), "vsphere-zone-a1");
        assert_eq!(storage_class_name("_"), "vsphere-zone");
        let err = render_storage_classes(
            &[label(None, "Az1"), label(None, "az1")],
            &Categories::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "zones `Az1` and `az1` both render as StorageClass `vsphere-az1`"
        );
    }
}
