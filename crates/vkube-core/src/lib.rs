//! vkube's domain core: role catalogs (`roles`), IP address management
//! (`ipam`), cluster specs, plans and bootstrap rendering (`cluster`),
//! regions and zones (`topology`), and node images (`images`: OVF descriptors,
//! manifests, template checks). No I/O: no tokio, no vSphere, no SQL, no
//! clock or randomness — callers pass those in, so all of it is tested with
//! plain values.

#![deny(missing_docs)]

pub mod addons;
pub mod cluster;
pub mod images;
pub mod ipam;
pub mod problem;
pub mod roles;
pub mod topology;
mod yaml;
