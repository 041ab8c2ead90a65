//! vCenter's AuthorizationManager as a typed API: roles, the privilege ids
//! the server knows, permissions on entities, and effective privileges of a
//! user or of this session on many entities in one call.
//!
//! One job: translate between `vim_rs` and plain values. Deciding what to
//! create or grant (`vkube_core::roles::plan`) and resolving inventory paths
//! (`Inventory`) are left to callers.
//!
//! Every method is one API round trip. Reads are safe to retry. Writes are
//! not idempotent on their own (`create_role` fails with `AlreadyExists` the
//! second time); callers read first and plan, which makes a rerun after an
//! interruption converge.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vim_rs::mo::{AuthorizationManager, SessionManager};
use vim_rs::types::structs::{ManagedObjectReference, Permission};

use crate::error::{Error, Result};
use crate::session::Session;

/// A role as vCenter stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleInfo {
    /// vCenter's role id (negative for system roles, e.g. Admin = -1).
    pub id: i32,
    /// Role name.
    pub name: String,
    /// Whether it is a system role, which cannot be changed.
    pub system: bool,
    /// Its privilege ids, including the `System.*` ones vCenter adds itself.
    pub privileges: BTreeSet<String>,
}

/// One permission: a role granted to a user or group on an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionInfo {
    /// Managed object id of the entity it is defined on.
    pub entity: String,
    /// `user@domain` or `DOMAIN\user`, as stored.
    pub principal: String,
    /// Whether the principal is a group.
    pub group: bool,
    /// The role's id.
    pub role_id: i32,
    /// Whether it propagates to the entity's children.
    pub propagate: bool,
}

/// The AuthorizationManager of one session.
pub struct Authorization<'a> {
    session: &'a Session,
    manager: AuthorizationManager,
}

impl<'a> Authorization<'a> {
    /// The session's AuthorizationManager. Fails with [`Error::Protocol`] on
    /// a server without one (an ESXi host).
    pub fn new(session: &'a Session) -> Result<Authorization<'a>> {
        let reference = session
            .content()
            .authorization_manager
            .as_ref()
            .ok_or_else(|| Error::Protocol {
                operation: "managing roles".into(),
                detail: "the server has no AuthorizationManager".into(),
            })?;
        Ok(Authorization {
            session,
            manager: AuthorizationManager::new(session.client(), &reference.value),
        })
    }

    /// Every role (`roleList`), system roles included, ordered by id.
    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        let roles = self
            .manager
            .role_list()
            .await
            .map_err(|e| Error::from_client("reading roles", e))?;
        let mut out: Vec<RoleInfo> = roles
            .unwrap_or_default()
            .into_iter()
            .map(|role| RoleInfo {
                id: role.role_id,
                name: role.name,
                system: role.system,
                privileges: role.privilege.unwrap_or_default().into_iter().collect(),
            })
            .collect();
        out.sort_by_key(|role| role.id);
        Ok(out)
    }

    /// The privilege ids this server knows (`privilegeList`). Ids differ
    /// between vSphere versions; an id missing here makes role creation fail.
    pub async fn privileges(&self) -> Result<BTreeSet<String>> {
        let list = self
            .manager
            .privilege_list()
            .await
            .map_err(|e| Error::from_client("reading privileges", e))?;
        Ok(list
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.priv_id)
            .collect())
    }

    /// Create role `name` with `privileges`; returns its id. Fails with a
    /// `AlreadyExists` fault when the name is taken and `InvalidArgument`
    /// when an id is unknown.
    pub async fn create_role(&self, name: &str, privileges: &[String]) -> Result<i32> {
        self.manager
            .add_authorization_role(name, Some(privileges))
            .await
            .map_err(|e| Error::from_client(&format!("creating role `{name}`"), e))
    }

    /// Replace the privilege list of role `id` (keeping `name`). Idempotent.
    pub async fn update_role(&self, id: i32, name: &str, privileges: &[String]) -> Result<()> {
        self.manager
            .update_authorization_role(id, name, Some(privileges))
            .await
            .map_err(|e| Error::from_client(&format!("updating role `{name}`"), e))
    }

    /// Permissions defined on `entity`; with `inherited`, also the
    /// propagating ones of its ancestors.
    pub async fn entity_permissions(
        &self,
        entity: &ManagedObjectReference,
        inherited: bool,
    ) -> Result<Vec<PermissionInfo>> {
        let permissions = self
            .manager
            .retrieve_entity_permissions(entity, inherited)
            .await
            .map_err(|e| {
                Error::from_client(&format!("reading permissions on `{}`", entity.value), e)
            })?;
        Ok(permissions
            .unwrap_or_default()
            .into_iter()
            .map(|p| PermissionInfo {
                entity: p
                    .entity
                    .map(|e| e.value)
                    .unwrap_or_else(|| entity.value.clone()),
                principal: p.principal,
                group: p.group,
                role_id: p.role_id,
                propagate: p.propagate,
            })
            .collect())
    }

    /// Grant role `role_id` to `principal` on `entity`, replacing that
    /// principal's permission there (vCenter keeps one per principal and
    /// entity); other principals' permissions stay. Idempotent.
    pub async fn set_permission(
        &self,
        entity: &ManagedObjectReference,
        principal: &str,
        group: bool,
        role_id: i32,
        propagate: bool,
    ) -> Result<()> {
        let permission = Permission {
            entity: None,
            principal: principal.to_owned(),
            group,
            role_id,
            propagate,
        };
        self.manager
            .set_entity_permissions(entity, Some(&[permission]))
            .await
            .map_err(|e| {
                Error::from_client(&format!("setting permissions on `{}`", entity.value), e)
            })
    }

    /// The effective privileges of user `user` on each of `entities`, in one
    /// call (`FetchUserPrivilegeOnEntities`), by managed object id. An entity
    /// the user holds nothing on maps to an empty set.
    pub async fn user_privileges(
        &self,
        entities: &[ManagedObjectReference],
        user: &str,
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = entities
            .iter()
            .map(|e| (e.value.clone(), BTreeSet::new()))
            .collect();
        if entities.is_empty() {
            return Ok(out);
        }
        let results = self
            .manager
            .fetch_user_privilege_on_entities(entities, user)
            .await
            .map_err(|e| Error::from_client(&format!("reading the privileges of `{user}`"), e))?;
        for result in results.unwrap_or_default() {
            out.entry(result.entity.value)
                .or_default()
                .extend(result.privileges.unwrap_or_default());
        }
        Ok(out)
    }

    /// Which of `privileges` this session holds on each of `entities`, in
    /// one call (`HasPrivilegeOnEntities` with the session's own key), by
    /// managed object id.
    pub async fn session_privileges(
        &self,
        entities: &[ManagedObjectReference],
        privileges: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = entities
            .iter()
            .map(|e| (e.value.clone(), BTreeSet::new()))
            .collect();
        if entities.is_empty() || privileges.is_empty() {
            return Ok(out);
        }
        let key = self.current_session().await?.0;
        let results = self
            .manager
            .has_privilege_on_entities(entities, &key, Some(privileges))
            .await
            .map_err(|e| Error::from_client("checking this session's privileges", e))?;
        for result in results.unwrap_or_default() {
            let granted = result
                .priv_availability
                .into_iter()
                .filter(|p| p.is_granted)
                .map(|p| p.priv_id);
            out.entry(result.entity.value).or_default().extend(granted);
        }
        Ok(out)
    }

    /// This session's key and user name (`SessionManager.currentSession`).
    pub async fn current_session(&self) -> Result<(String, String)> {
        let operation = "reading the current session";
        let reference = self
            .session
            .content()
            .session_manager
            .as_ref()
            .ok_or_else(|| Error::Protocol {
                operation: operation.into(),
                detail: "the server has no SessionManager".into(),
            })?;
        let manager = SessionManager::new(self.session.client(), &reference.value);
        let session = manager
            .current_session()
            .await
            .map_err(|e| Error::from_client(operation, e))?
            .ok_or_else(|| Error::Protocol {
                operation: operation.into(),
                detail: "no current session".into(),
            })?;
        Ok((session.key, session.user_name))
    }
}
