//! Reading OVF descriptors: the files and disks to upload, the networks to
//! map, the virtual hardware (hardware version, NICs), the guest OS, and the
//! product sections with their properties — image-builder's product info
//! (which names the Kubernetes version) and Flatcar's `guestinfo.*`
//! properties among them.

use serde::Serialize;

use super::xml::{self, Element};
use super::{ImageError, ImageOs};

/// A file the descriptor references (`References/File`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvfFile {
    /// `ovf:id`, referenced by disks.
    pub id: String,
    /// `ovf:href`: the file's name inside the OVA or next to the `.ovf`.
    pub href: String,
    /// `ovf:size` in bytes, when given.
    pub size: Option<u64>,
}

/// A virtual disk (`DiskSection/Disk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvfDisk {
    /// `ovf:diskId`.
    pub id: String,
    /// The `File` id holding its content (none: an empty disk).
    pub file_ref: Option<String>,
    /// Capacity in bytes.
    pub capacity_bytes: u64,
    /// `ovf:format`, e.g. the streamOptimized VMDK URI.
    pub format: Option<String>,
}

/// A logical network (`NetworkSection/Network`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvfNetwork {
    /// `ovf:name`, which NICs connect to.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
}

/// A network adapter of the virtual hardware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvfNic {
    /// `rasd:ResourceSubType`, e.g. `VmxNet3`, `E1000`.
    pub adapter: String,
    /// The network it connects to.
    pub connection: Option<String>,
}

/// One `Property` of a product section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvfProperty {
    /// Full key: `class.key.instance` per the OVF spec (just `key` when the
    /// section has neither), as `CreateImportSpec`'s property mapping takes it.
    pub key: String,
    /// `ovf:type` (`string`, `boolean`, `uint8`…).
    #[serde(rename = "type")]
    pub kind: String,
    /// Default value.
    pub default: Option<String>,
    /// Whether the user may set it at deployment.
    pub user_configurable: bool,
    /// `Label`, when given.
    pub label: Option<String>,
    /// `Description`, when given.
    pub description: Option<String>,
}

/// A `ProductSection`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvfProduct {
    /// `ovf:class`.
    pub class: Option<String>,
    /// `ovf:instance`.
    pub instance: Option<String>,
    /// `Product`.
    pub product: Option<String>,
    /// `Vendor`.
    pub vendor: Option<String>,
    /// `Version`.
    pub version: Option<String>,
    /// `FullVersion`.
    pub full_version: Option<String>,
    /// Its properties.
    pub properties: Vec<OvfProperty>,
}

/// What vkube reads from an OVF descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvfDescriptor {
    /// The virtual system's `ovf:id`.
    pub system_id: String,
    /// Its `Name`, when given.
    pub system_name: Option<String>,
    /// Referenced files, in descriptor order (the order an OVA stores them).
    pub files: Vec<OvfFile>,
    /// Disks.
    pub disks: Vec<OvfDisk>,
    /// Logical networks.
    pub networks: Vec<OvfNetwork>,
    /// `vmw:osType` of the OperatingSystemSection (a vSphere guest id).
    pub os_type: Option<String>,
    /// The OperatingSystemSection's description.
    pub os_description: Option<String>,
    /// Hardware versions from `vssd:VirtualSystemType` (`vmx-15` → 15).
    pub hardware_versions: Vec<u32>,
    /// vCPUs, when declared.
    pub cpus: Option<u32>,
    /// Memory in MiB, when declared.
    pub memory_mib: Option<u64>,
    /// Network adapters.
    pub nics: Vec<OvfNic>,
    /// Product sections.
    pub products: Vec<OvfProduct>,
    /// `AnnotationSection/Annotation`.
    pub annotation: Option<String>,
}

fn invalid(problem: impl Into<String>) -> ImageError {
    ImageError::InvalidDescriptor(problem.into())
}

/// Bytes in one allocation unit: `byte`, `byte * 2^20`, `KiloBytes`, …
fn unit_bytes(units: Option<&str>) -> Result<u64, ImageError> {
    let Some(units) = units.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(1);
    };
    let named = match units.to_ascii_lowercase().as_str() {
        "byte" | "bytes" => Some(1),
        "kilobytes" | "kb" => Some(1 << 10),
        "megabytes" | "mb" => Some(1 << 20),
        "gigabytes" | "gb" => Some(1 << 30),
        _ => None,
    };
    if let Some(n) = named {
        return Ok(n);
    }
    let compact: String = units.chars().filter(|c| !c.is_whitespace()).collect();
    let power = compact
        .strip_prefix("byte*")
        .and_then(|p| p.split_once('^'))
        .and_then(|(base, exponent)| Some((base.parse::<u64>().ok()?, exponent.parse().ok()?)))
        .and_then(|(base, exponent): (u64, u32)| base.checked_pow(exponent));
    power.ok_or_else(|| invalid(format!("unknown allocation units `{units}`")))
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ImageError> {
    text.trim()
        .parse()
        .map_err(|_| invalid(format!("{what} `{text}` is not a number")))
}

fn product_of(section: &Element) -> OvfProduct {
    let class = section.attr("class").map(str::to_string);
    let instance = section.attr("instance").map(str::to_string);
    let properties = section
        .children("Property")
        .filter_map(|p| {
            let key = p.attr("key")?;
            let full = [class.as_deref(), Some(key), instance.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(".");
            Some(OvfProperty {
                key: full,
                kind: p.attr("type").unwrap_or("string").to_string(),
                default: p.attr("value").map(str::to_string),
                user_configurable: p.attr("userConfigurable") == Some("true"),
                label: p.child_text("Label"),
                description: p.child_text("Description"),
            })
        })
        .collect();
    OvfProduct {
        class,
        instance,
        product: section.child_text("Product"),
        vendor: section.child_text("Vendor"),
        version: section.child_text("Version"),
        full_version: section.child_text("FullVersion"),
        properties,
    }
}

impl OvfDescriptor {
    /// Parse a descriptor. Refuses what cannot be imported: no virtual
    /// system (an OVF with a VirtualSystemCollection is a vApp), disks
    /// naming files that are not referenced.
    pub fn parse(text: &str) -> Result<OvfDescriptor, ImageError> {
        let root = xml::parse(text).map_err(invalid)?;
        if root.name != "Envelope" {
            return Err(invalid(format!(
                "the root element is `{}`, not an OVF `Envelope`",
                root.name
            )));
        }
        let files = match root.child("References") {
            Some(references) => references
                .children("File")
                .map(|f| {
                    Ok(OvfFile {
                        id: f
                            .attr("id")
                            .ok_or_else(|| invalid("a File has no id"))?
                            .into(),
                        href: f
                            .attr("href")
                            .ok_or_else(|| invalid("a File has no href"))?
                            .into(),
                        size: f.attr("size").map(|s| number(s, "file size")).transpose()?,
                    })
                })
                .collect::<Result<Vec<_>, ImageError>>()?,
            None => Vec::new(),
        };
        let disks = match root.child("DiskSection") {
            Some(section) => section
                .children("Disk")
                .map(|d| {
                    let id = d
                        .attr("diskId")
                        .ok_or_else(|| invalid("a Disk has no diskId"))?;
                    let capacity: u64 = number(d.attr("capacity").unwrap_or("0"), "disk capacity")?;
                    let bytes = capacity
                        .checked_mul(unit_bytes(d.attr("capacityAllocationUnits"))?)
                        .ok_or_else(|| invalid(format!("disk `{id}` is impossibly large")))?;
                    let file_ref = d.attr("fileRef").map(str::to_string);
                    if let Some(file) = &file_ref {
                        if !files.iter().any(|f| &f.id == file) {
                            return Err(invalid(format!(
                                "disk `{id}` names file `{file}`, which References does not list"
                            )));
                        }
                    }
                    Ok(OvfDisk {
                        id: id.into(),
                        file_ref,
                        capacity_bytes: bytes,
                        format: d.attr("format").map(str::to_string),
                    })
                })
                .collect::<Result<Vec<_>, ImageError>>()?,
            None => Vec::new(),
        };
        let networks = root
            .child("NetworkSection")
            .map(|s| {
                s.children("Network")
                    .filter_map(|n| {
                        Some(OvfNetwork {
                            name: n.attr("name")?.to_string(),
                            description: n.child_text("Description"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let system = match root.child("VirtualSystem") {
            Some(system) => system,
            None if root.child("VirtualSystemCollection").is_some() => {
                return Err(invalid(
                    "it describes a vApp (VirtualSystemCollection); vkube imports single VMs",
                ))
            }
            None => return Err(invalid("it has no VirtualSystem")),
        };
        let mut descriptor = OvfDescriptor {
            system_id: system.attr("id").unwrap_or_default().to_string(),
            system_name: system.child_text("Name"),
            files,
            disks,
            networks,
            annotation: system
                .child("AnnotationSection")
                .and_then(|a| a.child_text("Annotation")),
            products: system.children("ProductSection").map(product_of).collect(),
            ..Default::default()
        };
        if let Some(os) = system.child("OperatingSystemSection") {
            descriptor.os_type = os.attr("osType").map(str::to_string);
            descriptor.os_description = os.child_text("Description");
        }
        if let Some(hardware) = system.child("VirtualHardwareSection") {
            descriptor.read_hardware(hardware)?;
        }
        Ok(descriptor)
    }

    fn read_hardware(&mut self, hardware: &Element) -> Result<(), ImageError> {
        if let Some(kinds) = hardware
            .child("System")
            .and_then(|s| s.child_text("VirtualSystemType"))
        {
            self.hardware_versions = kinds
                .split_whitespace()
                .filter_map(|k| k.strip_prefix("vmx-")?.parse().ok())
                .collect();
        }
        for item in hardware.children("Item") {
            let Some(kind) = item.child_text("ResourceType") else {
                continue;
            };
            match kind.as_str() {
                "3" => {
                    if let Some(q) = item.child_text("VirtualQuantity") {
                        self.cpus = Some(number(&q, "CPU count")?);
                    }
                }
                "4" => {
                    if let Some(q) = item.child_text("VirtualQuantity") {
                        let quantity: u64 = number(&q, "memory size")?;
                        let units = item
                            .child_text("AllocationUnits")
                            .unwrap_or_else(|| "byte * 2^20".into());
                        let bytes = quantity.saturating_mul(unit_bytes(Some(&units))?);
                        self.memory_mib = Some(bytes / (1 << 20));
                    }
                }
                "10" => self.nics.push(OvfNic {
                    adapter: item.child_text("ResourceSubType").unwrap_or_default(),
                    connection: item.child_text("Connection"),
                }),
                _ => {}
            }
        }
        Ok(())
    }

    /// The file a disk's content is in.
    pub fn disk_file(&self, disk: &OvfDisk) -> Option<&OvfFile> {
        let id = disk.file_ref.as_deref()?;
        self.files.iter().find(|f| f.id == id)
    }

    /// Every property of every product section.
    pub fn properties(&self) -> impl Iterator<Item = &OvfProperty> {
        self.products.iter().flat_map(|p| p.properties.iter())
    }

    /// A property by full key.
    pub fn property(&self, key: &str) -> Option<&OvfProperty> {
        self.properties().find(|p| p.key == key)
    }

    /// The Kubernetes version the image carries, as image-builder records
    /// it: the `KUBERNETES_SEMVER` property, else a product version of the
    /// form `kube-v1.30.2`, else `Kubernetes v1.30.2` in the product name.
    pub fn kubernetes_version(&self) -> Option<String> {
        if let Some(v) = self
            .property("KUBERNETES_SEMVER")
            .and_then(|p| p.default.as_deref())
            .and_then(semver_in)
        {
            return Some(v);
        }
        self.products.iter().find_map(|p| {
            [
                p.version.as_deref(),
                p.full_version.as_deref(),
                p.product.as_deref(),
            ]
            .into_iter()
            .flatten()
            .find_map(|text| {
                let rest = text
                    .find("kube-v")
                    .map(|i| &text[i + 5..])
                    .or_else(|| text.find("Kubernetes v").map(|i| &text[i + 11..]))?;
                semver_in(rest)
            })
        })
    }

    /// The guest OS family: Flatcar when the product says so or Ignition's
    /// guestinfo properties are declared, else from the guest id and the
    /// product and OS descriptions.
    pub fn os(&self) -> ImageOs {
        let mut hints: Vec<&str> = Vec::new();
        hints.extend(self.os_type.as_deref());
        hints.extend(self.os_description.as_deref());
        hints.extend(self.system_name.as_deref());
        for product in &self.products {
            hints.extend(product.product.as_deref());
        }
        hints.extend(
            ["OS_NAME", "DISTRO_NAME"]
                .into_iter()
                .filter_map(|k| self.property(k)?.default.as_deref()),
        );
        if self
            .properties()
            .any(|p| p.key.starts_with("guestinfo.ignition."))
        {
            return ImageOs::Flatcar;
        }
        ImageOs::from_hints(&hints)
    }
}

/// `v1.30.2` (with an optional pre-release such as `-rc.1`) at the start of
/// `text`, a leading `v` added when missing; build metadata (`+vmware.1`) dropped.
fn semver_in(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or(text.len());
    let candidate = &text[..end];
    let core = candidate.split('-').next()?;
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric.then(|| format!("v{candidate}"))
}

#[cfg(test)]
#[path = "ovf_tests.rs"]
mod tests;
