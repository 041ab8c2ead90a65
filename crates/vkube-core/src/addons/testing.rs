//! Test support for every add-on: an owned [`Fixture`] that lends out an
//! [`AddonInput`], document lookup in rendered manifests, scratch files,
//! and the `kubernetes-validate` runner. A missing tool is a skipped check
//! unless `VKUBE_REQUIRE_KUBERNETES_VALIDATE=1` (scripts/test.sh) is set.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_yaml::Value as Yaml;

use super::{
    AddonInput, CloudCredentials, Cni, DefaultStorage, Error, Manifest, VcenterEndpoint,
    SUPPORTED_MINORS,
};
use crate::cluster::{ClusterName, KubernetesVersion};
use crate::ipam::Cidr;
use crate::topology::{Categories, ZoneLabel};

/// A password with every character gcfg and YAML quoting must survive.
pub(crate) const PASSWORD: &str = "Pa$$ \"w0rd\"\\; #x=y";

/// Everything an [`AddonInput`] borrows, and its plain values.
pub(crate) struct Fixture {
    pub cluster: ClusterName,
    pub cluster_id: String,
    pub kubernetes: KubernetesVersion,
    pub cni: Cni,
    pub pod_cidr: Cidr,
    pub registry: Option<String>,
    pub vcenter: VcenterEndpoint,
    pub credentials: CloudCredentials,
    pub datacenters: Vec<String>,
    pub categories: Option<Categories>,
    pub zones: Vec<ZoneLabel>,
    pub default_storage: Option<DefaultStorage>,
    pub tunnel_offload_disabled: bool,
}

impl Fixture {
    /// Kubernetes v1.`minor`.4 with Cilium on 192.168.0.0/16, two zones in
    /// one region with custom categories, a pinned thumbprint, a default
    /// datastore, no registry mirror.
    pub(crate) fn two_zones(minor: u64) -> Fixture {
        Fixture {
            cluster: ClusterName::new("demo").unwrap(),
            cluster_id: "vkube-demo-6f1c2a".into(),
            kubernetes: crate::cluster::values::unchecked::parse(&format!("v1.{minor}.4")),
            cni: Cni::Cilium,
            pod_cidr: "192.168.0.0/16".parse().unwrap(),
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
            tunnel_offload_disabled: true,
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
            cni: self.cni,
            pod_cidr: self.pod_cidr,
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            api_endpoint: "10.20.0.5:6443".parse().unwrap(),
            registry: self.registry.as_deref(),
            vcenter: &self.vcenter,
            credentials: &self.credentials,
            datacenters: &self.datacenters,
            categories: self.categories.as_ref(),
            zones: &self.zones,
            default_storage: self.default_storage.as_ref(),
            tunnel_offload_disabled: self.tunnel_offload_disabled,
        }
    }
}

/// The documents of a manifest, parsed (comment-only documents dropped).
pub(crate) fn documents(manifest: &Manifest) -> Vec<Yaml> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&manifest.yaml)
        .map(|doc| Yaml::deserialize(doc).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

/// The document of `kind` named `name`.
pub(crate) fn find<'d>(docs: &'d [Yaml], kind: &str, name: &str) -> &'d Yaml {
    docs.iter()
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Every image in the pod templates' containers and init containers,
/// sorted, without repeats.
pub(crate) fn container_images(docs: &[Yaml]) -> Vec<String> {
    let mut images: Vec<String> = docs
        .iter()
        .flat_map(|doc| {
            let pod = &doc["spec"]["template"]["spec"];
            ["initContainers", "containers"]
                .into_iter()
                .filter_map(|list| pod[list].as_sequence())
                .flatten()
                .map(|container| container["image"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    images.sort();
    images.dedup();
    images
}

/// The manifest's one Secret holds the credentials: no other document
/// contains [`PASSWORD`], plain or base64-encoded, and the stream never
/// has it in plain text. Returns the Secret's `data`, decoded.
pub(crate) fn password_only_in_the_secret_data(manifest: &Manifest) -> BTreeMap<String, String> {
    assert!(manifest.has_secrets);
    assert!(!manifest.yaml.contains(PASSWORD), "{}", manifest.yaml);
    let docs = documents(manifest);
    let (secrets, others): (Vec<&Yaml>, Vec<&Yaml>) =
        docs.iter().partition(|doc| doc["kind"] == "Secret");
    for doc in others {
        let text = serde_yaml::to_string(doc).unwrap();
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains(&STANDARD.encode(PASSWORD)), "{text}");
    }
    let [secret] = secrets[..] else {
        panic!("{} Secrets", secrets.len());
    };
    let decode = |value: &Yaml| {
        String::from_utf8(STANDARD.decode(value.as_str().unwrap()).unwrap()).unwrap()
    };
    secret["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.as_str().unwrap().to_owned(), decode(value)))
        .collect()
}

/// Whether `tolerations` (a pod's list) let it onto a node tainted `key`
/// with `effect`.
pub(crate) fn tolerates(tolerations: &Yaml, key: &str, effect: &str) -> bool {
    fn text(value: &Yaml) -> Option<&str> {
        value.as_str().filter(|text| !text.is_empty())
    }
    tolerations.as_sequence().is_some_and(|list| {
        list.iter().any(|toleration| {
            let key_matches = match text(&toleration["key"]) {
                None => toleration["operator"] == "Exists",
                Some(tolerated) => tolerated == key,
            };
            let effect_matches = text(&toleration["effect"]).is_none_or(|e| e == effect);
            key_matches && effect_matches
        })
    })
}

/// Every supported minor renders, and the minors just outside are refused
/// as unsupported.
pub(crate) fn assert_pinned_for_supported_minors_only(
    render: impl Fn(&AddonInput<'_>) -> Result<Manifest, Error>,
) {
    for minor in SUPPORTED_MINORS {
        let fixture = Fixture::two_zones(minor);
        if let Err(e) = render(&fixture.input()) {
            panic!("Kubernetes 1.{minor}: {e}");
        }
    }
    for minor in [SUPPORTED_MINORS.start() - 1, SUPPORTED_MINORS.end() + 1] {
        assert!(
            matches!(
                render(&Fixture::two_zones(minor).input()),
                Err(Error::UnsupportedVersion { .. })
            ),
            "Kubernetes 1.{minor} is not supported"
        );
    }
}

pub(crate) use crate::cluster::external_tools::ScratchDir;

fn required() -> bool {
    std::env::var("VKUBE_REQUIRE_KUBERNETES_VALIDATE").is_ok_and(|v| v == "1")
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

/// What `kubernetes-validate` said about a file.
pub(crate) struct Validation {
    /// Every document was accepted.
    pub accepted: bool,
    /// Its output.
    pub report: String,
}

/// `kubernetes-validate --strict -k 1.<minor>.0 path` (call
/// [`have_kubernetes_validate`] first).
pub(crate) fn kubernetes_validate(path: &Path, minor: u64) -> Validation {
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
    Validation {
        accepted: out.status.success() && !report.contains("ERROR"),
        report,
    }
}

/// `kubernetes-validate --strict` accepts, for every supported minor, each
/// of `variants(minor)` (labelled fixtures) as `render` renders it.
pub(crate) fn assert_valid_for_every_minor(
    label: &str,
    variants: impl Fn(u64) -> Vec<(&'static str, Fixture)>,
    render: impl Fn(&AddonInput<'_>) -> Manifest,
) {
    if !have_kubernetes_validate() {
        return;
    }
    let dir = ScratchDir::new(label);
    for minor in SUPPORTED_MINORS {
        for (variant, fixture) in variants(minor) {
            let manifest = render(&fixture.input());
            let name = format!("{minor}-{variant}-{}", manifest.file_name);
            let path = dir.write(&name, &manifest.yaml);
            let validation = kubernetes_validate(&path, minor);
            assert!(
                validation.accepted,
                "kubernetes-validate 1.{minor} rejected {name}:\n{}",
                validation.report
            );
        }
    }
}

/// The zones and plain fixtures of `minor`.
pub(crate) fn zones_and_plain(minor: u64) -> Vec<(&'static str, Fixture)> {
    vec![
        ("zones", Fixture::two_zones(minor)),
        ("plain", Fixture::plain(minor)),
    ]
}
