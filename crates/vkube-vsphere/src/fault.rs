//! vSphere faults as a closed set of cases callers can match on. vCenter
//! names a fault by its type (`DuplicateName`, `InvalidPowerState`, …); the
//! mapping from that name to [`Fault`] lives here only, so no caller compares
//! fault names as strings.

use std::fmt;

/// A fault vCenter raised (or, for [`Fault::NoRecommendation`], an answer
/// vkube treats as one). Faults vkube does not act on are [`Fault::Other`],
/// carrying vCenter's type name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// An object of that name exists already in the folder (a create raced
    /// another, or an interrupted run made it).
    DuplicateName,
    /// The object (role, permission, …) exists already.
    AlreadyExists,
    /// The session expired or was never logged in.
    NotAuthenticated,
    /// The user name or password is wrong.
    InvalidLogin,
    /// The managed object is gone (destroyed, or never existed).
    ManagedObjectNotFound,
    /// An argument was refused (e.g. an unknown privilege id).
    InvalidArgument,
    /// The object is not in a state that allows the operation.
    InvalidState,
    /// The VM's power state does not allow the operation (already on or off).
    InvalidPowerState,
    /// Another task is running on the object.
    TaskInProgress,
    /// The session lacks `privilege` on `object`.
    NoPermission {
        /// The privilege id vCenter named, e.g. `VirtualMachine.Inventory.Create`.
        privilege: String,
        /// The object, as vCenter or the operation names it.
        object: String,
    },
    /// A name or path given to vCenter does not exist.
    NotFound,
    /// The task was cancelled.
    RequestCanceled,
    /// The operation is not supported by this server or object.
    NotSupported,
    /// Storage DRS answered without a recommended datastore.
    NoRecommendation,
    /// Any other fault, by vCenter's type name (`MethodFault` when the
    /// fault had no type).
    Other(String),
}

impl Fault {
    /// The fault named `name` by vCenter (its type name, e.g. `DuplicateName`).
    /// [`Fault::NoPermission`] made from a bare name names neither privilege
    /// nor object (`unknown`); faults with their fields come from
    /// [`Fault::no_permission`].
    pub fn from_name(name: &str) -> Fault {
        match name {
            "DuplicateName" => Fault::DuplicateName,
            "AlreadyExists" => Fault::AlreadyExists,
            "NotAuthenticated" => Fault::NotAuthenticated,
            "InvalidLogin" => Fault::InvalidLogin,
            "ManagedObjectNotFound" => Fault::ManagedObjectNotFound,
            "InvalidArgument" => Fault::InvalidArgument,
            "InvalidState" => Fault::InvalidState,
            "InvalidPowerState" => Fault::InvalidPowerState,
            "TaskInProgress" => Fault::TaskInProgress,
            "NoPermission" => Fault::no_permission("unknown", "unknown"),
            "NotFound" => Fault::NotFound,
            "RequestCanceled" => Fault::RequestCanceled,
            "NotSupported" => Fault::NotSupported,
            "NoRecommendation" => Fault::NoRecommendation,
            other => Fault::Other(other.to_owned()),
        }
    }

    /// A missing privilege on an object.
    pub fn no_permission(privilege: impl Into<String>, object: impl Into<String>) -> Fault {
        Fault::NoPermission {
            privilege: privilege.into(),
            object: object.into(),
        }
    }

    /// vCenter's type name of the fault.
    pub fn name(&self) -> &str {
        match self {
            Fault::DuplicateName => "DuplicateName",
            Fault::AlreadyExists => "AlreadyExists",
            Fault::NotAuthenticated => "NotAuthenticated",
            Fault::InvalidLogin => "InvalidLogin",
            Fault::ManagedObjectNotFound => "ManagedObjectNotFound",
            Fault::InvalidArgument => "InvalidArgument",
            Fault::InvalidState => "InvalidState",
            Fault::InvalidPowerState => "InvalidPowerState",
            Fault::TaskInProgress => "TaskInProgress",
            Fault::NoPermission { .. } => "NoPermission",
            Fault::NotFound => "NotFound",
            Fault::RequestCanceled => "RequestCanceled",
            Fault::NotSupported => "NotSupported",
            Fault::NoRecommendation => "NoRecommendation",
            Fault::Other(name) => name,
        }
    }

    /// Whether running the same call again later may succeed without any
    /// change by the user (a busy object, a cancelled task, an expired session).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Fault::TaskInProgress | Fault::RequestCanceled | Fault::NotAuthenticated
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_kept() {
        for fault in [
            Fault::DuplicateName,
            Fault::AlreadyExists,
            Fault::NotAuthenticated,
            Fault::InvalidLogin,
            Fault::ManagedObjectNotFound,
            Fault::InvalidArgument,
            Fault::InvalidState,
            Fault::InvalidPowerState,
            Fault::TaskInProgress,
            Fault::NotFound,
            Fault::RequestCanceled,
            Fault::NotSupported,
            Fault::NoRecommendation,
        ] {
            assert_eq!(Fault::from_name(fault.name()), fault);
        }
        assert_eq!(
            Fault::from_name("NoPermission"),
            Fault::no_permission("unknown", "unknown")
        );
        let other = Fault::from_name("FileAlreadyExists");
        assert_eq!(other, Fault::Other("FileAlreadyExists".into()));
        assert_eq!(other.to_string(), "FileAlreadyExists");
        assert!(Fault::TaskInProgress.is_transient());
        assert!(!Fault::DuplicateName.is_transient());
    }
}
