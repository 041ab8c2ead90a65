//! Integration tests of the vSphere layer against the simulator.

mod connect;
mod inventory;
mod support;
