//! Test support: key material and the stand-in API server.

pub mod pki;
pub mod stand_in;

pub use pki::{TestCa, TestPki};
pub use stand_in::StandIn;
