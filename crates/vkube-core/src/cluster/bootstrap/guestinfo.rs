//! The guestinfo extraConfig pairs that carry bootstrap data into the VM:
//! `guestinfo.metadata` and `guestinfo.userdata` (cloud-init's VMware
//! datasource) or `guestinfo.ignition.config.data` (Flatcar), each with its
//! `.encoding` key.
//!
//! A guest reads at most 64 KiB of one guestinfo value (open-vm-tools'
//! message limit), and the first control-plane node's user-data carries the
//! add-on manifests: the user-data is gzip-compressed (`gzip+base64`, which
//! the VMware datasource decodes); Ignition compresses large file contents
//! itself (`compression: gzip`). A value that is still too large is refused
//! here instead of failing silently in the guest.
//!
//! vkube-vsphere sets these, the markers and [`DISK_ENABLE_UUID`] in the
//! clone spec (or one reconfigure after it, once the MAC is known).
//!
//! The user-data and the Ignition config hold secrets; inside the guest
//! they are overwritten once read (cloud-init's `redact` list, Flatcar's
//! `vkube-guestinfo-clear.service`), but the values set here stay in the
//! VM's configuration until the runtime clears them (see the module
//! comment of [`super`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{cloud_init, ignition, metadata, NodeBootstrap};
use crate::cluster::error::Error;

/// extraConfig pair that gives disks a stable UUID (needed by the vSphere CSI driver).
pub const DISK_ENABLE_UUID: (&str, &str) = ("disk.enableUUID", "TRUE");
/// cloud-init metadata key.
pub const METADATA: &str = "guestinfo.metadata";
/// cloud-init user-data key.
pub const USERDATA: &str = "guestinfo.userdata";
/// Ignition config key.
pub const IGNITION: &str = "guestinfo.ignition.config.data";
/// The most a guest reads of one guestinfo value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// `text` gzip-compressed (no file name, no time stamp: the same text
/// always gives the same bytes), then base64.
fn gzip_base64(text: &str) -> String {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(text.as_bytes())
        .expect("writing to memory");
    STANDARD.encode(encoder.finish().expect("writing to memory"))
}

/// The guestinfo pairs for `input`'s OS family, values base64. Secret.
pub fn render(input: &NodeBootstrap<'_>) -> Result<Vec<(String, String)>, Error> {
    let encode = |text: String| STANDARD.encode(text);
    let pairs = if input.spec.os_family().uses_cloud_init() {
        vec![
            (METADATA.to_owned(), encode(metadata::render(input)?)),
            (format!("{METADATA}.encoding"), "base64".to_owned()),
            (
                USERDATA.to_owned(),
                gzip_base64(&cloud_init::render(input)?),
            ),
            (format!("{USERDATA}.encoding"), "gzip+base64".to_owned()),
        ]
    } else {
        vec![
            (IGNITION.to_owned(), encode(ignition::render(input)?)),
            (format!("{IGNITION}.encoding"), "base64".to_owned()),
        ]
    };
    if let Some((key, value)) = pairs.iter().find(|(_, v)| v.len() > MAX_VALUE_BYTES) {
        return Err(Error::Bootstrap {
            node: input.node.to_owned(),
            reason: format!(
                "`{key}` would be {} bytes, more than the {MAX_VALUE_BYTES} a guest reads",
                value.len()
            ),
        });
    }
    Ok(pairs)
}
