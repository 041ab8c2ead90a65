//! Slot bindings: which inventory path each slot means, parsed from
//! `SLOT=PATH` strings such as `vm-folder=/dc1/vm/k8s`.
//!
//! The one parser for that syntax, for CLI flags today and cluster specs
//! later. It checks syntax only; whether the path exists is for
//! `vkube-vsphere` to find out.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

use super::{Error, Slot};

/// One `SLOT=PATH` pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The slot.
    pub slot: Slot,
    /// An absolute inventory path, e.g. `/dc1/vm/k8s`.
    pub path: String,
}

impl FromStr for Binding {
    type Err = Error;

    /// Parses `SLOT=PATH`. The path must be absolute (start with `/`), as
    /// govc inventory paths are; it may contain `=` and spaces.
    fn from_str(input: &str) -> Result<Binding, Error> {
        let invalid = |problem: String| Error::InvalidBinding {
            input: input.to_owned(),
            problem,
        };
        let (slot, path) = input.split_once('=').ok_or_else(|| {
            invalid(format!(
                "expected `SLOT=PATH`, e.g. `{}=/dc1/vm/k8s`",
                input.trim().trim_end_matches('=')
            ))
        })?;
        let slot = slot
            .trim()
            .parse::<Slot>()
            .map_err(|error| invalid(error.to_string()))?;
        if path.is_empty() {
            return Err(invalid(format!("the path after `{slot}=` is empty")));
        }
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "the path `{path}` is not absolute; inventory paths start with `/`"
            )));
        }
        if path.len() > 1 && path.ends_with('/') {
            return Err(invalid(format!("the path `{path}` ends with `/`")));
        }
        Ok(Binding {
            slot,
            path: path.to_owned(),
        })
    }
}

/// Every slot's bound paths. A slot may be bound to several objects (e.g.
/// each network the nodes use); an unbound slot has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bindings {
    paths: BTreeMap<Slot, Vec<String>>,
}

impl Bindings {
    /// No slot bound.
    pub fn new() -> Bindings {
        Bindings::default()
    }

    /// Parses each `SLOT=PATH` item; repeating a slot adds another path, and
    /// repeating a pair changes nothing.
    ///
    /// Fails on the first invalid item.
    pub fn parse_all<I, S>(items: I) -> Result<Bindings, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut bindings = Bindings::new();
        for item in items {
            bindings.insert(item.as_ref().parse()?);
        }
        Ok(bindings)
    }

    /// Adds a binding; an identical one already present is kept once.
    pub fn insert(&mut self, binding: Binding) {
        let paths = self.paths.entry(binding.slot).or_default();
        if !paths.contains(&binding.path) {
            paths.push(binding.path);
        }
    }

    /// The paths bound to `slot`, in insertion order; empty when unbound.
    pub fn paths(&self, slot: Slot) -> &[String] {
        self.paths.get(&slot).map_or(&[], Vec::as_slice)
    }

    /// Whether `slot` has at least one path.
    pub fn is_bound(&self, slot: Slot) -> bool {
        !self.paths(slot).is_empty()
    }

    /// Every binding, by slot order then insertion order.
    pub fn iter(&self) -> impl Iterator<Item = Binding> + '_ {
        self.paths.iter().flat_map(|(slot, paths)| {
            paths.iter().map(|path| Binding {
                slot: *slot,
                path: path.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(input: &str) -> String {
        match input.parse::<Binding>() {
            Err(Error::InvalidBinding {
                input: got,
                problem,
            }) => {
                assert_eq!(got, input);
                problem
            }
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_slot_and_path() {
        let binding: Binding = "vm-folder=/dc1/vm/k8s clusters".parse().unwrap();
        assert_eq!(
            binding,
            Binding {
                slot: Slot::VmFolder,
                path: "/dc1/vm/k8s clusters".to_owned()
            }
        );
        let binding: Binding = "vcenter=/".parse().unwrap();
        assert_eq!(binding.path, "/");
    }

    #[test]
    fn slot_without_equals() {
        assert_eq!(
            problem("vm-folder"),
            "expected `SLOT=PATH`, e.g. `vm-folder=/dc1/vm/k8s`"
        );
        let error = "vm-folder".parse::<Binding>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid slot binding `vm-folder`: expected `SLOT=PATH`, e.g. `vm-folder=/dc1/vm/k8s`"
        );
    }

    #[test]
    fn unknown_slot() {
        let problem = problem("folder=/dc1/vm");
        assert!(problem.starts_with("unknown slot `folder`"), "{problem}");
        assert!(problem.contains("`vm-folder`"), "{problem}");
    }

    #[test]
    fn bad_paths() {
        assert_eq!(problem("network="), "the path after `network=` is empty");
        assert_eq!(
            problem("network=dc1/network/vlan"),
            "the path `dc1/network/vlan` is not absolute; inventory paths start with `/`"
        );
        assert_eq!(
            problem("network=/dc1/network/"),
            "the path `/dc1/network/` ends with `/`"
        );
    }

    #[test]
    fn several_paths_per_slot() {
        let bindings = Bindings::parse_all([
            "network=/dc1/network/a",
            "network=/dc1/network/b",
            "network=/dc1/network/a",
        ])
        .unwrap();
        assert_eq!(
            bindings.paths(Slot::Network),
            ["/dc1/network/a", "/dc1/network/b"]
        );
        assert!(!bindings.is_bound(Slot::Datastore));
        assert_eq!(bindings.iter().count(), 2);
        assert!(Bindings::parse_all(["network=/a", "bogus"]).is_err());
    }
}
