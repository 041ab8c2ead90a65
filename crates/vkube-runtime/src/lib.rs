//! vkube's reconcile loop for clusters: take a validated spec, observe
//! vCenter through the [`vkube_vsphere::VspherePort`], plan (pure, in
//! `vkube-core`), execute the next steps, record intent and events in the
//! store. [`reconcile_once`] runs one pass and returns an [`Outcome`] (for a
//! server that schedules clusters itself); [`apply`] repeats passes until
//! the plan is empty (for the CLI). Time, randomness and the lock holder
//! come from the caller's [`Context`]. Never prints.
//!
//! A cluster is one uid in one vCenter ([`ownership`]): an apply refuses a
//! folder holding another state's VMs of the cluster, and a vCenter other
//! than the cluster's, before any change; [`adopt`](adopt::adopt) takes a
//! cluster over from its VMs into a state that does not know it. An apply
//! that stops with an error leaves the cluster `Degraded` with the error.
#![deny(missing_docs)]

pub mod access;
pub mod addons;
pub mod adopt;
pub mod apply;
pub mod cloud;
pub mod context;
pub mod delete;
pub mod describe;
mod error;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod fake_kube;
mod guest;
pub mod images;
pub mod kube;
mod kube_view;
mod macs;
pub mod observe;
pub mod ownership;
pub mod placement;
pub mod privileges;
pub mod progress;
pub mod reconcile;
pub mod roles;
pub mod scale;
pub mod token;
pub mod zones;

#[cfg(test)]
mod tests;

pub use adopt::{adopt, AdoptOptions, AdoptReport};
pub use apply::{
    apply, check_pools, parse_spec, plan_only, ApplyOptions, ApplyReport, PlanPreview, WaitFor,
};
pub use context::{Clock, Context, LockHolder, OsRandom, ProcessHolder, Random, SystemClock};
pub use delete::{delete, DeleteOptions, DeleteReport};
pub use error::{Error, NodeFailure, Result};
pub use progress::{Event, EventKind, NoProgress, Progress, StepKind};
pub use reconcile::{error_policy, reconcile_once, Outcome, RunState};
