//! Rendering a catalog for people who apply it themselves: a runnable govc
//! script and a JSON document.
//!
//! Both are pure string rendering; running govc or calling vCenter is not
//! done here. Paths come from [`Bindings`]; an unbound `vcenter` slot is
//! the root folder `/`, and any other unbound slot becomes a `${SLOT_PATH}`
//! shell variable that the script insists on.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Bindings, Catalog, Error, RolePrivilege, Slot};

/// What to include in an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Also create and grant roles marked `optional` (e.g. the role
    /// administration `vkube roles apply` needs).
    pub include_optional: bool,
}

/// Renders a POSIX shell script of `govc role.create` and
/// `govc permissions.set` commands granting `catalog` to `principal`.
///
/// The script stops at the first failing command (`set -eu`). It is not
/// idempotent: `govc role.create` fails when the role already exists, so a
/// rerun after a partial failure needs the created roles removed, or
/// `vkube roles apply`, which updates roles in place.
pub fn render_govc(
    catalog: &Catalog,
    principal: &str,
    bindings: &Bindings,
    options: ExportOptions,
) -> String {
    let roles: Vec<_> = catalog
        .roles()
        .iter()
        .filter(|role| options.include_optional || !role.is_optional())
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "#!/bin/sh");
    let _ = writeln!(
        out,
        "# vkube role catalog `{}`: {}",
        catalog.profile(),
        one_line(catalog.description())
    );
    let _ = writeln!(out, "# source: {}", one_line(catalog.source()));
    let _ = writeln!(
        out,
        "# govc role.create fails when a role exists; `vkube roles apply` updates roles in place."
    );
    let _ = writeln!(out, "set -eu");

    let mut unbound: Vec<Slot> = roles
        .iter()
        .flat_map(|role| role.grants())
        .map(|grant| grant.slot)
        .filter(|slot| !bindings.is_bound(*slot) && slot.fixed_path().is_none())
        .collect();
    unbound.sort();
    unbound.dedup();
    if !unbound.is_empty() {
        let _ = writeln!(
            out,
            "\n# Unbound slots: set these to inventory paths before running."
        );
        for slot in &unbound {
            let variable = slot.placeholder();
            let _ = writeln!(
                out,
                ": \"${{{variable}:?set {variable} to the inventory path of slot {slot}}}\""
            );
        }
    }

    for role in roles.iter().filter(|role| !role.is_builtin()) {
        let _ = writeln!(out, "\n# {}: {}", role.name(), one_line(role.purpose()));
        let _ = write!(out, "govc role.create {}", shell_quote(role.name()));
        for privilege in role.privileges() {
            let _ = write!(out, " \\\n  {}", shell_quote(privilege.id.as_str()));
        }
        out.push('\n');
    }

    let _ = writeln!(out, "\n# Permissions for {}", one_line(principal));
    for role in &roles {
        for grant in role.grants() {
            for target in targets(bindings, grant.slot) {
                let path = match target {
                    Target::Path(path) => shell_quote(path).into_owned(),
                    Target::Placeholder(variable) => format!("\"${{{variable}}}\""),
                };
                let _ = writeln!(
                    out,
                    "govc permissions.set -principal {} -role {} -propagate={} {}",
                    shell_quote(principal),
                    shell_quote(role.name()),
                    grant.propagate,
                    path
                );
            }
        }
    }
    out
}

/// Renders the catalog, the principal and each grant's resolved path (or
/// placeholder) as pretty-printed JSON.
pub fn render_json(
    catalog: &Catalog,
    principal: &str,
    bindings: &Bindings,
    options: ExportOptions,
) -> Result<String, Error> {
    let document = JsonExport {
        profile: catalog.profile(),
        description: catalog.description(),
        source: catalog.source(),
        principal,
        roles: catalog
            .roles()
            .iter()
            .filter(|role| options.include_optional || !role.is_optional())
            .map(|role| JsonRole {
                name: role.name(),
                purpose: role.purpose(),
                builtin: role.is_builtin(),
                optional: role.is_optional(),
                privileges: role.privileges(),
                permissions: role
                    .grants()
                    .iter()
                    .flat_map(|grant| {
                        targets(bindings, grant.slot)
                            .into_iter()
                            .map(move |target| {
                                let (path, placeholder) = match target {
                                    Target::Path(path) => (Some(path), None),
                                    Target::Placeholder(variable) => {
                                        (None, Some(format!("${{{variable}}}")))
                                    }
                                };
                                JsonPermission {
                                    slot: grant.slot,
                                    propagate: grant.propagate,
                                    path,
                                    placeholder,
                                }
                            })
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&document).map_err(|source| Error::Render {
        profile: catalog.profile().to_owned(),
        source,
    })
}

/// Where a grant on `slot` goes.
enum Target<'a> {
    /// A bound or fixed inventory path.
    Path(&'a str),
    /// The shell variable holding the path of an unbound slot.
    Placeholder(String),
}

fn targets(bindings: &Bindings, slot: Slot) -> Vec<Target<'_>> {
    match (bindings.paths(slot), slot.fixed_path()) {
        ([], Some(fixed)) => vec![Target::Path(fixed)],
        ([], None) => vec![Target::Placeholder(slot.placeholder())],
        (paths, _) => paths.iter().map(|path| Target::Path(path)).collect(),
    }
}

#[derive(Serialize)]
struct JsonExport<'a> {
    profile: &'a str,
    description: &'a str,
    source: &'a str,
    principal: &'a str,
    roles: Vec<JsonRole<'a>>,
}

#[derive(Serialize)]
struct JsonRole<'a> {
    name: &'a str,
    purpose: &'a str,
    builtin: bool,
    optional: bool,
    privileges: &'a [RolePrivilege],
    permissions: Vec<JsonPermission<'a>>,
}

#[derive(Serialize)]
struct JsonPermission<'a> {
    slot: Slot,
    propagate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    placeholder: Option<String>,
}

/// Quotes `word` for a POSIX shell unless it only has characters that need
/// no quoting.
pub fn shell_quote(word: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+,=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// Keeps comments on one line whatever the YAML folded in.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = "\
profile: golden
description: golden test
source: unit test
roles:
  - name: folder-role
    purpose: >-
      manage folders
      and disks
    grants:
      - slot: vm-folder
        propagate: true
      - slot: template-folder
        propagate: true
    privileges:
      - id: Folder.Create
      - id: VirtualMachine.Config.AddNewDisk
  - name: ReadOnly
    builtin: true
    purpose: see the datacenter
    grants:
      - slot: datacenter
        propagate: false
  - name: admin
    optional: true
    purpose: roles apply only
    grants:
      - slot: vcenter
        propagate: true
    privileges:
      - id: Authorization.ModifyRoles
";

    const GOLDEN: &str = r#"#!/bin/sh
# vkube role catalog `golden`: golden test
# source: unit test
# govc role.create fails when a role exists; `vkube roles apply` updates roles in place.
set -eu

# Unbound slots: set these to inventory paths before running.
: "${TEMPLATE_FOLDER_PATH:?set TEMPLATE_FOLDER_PATH to the inventory path of slot template-folder}"

# folder-role: manage folders and disks
govc role.create folder-role \
  Folder.Create \
  VirtualMachine.Config.AddNewDisk

# Permissions for svc-k8s@vsphere.local
govc permissions.set -principal svc-k8s@vsphere.local -role folder-role -propagate=true '/dc 1/vm/k8s'
govc permissions.set -principal svc-k8s@vsphere.local -role folder-role -propagate=true "${TEMPLATE_FOLDER_PATH}"
govc permissions.set -principal svc-k8s@vsphere.local -role ReadOnly -propagate=false '/dc 1'
"#;

    fn catalog() -> Catalog {
        Catalog::parse(CATALOG, "golden.yaml").unwrap()
    }

    fn bindings() -> Bindings {
        Bindings::parse_all(["vm-folder=/dc 1/vm/k8s", "datacenter=/dc 1"]).unwrap()
    }

    #[test]
    fn govc_golden() {
        let script = render_govc(
            &catalog(),
            "svc-k8s@vsphere.local",
            &bindings(),
            ExportOptions::default(),
        );
        assert_eq!(script, GOLDEN);
    }

    #[test]
    fn govc_includes_optional_roles_on_request() {
        let options = ExportOptions {
            include_optional: true,
        };
        let script = render_govc(&catalog(), "DOMAIN\\svc", &bindings(), options);
        assert!(
            script.contains("govc role.create admin \\\n  Authorization.ModifyRoles\n"),
            "{script}"
        );
        assert!(!script.contains("VCENTER_PATH"), "{script}");
        assert!(
            script.contains(
                "govc permissions.set -principal 'DOMAIN\\svc' -role admin -propagate=true /\n"
            ),
            "{script}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/dc1/vm/k8s"), "/dc1/vm/k8s");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn json_resolves_paths_and_placeholders() {
        let json = render_json(&catalog(), "svc", &bindings(), ExportOptions::default()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["profile"], "golden");
        let roles = value["roles"].as_array().unwrap();
        assert_eq!(roles.len(), 2);
        assert_eq!(roles[0]["privileges"][0]["id"], "Folder.Create");
        assert_eq!(roles[0]["permissions"][0]["path"], "/dc 1/vm/k8s");
        assert_eq!(
            roles[0]["permissions"][1]["placeholder"],
            "${TEMPLATE_FOLDER_PATH}"
        );
        assert_eq!(roles[0]["permissions"][1]["slot"], "template-folder");
        assert_eq!(roles[1]["builtin"], true);
    }
}
