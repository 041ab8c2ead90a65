//! placeholder

#![deny(missing_docs)]

pub mod ipam;
pub mod roles;
pub mod topology;
