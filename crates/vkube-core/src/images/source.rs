//! What an import source is, from how the user names it, and how a lone
//! disk image is converted for vSphere.

use serde::Serialize;

use super::{ImageError, ImageOs};

/// Format of a lone disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// QEMU copy-on-write v2 (cloud images).
    Qcow2,
    /// A raw disk.
    Raw,
    /// A VMDK of any subformat.
    Vmdk,
}

impl DiskFormat {
    /// The name `qemu-img -f` takes.
    pub fn qemu_name(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
            DiskFormat::Vmdk => "vmdk",
        }
    }
}

/// What SOURCE names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Source {
    /// An OVA over `http(s)://`, streamed into vCenter.
    Url {
        /// The URL.
        url: String,
    },
    /// A local `.ova` file.
    Ova {
        /// Path.
        path: String,
    },
    /// A local `.ovf` descriptor with its files next to it.
    Ovf {
        /// Path.
        path: String,
    },
    /// A local disk image to convert and wrap in a generated descriptor.
    Disk {
        /// Path.
        path: String,
        /// Its format.
        format: DiskFormat,
    },
}

impl Source {
    /// Classify SOURCE by scheme and extension (case-insensitive;
    /// `.img` is a raw image, as cloud images are named).
    pub fn classify(source: &str) -> Result<Source, ImageError> {
        let lower = source.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(Source::Url {
                url: source.to_string(),
            });
        }
        if lower.contains("://") {
            return Err(ImageError::Unsupported(format!(
                "`{source}`: only http:// and https:// URLs can be imported"
            )));
        }
        let path = source.to_string();
        let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        Ok(match ext {
            "ova" => Source::Ova { path },
            "ovf" => Source::Ovf { path },
            "qcow2" => Source::Disk {
                path,
                format: DiskFormat::Qcow2,
            },
            "raw" | "img" => Source::Disk {
                path,
                format: DiskFormat::Raw,
            },
            "vmdk" => Source::Disk {
                path,
                format: DiskFormat::Vmdk,
            },
            _ => {
                return Err(ImageError::Unsupported(format!(
                    "`{source}`: expected an .ova, .ovf, .qcow2, .raw, .img or .vmdk file, or an http(s) URL of an OVA"
                )))
            }
        })
    }
}

/// `qemu-img` arguments that turn `input` into a streamOptimized VMDK at
/// `output` — the only VMDK subformat an OVF import accepts over NFC.
pub fn qemu_convert_args(input: &str, format: DiskFormat, output: &str) -> Vec<String> {
    [
        "convert",
        "-f",
        format.qemu_name(),
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        input,
        output,
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// The virtual size in bytes from `qemu-img info --output=json`.
pub fn qemu_virtual_size(info_json: &str) -> Result<u64, ImageError> {
    let value: serde_json::Value = serde_json::from_str(info_json)
        .map_err(|e| ImageError::Unsupported(format!("cannot read qemu-img info: {e}")))?;
    value["virtual-size"]
        .as_u64()
        .ok_or_else(|| ImageError::Unsupported("qemu-img info names no virtual-size".into()))
}

/// The vSphere guest id for a disk image of `os`: ids vSphere 6.7 and
/// later all know (Rocky Linux's own id needs vSphere 8, so its RHEL 8
/// sibling's is used).
pub fn guest_id(os: ImageOs) -> &'static str {
    match os {
        ImageOs::Ubuntu => "ubuntu64Guest",
        ImageOs::Rocky => "centos8_64Guest",
        ImageOs::Flatcar => "other3xLinux64Guest",
        ImageOs::Other | ImageOs::Unknown => "otherLinux64Guest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_classify_by_scheme_and_extension() {
        assert!(matches!(
            Source::classify("https://x/y.ova?sig=1").unwrap(),
            Source::Url { .. }
        ));
        assert!(matches!(
            Source::classify("a/B.OVA").unwrap(),
            Source::Ova { .. }
        ));
        assert!(matches!(
            Source::classify("a.ovf").unwrap(),
            Source::Ovf { .. }
        ));
        for (name, format) in [
            ("c.qcow2", DiskFormat::Qcow2),
            ("c.img", DiskFormat::Raw),
            ("c.raw", DiskFormat::Raw),
            ("c.vmdk", DiskFormat::Vmdk),
        ] {
            assert_eq!(
                Source::classify(name).unwrap(),
                Source::Disk {
                    path: name.into(),
                    format
                }
            );
        }
        for bad in ["ftp://x/y.ova", "image.iso", "noext"] {
            assert!(Source::classify(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conversion_asks_for_a_stream_optimized_vmdk() {
        let args = qemu_convert_args("in.qcow2", DiskFormat::Qcow2, "out.vmdk");
        assert_eq!(
            args.join(" "),
            "convert -f qcow2 -O vmdk -o subformat=streamOptimized in.qcow2 out.vmdk"
        );
        assert_eq!(
            qemu_virtual_size(r#"{"virtual-size": 2147483648, "format": "qcow2"}"#).unwrap(),
            2147483648
        );
        assert!(qemu_virtual_size("{}").is_err());
    }
}
