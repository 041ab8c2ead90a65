//! Test support for the vSphere add-ons: an owned [`Fixture`] that lends
//! out an [`AddonInput`], document lookup in rendered manifests, and the
//! `kubernetes-validate` runner. A missing tool is a skipped check unless
//! `VKUBE_REQUIRE_KUBERNETES_VALIDATE=1` (scripts/test.sh) is set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{AddonInput, CloudCredentials, Cni, DefaultStorage, Manifest, VcenterEndpoint};
use crate::cluster::{ClusterName, KubernetesVersion};
use crate::topology::{Categories, ZoneLabel};

/// A password with every character gcfg and YAML quoting must survive.
pub(crate) const PASSWORD: &str = "Pa$$ \"w0rd\"\\; #x=y";

/// Everything an [`AddonInput`] borrows.
pub(crate) struct Fixture {
    pub cluster: ClusterName,
    pub cluster_id: String,
    pub kubernetes: KubernetesVersion,
    pub registry: Option<String>,
    pub vcenter: VcenterEndpoint,
    pub credentials: CloudCredentials,
    pub datacenters: Vec<String>,
    pub categories: Option<Categories>,
    pub zones: Vec<ZoneLabel>,
    pub default_storage: Option<DefaultStorage>,
}

impl Fixture {
    /// Kubernetes v1.`minor`.4, two zones in one region with custom
    /// categories, a pinned thumbprint, a default datastore.
    pub(crate) fn two_zones(minor: u64) -> Fixture {
        Fixture {
            cluster: ClusterName::new("demo").unwrap(),
            cluster_id: "vkube-demo-6f1c2a".into(),
            kubernetes: format!("v1.{minor}.4").parse().unwrap(),
            registry: None,
            vcenter: VcenterEndpoint {
                server: "vc.example.com".into(),
                port: 443,
                thumbprint: Some(
                    "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01".into(),
                ),
                ca_pem: None,
                insecure: false,
            },
            credentials: CloudCredentials {
                username: "k8s-demo@vsphere.local".into(),
                password: PASSWORD.into(),
            },
            datacenters: vec!["DC0".into(), "on".into()],
            categories: Some(Categories::new(Some("dc-region"), Some("az")).unwrap()),
            zones: vec![
                ZoneLabel {
                    region: Some("eu-1".into()),
                    zone: "az-b".into(),
                },
                ZoneLabel {
                    region: Some("eu-1".into()),
                    zone: "az-a".into(),
                },
            ],
            default_storage: Some(DefaultStorage::DatastoreUrl(
                "ds:///vmfs/volumes/5f1d2c3b-aa11bb22-cc33-0050569a0001/".into(),
            )),
        }
    }

    /// No zones, no default storage, CA-verified vCenter on an IPv6
    /// address, behind a registry mirror.
    pub(crate) fn plain(minor: u64) -> Fixture {
        let mut fixture = Fixture::two_zones(minor);
        fixture.vcenter = VcenterEndpoint {
            server: "fd00:10::5".into(),
            port: 8443,
            thumbprint: None,
            ca_pem: Some(
                "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n"
                    .into(),
            ),
            insecure: false,
        };
        fixture.registry = Some("harbor.local/mirror".into());
        fixture.datacenters = vec!["DC0".into()];
        fixture.categories = None;
        fixture.zones.clear();
        fixture.default_storage = Some(DefaultStorage::StoragePolicy("vSAN Default".into()));
        fixture
    }

    /// The input borrowing from this fixture.
    pub(crate) fn input(&self) -> AddonInput<'_> {
        AddonInput {
            cluster: &self.cluster,
            cluster_id: &self.cluster_id,
            kubernetes: &self.kubernetes,
            cni: Cni::Cilium,
            pod_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            api_endpoint: "10.20.0.5:6443".parse().unwrap(),
            registry: self.registry.as_deref(),
            vcenter: &self.vcenter,
            credentials: &self.credentials,
            datacenters: &self.datacenters,
            categories: self.categories.as_ref(),
            zones: &self.zones,
            default_storage: self.default_storage.as_ref(),
            tunnel_offload_disabled: true,
        }
    }
}

/// The documents of a manifest, parsed (comment-only documents dropped).
pub(crate) fn documents(manifest: &Manifest) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&manifest.yaml)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

/// The document of `kind` named `name`.
pub(crate) fn find<'d>(
    docs: &'d [serde_yaml::Value],
    kind: &str,
    name: &str,
) -> &'d serde_yaml::Value {
    docs.iter()
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Every container image in the manifest's pod templates.
pub(crate) fn container_images(docs: &[serde_yaml::Value]) -> Vec<String> {
    let mut images: Vec<String> = docs
        .iter()
        .flat_map(|doc| {
            doc["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .map(|container| container["image"].as_str().unwrap().to_owned())
        .collect();
    images.sort();
    images.dedup();
    images
}

fn required() -> bool {
    std::env::var("VKUBE_REQUIRE_KUBERNETES_VALIDATE").is_ok_and(|v| v == "1")
}

/// A fresh scratch directory for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vkube-addons-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether `kubernetes-validate` is on PATH; false only if not required.
pub(crate) fn have_kubernetes_validate() -> bool {
    match Command::new("kubernetes-validate")
        .arg("--version")
        .output()
    {
        Ok(_) => true,
        Err(e) => {
            assert!(
                !required(),
                "VKUBE_REQUIRE_KUBERNETES_VALIDATE=1 but `kubernetes-validate` cannot run ({e}); pip install kubernetes-validate"
            );
            eprintln!("note: `kubernetes-validate` not installed, skipping schema validation (pip install kubernetes-validate)");
            false
        }
    }
}

/// `kubernetes-validate --strict -k 1.<minor>.0 path` must accept every
/// document.
pub(crate) fn kubernetes_validate(path: &Path, minor: u64) {
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg("-k")
        .arg(format!("1.{minor}.0"))
        .arg(path)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !report.contains("ERROR"),
        "kubernetes-validate 1.{minor} rejected {}:\n{report}",
        path.display()
    );
}
