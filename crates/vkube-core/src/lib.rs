//! placeholder

pub mod ipam;
