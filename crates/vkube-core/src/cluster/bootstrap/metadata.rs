//! cloud-init instance metadata for the VMware datasource
//! (`guestinfo.metadata`): instance id, host name, and a netplan v2
//! network config that matches the NIC by MAC address, names it
//! [`NIC_NAME`], and sets the leased address, gateway and
//! DNS from the pool, or DHCP.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{NodeBootstrap, NIC_NAME};
use crate::cluster::error::Error;

/// The metadata document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Metadata {
    /// Unique per VM; a new VM always gets a fresh cloud-init run.
    pub instance_id: String,
    /// Host name.
    pub local_hostname: String,
    /// netplan v2 network config.
    pub network: Network,
}

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
    /// Interface name to give it.
    #[serde(rename = "set-name")]
    pub set_name: String,
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
        match_: BTreeMap::from([(
            "macaddress".to_owned(),
            input.mac_address.to_ascii_lowercase(),
        )]),
        set_name: NIC_NAME.to_owned(),
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
        network: Network {
            version: 2,
            ethernets: BTreeMap::from([(NIC_NAME.to_owned(), ethernet)]),
        },
    })
}

/// The metadata as YAML.
pub fn render(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    Ok(serde_yaml::to_string(&build(input)?).expect("plain structs serialize"))
}
