//! How the runtime reports what it does, without printing: the CLI shows
//! progress bars, tests collect lines, the server will stream events.

use vkube_core::cluster::Step;

/// Receives progress while a cluster is applied or deleted.
pub trait Progress: Send + Sync {
    /// A pass starts with this plan.
    fn pass(&self, _pass: usize, _steps: &[Step]) {}
    /// A step starts.
    fn started(&self, _step: &str, _node: Option<&str>) {}
    /// A step ended; `error` is set when it failed.
    fn finished(&self, _step: &str, _node: Option<&str>, _error: Option<&str>) {}
    /// A warning the user should see (e.g. linked clone fallback).
    fn warn(&self, _message: &str) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}
