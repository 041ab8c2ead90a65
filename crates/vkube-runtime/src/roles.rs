//! `roles apply`: make vCenter's roles and a principal's permissions match
//! a role catalog. Observe (roles, known privilege ids, the principal's
//! own permission on each bound object), plan with `vkube_core::roles`,
//! refuse what must not happen silently, then execute the steps in order.
//! Every step is idempotent, so an interrupted apply is finished by
//! running it again.

use std::collections::BTreeMap;

use vkube_core::roles::{self, Catalog, Observed, ObservedPermission, RolePlan, Step, Targets};
use vkube_vsphere::{Inventory, ObjectRef, VspherePort};

use crate::error::{Error, Result};
use crate::privileges::resolve_targets;

/// What to apply, for whom, where.
#[derive(Debug, Clone, Copy)]
pub struct RolesRequest<'a> {
    /// The role catalog.
    pub catalog: &'a Catalog,
    /// Whether the catalog's optional roles are granted too.
    pub include_optional: bool,
    /// Who receives the permissions.
    pub principal: &'a str,
    /// The bound objects.
    pub targets: &'a Targets,
}

/// What refusals an apply may override.
#[derive(Debug, Clone, Copy, Default)]
pub struct RolesOptions {
    /// Leave privilege ids this vCenter does not know out of the roles.
    pub skip_unknown: bool,
    /// Change the privileges of roles that exist already (vCenter cannot
    /// tell which roles vkube created).
    pub adopt_roles: bool,
    /// Only plan: an existing role's difference is shown, not refused.
    pub dry_run: bool,
}

/// A plan with what executing it needs.
#[derive(Debug, Clone)]
pub struct PlannedRoles {
    /// The steps, unknown privileges and skipped grants.
    pub plan: RolePlan,
    /// Role ids by name, as observed.
    role_ids: BTreeMap<String, i32>,
    /// The object of each bound path.
    objects: BTreeMap<String, ObjectRef>,
}

/// Observe vCenter and plan `request` (changes nothing).
pub async fn plan(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    request: RolesRequest<'_>,
) -> Result<PlannedRoles> {
    let resolved = resolve_targets(inventory, request.targets)?;
    let server_roles = vsphere.roles().await?;
    let role_names: BTreeMap<i32, &str> = server_roles
        .iter()
        .map(|r| (r.id, r.name.as_str()))
        .collect();
    let mut observed = Observed {
        known_privileges: vsphere.privilege_ids().await?,
        roles: server_roles
            .iter()
            .map(|r| (r.name.clone(), r.privileges.clone()))
            .collect(),
        permissions: BTreeMap::new(),
    };
    let mut objects = BTreeMap::new();
    for target in &resolved {
        let path = &target.target.path;
        if objects.contains_key(path) {
            continue;
        }
        let object = target.entity.object();
        let own = vsphere
            .permissions_on(&object)
            .await?
            .into_iter()
            .find(|p| !p.group && roles::same_principal(&p.principal, request.principal));
        if let Some(p) = own {
            let role = role_names
                .get(&p.role_id)
                .map_or_else(|| format!("#{}", p.role_id), |name| (*name).to_owned());
            observed.permissions.insert(
                path.clone(),
                ObservedPermission {
                    role,
                    propagate: p.propagate,
                },
            );
        }
        objects.insert(path.clone(), object);
    }
    // Resolution marks folders standing in for node VMs (their grants propagate).
    let targets = Targets {
        targets: resolved.iter().map(|r| r.target.clone()).collect(),
        unbound: request.targets.unbound.clone(),
    };
    let plan = roles::plan(
        request.catalog,
        request.include_optional,
        request.principal,
        &targets,
        &observed,
    )?;
    Ok(PlannedRoles {
        plan,
        role_ids: server_roles
            .iter()
            .map(|r| (r.name.clone(), r.id))
            .collect(),
        objects,
    })
}

/// Refuse a plan that would do something unasked: leave out privilege ids
/// vCenter does not know, rewrite an existing role (perhaps someone
/// else's), or replace the principal's `Admin` permission.
pub fn refuse_unasked(planned: &PlannedRoles, options: RolesOptions) -> Result<()> {
    let plan = &planned.plan;
    if !plan.unknown_privileges.is_empty() && !options.skip_unknown {
        return Err(Error::UnknownPrivileges {
            profile: plan.profile.clone(),
            count: plan
                .unknown_privileges
                .iter()
                .map(|u| u.privileges.len())
                .sum(),
        });
    }
    let existing: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::UpdateRole { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    if !existing.is_empty() && !options.adopt_roles && !options.dry_run {
        return Err(Error::RolesDiffer {
            roles: existing,
            profile: plan.profile.clone(),
        });
    }
    for step in &plan.steps {
        if let Step::SetPermission {
            path,
            role,
            replaces: Some(current),
            principal,
            ..
        } = step
        {
            if current.role == "Admin" {
                return Err(Error::WouldReplaceAdmin {
                    role: role.clone(),
                    path: path.clone(),
                    principal: principal.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Run the plan's steps in order; returns how many ran.
pub async fn execute(vsphere: &dyn VspherePort, planned: &PlannedRoles) -> Result<usize> {
    let mut role_ids = planned.role_ids.clone();
    for step in &planned.plan.steps {
        match step {
            Step::CreateRole { name, privileges } => {
                let id = vsphere.create_role(name, privileges).await?;
                role_ids.insert(name.clone(), id);
            }
            Step::UpdateRole {
                name, privileges, ..
            } => {
                let id = *role_ids.get(name).ok_or_else(|| vanished(name))?;
                vsphere.update_role(id, name, privileges).await?;
            }
            Step::SetPermission {
                path,
                role,
                propagate,
                principal,
                ..
            } => {
                let object = planned
                    .objects
                    .get(path)
                    .expect("planned paths come from the resolved targets");
                let id = *role_ids.get(role).ok_or_else(|| vanished(role))?;
                vsphere
                    .set_permission(object, principal, id, *propagate)
                    .await?;
            }
        }
    }
    Ok(planned.plan.steps.len())
}

fn vanished(role: &str) -> Error {
    Error::Vsphere(vkube_vsphere::Error::Invalid(format!(
        "role `{role}` vanished during apply"
    )))
}

#[cfg(test)]
mod tests {
    use vkube_core::roles::Bindings;

    use super::*;
    use crate::fake::FakeVsphere;

    const PRINCIPAL: &str = "k8s-demo@vsphere.local";

    fn targets(catalog: &Catalog) -> Targets {
        let bindings = Bindings::parse_all([
            "datacenter=/DC0",
            "compute-cluster=/DC0/host/C0",
            "datastore=/DC0/datastore/DS0",
            "vm-folder=/DC0/vm",
        ])
        .expect("bindings parse");
        roles::targets(catalog, &bindings, false)
    }

    async fn planned(vsphere: &FakeVsphere, catalog: &Catalog) -> PlannedRoles {
        let inventory = vsphere.inventory().await.expect("inventory");
        let targets = targets(catalog);
        let request = RolesRequest {
            catalog,
            include_optional: false,
            principal: PRINCIPAL,
            targets: &targets,
        };
        plan(vsphere, &inventory, request).await.expect("plan")
    }

    #[tokio::test]
    async fn a_catalog_is_applied_once_and_then_up_to_date() {
        let vsphere = FakeVsphere::new(Vec::new());
        let catalog = Catalog::builtin("vsphere-cloud").expect("built-in profile");
        let first = planned(&vsphere, &catalog).await;
        let creates = first
            .plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::CreateRole { .. }))
            .count();
        let grants = first
            .plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::SetPermission { .. }))
            .count();
        assert!(creates >= 1 && grants >= 4, "{:?}", first.plan.steps);
        refuse_unasked(&first, RolesOptions::default()).expect("nothing unasked");
        assert_eq!(
            execute(&vsphere, &first).await.expect("execute"),
            first.plan.steps.len()
        );
        let again = planned(&vsphere, &catalog).await;
        assert!(again.plan.is_empty(), "{:?}", again.plan.steps);
    }

    #[tokio::test]
    async fn a_role_of_the_same_name_is_changed_only_when_adopted() {
        let vsphere = FakeVsphere::new(Vec::new());
        let catalog = Catalog::builtin("vsphere-cloud").expect("built-in profile");
        let name = catalog.roles()[0].name().to_owned();
        vsphere
            .create_role(&name, &["System.Read".into()])
            .await
            .expect("someone else's role");
        let planned = planned(&vsphere, &catalog).await;
        let err = refuse_unasked(&planned, RolesOptions::default()).expect_err("refused");
        assert!(
            matches!(&err, Error::RolesDiffer { roles, .. } if roles.as_slice() == std::slice::from_ref(&name)),
            "{err}"
        );
        assert!(err.to_string().contains("--adopt-roles"), "{err}");
        let dry_run = RolesOptions {
            dry_run: true,
            ..Default::default()
        };
        refuse_unasked(&planned, dry_run).expect("a dry run shows the difference");
        let adopt = RolesOptions {
            adopt_roles: true,
            ..Default::default()
        };
        refuse_unasked(&planned, adopt).expect("adopted");
        execute(&vsphere, &planned).await.expect("execute");
        assert!(planned_is_empty(&vsphere, &catalog).await);
    }

    async fn planned_is_empty(vsphere: &FakeVsphere, catalog: &Catalog) -> bool {
        planned(vsphere, catalog).await.plan.is_empty()
    }

    #[tokio::test]
    async fn the_principals_admin_permission_is_never_replaced() {
        let vsphere = FakeVsphere::new(Vec::new());
        let catalog = Catalog::builtin("vsphere-cloud").expect("built-in profile");
        let inventory = vsphere.inventory().await.expect("inventory");
        let datacenter = inventory.resolve("/DC0", "datacenter").expect("DC0");
        vsphere
            .set_permission(&datacenter.object(), PRINCIPAL, -1, true)
            .await
            .expect("Admin granted");
        let planned = planned(&vsphere, &catalog).await;
        let err = refuse_unasked(&planned, RolesOptions::default()).expect_err("refused");
        assert!(
            matches!(&err, Error::WouldReplaceAdmin { path, .. } if path == "/DC0"),
            "{err}"
        );
    }
}
