//! Validated value newtypes of a cluster spec: [`ClusterName`],
//! [`NodePoolName`], [`DomainName`], [`CredentialsName`] and
//! [`KubernetesVersion`].
//!
//! Each can only hold a valid value: construction and `Deserialize` run the
//! same check. Cross-field rules (name lengths combined into VM names,
//! references between fields) live in `spec.rs`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addons::SUPPORTED_MINORS;

/// Longest cluster or node pool name: keeps `<cluster>-<pool>-<n>` within a
/// DNS label once `spec.rs` checks the pair together.
pub const MAX_NAME_LEN: usize = 40;

/// Checks a DNS-1123 label of at most `max` characters; the error is the
/// problem text (without the field).
pub(crate) fn check_label(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("is required".into());
    }
    if name.len() > max {
        return Err(format!("`{name}` is longer than {max} characters"));
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "`{name}` must be a DNS label: lowercase letters, digits and `-`, starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

macro_rules! label_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `name`; the error is the problem text (without the field).
            pub fn new(name: &str) -> Result<Self, String> {
                check_label(name, $max)?;
                Ok($name(name.to_owned()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::new(&text).map_err(|problem| {
                    serde::de::Error::custom(format!(concat!($what, " {}"), problem))
                })
            }
        }
    };
}

label_newtype!(
    /// A cluster's name: a DNS-1123 label of at most 40 characters. It
    /// prefixes every VM name and names the cluster folder.
    ClusterName,
    MAX_NAME_LEN,
    "cluster name"
);

label_newtype!(
    /// A node pool's name: a DNS-1123 label of at most 40 characters; `cp`
    /// is reserved for the control plane (checked in `spec.rs`).
    NodePoolName,
    MAX_NAME_LEN,
    "node pool name"
);

label_newtype!(
    /// A placement domain's name (a fault domain such as `az1`): a DNS-1123
    /// label of at most 63 characters.
    DomainName,
    63,
    "placement domain name"
);

label_newtype!(
    /// The name of a cluster's vCenter credentials (`spec.cloudCredentials`),
    /// stored with `vkube cluster credentials set NAME`: a DNS-1123 label of
    /// at most 63 characters.
    CredentialsName,
    63,
    "credentials name"
);

/// A Kubernetes release such as `v1.30.2` (a leading `v`, then
/// `MAJOR.MINOR.PATCH`, optionally `-pre.release`). Only the minors vkube
/// renders bootstrap data and add-ons for are accepted
/// ([`MIN_KUBERNETES_MINOR`] to [`MAX_KUBERNETES_MINOR`], the add-ons'
/// [`SUPPORTED_MINORS`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubernetesVersion {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Option<String>,
}

/// Oldest minor release vkube renders bootstrap data and add-ons for.
pub const MIN_KUBERNETES_MINOR: u64 = *SUPPORTED_MINORS.start();
/// Newest minor release vkube renders bootstrap data and add-ons for.
pub const MAX_KUBERNETES_MINOR: u64 = *SUPPORTED_MINORS.end();

impl KubernetesVersion {
    /// The major release (always 1).
    pub fn major(&self) -> u64 {
        self.major
    }

    /// The minor release, e.g. 30 for `v1.30.2`.
    pub fn minor(&self) -> u64 {
        self.minor
    }

    /// The patch release, e.g. 2 for `v1.30.2`.
    pub fn patch(&self) -> u64 {
        self.patch
    }
}

impl FromStr for KubernetesVersion {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("`{input}` is not a Kubernetes version like `v1.30.2` (a leading `v`, then MAJOR.MINOR.PATCH)")
        };
        let rest = input.strip_prefix('v').ok_or_else(bad)?;
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        if numbers.len() != 3 {
            return Err(bad());
        }
        let number = |text: &str| -> Result<u64, String> {
            let leading_zero = text.len() > 1 && text.starts_with('0');
            if text.is_empty() || leading_zero || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            text.parse().map_err(|_| bad())
        };
        let (major, minor, patch) = (
            number(numbers[0])?,
            number(numbers[1])?,
            number(numbers[2])?,
        );
        if let Some(pre) = pre {
            let valid = !pre.is_empty()
                && pre.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                return Err(bad());
            }
        }
        if (major != 1 || !SUPPORTED_MINORS.contains(&minor)) && !unchecked::allowed() {
            return Err(format!(
                "`{input}` is not supported: vkube supports Kubernetes v1.{MIN_KUBERNETES_MINOR} to v1.{MAX_KUBERNETES_MINOR} (any patch release)"
            ));
        }
        Ok(KubernetesVersion {
            major,
            minor,
            patch,
            pre: pre.map(str::to_owned),
        })
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl Serialize for KubernetesVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KubernetesVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for good in ["a", "prod-a", "x1", &"a".repeat(40)] {
            assert!(ClusterName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(41)] {
            assert!(ClusterName::new(bad).is_err(), "{bad}");
        }
        assert!(DomainName::new(&"a".repeat(63)).is_ok());
        let error: Result<ClusterName, _> = serde_yaml::from_str("Bad");
        assert!(error.unwrap_err().to_string().contains("cluster name"));
    }

    #[test]
    fn versions() {
        let version: KubernetesVersion = "v1.30.2".parse().unwrap();
        assert_eq!(
            (version.major(), version.minor(), version.patch()),
            (1, 30, 2)
        );
        assert_eq!(version.to_string(), "v1.30.2");
        for minor in SUPPORTED_MINORS {
            let text = format!("v1.{minor}.0");
            assert_eq!(text.parse::<KubernetesVersion>().unwrap().minor(), minor);
        }
        assert_eq!(
            "v1.27.16".parse::<KubernetesVersion>().unwrap_err(),
            "`v1.27.16` is not supported: vkube supports Kubernetes v1.28 to v1.33 (any patch release)"
        );
        assert_eq!(
            "v1.31.0-rc.1"
                .parse::<KubernetesVersion>()
                .unwrap()
                .to_string(),
            "v1.31.0-rc.1"
        );
        for bad in [
            "1.30.2",
            "v1.30",
            "v1.30.02",
            "v1.30.2-",
            "v2.0.0",
            "v1.25.9",
            "v1.27.16",
            "v1.34.0",
            "v1.x.0",
            "v1.30.2+meta",
        ] {
            assert!(bad.parse::<KubernetesVersion>().is_err(), "{bad}");
        }
    }
}

/// Tests of the add-ons' own version checks need versions outside the
/// supported range, which parsing refuses: inside [`unchecked::parse`] the
/// range check is off (per thread, tests only).
#[cfg(test)]
pub(crate) mod unchecked {
    use std::cell::Cell;

    thread_local!(static ALLOWED: Cell<bool> = const { Cell::new(false) });

    pub(super) fn allowed() -> bool {
        ALLOWED.with(Cell::get)
    }

    /// `text` parsed without the supported-range check.
    pub(crate) fn parse(text: &str) -> super::KubernetesVersion {
        ALLOWED.with(|a| a.set(true));
        let parsed = text.parse();
        ALLOWED.with(|a| a.set(false));
        parsed.unwrap_or_else(|e| panic!("{text}: {e}"))
    }
}

#[cfg(not(test))]
mod unchecked {
    pub(super) fn allowed() -> bool {
        false
    }
}
