//! Integration tests of the vSphere layer against the simulator.

mod authorization;
mod connect;
mod images;
mod inventory;
mod sessions;
mod support;
mod tagging;
mod vm;
