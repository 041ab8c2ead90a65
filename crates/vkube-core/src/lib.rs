//! placeholder

#![deny(missing_docs)]

pub mod ipam;
pub mod roles;
