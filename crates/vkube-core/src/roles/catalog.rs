//! Role catalogs: the [`Catalog`] types and their YAML parser.
//!
//! A catalog is one profile's list of roles, each with the slots it is
//! granted on and the privileges it holds. This module owns the schema and
//! its validation (known privilege ids, known slots, no duplicates), with
//! errors pointing at file and line. It does not compute requirements
//! (`diff`), bind slots to paths (`binding`) or render scripts (`export`).
//!
//! Schema, unknown fields rejected:
//!
//! ```yaml
//! profile: kkp-user
//! description: one line for `vkube roles profiles`
//! source: where the lists come from
//! require_reasons: false      # optional; true makes `reason` mandatory
//! roles:
//!   - name: k8c-user-folder-propagate
//!     purpose: why the role exists
//!     builtin: false          # optional; true = predefined, granted only
//!     optional: false         # optional; true = only some commands need it
//!     grants:
//!       - slot: vm-folder
//!         propagate: true
//!     privileges:             # omitted for builtin roles
//!       - id: Folder.Create
//!         label: "Folder > Create folder"   # optional, the UI name
//!         reason: "`Folder.CreateFolder`"  # optional
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::privilege::{PrivilegeId, Registry};
use super::{Error, Slot};

/// One profile's validated list of roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Catalog {
    profile: String,
    description: String,
    source: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    require_reasons: bool,
    roles: Vec<Role>,
    #[serde(skip)]
    source_name: String,
}

/// vCenter's system roles: they cannot be created or changed, only granted
/// (`builtin: true`).
pub const SYSTEM_ROLES: [&str; 8] = [
    "Admin",
    "ReadOnly",
    "NoAccess",
    "Anonymous",
    "View",
    "NoCryptoAdmin",
    "NoTrustedAdmin",
    "TrustedAdmin",
];

/// A role: created in vCenter with its privileges (unless builtin) and
/// granted on each of its slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Role {
    name: String,
    purpose: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    builtin: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    optional: bool,
    grants: Vec<Grant>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    privileges: Vec<RolePrivilege>,
    #[serde(skip)]
    line: Option<usize>,
}

/// Where a role is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The kind of object.
    pub slot: Slot,
    /// Whether the permission propagates to the object's children.
    pub propagate: bool,
}

/// One privilege of a role, with its review notes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RolePrivilege {
    /// The privilege.
    pub id: PrivilegeId,
    /// The name the vSphere Client (or the source document) shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Why the role needs it, ideally naming the vSphere API call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Catalog {
    /// Parses and validates catalog YAML against the embedded privilege
    /// registry. `source_name` (a path, or `builtin:<profile>`) only appears
    /// in errors.
    ///
    /// Pure: the same text always gives the same result.
    pub fn parse(text: &str, source_name: &str) -> Result<Catalog, Error> {
        Catalog::parse_with_registry(text, source_name, Registry::builtin())
    }

    /// Like [`Catalog::parse`], checking privilege ids against `registry`
    /// (e.g. the builtin one extended with a simulator's extra ids).
    pub fn parse_with_registry(
        text: &str,
        source_name: &str,
        registry: &Registry,
    ) -> Result<Catalog, Error> {
        let raw: RawCatalog = serde_yaml::from_str(text).map_err(|source| Error::Syntax {
            file: source_name.to_owned(),
            line: source.location().map(|location| location.line()),
            source,
        })?;
        Validator {
            file: source_name,
            text: SourceText::new(text),
            registry,
        }
        .catalog(raw)
    }

    /// The profile name, e.g. `kkp-user`.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// One-line description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Where the role lists come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The source name passed to [`Catalog::parse`].
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Whether every privilege must carry a `reason`.
    pub fn requires_reasons(&self) -> bool {
        self.require_reasons
    }

    /// The roles in file order.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The role called `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|role| role.name == name)
    }
}

impl Role {
    /// The role name in vCenter.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the role exists.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// Whether this is a predefined role (`ReadOnly`, …) that is granted but
    /// never created.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    /// Whether only some commands need the role (e.g. `roles apply`).
    pub fn is_optional(&self) -> bool {
        self.optional
    }

    /// Where the role is granted, in file order.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The privileges in file order; empty for builtin roles.
    pub fn privileges(&self) -> &[RolePrivilege] {
        &self.privileges
    }

    /// The privilege ids as a set, for diffs.
    pub fn privilege_set(&self) -> BTreeSet<PrivilegeId> {
        self.privileges
            .iter()
            .map(|privilege| privilege.id.clone())
            .collect()
    }

    /// 1-based line of the role's `name` in its source, when found.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    profile: String,
    description: String,
    source: String,
    #[serde(default)]
    require_reasons: bool,
    roles: Vec<RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    purpose: String,
    #[serde(default)]
    builtin: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    grants: Vec<RawGrant>,
    #[serde(default)]
    privileges: Vec<RawPrivilege>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    slot: String,
    propagate: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivilege {
    id: String,
    label: Option<String>,
    reason: Option<String>,
}

/// Finds the lines of values in the original text, since serde_yaml keeps
/// no positions for values that parsed fine.
struct SourceText<'a> {
    lines: Vec<&'a str>,
}

impl<'a> SourceText<'a> {
    fn new(text: &'a str) -> Self {
        SourceText {
            lines: text.lines().collect(),
        }
    }

    /// 1-based line of the first `key: value` (optionally a `- ` list item,
    /// optionally quoted) at or after 1-based line `from`; falls back to the
    /// first line merely containing `value`.
    fn find(&self, key: &str, value: &str, from: usize) -> Option<usize> {
        let start = from.saturating_sub(1).min(self.lines.len());
        let exact = self.lines[start..].iter().position(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("- ").map_or(line, str::trim_start);
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(|rest| {
                    let rest = rest.split(" #").next().unwrap_or(rest).trim();
                    rest.trim_matches(|c| c == '"' || c == '\'') == value
                })
                .unwrap_or(false)
        });
        exact
            .or_else(|| {
                self.lines[start..]
                    .iter()
                    .position(|line| line.contains(value))
            })
            .map(|index| start + index + 1)
    }
}

struct Validator<'a> {
    file: &'a str,
    text: SourceText<'a>,
    registry: &'a Registry,
}

impl Validator<'_> {
    fn catalog(&self, raw: RawCatalog) -> Result<Catalog, Error> {
        let mut roles = Vec::with_capacity(raw.roles.len());
        let mut seen: BTreeMap<String, Option<usize>> = BTreeMap::new();
        let mut cursor = 1;
        for raw_role in raw.roles {
            let line = self.text.find("name", &raw_role.name, cursor);
            if let Some(line) = line {
                cursor = line + 1;
            }
            if let Some(first_line) = seen.get(&raw_role.name) {
                return Err(Error::DuplicateRole {
                    file: self.file.to_owned(),
                    line,
                    first_line: *first_line,
                    name: raw_role.name,
                });
            }
            seen.insert(raw_role.name.clone(), line);
            roles.push(self.role(raw_role, line, raw.require_reasons)?);
        }
        Ok(Catalog {
            profile: raw.profile,
            description: raw.description,
            source: raw.source,
            require_reasons: raw.require_reasons,
            roles,
            source_name: self.file.to_owned(),
        })
    }

    fn role(
        &self,
        raw: RawRole,
        line: Option<usize>,
        require_reasons: bool,
    ) -> Result<Role, Error> {
        let from = line.unwrap_or(1);
        if let Some(problem) = role_name_problem(&raw.name) {
            return Err(Error::InvalidRoleName {
                file: self.file.to_owned(),
                line,
                name: raw.name,
                problem,
            });
        }
        if raw.grants.is_empty() {
            return Err(Error::NoGrants {
                file: self.file.to_owned(),
                line,
                role: raw.name,
            });
        }
        let mut grants: Vec<Grant> = Vec::with_capacity(raw.grants.len());
        for grant in &raw.grants {
            let slot = grant.slot.parse::<Slot>().map_err(|error| match error {
                Error::UnknownSlot {
                    value, suggestion, ..
                } => Error::UnknownSlot {
                    file: Some(self.file.to_owned()),
                    line: self.text.find("slot", &value, from),
                    value,
                    suggestion,
                },
                other => other,
            })?;
            if grants.iter().any(|existing| existing.slot == slot) {
                return Err(Error::DuplicateGrant {
                    file: self.file.to_owned(),
                    line,
                    role: raw.name,
                    slot,
                });
            }
            grants.push(Grant {
                slot,
                propagate: grant.propagate,
            });
        }
        if raw.builtin && !raw.privileges.is_empty() {
            return Err(Error::BuiltinWithPrivileges {
                file: self.file.to_owned(),
                line,
                role: raw.name,
            });
        }
        if !raw.builtin && raw.privileges.is_empty() {
            return Err(Error::EmptyPrivileges {
                file: self.file.to_owned(),
                line,
                role: raw.name,
            });
        }
        if !raw.builtin && SYSTEM_ROLES.iter().any(|r| *r == raw.name) {
            return Err(Error::SystemRoleName {
                file: self.file.to_owned(),
                line,
                role: raw.name,
            });
        }
        let mut privileges: Vec<RolePrivilege> = Vec::with_capacity(raw.privileges.len());
        let mut cursor = from;
        for privilege in raw.privileges {
            let privilege_line = self.text.find("id", &privilege.id, cursor);
            if let Some(found) = privilege_line {
                cursor = found + 1;
            }
            let id = self
                .registry
                .lookup(&privilege.id)
                .map_err(|error| self.locate(error, privilege_line))?;
            if privileges.iter().any(|existing| existing.id == id) {
                return Err(Error::DuplicatePrivilege {
                    file: self.file.to_owned(),
                    line: privilege_line,
                    role: raw.name,
                    id: privilege.id,
                });
            }
            let reason = privilege.reason.filter(|reason| !reason.trim().is_empty());
            if require_reasons && reason.is_none() {
                return Err(Error::MissingReason {
                    file: self.file.to_owned(),
                    line: privilege_line,
                    role: raw.name,
                    id: privilege.id,
                });
            }
            privileges.push(RolePrivilege {
                id,
                label: privilege.label,
                reason,
            });
        }
        Ok(Role {
            name: raw.name,
            purpose: raw.purpose,
            builtin: raw.builtin,
            optional: raw.optional,
            grants,
            privileges,
            line,
        })
    }

    /// Adds this file and `line` to a registry error.
    fn locate(&self, error: Error, line: Option<usize>) -> Error {
        let file = Some(self.file.to_owned());
        match error {
            Error::UnknownPrivilege { id, suggestion, .. } => Error::UnknownPrivilege {
                file,
                line,
                id,
                suggestion,
            },
            Error::InvalidPrivilegeId { id, problem, .. } => Error::InvalidPrivilegeId {
                file,
                line,
                id,
                problem,
            },
            other => other,
        }
    }
}

/// Role names end up as govc arguments and vCenter role names.
fn role_name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
profile: test
description: test catalog
source: unit test
roles:
  - name: folder-role
    purpose: folders
    grants:
      - slot: vm-folder
        propagate: true
    privileges:
      - id: Folder.Create
      - id: Folder.Delete
        label: Folder > Delete folder
  - name: ReadOnly
    builtin: true
    purpose: see things
    grants:
      - slot: datacenter
        propagate: false
";

    fn parse_error(text: &str) -> Error {
        Catalog::parse(text, "test.yaml").expect_err("parse should fail")
    }

    #[test]
    fn parses_minimal() {
        let catalog = Catalog::parse(MINIMAL, "test.yaml").unwrap();
        assert_eq!(catalog.profile(), "test");
        assert_eq!(catalog.source_name(), "test.yaml");
        let role = catalog.role("folder-role").unwrap();
        assert_eq!(role.line(), Some(5));
        assert_eq!(
            role.grants(),
            &[Grant {
                slot: Slot::VmFolder,
                propagate: true
            }]
        );
        assert_eq!(
            role.privileges()[1].label.as_deref(),
            Some("Folder > Delete folder")
        );
        assert!(catalog.role("ReadOnly").unwrap().is_builtin());
    }

    #[test]
    fn typo_names_id_file_line_and_suggestion() {
        let text = MINIMAL.replace("Folder.Delete", "Folder.Delte");
        let error = parse_error(&text);
        match &error {
            Error::UnknownPrivilege {
                file,
                line,
                id,
                suggestion,
            } => {
                assert_eq!(file.as_deref(), Some("test.yaml"));
                assert_eq!(*line, Some(12));
                assert_eq!(id, "Folder.Delte");
                assert_eq!(suggestion.as_deref(), Some("Folder.Delete"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "unknown privilege `Folder.Delte` in `test.yaml` line 12; did you mean `Folder.Delete`?"
        );
    }

    #[test]
    fn malformed_id_names_line() {
        let error = parse_error(&MINIMAL.replace("Folder.Create", "Folder"));
        assert_eq!(
            error.to_string(),
            "invalid privilege id `Folder` in `test.yaml` line 11: it has no `.`; privilege ids look like `Group.Name`"
        );
    }

    #[test]
    fn unknown_slot_names_line() {
        let error = parse_error(&MINIMAL.replace("slot: vm-folder", "slot: vm-foldr"));
        match &error {
            Error::UnknownSlot {
                file,
                line,
                value,
                suggestion,
            } => {
                assert_eq!(file.as_deref(), Some("test.yaml"));
                assert_eq!(*line, Some(8));
                assert_eq!(value, "vm-foldr");
                assert_eq!(*suggestion, Some("vm-folder"));
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().starts_with(
            "unknown slot `vm-foldr` in `test.yaml` line 8; did you mean `vm-folder`?"
        ));
    }

    #[test]
    fn duplicate_role_names_both_lines() {
        let text = MINIMAL
            .replace("name: ReadOnly", "name: folder-role")
            .replace("    builtin: true\n", "");
        let text = text.replace(
            "    purpose: see things\n",
            "    purpose: see things\n    privileges:\n      - id: System.Read\n",
        );
        let error = parse_error(&text);
        assert_eq!(
            error.to_string(),
            "duplicate role `folder-role` in `test.yaml` line 14 (first defined at line 5)"
        );
    }

    #[test]
    fn empty_privileges_on_created_role() {
        let text = MINIMAL.replace("    builtin: true\n", "");
        let error = parse_error(&text);
        assert!(
            matches!(&error, Error::EmptyPrivileges { role, line: Some(14), .. } if role == "ReadOnly"),
            "{error:?}"
        );
    }

    #[test]
    fn builtin_with_privileges() {
        let text = MINIMAL.replace(
            "name: folder-role\n",
            "name: folder-role\n    builtin: true\n",
        );
        assert!(matches!(
            parse_error(&text),
            Error::BuiltinWithPrivileges { .. }
        ));
    }

    #[test]
    fn no_grants() {
        let text = "profile: t\ndescription: d\nsource: s\nroles:\n  - name: r\n    purpose: p\n    privileges:\n      - id: System.Read\n";
        assert!(matches!(
            parse_error(text),
            Error::NoGrants { line: Some(5), .. }
        ));
    }

    #[test]
    fn duplicate_privilege_and_grant() {
        let text = MINIMAL.replace("Folder.Delete", "Folder.Create");
        assert!(matches!(
            parse_error(&text),
            Error::DuplicatePrivilege { line: Some(12), .. }
        ));
        let text = MINIMAL.replace(
            "        propagate: true\n",
            "        propagate: true\n      - slot: vm-folder\n        propagate: false\n",
        );
        assert!(matches!(
            parse_error(&text),
            Error::DuplicateGrant {
                slot: Slot::VmFolder,
                ..
            }
        ));
    }

    #[test]
    fn unknown_field_is_a_syntax_error_with_line() {
        let text = MINIMAL.replace(
            "    purpose: folders\n",
            "    purpose: folders\n    color: blue\n",
        );
        let error = parse_error(&text);
        match &error {
            Error::Syntax { file, line, source } => {
                assert_eq!(file, "test.yaml");
                assert_eq!(*line, Some(7));
                assert!(
                    source.to_string().contains("unknown field `color`"),
                    "{source}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "cannot read role catalog in `test.yaml` line 7"
        );
    }

    #[test]
    fn missing_reason_when_required() {
        let text = MINIMAL.replace("roles:\n", "require_reasons: true\nroles:\n");
        let error = parse_error(&text);
        assert!(
            matches!(&error, Error::MissingReason { id, line: Some(12), .. } if id == "Folder.Create"),
            "{error:?}"
        );
    }

    #[test]
    fn extra_registry_admits_more_ids() {
        let text = MINIMAL.replace("Folder.Delete", "Simulator.Only");
        assert!(matches!(parse_error(&text), Error::UnknownPrivilege { .. }));
        let mut registry = Registry::builtin().clone();
        registry.extend(&Registry::parse("# extra\nSimulator.Only\n", "extra.txt").unwrap());
        assert!(Catalog::parse_with_registry(&text, "test.yaml", &registry).is_ok());
    }

    #[test]
    fn invalid_role_name() {
        let text = MINIMAL.replace("name: folder-role", "name: folder role");
        assert!(matches!(parse_error(&text), Error::InvalidRoleName { .. }));
    }

    #[test]
    fn system_role_names_cannot_be_created() {
        for name in ["Admin", "ReadOnly", "NoAccess"] {
            let text = MINIMAL.replace("name: folder-role", &format!("name: {name}"));
            let err = Catalog::parse(&text, "t.yaml").unwrap_err();
            assert!(matches!(err, Error::SystemRoleName { .. }), "{name}: {err}");
            assert!(
                err.to_string().contains("name of a vCenter system role"),
                "{err}"
            );
        }
    }
}
