//! The guestinfo extraConfig pairs that carry bootstrap data into the VM:
//! `guestinfo.metadata` and `guestinfo.userdata` (cloud-init's VMware
//! datasource) or `guestinfo.ignition.config.data` (Flatcar), each
//! base64-encoded with its `.encoding` key.
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

/// The guestinfo pairs for `input`'s OS family, values base64. Secret.
pub fn render(input: &NodeBootstrap<'_>) -> Result<Vec<(String, String)>, Error> {
    let encode = |text: String| STANDARD.encode(text);
    let pairs = if input.spec.os_family().uses_cloud_init() {
        vec![
            (METADATA.to_owned(), encode(metadata::render(input)?)),
            (format!("{METADATA}.encoding"), "base64".to_owned()),
            (USERDATA.to_owned(), encode(cloud_init::render(input)?)),
            (format!("{USERDATA}.encoding"), "base64".to_owned()),
        ]
    } else {
        vec![
            (IGNITION.to_owned(), encode(ignition::render(input)?)),
            (format!("{IGNITION}.encoding"), "base64".to_owned()),
        ]
    };
    Ok(pairs)
}
