//! Privilege ids: the validated [`PrivilegeId`] newtype and the [`Registry`]
//! of ids vSphere knows.
//!
//! Owns the id syntax, the embedded list `catalogs/privileges/vsphere-8.txt`
//! and "did you mean" suggestions. It does not know about roles or slots.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

use serde::{Serialize, Serializer};

use super::Error;

/// Source name of the embedded privilege list, used in error messages.
pub const BUILTIN_REGISTRY_SOURCE: &str = "catalogs/privileges/vsphere-8.txt";

const BUILTIN_REGISTRY_TEXT: &str = include_str!("../../../../catalogs/privileges/vsphere-8.txt");

/// Privileges vCenter adds to every role on its own.
///
/// `govc role.ls` shows them on any role created through some clients, and
/// never on others, so they must not count as a difference between roles.
pub const IMPLIED_SYSTEM_PRIVILEGES: [&str; 3] = ["System.Anonymous", "System.Read", "System.View"];

/// A vSphere privilege id such as `VirtualMachine.Config.AddNewDisk`.
///
/// It can only hold an id that is well-formed (dot-separated identifiers,
/// at least two parts) and known to the [`Registry`] that made it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrivilegeId(String);

impl PrivilegeId {
    /// Checks `id` against the embedded registry.
    ///
    /// Fails with [`Error::InvalidPrivilegeId`] for malformed text and with
    /// [`Error::UnknownPrivilege`] (carrying a suggestion) for an unknown id.
    pub fn new(id: &str) -> Result<Self, Error> {
        Registry::builtin().lookup(id)
    }

    /// The id as vSphere spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Everything before the last dot, e.g. `VirtualMachine.Config`.
    pub fn group(&self) -> &str {
        self.0.rsplit_once('.').map_or("", |(group, _)| group)
    }

    /// Whether vCenter adds this privilege to every role by itself.
    pub fn is_implied_system(&self) -> bool {
        is_implied_system(&self.0)
    }
}

impl fmt::Display for PrivilegeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PrivilegeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for PrivilegeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Whether `id` is one of [`IMPLIED_SYSTEM_PRIVILEGES`].
pub fn is_implied_system(id: &str) -> bool {
    IMPLIED_SYSTEM_PRIVILEGES.contains(&id)
}

/// Checks only the shape of an id: `Part.Part[.Part…]`, each part an ASCII
/// identifier.
fn check_syntax(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("is empty");
    }
    let mut parts = 0;
    for part in id.split('.') {
        parts += 1;
        let mut chars = part.chars();
        match chars.next() {
            None => return Err("has an empty part between dots"),
            Some(first) if !first.is_ascii_alphabetic() => {
                return Err("has a part that does not start with a letter")
            }
            Some(_) => {}
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("has a character other than letters, digits, `_` and `.`");
        }
    }
    if parts < 2 {
        return Err("has no `.`; privilege ids look like `Group.Name`");
    }
    Ok(())
}

/// A set of known privilege ids.
///
/// [`Registry::builtin`] is the embedded vSphere 7/8 list; callers that talk
/// to a simulator or a newer vCenter can [`Registry::extend`] a clone of it
/// with another list parsed by [`Registry::parse`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    ids: BTreeSet<String>,
}

impl Registry {
    /// The embedded list of vSphere 7/8 privilege ids.
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The embedded file is checked by `tests::builtin_registry_parses`.
            Registry::parse(BUILTIN_REGISTRY_TEXT, BUILTIN_REGISTRY_SOURCE).unwrap_or_default()
        })
    }

    /// Parses a list with one id per line; blank lines and lines starting with
    /// `#` are skipped.
    ///
    /// Fails with [`Error::InvalidPrivilegeId`] naming the line of the first
    /// malformed id.
    pub fn parse(text: &str, source_name: &str) -> Result<Registry, Error> {
        let mut ids = BTreeSet::new();
        for (index, line) in text.lines().enumerate() {
            let id = line.trim();
            if id.is_empty() || id.starts_with('#') {
                continue;
            }
            check_syntax(id).map_err(|problem| Error::InvalidPrivilegeId {
                file: Some(source_name.to_owned()),
                line: Some(index + 1),
                id: id.to_owned(),
                problem,
            })?;
            ids.insert(id.to_owned());
        }
        Ok(Registry { ids })
    }

    /// Adds every id of `other`.
    pub fn extend(&mut self, other: &Registry) {
        self.ids.extend(other.ids.iter().cloned());
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Number of known ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the registry knows no id at all.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Known ids in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    /// Turns `id` into a [`PrivilegeId`] if it is well-formed and known.
    ///
    /// The errors carry no file or line; callers that parse a file fill them in.
    pub fn lookup(&self, id: &str) -> Result<PrivilegeId, Error> {
        check_syntax(id).map_err(|problem| Error::InvalidPrivilegeId {
            file: None,
            line: None,
            id: id.to_owned(),
            problem,
        })?;
        if self.contains(id) {
            Ok(PrivilegeId(id.to_owned()))
        } else {
            Err(Error::UnknownPrivilege {
                file: None,
                line: None,
                id: id.to_owned(),
                suggestion: self.suggest(id).map(str::to_owned),
            })
        }
    }

    /// The known id closest to `id` by edit distance, if one is close enough
    /// to be a plausible typo (a case-only difference always is).
    pub fn suggest(&self, id: &str) -> Option<&str> {
        if let Some(same) = self.ids.iter().find(|known| known.eq_ignore_ascii_case(id)) {
            return Some(same);
        }
        // Allow about one edit per six characters, at least two: catches
        // dropped or swapped letters without proposing unrelated ids.
        let limit = (id.chars().count() / 6).max(2);
        self.ids
            .iter()
            .map(|known| (edit_distance(id, known), known))
            .filter(|(distance, _)| *distance <= limit)
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, known)| known.as_str())
    }
}

/// Levenshtein distance over chars.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_parses() {
        let registry = Registry::parse(BUILTIN_REGISTRY_TEXT, BUILTIN_REGISTRY_SOURCE).unwrap();
        assert!(registry.len() > 400);
        assert_eq!(Registry::builtin(), &registry);
    }

    #[test]
    fn builtin_registry_file_is_sorted_and_unique() {
        let ids: Vec<&str> = BUILTIN_REGISTRY_TEXT
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn builtin_registry_covers_the_common_tree() {
        for id in [
            "System.Read",
            "Folder.Create",
            "Datacenter.Create",
            "Datastore.AllocateSpace",
            "Network.Assign",
            "Host.Config.Storage",
            "VirtualMachine.Config.AddNewDisk",
            "VirtualMachine.Interact.PowerOn",
            "VirtualMachine.Inventory.CreateFromExisting",
            "VirtualMachine.Provisioning.DeployTemplate",
            "VirtualMachine.State.CreateSnapshot",
            "Resource.AssignVMToPool",
            "VApp.Import",
            "Authorization.ModifyRoles",
            "Cns.Searchable",
            "StorageProfile.View",
            "InventoryService.Tagging.AttachTag",
            "Sessions.ValidateSession",
            "Task.Create",
            "Extension.Register",
            "Global.SetCustomField",
            "StoragePod.Config",
            "DVPortgroup.Create",
            "DVSwitch.Create",
            "Profile.View",
            "Alarm.Create",
        ] {
            assert!(Registry::builtin().contains(id), "{id}");
        }
    }

    #[test]
    fn syntax_errors() {
        for (id, problem) in [
            ("", "is empty"),
            ("System", "has no `.`; privilege ids look like `Group.Name`"),
            ("System..Read", "has an empty part between dots"),
            (
                "System.1Read",
                "has a part that does not start with a letter",
            ),
            (
                "System.Re ad",
                "has a character other than letters, digits, `_` and `.`",
            ),
        ] {
            match PrivilegeId::new(id) {
                Err(Error::InvalidPrivilegeId { problem: got, .. }) => {
                    assert_eq!(got, problem, "{id:?}")
                }
                other => panic!("{id:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_id_suggests_the_nearest() {
        match PrivilegeId::new("VirtualMachine.Config.AddNewDsk") {
            Err(Error::UnknownPrivilege { suggestion, .. }) => {
                assert_eq!(
                    suggestion.as_deref(),
                    Some("VirtualMachine.Config.AddNewDisk")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Registry::builtin().suggest("system.read"),
            Some("System.Read")
        );
        assert_eq!(Registry::builtin().suggest("Completely.Different"), None);
    }

    #[test]
    fn group_and_system() {
        let id = PrivilegeId::new("VirtualMachine.Config.AddNewDisk").unwrap();
        assert_eq!(id.group(), "VirtualMachine.Config");
        assert!(!id.is_implied_system());
        assert!(PrivilegeId::new("System.View").unwrap().is_implied_system());
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
