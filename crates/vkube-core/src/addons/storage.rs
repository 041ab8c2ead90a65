//! StorageClasses of the vSphere CSI driver: one per zone, pinned to it
//! (rendered by [`crate::topology::render_storage_classes`]), and the
//! cluster's default class on `spec`'s default datastore (by URL) or
//! storage policy. Without default storage there is no default class.

use super::k8s::{storage_class, Labels, Meta, StorageClassBody, Stream};
use super::{csi, Addon, AddonInput, DefaultStorage, Error, Manifest};
use crate::topology::{render_storage_classes, CSI_PROVISIONER};

/// Component name.
pub const COMPONENT: &str = "vsphere-storage-classes";
/// File name on the node.
pub const FILE_NAME: &str = "50-storage-classes.yaml";
/// Name of the default StorageClass. Zone classes are `vsphere-<zone>`,
/// so no zone name can take it.
pub const DEFAULT_CLASS: &str = "vsphere";
/// The annotation that makes a StorageClass the default.
const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The StorageClass manifest (`50-storage-classes.yaml`). Its version is
/// that of the CSI driver the classes provision with. With neither zones
/// nor default storage it holds no object (comments only): there is
/// nothing to apply.
pub fn render(input: &AddonInput<'_>) -> Result<Manifest, Error> {
    let version = csi::version(input)?;
    let mut stream = Stream::new(&format!(
        "StorageClasses of the vSphere CSI driver {version}, rendered by vkube for cluster `{}`: {}.",
        input.cluster,
        summary(input)
    ));
    if !input.zones.is_empty() {
        let categories = input.categories.ok_or_else(|| {
            Error::invalid(
                COMPONENT,
                "zones are given but no region/zone tag categories",
            )
        })?;
        let classes = render_storage_classes(input.zones, categories)
            .map_err(|e| Error::invalid(COMPONENT, e.to_string()))?;
        stream.push_rendered(&classes);
    }
    if let Some(storage) = input.default_storage {
        let (key, value) = default_parameter(storage)?;
        stream.push(&storage_class(
            Meta::cluster(DEFAULT_CLASS, &Labels::component(COMPONENT))
                .annotation(DEFAULT_ANNOTATION, "true"),
            StorageClassBody::bound_on_first_consumer(CSI_PROVISIONER).parameter(key, value),
        ));
    }
    Ok(stream.into_manifest(Addon::StorageClasses, COMPONENT, version, FILE_NAME))
}

fn summary(input: &AddonInput<'_>) -> String {
    let zones = match input.zones.len() {
        0 => "no zone classes".to_owned(),
        1 => "one zone class".to_owned(),
        n => format!("{n} zone classes"),
    };
    let default = match input.default_storage {
        Some(DefaultStorage::DatastoreUrl(url)) => {
            format!("default class `{DEFAULT_CLASS}` on datastore {url}")
        }
        Some(DefaultStorage::StoragePolicy(name)) => {
            format!("default class `{DEFAULT_CLASS}` with storage policy `{name}`")
        }
        None => "no default class".to_owned(),
    };
    format!("{zones}, {default}")
}

/// `datastoreurl` for a datastore (the driver takes its URL, which the
/// runtime looks up; a datastore cluster has none), `storagepolicyname`
/// for a policy.
fn default_parameter(storage: &DefaultStorage) -> Result<(&'static str, &str), Error> {
    match storage {
        DefaultStorage::DatastoreUrl(url) => {
            if !url.starts_with("ds:///") || url.chars().any(char::is_whitespace) {
                return Err(Error::invalid(
                    COMPONENT,
                    format!("`{url}` is not a datastore URL like `ds:///vmfs/volumes/<uuid>/`"),
                ));
            }
            Ok(("datastoreurl", url))
        }
        DefaultStorage::StoragePolicy(name) => {
            if name.trim().is_empty() {
                return Err(Error::invalid(
                    COMPONENT,
                    "the default storage policy name is empty",
                ));
            }
            Ok(("storagepolicyname", name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addons::cpi;
    use crate::addons::testing::{assert_valid_for_every_minor, documents, find, Fixture};
    use crate::topology::{ZoneLabel, CSI_TOPOLOGY_PREFIX};

    #[test]
    fn two_zones_give_one_pinned_class_each_matching_the_cpi_labels() {
        let fixture = Fixture::two_zones(31);
        let manifest = render(&fixture.input()).unwrap();
        assert!(!manifest.has_secrets && manifest.images.is_empty());
        let docs = documents(&manifest);
        let categories = fixture.categories.as_ref().unwrap();
        let zone_key = format!("{CSI_TOPOLOGY_PREFIX}/{}", categories.zone);
        let region_key = format!("{CSI_TOPOLOGY_PREFIX}/{}", categories.region);
        for ZoneLabel { region, zone } in &fixture.zones {
            let class = find(&docs, "StorageClass", &format!("vsphere-{zone}"));
            assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
            let expressions = &class["allowedTopologies"][0]["matchLabelExpressions"];
            assert_eq!(expressions[0]["key"], zone_key.as_str());
            assert_eq!(expressions[0]["values"][0], zone.as_str());
            assert_eq!(expressions[1]["key"], region_key.as_str());
            assert_eq!(expressions[1]["values"][0], region.as_deref().unwrap());
            assert!(class["metadata"].get("annotations").is_none());
        }
        let classes = docs.iter().filter(|d| d["kind"] == "StorageClass").count();
        assert_eq!(classes, fixture.zones.len() + 1);

        // The CPI labels nodes with the same categories.
        let cpi = cpi::cpi_config(&fixture.input(), true).unwrap();
        let conf: serde_yaml::Value =
            serde_yaml::from_str(cpi.split("---\n").next().unwrap()).unwrap();
        assert_eq!(conf["labels"]["zone"], categories.zone.as_str());
        assert_eq!(conf["labels"]["region"], categories.region.as_str());
    }

    #[test]
    fn default_class_on_datastore_url_or_policy() {
        let fixture = Fixture::two_zones(30);
        let docs = documents(&render(&fixture.input()).unwrap());
        let class = find(&docs, "StorageClass", DEFAULT_CLASS);
        assert_eq!(class["metadata"]["annotations"][DEFAULT_ANNOTATION], "true");
        assert_eq!(
            class["parameters"]["datastoreurl"],
            "ds:///vmfs/volumes/5f1d2c3b-aa11bb22-cc33-0050569a0001/"
        );
        assert!(class.get("allowedTopologies").is_none());

        let plain = Fixture::plain(30);
        let docs = documents(&render(&plain.input()).unwrap());
        let class = find(&docs, "StorageClass", DEFAULT_CLASS);
        assert_eq!(class["parameters"]["storagepolicyname"], "vSAN Default");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn without_default_storage_no_default_class() {
        let mut fixture = Fixture::two_zones(29);
        fixture.default_storage = None;
        let manifest = render(&fixture.input()).unwrap();
        assert!(!manifest.yaml.contains(DEFAULT_ANNOTATION));
        assert_eq!(documents(&manifest).len(), 2);
        let mut plain = Fixture::plain(29);
        plain.default_storage = None;
        let manifest = render(&plain.input()).unwrap();
        assert!(documents(&manifest).is_empty());
        assert!(manifest.yaml.contains("no zone classes, no default class"));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let mut fixture = Fixture::two_zones(29);
        fixture.default_storage = Some(DefaultStorage::DatastoreUrl("datastore1".into()));
        assert!(render(&fixture.input())
            .unwrap_err()
            .to_string()
            .contains("not a datastore URL"));
        let mut fixture = Fixture::two_zones(29);
        fixture.categories = None;
        assert!(render(&fixture.input())
            .unwrap_err()
            .to_string()
            .contains("no region/zone tag categories"));
        let mut fixture = Fixture::two_zones(29);
        fixture.zones[0].zone = "AZ-A".into();
        let err = render(&fixture.input()).unwrap_err().to_string();
        assert!(
            err.contains("both render as StorageClass `vsphere-az-a`"),
            "{err}"
        );
        assert!(matches!(
            render(&Fixture::two_zones(34).input()),
            Err(Error::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn manifests_validate_strictly_for_every_minor() {
        let variants = |minor| {
            // Tag names YAML 1.1 would read as booleans must stay strings.
            let mut words = Fixture::two_zones(minor);
            words.zones = vec![ZoneLabel {
                region: Some("yes".into()),
                zone: "on".into(),
            }];
            words.default_storage = Some(DefaultStorage::StoragePolicy("off".into()));
            vec![
                ("zones", Fixture::two_zones(minor)),
                ("plain", Fixture::plain(minor)),
                ("words", words),
            ]
        };
        assert_valid_for_every_minor("storage", variants, |input| render(input).unwrap());
    }
}
