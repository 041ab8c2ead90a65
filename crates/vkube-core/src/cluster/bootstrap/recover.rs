//! Reading back what [`guestinfo::render`](super::guestinfo::render) put
//! into a node VM's extraConfig, for taking over a cluster whose state was
//! lost (`vkube cluster adopt`): the files the node was given (the CA
//! material on control-plane nodes, the kubeadm config, the add-on
//! manifests on the first node) and its network config.
//!
//! Only vkube's own formats are read: cloud-init's metadata (netplan) and
//! `#cloud-config` `write_files` under `guestinfo.metadata` /
//! `guestinfo.userdata`, or an Ignition config's `storage.files` with its
//! systemd-networkd file under `guestinfo.ignition.config.data`, with the
//! encodings `.encoding` names. What cannot be read back is simply absent:
//! user-data the guest redacted (`---`) holds no files, and a node without
//! bootstrap data yields `None`.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;

use super::content::{KUBEADM_TEMPLATE_PATH, VKUBE_PKI};
use super::guestinfo::{IGNITION, METADATA, USERDATA};
use super::metadata::Metadata;
use super::script::addon_path;
use crate::cluster::error::Error;
use crate::cluster::pki::{
    CertificateAndKey, CertificateAuthority, ClusterPki, KeyPair, CLUSTER_CA_NAME, ETCD_CA_NAME,
    FRONT_PROXY_CA_NAME,
};

/// The networkd file the Ignition config carries.
const NETWORKD_PATH: &str = "/etc/systemd/network/10-vkube.network";

/// What one node's bootstrap data says. Holds secrets (CA keys, the
/// token): never printed.
#[derive(Clone, Default)]
pub struct Recovered {
    /// File contents by absolute path.
    files: BTreeMap<String, String>,
    /// The static address the network config sets, if any.
    address: Option<IpAddr>,
}

impl std::fmt::Debug for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovered")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("address", &self.address)
            .finish()
    }
}

#[derive(Deserialize)]
struct CloudConfig {
    #[serde(default)]
    write_files: Vec<WriteFile>,
}

#[derive(Deserialize)]
struct WriteFile {
    path: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    append: bool,
}

#[derive(Deserialize)]
struct IgnitionConfig {
    #[serde(default)]
    storage: IgnitionStorage,
}

#[derive(Deserialize, Default)]
struct IgnitionStorage {
    #[serde(default)]
    files: Vec<IgnitionFile>,
}

#[derive(Deserialize)]
struct IgnitionFile {
    path: String,
    #[serde(default)]
    contents: Option<IgnitionResource>,
    #[serde(default)]
    append: Vec<IgnitionResource>,
}

#[derive(Deserialize)]
struct IgnitionResource {
    source: String,
    #[serde(default)]
    compression: Option<String>,
}

impl Recovered {
    /// The bootstrap data in `extra_config` (a VM's `config.extraConfig`)
    /// of node `node`; `None` when the VM carries none. Fails when a value
    /// vkube writes is there but unreadable (an edited VM).
    pub fn from_extra_config(
        node: &str,
        extra_config: &BTreeMap<String, String>,
    ) -> Result<Option<Recovered>, Error> {
        let bad = |reason: String| Error::Recovery {
            node: node.to_owned(),
            reason,
        };
        let value = |key: &str| -> Result<Option<String>, Error> {
            let Some(raw) = extra_config.get(key) else {
                return Ok(None);
            };
            let encoding = extra_config
                .get(&format!("{key}.encoding"))
                .map(String::as_str);
            decode(raw, encoding)
                .map(Some)
                .map_err(|reason| bad(format!("`{key}`: {reason}")))
        };
        let mut recovered = Recovered::default();
        if let Some(config) = value(IGNITION)? {
            let config: IgnitionConfig = serde_json::from_str(&config)
                .map_err(|e| bad(format!("`{IGNITION}` is not an Ignition config: {e}")))?;
            for file in config.storage.files {
                let mut text = String::new();
                for resource in file.contents.iter().chain(&file.append) {
                    text.push_str(
                        &resource
                            .text()
                            .map_err(|reason| bad(format!("file `{}`: {reason}", file.path)))?,
                    );
                }
                recovered.files.insert(file.path, text);
            }
            recovered.address = recovered.files.get(NETWORKD_PATH).and_then(|unit| {
                unit.lines()
                    .find_map(|line| line.strip_prefix("Address="))
                    .and_then(address_of_cidr)
            });
            return Ok(Some(recovered));
        }
        let metadata = value(METADATA)?;
        let userdata = value(USERDATA)?;
        if metadata.is_none() && userdata.is_none() {
            return Ok(None);
        }
        if let Some(metadata) = metadata {
            let metadata: Metadata = serde_yaml::from_str(&metadata)
                .map_err(|e| bad(format!("`{METADATA}` is not vkube's metadata: {e}")))?;
            recovered.address = metadata
                .network
                .ethernets
                .values()
                .flat_map(|ethernet| ethernet.addresses.first())
                .find_map(|cidr| address_of_cidr(cidr));
        }
        // The guest overwrites the user-data with `---` once read.
        if let Some(userdata) = userdata.filter(|text| text.starts_with("#cloud-config")) {
            let config: CloudConfig = serde_yaml::from_str(&userdata)
                .map_err(|e| bad(format!("`{USERDATA}` is not a cloud-config: {e}")))?;
            for file in config.write_files {
                let entry = recovered.files.entry(file.path).or_default();
                if !file.append {
                    entry.clear();
                }
                entry.push_str(&file.content);
            }
        }
        Ok(Some(recovered))
    }

    /// The static address the node's network config sets (`None` with DHCP).
    pub fn address(&self) -> Option<IpAddr> {
        self.address
    }

    /// Whether the data still holds the files (user-data not yet redacted).
    pub fn has_files(&self) -> bool {
        !self.files.is_empty()
    }

    /// The contents of the file at `path`, if the node was given it.
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// The add-on manifest file `file_name` the first node applies.
    pub fn addon_manifest(&self, file_name: &str) -> Option<&str> {
        self.file(&addon_path(file_name))
    }

    /// The kubeadm config documents the node was given.
    fn kubeadm_documents(&self) -> Vec<serde_yaml::Value> {
        let Some(text) = self.file(KUBEADM_TEMPLATE_PATH) else {
            return Vec::new();
        };
        serde_yaml::Deserializer::from_str(text)
            .filter_map(|document| serde_yaml::Value::deserialize(document).ok())
            .collect()
    }

    /// Whether the node ran `kubeadm init` (its config is an `InitConfiguration`).
    pub fn is_init(&self) -> bool {
        self.kubeadm_documents()
            .iter()
            .any(|doc| doc.get("kind").and_then(|k| k.as_str()) == Some("InitConfiguration"))
    }

    /// The control-plane endpoint's address (the VIP) the node was given:
    /// `controlPlaneEndpoint` of the init node's `ClusterConfiguration`, or
    /// the discovery endpoint of a joining node.
    pub fn api_endpoint(&self) -> Option<IpAddr> {
        self.kubeadm_documents().iter().find_map(|doc| {
            let endpoint = doc
                .get("controlPlaneEndpoint")
                .or_else(|| {
                    doc.get("discovery")?
                        .get("bootstrapToken")?
                        .get("apiServerEndpoint")
                })?
                .as_str()?;
            endpoint.parse::<SocketAddr>().ok().map(|s| s.ip())
        })
    }

    /// The cluster's key material, when the node is a control-plane node
    /// whose CA files are still readable; fails when they are there but
    /// not valid keys.
    pub fn pki(&self) -> Result<Option<ClusterPki>, Error> {
        let file = |name: &str| self.file(&format!("{VKUBE_PKI}/{name}"));
        let ca = |name: &str, common_name: &str| -> Result<Option<CertificateAuthority>, Error> {
            let (Some(cert), Some(key)) =
                (file(&format!("{name}.crt")), file(&format!("{name}.key")))
            else {
                return Ok(None);
            };
            Ok(Some(CertificateAuthority {
                common_name: common_name.to_owned(),
                pair: CertificateAndKey {
                    cert_pem: cert.to_owned(),
                    key_pem: KeyPair::from_pem(key, &format!("{name}.key"))?.private_key_pem(),
                },
            }))
        };
        let (Some(ca), Some(etcd_ca), Some(front_proxy_ca), Some(sa_key), Some(sa_pub)) = (
            ca("ca", CLUSTER_CA_NAME)?,
            ca("etcd/ca", ETCD_CA_NAME)?,
            ca("front-proxy-ca", FRONT_PROXY_CA_NAME)?,
            file("sa.key"),
            file("sa.pub"),
        ) else {
            return Ok(None);
        };
        Ok(Some(ClusterPki {
            ca,
            etcd_ca,
            front_proxy_ca,
            service_account_key_pem: KeyPair::from_pem(sa_key, "sa.key")?.private_key_pem(),
            service_account_public_pem: sa_pub.to_owned(),
        }))
    }
}

impl IgnitionResource {
    /// The resource's text: a `data:` URL, base64 or not, gzip'd or not.
    fn text(&self) -> Result<String, String> {
        let body = self
            .source
            .strip_prefix("data:")
            .ok_or("only `data:` sources are vkube's")?;
        let (media, data) = body.split_once(',').ok_or("a `data:` URL without `,`")?;
        let bytes = if media.ends_with(";base64") {
            STANDARD.decode(data).map_err(|e| e.to_string())?
        } else {
            data.as_bytes().to_vec()
        };
        match self.compression.as_deref() {
            None | Some("") => String::from_utf8(bytes).map_err(|e| e.to_string()),
            Some("gzip") => gunzip(&bytes),
            Some(other) => Err(format!("unknown compression `{other}`")),
        }
    }
}

/// The guestinfo value `key` of `extra_config`, decoded by its `.encoding`
/// key (e.g. `guestinfo.metadata`); `None` when absent.
pub fn guestinfo_value(
    extra_config: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<String>, String> {
    let Some(raw) = extra_config.get(key) else {
        return Ok(None);
    };
    let encoding = extra_config.get(&format!("{key}.encoding"));
    decode(raw, encoding.map(String::as_str)).map(Some)
}

/// A guestinfo value by its `.encoding` (`base64`, `gzip+base64`, or none).
fn decode(raw: &str, encoding: Option<&str>) -> Result<String, String> {
    match encoding {
        None | Some("") => Ok(raw.to_owned()),
        Some("base64" | "b64") => String::from_utf8(
            STANDARD
                .decode(raw.trim())
                .map_err(|e| format!("not base64: {e}"))?,
        )
        .map_err(|e| e.to_string()),
        Some("gzip+base64" | "gz+b64") => gunzip(
            &STANDARD
                .decode(raw.trim())
                .map_err(|e| format!("not base64: {e}"))?,
        ),
        Some(other) => Err(format!("unknown encoding `{other}`")),
    }
}

fn gunzip(bytes: &[u8]) -> Result<String, String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| format!("not gzip text: {e}"))?;
    Ok(text)
}

/// The address of `a.b.c.d/prefix` (or a bare address).
fn address_of_cidr(cidr: &str) -> Option<IpAddr> {
    cidr.trim().split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::bootstrap::guestinfo;
    use crate::cluster::bootstrap::tests::{init_node, lease, spec_with, with_input, Node};
    use crate::cluster::pki::tests::pki;
    use crate::cluster::NodeRole;

    fn extra_config(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
        pairs.into_iter().collect()
    }

    /// Render, then read back: the init node of every boot format gives
    /// back its address, the VIP, the add-on files and the whole PKI.
    #[test]
    fn what_was_rendered_is_read_back() {
        for os in ["ubuntu", "flatcar"] {
            let spec = spec_with(|raw| raw.spec.os_family = Some(os.into()));
            let init_lease = lease("demo-cp-0", 10);
            let pairs = with_input(&spec, init_node(Some(&init_lease)), |input| {
                guestinfo::render(input).unwrap()
            });
            let back = Recovered::from_extra_config("demo-cp-0", &extra_config(pairs))
                .unwrap()
                .expect("bootstrap data");
            assert_eq!(
                back.address(),
                Some("10.20.0.10".parse().unwrap()),
                "{os:?}"
            );
            assert_eq!(
                back.api_endpoint(),
                Some("10.20.0.5".parse().unwrap()),
                "{os:?}"
            );
            assert!(back.is_init(), "{os:?}");
            assert!(back
                .addon_manifest("30-cpi.yaml")
                .unwrap()
                .contains("vsphere-cpi"));
            assert_eq!(back.pki().unwrap(), Some(pki()), "{os:?}");
        }
    }

    /// A worker holds no CA; a joining node knows the VIP but is not the
    /// init node; redacted user-data keeps the address but no files.
    #[test]
    fn workers_and_redacted_user_data_hold_less() {
        let spec = spec_with(|_| {});
        let worker_lease = lease("demo-workers-0", 20);
        let worker = Node {
            name: "demo-workers-0",
            group: "workers",
            role: NodeRole::Worker,
            lease: Some(&worker_lease),
        };
        let mut pairs = extra_config(with_input(&spec, worker, |input| {
            guestinfo::render(input).unwrap()
        }));
        let back = Recovered::from_extra_config("demo-workers-0", &pairs)
            .unwrap()
            .unwrap();
        assert_eq!(back.pki().unwrap(), None);
        assert!(!back.is_init());
        assert_eq!(back.api_endpoint(), Some("10.20.0.5".parse().unwrap()));
        pairs.insert(USERDATA.into(), "---".into());
        pairs.remove(&format!("{USERDATA}.encoding"));
        let redacted = Recovered::from_extra_config("demo-workers-0", &pairs)
            .unwrap()
            .unwrap();
        assert!(!redacted.has_files());
        assert_eq!(redacted.address(), Some("10.20.0.20".parse().unwrap()));
        assert!(Recovered::from_extra_config("x", &BTreeMap::new())
            .unwrap()
            .is_none());
    }

    /// An edited VM's unreadable value names the node and the key.
    #[test]
    fn unreadable_values_are_errors_naming_the_node() {
        let pairs = extra_config(vec![
            (METADATA.into(), "%%%".into()),
            (format!("{METADATA}.encoding"), "base64".into()),
        ]);
        let error = Recovered::from_extra_config("demo-cp-0", &pairs).unwrap_err();
        assert!(
            error.to_string().contains("node `demo-cp-0`")
                && error.to_string().contains("guestinfo.metadata"),
            "{error}"
        );
    }
}
