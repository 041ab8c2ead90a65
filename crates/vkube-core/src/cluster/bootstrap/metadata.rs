//! cloud-init instance metadata for the VMware datasource
//! (`guestinfo.metadata`): instance id, host name, the datasource's
//! `redact` list, and a netplan v2 network config that matches the NIC by
//! MAC address (without `set-name`: the NIC keeps the template's name) and
//! sets the leased address, gateway and DNS from the pool, or DHCP.
//!
//! `redact: [userdata]` makes the datasource overwrite
//! `guestinfo.userdata` (and its `.encoding`) with `---` right after
//! reading it, on every boot: the user-data holds the bootstrap token and,
//! on control-plane nodes, CA keys. The names are guestinfo keys without
//! the `guestinfo.` prefix, which the datasource adds. The metadata itself
//! carries no secret and stays: cloud-init reads its `instance-id` on
//! every boot to know the instance was already set up.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::NodeBootstrap;
use crate::cluster::error::Error;

/// The metadata document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Metadata {
    /// Unique per VM; a new VM always gets a fresh cloud-init run.
    pub instance_id: String,
    /// Host name.
    pub local_hostname: String,
    /// guestinfo keys (without `guestinfo.`) the datasource overwrites
    /// once read: [`REDACTED_KEYS`].
    pub redact: Vec<String>,
    /// netplan v2 network config.
    pub network: Network,
}

/// The guestinfo keys cloud-init clears after reading them.
pub const REDACTED_KEYS: [&str; 1] = ["userdata"];

/// The id of the node's NIC in the network config. netplan only uses it as
/// a label (the NIC is matched by MAC and not renamed); cloud-init's
/// sysconfig renderer (Rocky) also takes it as the interface name, so it
/// is the name predictable naming gives vSphere's first VMXNET3 NIC (PCI
/// slot 192): on such templates nothing is renamed anywhere.
pub const NETWORK_ID: &str = "ens192";

/// netplan v2 `network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Always 2.
    pub version: u8,
    /// Interfaces by id.
    pub ethernets: BTreeMap<String, Ethernet>,
}

/// One netplan ethernet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ethernet {
    /// `macaddress` match.
    #[serde(rename = "match")]
    pub match_: BTreeMap<String, String>,
    /// DHCP for IPv4.
    pub dhcp4: bool,
    /// DHCP for IPv6.
    pub dhcp6: bool,
    /// Static `address/prefix`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Default route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Nameservers>,
}

/// A netplan route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `0.0.0.0/0` or `::/0` (older renderers do not know `default`).
    pub to: String,
    /// Gateway.
    pub via: String,
}

/// netplan `nameservers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nameservers {
    /// Servers.
    pub addresses: Vec<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

/// The metadata for a node.
pub fn build(input: &NodeBootstrap<'_>) -> Result<Metadata, Error> {
    let mut ethernet = Ethernet {
        match_: BTreeMap::from([("macaddress".to_owned(), input.mac()?)]),
        dhcp4: true,
        dhcp6: false,
        addresses: Vec::new(),
        routes: Vec::new(),
        nameservers: None,
    };
    if let Some(lease) = input.static_lease()? {
        ethernet.dhcp4 = false;
        ethernet.addresses = vec![format!("{}/{}", lease.address, lease.prefix)];
        ethernet.routes = vec![Route {
            to: match lease.gateway {
                IpAddr::V4(_) => "0.0.0.0/0".into(),
                IpAddr::V6(_) => "::/0".into(),
            },
            via: lease.gateway.to_string(),
        }];
        ethernet.nameservers = Some(Nameservers {
            addresses: lease.name_servers.iter().map(ToString::to_string).collect(),
            search: lease.search_domains.clone(),
        });
    }
    Ok(Metadata {
        instance_id: input.node.to_owned(),
        local_hostname: input.node.to_owned(),
        redact: REDACTED_KEYS.iter().map(|key| key.to_string()).collect(),
        network: Network {
            version: 2,
            ethernets: BTreeMap::from([(NETWORK_ID.to_owned(), ethernet)]),
        },
    })
}

/// The metadata as YAML.
pub fn render(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    Ok(serde_yaml::to_string(&build(input)?).expect("plain structs serialize"))
}
