//! Address arithmetic for IPAM: the [`Cidr`] and [`AddressRange`] newtypes.
//!
//! Owns parsing, display and containment of IPv4/IPv6 prefixes and inclusive
//! ranges. Both families are handled as 128-bit integers internally, so the
//! same code serves IPv4 and IPv6. Pool rules (gateway, exclusions) live in
//! `pool.rs`; picking addresses lives in `allocate.rs`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a CIDR or range string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The text is not an IP address.
    #[error("`{input}` is not an IP address")]
    NotAnAddress {
        /// The text as given.
        input: String,
    },
    /// The text is not in `address/prefix` form.
    #[error("`{input}` is not a CIDR (expected e.g. `10.0.0.0/24`)")]
    NotACidr {
        /// The text as given.
        input: String,
    },
    /// The prefix length is larger than the address family allows.
    #[error("prefix /{prefix} is longer than /{max}, the maximum for this address family")]
    PrefixTooLong {
        /// The prefix length given.
        prefix: u8,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// The CIDR has bits set after the prefix.
    #[error("`{input}` has host bits set; did you mean `{network}`?")]
    HostBitsSet {
        /// The text as given.
        input: String,
        /// The network the user probably meant.
        network: Cidr,
    },
    /// A range mixes IPv4 and IPv6.
    #[error("{start} and {end} are not the same address family")]
    MixedFamilies {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// A range ends before it starts.
    #[error("{end} comes before {start}")]
    Backwards {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
}

/// The address as a 128-bit integer (IPv4 addresses occupy the low 32 bits).
pub(crate) fn to_bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`to_bits`] for the family of `like`.
pub(crate) fn from_bits(like: IpAddr, bits: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// 32 for IPv4, 128 for IPv6.
pub(crate) fn family_bits(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// All `width` bits of a family set.
fn family_mask(width: u8) -> u128 {
    if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

/// Mask with the top `prefix` bits of a `width`-bit family set.
fn prefix_mask(width: u8, prefix: u8) -> u128 {
    let host_bits = width - prefix;
    let host = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    family_mask(width) & !host
}

/// Parses an IP address, naming the input in the error.
pub fn parse_address(input: &str) -> Result<IpAddr, AddressError> {
    IpAddr::from_str(input.trim()).map_err(|_| AddressError::NotAnAddress {
        input: input.to_owned(),
    })
}

/// An IP network: a network address with all host bits clear, plus a prefix
/// length. Can only hold valid values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `prefix` bits that contains `address` (host bits are
    /// cleared, never rejected).
    pub fn containing(address: IpAddr, prefix: u8) -> Result<Self, AddressError> {
        let width = family_bits(address);
        if prefix > width {
            return Err(AddressError::PrefixTooLong { prefix, max: width });
        }
        let bits = to_bits(address) & prefix_mask(width, prefix);
        Ok(Cidr {
            network: from_bits(address, bits),
            prefix,
        })
    }

    /// The network address (all host bits clear).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The last address of the network (the broadcast address for IPv4).
    pub fn last(&self) -> IpAddr {
        let width = family_bits(self.network);
        let host = family_mask(width) & !prefix_mask(width, self.prefix);
        from_bits(self.network, to_bits(self.network) | host)
    }

    /// All addresses of the network as an inclusive range.
    pub fn range(&self) -> AddressRange {
        AddressRange {
            start: self.network,
            end: self.last(),
        }
    }

    /// Whether `address` is inside this network (false for the other family).
    pub fn contains(&self, address: IpAddr) -> bool {
        self.range().contains(address)
    }

    /// Whether `other` lies entirely inside this network.
    pub fn covers(&self, other: &AddressRange) -> bool {
        self.contains(other.start) && self.contains(other.end)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = AddressError;

    /// Parses `address/prefix`, refusing host bits (`10.0.0.1/24`).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let not_cidr = || AddressError::NotACidr {
            input: input.to_owned(),
        };
        let (address, prefix) = input.trim().split_once('/').ok_or_else(not_cidr)?;
        let address = IpAddr::from_str(address).map_err(|_| not_cidr())?;
        let prefix: u8 = prefix.parse().map_err(|_| not_cidr())?;
        let cidr = Cidr::containing(address, prefix)?;
        if cidr.network != address {
            return Err(AddressError::HostBitsSet {
                input: input.to_owned(),
                network: cidr,
            });
        }
        Ok(cidr)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive range of addresses of one family, `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressRange {
    start: IpAddr,
    end: IpAddr,
}

impl AddressRange {
    /// A range from `start` to `end`, both included.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, AddressError> {
        if start.is_ipv4() != end.is_ipv4() {
            return Err(AddressError::MixedFamilies { start, end });
        }
        if to_bits(end) < to_bits(start) {
            return Err(AddressError::Backwards { start, end });
        }
        Ok(AddressRange { start, end })
    }

    /// A range holding one address.
    pub fn single(address: IpAddr) -> Self {
        AddressRange {
            start: address,
            end: address,
        }
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// Whether `address` is inside (false for the other family).
    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.start.is_ipv4()
            && (to_bits(self.start)..=to_bits(self.end)).contains(&to_bits(address))
    }

    /// The addresses both ranges hold, if any.
    pub fn intersection(&self, other: &AddressRange) -> Option<AddressRange> {
        if self.start.is_ipv4() != other.start.is_ipv4() {
            return None;
        }
        let start = to_bits(self.start).max(to_bits(other.start));
        let end = to_bits(self.end).min(to_bits(other.end));
        (start <= end).then(|| AddressRange {
            start: from_bits(self.start, start),
            end: from_bits(self.start, end),
        })
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub fn len(&self) -> u128 {
        (to_bits(self.end) - to_bits(self.start)).saturating_add(1)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub(crate) fn bits(&self) -> (u128, u128) {
        (to_bits(self.start), to_bits(self.end))
    }
}

impl fmt::Display for AddressRange {
    /// `a` for one address, `a-b` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for AddressRange {
    type Err = AddressError;

    /// Accepts `10.0.0.5`, `10.0.0.5-10.0.0.9` or `10.0.0.0/28`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let input = input.trim();
        if input.contains('/') {
            return Ok(input.parse::<Cidr>()?.range());
        }
        match input.split_once('-') {
            Some((start, end)) => AddressRange::new(parse_address(start)?, parse_address(end)?),
            None => Ok(AddressRange::single(parse_address(input)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_displays() {
        let cases = [
            ("10.0.0.0/24", "10.0.0.0", "10.0.0.255"),
            ("10.0.0.0/8", "10.0.0.0", "10.255.255.255"),
            ("0.0.0.0/0", "0.0.0.0", "255.255.255.255"),
            ("10.1.2.3/32", "10.1.2.3", "10.1.2.3"),
            (
                "2001:db8::/64",
                "2001:db8::",
                "2001:db8::ffff:ffff:ffff:ffff",
            ),
            ("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("2001:db8::1/128", "2001:db8::1", "2001:db8::1"),
        ];
        for (text, first, last) in cases {
            let cidr: Cidr = text.parse().unwrap();
            assert_eq!(cidr.to_string(), text);
            assert_eq!(cidr.network(), ip(first), "{text}");
            assert_eq!(cidr.last(), ip(last), "{text}");
        }
    }

    #[test]
    fn cidr_errors() {
        assert_eq!(
            "10.0.0.1/24".parse::<Cidr>().unwrap_err().to_string(),
            "`10.0.0.1/24` has host bits set; did you mean `10.0.0.0/24`?"
        );
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(AddressError::PrefixTooLong { .. })
        ));
        assert!(matches!(
            "10.0.0.0".parse::<Cidr>(),
            Err(AddressError::NotACidr { .. })
        ));
        assert!(matches!(
            "nope/8".parse::<Cidr>(),
            Err(AddressError::NotACidr { .. })
        ));
    }

    #[test]
    fn ranges() {
        let range: AddressRange = "10.0.0.5-10.0.0.9".parse().unwrap();
        assert_eq!(range.len(), 5);
        assert!(range.contains(ip("10.0.0.9")));
        assert!(!range.contains(ip("10.0.0.10")));
        assert!(!range.contains(ip("::1")));
        assert_eq!(
            "10.0.0.0/30".parse::<AddressRange>().unwrap().to_string(),
            "10.0.0.0-10.0.0.3"
        );
        assert!(matches!(
            "10.0.0.9-10.0.0.5".parse::<AddressRange>(),
            Err(AddressError::Backwards { .. })
        ));
        assert!(matches!(
            "10.0.0.9-::1".parse::<AddressRange>(),
            Err(AddressError::MixedFamilies { .. })
        ));
        let other: AddressRange = "10.0.0.8-10.0.0.20".parse().unwrap();
        assert_eq!(
            range.intersection(&other).unwrap().to_string(),
            "10.0.0.8-10.0.0.9"
        );
        assert_eq!("::/0".parse::<AddressRange>().unwrap().len(), u128::MAX);
    }
}
