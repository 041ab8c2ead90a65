//! Planning `vkube roles apply` and computing `vkube roles check`: pure
//! functions over values the caller read from vCenter.
//!
//! Owns three things, all without I/O:
//!
//! - [`targets`]: which inventory path each slot a catalog uses is bound to
//!   (the one place that turns [`Bindings`] into grant targets, for the CLI
//!   today and cluster specs later);
//! - [`plan`]: the [`RolePlan`] that makes vCenter match a catalog for one
//!   principal — roles to create or update, permissions to set;
//! - [`check`]: the [`CheckReport`] comparing what a principal must hold
//!   on each object with what it effectively holds.
//!
//! Reading roles, permissions and effective privileges, resolving paths and
//! picking child objects to probe are `vkube-vsphere`'s and the CLI's job.
//!
//! # Unbound slots
//!
//! A slot the selected roles are granted on but that has no binding (and no
//! fixed path; `vcenter` is always `/`) is not an error: roles are still
//! created, the grants on that slot are listed in [`RolePlan::skipped`] and
//! [`CheckReport::unbound`], and nothing is set or checked there. This lets
//! an administrator create roles first and grant them as objects appear.
//!
//! # One permission per principal and object
//!
//! vCenter keeps at most one permission per principal (user or group) on an
//! object: setting a second role replaces the first. A catalog whose grants
//! would put two different roles (or one role with both propagation flags)
//! for the principal on the same path is refused with
//! [`Error::ConflictingGrants`] instead of silently keeping the last one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Bindings, Catalog, Error, Role, RoleDiff, Slot};

/// One object grants go to: a slot and the inventory path it is bound to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Target {
    /// The slot.
    pub slot: Slot,
    /// The absolute inventory path, e.g. `/dc1/vm/k8s`, or `/` for `vcenter`.
    pub path: String,
    /// The path is a folder standing in for the slot's objects inside it
    /// (`node-vms` bound to the folder the node VMs are created in, before
    /// they exist): grants there propagate, so every VM inside inherits
    /// them. Set by the caller that resolved the path.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub container: bool,
}

/// Where a catalog's grants go, from [`targets`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Targets {
    /// Every bound path (and `/` for `vcenter` when the selected roles are
    /// granted there), in slot order then binding order.
    pub targets: Vec<Target>,
    /// Slots the selected roles are granted on that have no path.
    pub unbound: Vec<Slot>,
}

impl Targets {
    /// The paths bound to `slot`.
    pub fn paths(&self, slot: Slot) -> impl Iterator<Item = &str> {
        self.targets
            .iter()
            .filter(move |target| target.slot == slot)
            .map(|target| target.path.as_str())
    }
}

/// The roles of `catalog` that take part: all of them, or all but the
/// `optional` ones.
pub fn selected_roles(catalog: &Catalog, include_optional: bool) -> impl Iterator<Item = &Role> {
    catalog
        .roles()
        .iter()
        .filter(move |role| include_optional || !role.is_optional())
}

/// Turns `bindings` into grant targets for `catalog`'s selected roles.
///
/// Every bound slot becomes a target, used by the catalog or not (so a
/// mistyped path is reported either way); `vcenter` gets `/` when the
/// selected roles are granted there and it is not bound explicitly. Slots
/// the roles need but nobody bound are listed in [`Targets::unbound`].
pub fn targets(catalog: &Catalog, bindings: &Bindings, include_optional: bool) -> Targets {
    let used: BTreeSet<Slot> = selected_roles(catalog, include_optional)
        .flat_map(|role| role.grants().iter().map(|grant| grant.slot))
        .collect();
    let mut result = Targets::default();
    for slot in Slot::ALL {
        let paths = bindings.paths(slot);
        if !paths.is_empty() {
            result.targets.extend(paths.iter().map(|path| Target {
                slot,
                path: path.clone(),
                container: false,
            }));
        } else if used.contains(&slot) {
            match slot.fixed_path() {
                Some(path) => result.targets.push(Target {
                    slot,
                    path: path.to_owned(),
                    container: false,
                }),
                None => result.unbound.push(slot),
            }
        }
    }
    result
}

/// Whether two principal names denote the same vCenter principal:
/// case-insensitive, with `DOMAIN\user` equal to `user@domain`, as vCenter
/// (and the simulator) compare them.
pub fn same_principal(a: &str, b: &str) -> bool {
    normalize_principal(a) == normalize_principal(b)
}

fn normalize_principal(principal: &str) -> String {
    let lower = principal.trim().to_lowercase();
    match lower.split_once('\\') {
        Some((domain, user)) => format!("{user}@{domain}"),
        None => lower,
    }
}

/// A permission as observed on one object for the principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedPermission {
    /// The role's name (the caller maps vCenter's role id to it).
    pub role: String,
    /// Whether it propagates.
    pub propagate: bool,
}

/// What the caller read from vCenter before planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The privilege ids this vCenter knows (`AuthorizationManager.privilegeList`).
    /// Empty means "not reported": then no id counts as unknown.
    pub known_privileges: BTreeSet<String>,
    /// Every role by name, with its privilege ids (`roleList`).
    pub roles: BTreeMap<String, BTreeSet<String>>,
    /// The principal's own, non-inherited, user (not group) permission on
    /// each target path, where it has one.
    pub permissions: BTreeMap<String, ObservedPermission>,
}

/// One change `vkube roles apply` makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    /// Create a role that does not exist.
    #[serde(rename_all = "camelCase")]
    CreateRole {
        /// Role name.
        name: String,
        /// Its privileges, sorted (ids this vCenter does not know left out).
        privileges: Vec<String>,
    },
    /// Replace the privilege list of an existing role.
    #[serde(rename_all = "camelCase")]
    UpdateRole {
        /// Role name.
        name: String,
        /// Privileges the role gains.
        added: Vec<String>,
        /// Privileges the role loses.
        removed: Vec<String>,
        /// The complete new list, sorted.
        privileges: Vec<String>,
    },
    /// Grant a role to the principal on one object.
    #[serde(rename_all = "camelCase")]
    SetPermission {
        /// Inventory path of the object.
        path: String,
        /// The slot it is bound to.
        slot: Slot,
        /// Role to grant.
        role: String,
        /// Whether the permission propagates to the object's children.
        propagate: bool,
        /// Who receives it.
        principal: String,
        /// The principal's permission there that this one replaces.
        #[serde(skip_serializing_if = "Option::is_none")]
        replaces: Option<ObservedPermission>,
    },
}

/// Privilege ids of one role that this vCenter does not know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnknownPrivileges {
    /// The role.
    pub role: String,
    /// The ids, sorted.
    pub privileges: Vec<String>,
}

/// A grant left out because its slot is unbound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedGrant {
    /// The role.
    pub role: String,
    /// The unbound slot.
    pub slot: Slot,
    /// The grant's propagation flag.
    pub propagate: bool,
}

/// What `vkube roles apply` would change, in execution order: roles first,
/// then permissions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolePlan {
    /// The catalog's profile.
    pub profile: String,
    /// Who the permissions are for.
    pub principal: String,
    /// Per role, catalog privileges this vCenter does not know. The steps
    /// leave them out; callers refuse to execute unless told to skip them.
    pub unknown_privileges: Vec<UnknownPrivileges>,
    /// Grants not made because their slot is unbound.
    pub skipped: Vec<SkippedGrant>,
    /// The changes, in order.
    pub steps: Vec<Step>,
}

impl RolePlan {
    /// Whether vCenter already matches (nothing to do).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Plans making vCenter match `catalog` for `principal`.
///
/// Pure and deterministic. Running the resulting steps and planning again
/// against the new state gives an empty plan, so an interrupted apply is
/// finished by running it again.
///
/// Fails when a `builtin` role is not among `observed.roles` or when two
/// grants meet on one path ([`Error::ConflictingGrants`]).
pub fn plan(
    catalog: &Catalog,
    include_optional: bool,
    principal: &str,
    targets: &Targets,
    observed: &Observed,
) -> Result<RolePlan, Error> {
    let mut result = RolePlan {
        profile: catalog.profile().to_owned(),
        principal: principal.to_owned(),
        unknown_privileges: Vec::new(),
        skipped: Vec::new(),
        steps: Vec::new(),
    };
    let roles: Vec<&Role> = selected_roles(catalog, include_optional).collect();

    for role in &roles {
        if role.is_builtin() {
            if !observed.roles.contains_key(role.name()) {
                return Err(Error::MissingBuiltinRole {
                    role: role.name().to_owned(),
                    profile: catalog.profile().to_owned(),
                });
            }
            continue;
        }
        let mut desired = role.privilege_set();
        if !observed.known_privileges.is_empty() {
            let unknown: Vec<String> = desired
                .iter()
                .filter(|id| !observed.known_privileges.contains(id.as_str()))
                .map(|id| id.as_str().to_owned())
                .collect();
            if !unknown.is_empty() {
                desired.retain(|id| observed.known_privileges.contains(id.as_str()));
                result.unknown_privileges.push(UnknownPrivileges {
                    role: role.name().to_owned(),
                    privileges: unknown,
                });
            }
        }
        let privileges: Vec<String> = desired.iter().map(|id| id.as_str().to_owned()).collect();
        match observed.roles.get(role.name()) {
            None => result.steps.push(Step::CreateRole {
                name: role.name().to_owned(),
                privileges,
            }),
            Some(actual) => {
                let diff = RoleDiff::between(&desired, actual);
                if !diff.is_empty() {
                    result.steps.push(Step::UpdateRole {
                        name: role.name().to_owned(),
                        added: diff.added.iter().map(|id| id.as_str().to_owned()).collect(),
                        removed: diff.removed.into_iter().collect(),
                        privileges,
                    });
                }
            }
        }
    }

    // path -> (slot, role, propagate), in target order.
    let mut wanted: Vec<(String, Slot, String, bool)> = Vec::new();
    for target in &targets.targets {
        for role in &roles {
            for grant in role
                .grants()
                .iter()
                .filter(|grant| grant.slot == target.slot)
            {
                let propagate = grant.propagate || target.container;
                if let Some((_, _, other_role, other_propagate)) =
                    wanted.iter().find(|(path, ..)| *path == target.path)
                {
                    if other_role == role.name() && *other_propagate == propagate {
                        continue;
                    }
                    return Err(Error::ConflictingGrants {
                        path: target.path.clone(),
                        first: grant_label(other_role, *other_propagate),
                        second: grant_label(role.name(), propagate),
                    });
                }
                wanted.push((
                    target.path.clone(),
                    target.slot,
                    role.name().to_owned(),
                    propagate,
                ));
            }
        }
    }
    for role in &roles {
        for grant in role.grants() {
            if targets.unbound.contains(&grant.slot) {
                result.skipped.push(SkippedGrant {
                    role: role.name().to_owned(),
                    slot: grant.slot,
                    propagate: grant.propagate,
                });
            }
        }
    }
    for (path, slot, role, propagate) in wanted {
        let current = observed.permissions.get(&path);
        if current.is_some_and(|current| current.role == role && current.propagate == propagate) {
            continue;
        }
        result.steps.push(Step::SetPermission {
            path,
            slot,
            role,
            propagate,
            principal: principal.to_owned(),
            replaces: current.cloned(),
        });
    }
    Ok(result)
}

fn grant_label(role: &str, propagate: bool) -> String {
    format!("`{role}` (propagate={propagate})")
}

/// An object whose effective privileges are compared with the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// Inventory path.
    pub path: String,
    /// The slot the object, or its parent in `child_of`, is bound to.
    pub slot: Slot,
    /// For a child probed to see propagation work: the bound object's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_of: Option<String>,
}

/// A privilege missing on one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// The privilege id.
    pub privilege: String,
    /// The catalog role that grants it.
    pub role: String,
    /// `granted here`, or `must be inherited from <slot>`.
    pub reason: String,
}

/// One probed object and what it lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckedObject {
    /// Inventory path.
    pub path: String,
    /// The slot (of the bound parent, for a child).
    pub slot: Slot,
    /// The bound parent's path, for a child probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_of: Option<String>,
    /// How many privileges the catalog requires here.
    pub required: usize,
    /// What is not effective, by privilege then role.
    pub missing: Vec<Missing>,
}

/// The outcome of `vkube roles check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// The catalog's profile.
    pub profile: String,
    /// Whom the privileges were checked for.
    pub principal: String,
    /// Whether nothing is missing anywhere.
    pub complete: bool,
    /// Every probed object, in probe order.
    pub objects: Vec<CheckedObject>,
    /// Slots the catalog needs that were not bound, so not checked.
    pub unbound: Vec<Slot>,
}

impl CheckReport {
    /// The number of missing (privilege, role, object) entries.
    pub fn missing_count(&self) -> usize {
        self.objects.iter().map(|object| object.missing.len()).sum()
    }
}

/// Compares what `catalog` requires on each probe with `effective` (the
/// privilege ids the principal holds, by path; a path absent from the map
/// holds nothing).
///
/// A bound object must hold [`Catalog::effective_at`] its slot: its own
/// grants' privileges plus those propagated from the slots above. A child
/// probe must hold the subset that propagates (`inherited_by_children`),
/// which catches a grant made without propagation. Implied `System.*`
/// privileges always count as held; `optional` roles count only with
/// `include_optional`.
pub fn check(
    catalog: &Catalog,
    include_optional: bool,
    principal: &str,
    probes: &[Probe],
    unbound: &[Slot],
    effective: &BTreeMap<String, BTreeSet<String>>,
) -> CheckReport {
    let empty = BTreeSet::new();
    let objects: Vec<CheckedObject> = probes
        .iter()
        .map(|probe| {
            let held = effective.get(&probe.path).unwrap_or(&empty);
            let required: Vec<_> = catalog
                .effective_at(probe.slot)
                .into_iter()
                .filter(|r| include_optional || !r.optional)
                .filter(|r| probe.child_of.is_none() || r.inherited_by_children)
                .filter(|r| !r.privilege.is_implied_system())
                .collect();
            let missing = required
                .iter()
                .filter(|r| !held.contains(r.privilege.as_str()))
                .map(|r| Missing {
                    privilege: r.privilege.as_str().to_owned(),
                    role: r.role.clone(),
                    reason: if probe.child_of.is_none() && r.granted_at == probe.slot {
                        "granted here".to_owned()
                    } else {
                        format!("must be inherited from {}", r.granted_at)
                    },
                })
                .collect();
            CheckedObject {
                path: probe.path.clone(),
                slot: probe.slot,
                child_of: probe.child_of.clone(),
                required: required.len(),
                missing,
            }
        })
        .collect();
    CheckReport {
        profile: catalog.profile().to_owned(),
        principal: principal.to_owned(),
        complete: objects.iter().all(|object| object.missing.is_empty()),
        objects,
        unbound: unbound.to_vec(),
    }
}

/// Every privilege id `catalog` requires at any of `probes` (for
/// `HasPrivilegeOnEntities`, which asks about named privileges only).
pub fn required_privileges(
    catalog: &Catalog,
    include_optional: bool,
    probes: &[Probe],
) -> Vec<String> {
    let mut ids = BTreeSet::new();
    for probe in probes {
        for requirement in catalog.effective_at(probe.slot) {
            if (include_optional || !requirement.optional)
                && !requirement.privilege.is_implied_system()
            {
                ids.insert(requirement.privilege.as_str().to_owned());
            }
        }
    }
    ids.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = "\
profile: test
description: test catalog
source: tests
roles:
  - name: folder-role
    purpose: folders
    grants:
      - slot: vm-folder
        propagate: true
    privileges:
      - id: Folder.Create
      - id: Folder.Delete
  - name: ReadOnly
    builtin: true
    purpose: read the datacenter
    grants:
      - slot: datacenter
        propagate: false
  - name: root-role
    purpose: tags
    grants:
      - slot: vcenter
        propagate: false
    privileges:
      - id: InventoryService.Tagging.CreateTag
  - name: admin-role
    optional: true
    purpose: roles apply
    grants:
      - slot: vcenter
        propagate: true
    privileges:
      - id: Authorization.ModifyRoles
";

    fn catalog() -> Catalog {
        Catalog::parse(CATALOG, "test.yaml").unwrap()
    }

    fn strings(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    fn bindings(items: &[&str]) -> Bindings {
        Bindings::parse_all(items).unwrap()
    }

    fn observed_with_roles() -> Observed {
        Observed {
            known_privileges: strings(&[
                "Folder.Create",
                "Folder.Delete",
                "InventoryService.Tagging.CreateTag",
                "Authorization.ModifyRoles",
                "System.Anonymous",
                "System.Read",
                "System.View",
            ]),
            roles: [("ReadOnly".to_owned(), strings(&["System.Read"]))].into(),
            permissions: BTreeMap::new(),
        }
    }

    #[test]
    fn targets_fix_vcenter_and_list_unbound_slots() {
        let targets = targets(
            &catalog(),
            &bindings(&["vm-folder=/dc/vm/k8s", "network=/dc/network/a"]),
            false,
        );
        assert_eq!(
            targets.targets,
            [
                Target {
                    slot: Slot::Vcenter,
                    path: "/".into(),
                    container: false
                },
                Target {
                    slot: Slot::Network,
                    path: "/dc/network/a".into(),
                    container: false
                },
                Target {
                    slot: Slot::VmFolder,
                    path: "/dc/vm/k8s".into(),
                    container: false
                },
            ]
        );
        assert_eq!(targets.unbound, [Slot::Datacenter]);
    }

    #[test]
    fn first_plan_creates_roles_then_grants() {
        let catalog = catalog();
        let targets = targets(
            &catalog,
            &bindings(&["vm-folder=/dc/vm", "datacenter=/dc"]),
            false,
        );
        let plan = plan(
            &catalog,
            false,
            "svc@vsphere.local",
            &targets,
            &observed_with_roles(),
        )
        .unwrap();
        assert!(plan.unknown_privileges.is_empty());
        assert!(plan.skipped.is_empty());
        let summary: Vec<String> = plan
            .steps
            .iter()
            .map(|step| match step {
                Step::CreateRole { name, privileges } => {
                    format!("create {name} {}", privileges.join(","))
                }
                Step::UpdateRole { name, .. } => format!("update {name}"),
                Step::SetPermission {
                    path,
                    role,
                    propagate,
                    ..
                } => format!("grant {role} {path} {propagate}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "create folder-role Folder.Create,Folder.Delete",
                "create root-role InventoryService.Tagging.CreateTag",
                "grant root-role / false",
                "grant ReadOnly /dc false",
                "grant folder-role /dc/vm true",
            ]
        );
    }

    #[test]
    fn matching_state_plans_nothing() {
        let catalog = catalog();
        let targets = targets(
            &catalog,
            &bindings(&["vm-folder=/dc/vm", "datacenter=/dc"]),
            false,
        );
        let mut observed = observed_with_roles();
        observed.roles.insert(
            "folder-role".into(),
            strings(&[
                "Folder.Create",
                "Folder.Delete",
                "System.Read",
                "System.View",
                "System.Anonymous",
            ]),
        );
        observed.roles.insert(
            "root-role".into(),
            strings(&["InventoryService.Tagging.CreateTag"]),
        );
        for (path, role, propagate) in [
            ("/", "root-role", false),
            ("/dc", "ReadOnly", false),
            ("/dc/vm", "folder-role", true),
        ] {
            observed.permissions.insert(
                path.into(),
                ObservedPermission {
                    role: role.into(),
                    propagate,
                },
            );
        }
        let plan = plan(&catalog, false, "svc", &targets, &observed).unwrap();
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn differing_role_and_permission_are_updated() {
        let catalog = catalog();
        let targets = targets(&catalog, &bindings(&["vm-folder=/dc/vm"]), false);
        let mut observed = observed_with_roles();
        observed.known_privileges.insert("Folder.Rename".into());
        observed.roles.insert(
            "folder-role".into(),
            strings(&["Folder.Create", "Folder.Rename"]),
        );
        observed.roles.insert(
            "root-role".into(),
            strings(&["InventoryService.Tagging.CreateTag"]),
        );
        observed.permissions.insert(
            "/".into(),
            ObservedPermission {
                role: "root-role".into(),
                propagate: false,
            },
        );
        observed.permissions.insert(
            "/dc/vm".into(),
            ObservedPermission {
                role: "folder-role".into(),
                propagate: false,
            },
        );
        let plan = plan(&catalog, false, "svc", &targets, &observed).unwrap();
        assert_eq!(
            plan.steps,
            [
                Step::UpdateRole {
                    name: "folder-role".into(),
                    added: vec!["Folder.Delete".into()],
                    removed: vec!["Folder.Rename".into()],
                    privileges: vec!["Folder.Create".into(), "Folder.Delete".into()],
                },
                Step::SetPermission {
                    path: "/dc/vm".into(),
                    slot: Slot::VmFolder,
                    role: "folder-role".into(),
                    propagate: true,
                    principal: "svc".into(),
                    replaces: Some(ObservedPermission {
                        role: "folder-role".into(),
                        propagate: false
                    }),
                },
            ]
        );
        assert_eq!(
            plan.skipped,
            [SkippedGrant {
                role: "ReadOnly".into(),
                slot: Slot::Datacenter,
                propagate: false
            }]
        );
    }

    #[test]
    fn unknown_privileges_are_listed_per_role_and_left_out() {
        let catalog = catalog();
        let targets = targets(&catalog, &Bindings::new(), false);
        let mut observed = observed_with_roles();
        observed.known_privileges.remove("Folder.Delete");
        let plan = plan(&catalog, false, "svc", &targets, &observed).unwrap();
        assert_eq!(
            plan.unknown_privileges,
            [UnknownPrivileges {
                role: "folder-role".into(),
                privileges: vec!["Folder.Delete".into()]
            }]
        );
        assert!(plan.steps.contains(&Step::CreateRole {
            name: "folder-role".into(),
            privileges: vec!["Folder.Create".into()],
        }));
    }

    #[test]
    fn two_roles_on_one_path_conflict() {
        let catalog = catalog();
        let targets = targets(&catalog, &Bindings::new(), true);
        let error = plan(&catalog, true, "svc", &targets, &observed_with_roles()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "roles `root-role` (propagate=false) and `admin-role` (propagate=true) are both granted on `/`; vCenter keeps one permission per principal and object"
        );
    }

    #[test]
    fn missing_builtin_role_is_an_error() {
        let catalog = catalog();
        let targets = targets(&catalog, &Bindings::new(), false);
        let mut observed = observed_with_roles();
        observed.roles.clear();
        assert!(matches!(
            plan(&catalog, false, "svc", &targets, &observed),
            Err(Error::MissingBuiltinRole { role, .. }) if role == "ReadOnly"
        ));
    }

    #[test]
    fn principals_compare_like_vcenter() {
        assert!(same_principal(
            "VSPHERE.LOCAL\\k8s-svc",
            "k8s-svc@vsphere.local"
        ));
        assert!(same_principal(
            "K8S-svc@vsphere.local",
            "k8s-svc@VSPHERE.local"
        ));
        assert!(!same_principal("k8s-svc", "k8s-svc@vsphere.local"));
    }

    fn probes() -> Vec<Probe> {
        vec![
            Probe {
                path: "/".into(),
                slot: Slot::Vcenter,
                child_of: None,
            },
            Probe {
                path: "/dc/vm".into(),
                slot: Slot::VmFolder,
                child_of: None,
            },
            Probe {
                path: "/dc/vm/node-0".into(),
                slot: Slot::VmFolder,
                child_of: Some("/dc/vm".into()),
            },
        ]
    }

    #[test]
    fn check_complete_when_everything_is_held() {
        let effective: BTreeMap<String, BTreeSet<String>> = [
            (
                "/".to_owned(),
                strings(&["InventoryService.Tagging.CreateTag"]),
            ),
            (
                "/dc/vm".to_owned(),
                strings(&["Folder.Create", "Folder.Delete"]),
            ),
            (
                "/dc/vm/node-0".to_owned(),
                strings(&["Folder.Create", "Folder.Delete"]),
            ),
        ]
        .into();
        let report = check(
            &catalog(),
            false,
            "svc",
            &probes(),
            &[Slot::Datacenter],
            &effective,
        );
        assert!(report.complete, "{report:?}");
        assert_eq!(report.missing_count(), 0);
        assert_eq!(report.objects[1].required, 2);
        assert_eq!(report.unbound, [Slot::Datacenter]);
    }

    #[test]
    fn check_names_missing_privileges_and_why() {
        let effective: BTreeMap<String, BTreeSet<String>> = [
            (
                "/".to_owned(),
                strings(&["InventoryService.Tagging.CreateTag"]),
            ),
            ("/dc/vm".to_owned(), strings(&["Folder.Create"])),
        ]
        .into();
        let report = check(&catalog(), false, "svc", &probes(), &[], &effective);
        assert!(!report.complete);
        assert!(report.objects[0].missing.is_empty());
        assert_eq!(
            report.objects[1].missing,
            [Missing {
                privilege: "Folder.Delete".into(),
                role: "folder-role".into(),
                reason: "granted here".into()
            }]
        );
        let child: Vec<_> = report.objects[2]
            .missing
            .iter()
            .map(|m| (m.privilege.as_str(), m.reason.as_str()))
            .collect();
        assert_eq!(
            child,
            [
                ("Folder.Create", "must be inherited from vm-folder"),
                ("Folder.Delete", "must be inherited from vm-folder"),
            ]
        );
    }

    #[test]
    fn optional_roles_count_only_when_asked() {
        let effective = BTreeMap::new();
        let without = check(&catalog(), false, "svc", &probes()[..1], &[], &effective);
        assert_eq!(without.objects[0].required, 1);
        let with = check(&catalog(), true, "svc", &probes(), &[], &effective);
        assert_eq!(with.objects[0].required, 2);
        // The admin role propagates from the root down to the folder and its VMs.
        assert!(with.objects[2]
            .missing
            .iter()
            .any(|m| m.privilege == "Authorization.ModifyRoles"
                && m.reason == "must be inherited from vcenter"));
        assert_eq!(
            required_privileges(&catalog(), false, &probes()),
            [
                "Folder.Create",
                "Folder.Delete",
                "InventoryService.Tagging.CreateTag"
            ]
        );
    }
}
