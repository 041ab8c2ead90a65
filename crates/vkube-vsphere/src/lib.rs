//! vkube's vSphere layer: the only crate that talks to vCenter. Wraps
//! `vim_rs` behind a small typed API (sessions, inventory, property
//! collection, tasks) and turns every fault into an [`Error`] that names
//! the object concerned.
#![deny(missing_docs)]

pub mod authorization;
pub mod collect;
pub mod endpoint;
pub mod error;
pub mod fault;
pub mod ids;
pub mod images;
pub mod inventory;
pub mod port;
pub mod secret;
pub mod session;
pub mod tagging;
mod tasks;
pub mod tls;
pub mod topology;
pub mod vm;

pub use authorization::{Authorization, PermissionInfo, RoleInfo};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use fault::Fault;
pub use ids::{
    ComputeResourceId, DatastoreClusterId, DatastoreId, FolderId, HostId, NetworkId, ObjectRef,
    ResourcePoolId, SnapshotId, VmId,
};
pub use inventory::{Details, Entity, Inventory};
pub use port::{PlacementQuery, SessionFacts, Trust, VspherePort};
pub use secret::Secret;
pub use session::{About, ConnectOptions, Session, Timeouts, TransportChoice, WAITING_TARGET};
pub use tagging::TaggingClient;
pub use tls::{PeerCertificate, Thumbprint, TlsPolicy};
