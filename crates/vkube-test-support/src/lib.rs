//! Test support shared by every vkube crate:
//!
//! - a running vCenter simulator (`tools/vcsim`) per test or per test binary, with its URL
//!   and credentials. The simulator is built once per machine by `scripts/build-vcsim.sh`
//!   (the script is idempotent), started on a free loopback port, and terminated when the
//!   [`Simulator`] is dropped, so tests leak no processes and use no fixed ports;
//! - [`kube_api`]: a stand-in Kubernetes API server over mutual TLS serving recorded
//!   kube-apiserver answers, for vkube-kube's tests and the CLI's;
//! - [`etcd`]: a real etcd cluster (Debian's `etcd-server`) on loopback addresses with
//!   mutual TLS from the test's etcd CA, stopped on drop;
//! - [`external_tool`]: running the ecosystem's own tools (OpenSSL, kubectl) when installed;
//! - [`postgres`]: a real PostgreSQL server from Debian's packages in a temporary directory on
//!   a free loopback port, one per test binary with a database per test, for the store's
//!   conformance suite.

#![deny(missing_docs)]

pub mod etcd;
pub mod external_tool;
pub mod kube_api;
pub mod postgres;
mod simulator;

pub use simulator::{repo_root, vcsim_binary, Simulator, SimulatorConfig};
