//! [`TopologyName`]: a category or tag name that is also usable where the
//! CSI driver puts it — category names become the name part of a node label
//! key (`topology.csi.vmware.com/<category>`), tag names become label values.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated category or tag name: 1 to 63 characters, letters, digits,
/// `-`, `_` and `.`, starting and ending with a letter or digit (a
/// Kubernetes label value that is not empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TopologyName(String);

impl TopologyName {
    /// Check and wrap a name.
    pub fn new(name: &str) -> Result<Self, String> {
        check(name).map(|()| TopologyName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `name` is not a valid topology name, if it is not.
pub(crate) fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "`{name}` is longer than 63 characters (it becomes a Kubernetes label)"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{name}` contains `{bad}`; use letters, digits, `-`, `_` and `.` (it becomes a Kubernetes label)"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return Err(format!(
            "`{name}` must start and end with a letter or digit (it becomes a Kubernetes label)"
        ));
    }
    Ok(())
}

impl fmt::Display for TopologyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TopologyName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TopologyName::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_label_values() {
        for good in ["k8s-zone", "az1", "Region_X1", "a", "z.1"] {
            assert!(TopologyName::new(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("-az1", "start and end"),
            ("az1.", "start and end"),
            ("zone a", "contains ` `"),
            ("zone/a", "contains `/`"),
            (&"x".repeat(64), "longer than 63"),
        ] {
            let err = TopologyName::new(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
