//! Test support shared by every vkube crate: a running vCenter simulator
//! (`tools/vcsim`) per test or per test binary, with its URL and credentials.
//!
//! The simulator is built once per machine by `scripts/build-vcsim.sh` (the
//! script is idempotent), started on a free loopback port, and terminated
//! when the [`Simulator`] is dropped, so tests leak no processes and use no
//! fixed ports.

mod simulator;

pub use simulator::{repo_root, vcsim_binary, Simulator, SimulatorConfig};
