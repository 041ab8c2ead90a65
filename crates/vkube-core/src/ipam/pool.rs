//! IP pool definitions: the YAML form [`RawIpPool`] and the validated
//! [`IpPool`], which can only hold a usable pool.
//!
//! Owns field validation and the set of addresses a pool may hand out.
//! Choosing an address and checking overlaps between pools live in
//! `allocate.rs`; storing pools and leases is `vkube-store`'s job.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::address::{family_bits, parse_address, to_bits, AddressRange, Cidr};
use super::error::{Error, Problems};

/// A pool's name: 1 to 63 characters of letters, digits, `-`, `_` or `.`,
/// starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PoolName(String);

impl PoolName {
    /// Checks `name`; the error is the problem text (without the field).
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("is required".into());
        }
        if name.len() > 63 {
            return Err(format!("`{name}` is longer than 63 characters"));
        }
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !first_ok || !rest_ok {
            return Err(format!(
                "`{name}` must start with a letter or digit and hold only letters, digits, `-`, `_` and `.`"
            ));
        }
        Ok(PoolName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PoolName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PoolName::new(&text)
            .map_err(|problem| serde::de::Error::custom(format!("pool name {problem}")))
    }
}

/// The `range` field of a pool: first and last address, both included.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRange {
    /// First address, e.g. `10.10.183.1`.
    #[serde(default)]
    pub start: String,
    /// Last address, e.g. `10.10.183.100`.
    #[serde(default)]
    pub end: String,
}

/// A pool as written in YAML, before validation. Field names are camelCase:
///
/// ```yaml
/// name: lab
/// range: { start: 10.10.183.10, end: 10.10.183.100 }   # or: subnet: 10.10.183.64/26
/// prefix: 24
/// gateway: 10.10.183.1
/// nameServers: [10.10.0.53]
/// searchDomains: [lab.example.com]
/// exclude: [10.10.183.50, 10.10.183.60-10.10.183.63]
/// restrictToCluster: false
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawIpPool {
    /// The pool's name.
    #[serde(default)]
    pub name: String,
    /// Start and end address; exclusive with `subnet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RawRange>,
    /// All addresses of a CIDR; exclusive with `range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Prefix length of the network the nodes sit on. Required with `range`;
    /// defaults to the subnet's own prefix with `subnet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// The network's default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// DNS servers handed to nodes; at least one.
    #[serde(default)]
    pub name_servers: Vec<String>,
    /// DNS search domains handed to nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_domains: Vec<String>,
    /// Addresses never handed out: `a`, `a-b` or a CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// The first cluster that allocates from the pool owns it.
    #[serde(default)]
    pub restrict_to_cluster: bool,
}

/// The addresses a pool was defined with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolAddresses {
    /// Defined by `range: {start, end}`.
    Range(AddressRange),
    /// Defined by `subnet: CIDR`.
    Subnet(Cidr),
}

impl PoolAddresses {
    /// All addresses of the definition, before reserved ones are removed.
    pub fn range(&self) -> AddressRange {
        match self {
            PoolAddresses::Range(range) => *range,
            PoolAddresses::Subnet(cidr) => cidr.range(),
        }
    }
}

/// A validated IP pool. Build one with [`RawIpPool::validate`] or by
/// deserializing (which runs the same checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawIpPool", into = "RawIpPool")]
pub struct IpPool {
    name: PoolName,
    addresses: PoolAddresses,
    network: Cidr,
    gateway: IpAddr,
    name_servers: Vec<IpAddr>,
    search_domains: Vec<String>,
    exclude: Vec<AddressRange>,
    restrict_to_cluster: bool,
}

impl IpPool {
    /// The pool's name.
    pub fn name(&self) -> &PoolName {
        &self.name
    }

    /// The addresses as defined (range or subnet).
    pub fn addresses(&self) -> PoolAddresses {
        self.addresses
    }

    /// The network the nodes sit on: the pool's first address with `prefix`.
    pub fn network(&self) -> Cidr {
        self.network
    }

    /// Prefix length handed to nodes.
    pub fn prefix(&self) -> u8 {
        self.network.prefix()
    }

    /// Default gateway handed to nodes.
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// DNS servers handed to nodes.
    pub fn name_servers(&self) -> &[IpAddr] {
        &self.name_servers
    }

    /// DNS search domains handed to nodes.
    pub fn search_domains(&self) -> &[String] {
        &self.search_domains
    }

    /// Excluded addresses.
    pub fn exclude(&self) -> &[AddressRange] {
        &self.exclude
    }

    /// Whether the first allocating cluster owns the pool.
    pub fn restrict_to_cluster(&self) -> bool {
        self.restrict_to_cluster
    }

    /// Addresses inside the pool that are never handed out, as sorted,
    /// merged, inclusive `(start, end)` integer intervals: the network's
    /// network and broadcast address, the gateway and the exclusions.
    pub(crate) fn reserved_bits(&self) -> Vec<(u128, u128)> {
        let (low, high) = self.addresses.range().bits();
        let network = self.network.range();
        let mut reserved: Vec<(u128, u128)> = Vec::new();
        let width = family_bits(self.gateway);
        // IPv4 /31 and /32 have no network or broadcast address (RFC 3021);
        // IPv6 has no broadcast but reserves the subnet-router anycast
        // address, which is the network address (RFC 4291 §2.6.1).
        if self.prefix() + 2 <= width {
            reserved.push((to_bits(network.start()), to_bits(network.start())));
            if width == 32 {
                reserved.push((to_bits(network.end()), to_bits(network.end())));
            }
        }
        reserved.push((to_bits(self.gateway), to_bits(self.gateway)));
        reserved.extend(self.exclude.iter().map(AddressRange::bits));
        reserved.retain_mut(|(start, end)| {
            *start = (*start).max(low);
            *end = (*end).min(high);
            start <= end
        });
        reserved.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(reserved.len());
        for (start, end) in reserved {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// How many addresses the pool can hand out (saturates for huge IPv6 pools).
    pub fn capacity(&self) -> u128 {
        let reserved: u128 = self
            .reserved_bits()
            .iter()
            .map(|(start, end)| end - start + 1)
            .sum();
        self.addresses.range().len().saturating_sub(reserved)
    }

    /// Whether `address` may ever be handed out by this pool.
    pub fn is_allocatable(&self, address: IpAddr) -> bool {
        self.addresses.range().contains(address)
            && !self
                .reserved_bits()
                .iter()
                .any(|(start, end)| (*start..=*end).contains(&to_bits(address)))
    }

    /// The YAML form, for storing and printing.
    pub fn to_raw(&self) -> RawIpPool {
        let (range, subnet) = match self.addresses {
            PoolAddresses::Range(range) => (
                Some(RawRange {
                    start: range.start().to_string(),
                    end: range.end().to_string(),
                }),
                None,
            ),
            PoolAddresses::Subnet(cidr) => (None, Some(cidr.to_string())),
        };
        RawIpPool {
            name: self.name.to_string(),
            range,
            subnet,
            prefix: Some(self.prefix()),
            gateway: Some(self.gateway.to_string()),
            name_servers: self.name_servers.iter().map(ToString::to_string).collect(),
            search_domains: self.search_domains.clone(),
            exclude: self.exclude.iter().map(ToString::to_string).collect(),
            restrict_to_cluster: self.restrict_to_cluster,
        }
    }
}

impl From<IpPool> for RawIpPool {
    fn from(pool: IpPool) -> Self {
        pool.to_raw()
    }
}

impl TryFrom<RawIpPool> for IpPool {
    type Error = Error;

    fn try_from(raw: RawIpPool) -> Result<Self, Self::Error> {
        raw.validate()
    }
}

impl RawIpPool {
    /// Validates the pool; problems name fields without a prefix (`gateway`).
    /// Every problem found is reported, not just the first.
    pub fn validate(&self) -> Result<IpPool, Error> {
        self.validate_at("")
    }

    /// Like [`validate`](Self::validate) with field names prefixed, e.g.
    /// `pools[2].` gives `pools[2].gateway`.
    pub fn validate_at(&self, prefix: &str) -> Result<IpPool, Error> {
        let mut problems = Problems::new(prefix);
        let name = PoolName::new(self.name.trim())
            .map_err(|problem| problems.push("name", problem))
            .ok();
        let addresses = self.check_addresses(&mut problems);
        let network = addresses.and_then(|addresses| self.check_prefix(addresses, &mut problems));
        let gateway = self.check_gateway(network, &mut problems);

        if self.name_servers.is_empty() {
            problems.push("nameServers", "at least one name server is required");
        }
        let name_servers: Vec<IpAddr> = self
            .name_servers
            .iter()
            .enumerate()
            .filter_map(|(index, text)| {
                parse_address(text)
                    .map_err(|error| problems.push(format!("nameServers[{index}]"), error))
                    .ok()
            })
            .collect();

        for (index, domain) in self.search_domains.iter().enumerate() {
            if let Err(problem) = check_domain(domain) {
                problems.push(format!("searchDomains[{index}]"), problem);
            }
        }

        let mut exclude = Vec::with_capacity(self.exclude.len());
        for (index, text) in self.exclude.iter().enumerate() {
            match text.parse::<AddressRange>() {
                Err(error) => problems.push(format!("exclude[{index}]"), error),
                Ok(range) => {
                    if let Some(addresses) = addresses {
                        if range.intersection(&addresses.range()).is_none() {
                            problems.push(
                                format!("exclude[{index}]"),
                                format!(
                                    "{range} is outside the pool's addresses {}",
                                    addresses.range()
                                ),
                            );
                        }
                    }
                    exclude.push(range);
                }
            }
        }

        if !problems.is_empty() {
            return Err(Error::Invalid {
                problems: problems.list,
            });
        }
        // All parts parsed: every Option below is Some.
        let (Some(name), Some(addresses), Some(network), Some(gateway)) =
            (name, addresses, network, gateway)
        else {
            unreachable!("a missing part always records a problem")
        };
        let pool = IpPool {
            name,
            addresses,
            network,
            gateway,
            name_servers,
            search_domains: self
                .search_domains
                .iter()
                .map(|d| d.trim().to_owned())
                .collect(),
            exclude,
            restrict_to_cluster: self.restrict_to_cluster,
        };
        // A name server the pool could lease out would end up on a node.
        for (index, server) in pool.name_servers.iter().enumerate() {
            if pool.is_allocatable(*server) {
                problems.push(
                    format!("nameServers[{index}]"),
                    format!("{server} is inside the pool's addresses and could be leased to a node: add it to `exclude`"),
                );
            }
        }
        if pool.capacity() == 0 {
            let field = if self.range.is_some() {
                "range"
            } else {
                "subnet"
            };
            problems.push(
                field,
                format!(
                    "{} has no usable address once the network, broadcast, gateway and excluded addresses are removed",
                    pool.addresses.range()
                ),
            );
        }
        problems.into_result(|| pool)
    }

    fn check_addresses(&self, problems: &mut Problems) -> Option<PoolAddresses> {
        match (&self.range, &self.subnet) {
            (Some(_), Some(_)) => {
                problems.push("subnet", "set either `range` or `subnet`, not both");
                None
            }
            (None, None) => {
                problems.push(
                    "range",
                    "one of `range` (start and end) or `subnet` (a CIDR) is required",
                );
                None
            }
            (Some(range), None) => {
                let start = parse_address(&range.start)
                    .map_err(|e| problems.push("range.start", e))
                    .ok();
                let end = parse_address(&range.end)
                    .map_err(|e| problems.push("range.end", e))
                    .ok();
                let range = AddressRange::new(start?, end?)
                    .map_err(|e| problems.push("range.end", e))
                    .ok()?;
                Some(PoolAddresses::Range(range))
            }
            (None, Some(subnet)) => subnet
                .parse()
                .map(PoolAddresses::Subnet)
                .map_err(|e| problems.push("subnet", e))
                .ok(),
        }
    }

    fn check_prefix(&self, addresses: PoolAddresses, problems: &mut Problems) -> Option<Cidr> {
        let first = addresses.range().start();
        let prefix = match (self.prefix, addresses) {
            (Some(prefix), _) => prefix,
            (None, PoolAddresses::Subnet(cidr)) => cidr.prefix(),
            (None, PoolAddresses::Range(_)) => {
                problems.push("prefix", "is required with `range` (e.g. `prefix: 24`)");
                return None;
            }
        };
        let network = Cidr::containing(first, prefix)
            .map_err(|e| problems.push("prefix", e))
            .ok()?;
        match addresses {
            PoolAddresses::Subnet(cidr) if prefix > cidr.prefix() => {
                problems.push(
                    "prefix",
                    format!(
                        "/{prefix} is longer than subnet {cidr}, which would span several networks"
                    ),
                );
                None
            }
            PoolAddresses::Range(range) if !network.contains(range.end()) => {
                problems.push(
                    "range.end",
                    format!(
                        "{} is outside subnet {network} (range.start with prefix /{prefix})",
                        range.end()
                    ),
                );
                None
            }
            _ => Some(network),
        }
    }

    fn check_gateway(&self, network: Option<Cidr>, problems: &mut Problems) -> Option<IpAddr> {
        let text = self.gateway.as_deref().map(str::trim).unwrap_or_default();
        if text.is_empty() {
            problems.push("gateway", "is required");
            return None;
        }
        let gateway = parse_address(text)
            .map_err(|e| problems.push("gateway", e))
            .ok()?;
        let network = network?;
        let has_broadcast = network.prefix() + 2 <= family_bits(gateway);
        if !network.contains(gateway) {
            problems.push("gateway", format!("{gateway} is outside subnet {network}"));
            None
        } else if has_broadcast && gateway == network.network() {
            problems.push(
                "gateway",
                format!("{gateway} is the network address of {network}"),
            );
            None
        } else if has_broadcast && gateway.is_ipv4() && gateway == network.last() {
            problems.push(
                "gateway",
                format!("{gateway} is the broadcast address of {network}"),
            );
            None
        } else {
            Some(gateway)
        }
    }
}

/// Checks a DNS search domain such as `lab.example.com`.
fn check_domain(domain: &str) -> Result<(), String> {
    let domain = domain.trim();
    if domain.is_empty() || domain.len() > 253 {
        return Err(format!("`{domain}` must be 1 to 253 characters"));
    }
    for label in domain.trim_end_matches('.').split('.') {
        let valid = (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "`{domain}` is not a valid DNS domain (label `{label}`)"
            ));
        }
    }
    Ok(())
}

/// Parses a YAML document of pools for `vkube ippool import -f`: either
/// `pools: [...]`, a plain list of pools, or a single pool. Only syntax is
/// checked here; call [`validate_pools`] next.
pub fn parse_pools_yaml(text: &str) -> Result<Vec<RawIpPool>, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapped {
        pools: Vec<RawIpPool>,
    }
    let yaml = |source| Error::Yaml { source };
    // Pick the shape first, then deserialize that shape directly, so serde's
    // errors keep their field path (e.g. `pools[1].prefix`).
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(yaml)?;
    if value.get("pools").is_some() {
        Ok(serde_yaml::from_str::<Wrapped>(text).map_err(yaml)?.pools)
    } else if value.is_sequence() {
        serde_yaml::from_str(text).map_err(yaml)
    } else {
        Ok(vec![serde_yaml::from_str(text).map_err(yaml)?])
    }
}

/// Validates several pools together, naming fields `pools[i].…`: each pool
/// on its own, then duplicate names and (unless `allow_overlap`) addresses
/// shared between pools of the list. All problems are reported together.
pub fn validate_pools(raws: &[RawIpPool], allow_overlap: bool) -> Result<Vec<IpPool>, Error> {
    let mut problems = Vec::new();
    let mut pools: Vec<(usize, IpPool)> = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        match raw.validate_at(&format!("pools[{index}].")) {
            Ok(pool) => pools.push((index, pool)),
            Err(error) => problems.extend(error.problems().iter().cloned()),
        }
    }
    let mut checks = Problems::new("");
    for (position, (index, pool)) in pools.iter().enumerate() {
        for (other_index, other) in &pools[..position] {
            if pool.name() == other.name() {
                checks.push(
                    format!("pools[{index}].name"),
                    format!("`{}` is already used by pools[{other_index}]", pool.name()),
                );
            } else if !allow_overlap {
                if let Some(shared) = super::allocate::overlap(pool, other) {
                    checks.push(
                        format!(
                            "pools[{index}].{}",
                            if raws[*index].range.is_some() {
                                "range"
                            } else {
                                "subnet"
                            }
                        ),
                        format!(
                            "{shared} also belongs to pools[{other_index}] `{}`",
                            other.name()
                        ),
                    );
                }
            }
        }
    }
    problems.extend(checks.list);
    if problems.is_empty() {
        Ok(pools.into_iter().map(|(_, pool)| pool).collect())
    } else {
        Err(Error::Invalid { problems })
    }
}
