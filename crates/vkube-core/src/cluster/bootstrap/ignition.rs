//! Ignition v3 config for Flatcar nodes: the same [`NodeContent`](super::content::NodeContent) as the
//! cloud-init path, as `storage.files` and `systemd.units`, plus the
//! `core` user's SSH keys, the host name, and a systemd-networkd file that
//! matches the NIC by MAC (static address or DHCP).
//!
//! Differences from cloud-init: time sync uses systemd-timesyncd (see
//! `content`), and the bootstrap script runs from a systemd unit.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::content;
use super::NodeBootstrap;
use crate::cluster::error::Error;

/// Ignition spec version rendered.
pub const IGNITION_VERSION: &str = "3.3.0";

/// Files larger than this are stored gzip-compressed in the config.
const COMPRESS_ABOVE: usize = 1024;

/// An Ignition resource holding `text`: gzip-compressed when large (the
/// whole config must fit one guestinfo value, see `guestinfo`).
fn contents(text: &str) -> serde_json::Value {
    if text.len() <= COMPRESS_ABOVE {
        return json!({"source": data_url(text)});
    }
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(text.as_bytes())
        .expect("writing to memory");
    let compressed = encoder.finish().expect("writing to memory");
    json!({"source": format!("data:;base64,{}", STANDARD.encode(compressed)), "compression": "gzip"})
}

fn data_url(text: &str) -> String {
    format!("data:;base64,{}", STANDARD.encode(text))
}

/// systemd-networkd config for the node's NIC.
fn networkd(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    let mut text = format!(
        "[Match]\nMACAddress={}\n\n[Network]\n",
        input.mac_address.to_ascii_lowercase()
    );
    match input.static_lease()? {
        None => text.push_str("DHCP=ipv4\n"),
        Some(lease) => {
            text.push_str(&format!(
                "Address={}/{}\nGateway={}\n",
                lease.address, lease.prefix, lease.gateway
            ));
            for server in &lease.name_servers {
                text.push_str(&format!("DNS={server}\n"));
            }
            if !lease.search_domains.is_empty() {
                text.push_str(&format!("Domains={}\n", lease.search_domains.join(" ")));
            }
        }
    }
    Ok(text)
}

/// The Ignition config as JSON. Secret, like the cloud-init user-data.
pub fn render(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    let node = content::render(input)?;
    let mut files: Vec<Value> = vec![
        json!({"path": "/etc/hostname", "mode": 0o644, "overwrite": true, "contents": {"source": data_url(&format!("{}\n", input.node))}}),
        json!({"path": "/etc/systemd/network/10-vkube.network", "mode": 0o644, "overwrite": true, "contents": {"source": data_url(&networkd(input)?)}}),
    ];
    for file in &node.files {
        if file.append {
            files.push(json!({"path": file.path, "mode": file.mode, "append": [{"source": data_url(&file.content)}]}));
        } else {
            files.push(json!({"path": file.path, "mode": file.mode, "overwrite": true, "contents": contents(&file.content)}));
        }
    }
    let units: Vec<Value> = node
        .units
        .iter()
        .map(|unit| json!({"name": unit.name, "enabled": unit.enabled, "contents": unit.content}))
        .collect();
    let config = json!({
        "ignition": {"version": IGNITION_VERSION},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": node.ssh_authorized_keys}]},
        "storage": {"files": files},
        "systemd": {"units": units},
    });
    Ok(serde_json::to_string(&config).expect("json serializes"))
}
