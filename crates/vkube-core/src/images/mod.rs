//! Node images, the pure parts: OVF descriptors read ([`OvfDescriptor`]) and
//! written around a lone disk ([`SingleDiskOvf`]), OVA archives
//! ([`tar`]), manifests and their digests ([`Manifest`], [`FileDigest`]),
//! the record vkube keeps on an imported template ([`ImageRecord`]), the
//! import source ([`Source`]), and the template check clusters depend on
//! ([`check_template`]). Reading files, HTTP and vCenter are the callers'.

mod check;
mod manifest;
mod ovf;
mod ovf_write;
mod record;
mod source;
pub mod tar;
mod xml;

pub use check::{
    check_template, ClusterNeeds, Finding, FindingId, Fix, NicKind, Severity, TemplateFacts,
};
pub use manifest::{parse_sha256, Algorithm, Expected, FileDigest, Manifest, Sha256Stream};
pub use ovf::{OvfDescriptor, OvfDisk, OvfFile, OvfNetwork, OvfNic, OvfProduct, OvfProperty};
pub use ovf_write::{SingleDiskOvf, GENERATED_NETWORK, MIN_CSI_HARDWARE_VERSION, STREAM_OPTIMIZED};
pub use record::{displayable_source, rfc3339_utc, ImageRecord, PREFIX as RECORD_PREFIX};
pub use source::{guest_id, qemu_convert_args, qemu_virtual_size, DiskFormat, Source};

use serde::{Deserialize, Serialize};

use crate::cluster::OsFamily;

/// The guest OS family of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageOs {
    /// Ubuntu (cloud-init).
    Ubuntu,
    /// Rocky Linux (cloud-init).
    Rocky,
    /// Flatcar Container Linux (Ignition).
    Flatcar,
    /// Another OS vkube does not bootstrap.
    Other,
    /// Nothing tells.
    Unknown,
}

impl ImageOs {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageOs::Ubuntu => "ubuntu",
            ImageOs::Rocky => "rocky",
            ImageOs::Flatcar => "flatcar",
            ImageOs::Other => "other",
            ImageOs::Unknown => "unknown",
        }
    }

    /// Parse a name as [`ImageOs::as_str`] writes it (anything else: unknown).
    pub fn parse(text: &str) -> ImageOs {
        match text.trim().to_ascii_lowercase().as_str() {
            "ubuntu" => ImageOs::Ubuntu,
            "rocky" => ImageOs::Rocky,
            "flatcar" => ImageOs::Flatcar,
            "other" => ImageOs::Other,
            _ => ImageOs::Unknown,
        }
    }

    /// Guess from free text: guest ids (`ubuntu64Guest`), product names,
    /// OS descriptions. The first hint that names a family wins.
    pub fn from_hints(hints: &[&str]) -> ImageOs {
        for hint in hints {
            let h = hint.to_ascii_lowercase();
            if h.contains("flatcar") || h.starts_with("coreos") {
                return ImageOs::Flatcar;
            }
            if h.contains("ubuntu") {
                return ImageOs::Ubuntu;
            }
            if h.contains("rocky") {
                return ImageOs::Rocky;
            }
            let known_other = [
                "photon", "centos", "rhel", "windows", "debian", "sles", "oracle", "alma",
            ];
            if known_other.iter().any(|o| h.contains(o)) {
                return ImageOs::Other;
            }
        }
        ImageOs::Unknown
    }

    /// The cluster OS family this image can boot, if vkube bootstraps it.
    pub fn family(self) -> Option<OsFamily> {
        match self {
            ImageOs::Ubuntu => Some(OsFamily::Ubuntu),
            ImageOs::Rocky => Some(OsFamily::Rocky),
            ImageOs::Flatcar => Some(OsFamily::Flatcar),
            ImageOs::Other | ImageOs::Unknown => None,
        }
    }

    /// The image OS of a cluster OS family.
    pub fn of_family(family: OsFamily) -> ImageOs {
        match family {
            OsFamily::Ubuntu => ImageOs::Ubuntu,
            OsFamily::Rocky => ImageOs::Rocky,
            OsFamily::Flatcar => ImageOs::Flatcar,
        }
    }
}

impl std::fmt::Display for ImageOs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with an image package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The OVF descriptor cannot be read or imported.
    #[error("the OVF descriptor is not usable: {0}")]
    InvalidDescriptor(String),
    /// The manifest cannot be read.
    #[error("the manifest is not usable: {0}")]
    InvalidManifest(String),
    /// A file's digest differs from the manifest's.
    #[error("`{file}` does not match the manifest: {algorithm} is {actual}, the manifest says {expected}")]
    ChecksumMismatch {
        /// The file.
        file: String,
        /// The algorithm compared.
        algorithm: &'static str,
        /// What the manifest lists.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A package file the manifest does not list.
    #[error("`{0}` is part of the package but the manifest does not list it")]
    NotInManifest(String),
    /// The OVA is not a (complete) tar archive.
    #[error("the OVA is damaged: {0}")]
    CorruptArchive(String),
    /// A request vkube cannot carry out.
    #[error("{0}")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_names_round_trip_and_hints_decide() {
        for os in [
            ImageOs::Ubuntu,
            ImageOs::Rocky,
            ImageOs::Flatcar,
            ImageOs::Other,
            ImageOs::Unknown,
        ] {
            assert_eq!(ImageOs::parse(os.as_str()), os);
        }
        assert_eq!(ImageOs::from_hints(&["ubuntu64Guest"]), ImageOs::Ubuntu);
        assert_eq!(ImageOs::from_hints(&["coreos64Guest"]), ImageOs::Flatcar);
        assert_eq!(
            ImageOs::from_hints(&["otherGuest", "Flatcar Container Linux"]),
            ImageOs::Flatcar
        );
        assert_eq!(
            ImageOs::from_hints(&["vmwarePhoton64Guest"]),
            ImageOs::Other
        );
        assert_eq!(ImageOs::from_hints(&["otherGuest"]), ImageOs::Unknown);
        assert_eq!(ImageOs::Flatcar.family(), Some(OsFamily::Flatcar));
        assert_eq!(ImageOs::Other.family(), None);
    }
}
