//! placeholder

#![deny(missing_docs)]

pub mod cluster;
pub mod ipam;
pub mod roles;
pub mod topology;
