//! vCenter's tagging API (vAPI REST): categories, tags and their
//! attachments to inventory objects. vkube uses tags for regions and zones
//! (see `vkube_core::topology`).
//!
//! The client speaks the vSphere 7+ `/api` forms when the server offers
//! them and the older `/rest` forms otherwise (govmomi's simulator serves
//! only `/rest`). [`request`] builds each call as a plain value for either
//! form; [`TaggingClient`] sends them with its own REST session (login with
//! the SOAP session's credentials, one re-login on 401, logout on close).
//!
//! Caveats: the simulator validates almost nothing here — not cardinality,
//! not associable types, not that an attached object exists — so callers
//! must check those themselves (`vkube_core::topology::plan_setup` does).

mod client;
mod model;
pub mod request;

pub use client::TaggingClient;
pub use model::{Category, CategorySpec, DynamicId, Tag, TagSpec};
pub use request::Flavor;
