//! Role catalogs: which vSphere roles a product needs, where they are
//! granted, and how they compare with what vCenter has.
//!
//! Pure: parses strings handed in, computes sets, renders scripts. Reading
//! catalogs from disk and talking to vCenter belong to the callers.

mod binding;
mod builtin;
mod catalog;
mod diff;
mod error;
mod export;
mod plan;
mod privilege;
mod slot;

pub use binding::{Binding, Bindings};
pub use builtin::BuiltinProfile;
pub use catalog::{Catalog, Grant, Role, RolePrivilege};
pub use diff::{Requirement, RoleDiff};
pub use error::Error;
pub use export::{render_govc, render_json, shell_quote, ExportOptions};
pub use plan::{
    check, plan, required_privileges, same_principal, selected_roles, targets, CheckReport,
    CheckedObject, Missing, Observed, ObservedPermission, Probe, RolePlan, SkippedGrant, Step,
    Target, Targets, UnknownPrivileges,
};
pub use privilege::{
    is_implied_system, PrivilegeId, Registry, BUILTIN_REGISTRY_SOURCE, IMPLIED_SYSTEM_PRIVILEGES,
};
pub use slot::Slot;
