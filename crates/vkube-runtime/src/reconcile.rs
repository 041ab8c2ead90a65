//! Single-pass reconcile, for front ends that schedule work themselves (a
//! server reconciling many clusters): [`reconcile_once`] takes the lock,
//! runs one pass and returns an [`Outcome`] — done, come back after a
//! while, or failed — instead of waiting inline; [`error_policy`] says when
//! to try a failed cluster again (kube-rs `Action` and `error_policy`).
//! The CLI's [`apply`](crate::apply) runs the same passes in a loop under
//! one hold of the lock.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use vkube_core::cluster::ClusterSpec;
use vkube_store::StateStore;
use vkube_vsphere::VspherePort;

use crate::apply::{locked, ApplyOptions, ApplyReport, Pass};
use crate::context::Context;
use crate::error::{Error, NodeFailure};
use crate::progress::Progress;

/// What a pass decided.
#[derive(Debug)]
#[must_use]
pub enum Outcome {
    /// The cluster matches its spec (add-ons included).
    Done(ApplyReport),
    /// Call again after this long: steps ran and the plan goes on, or
    /// something is being waited for (a guest shutting down, a DHCP address).
    RequeueAfter(Duration),
    /// The pass failed; [`error_policy`] says when to try again.
    Failed(Error),
}

/// What a run carries from one pass to the next, owned by the caller: a
/// server keeps one per cluster and starts a fresh one when the spec
/// changes or a failed run is retried. In memory only: a new process starts
/// its waits over, as a re-run apply does.
#[derive(Debug, Default)]
pub struct RunState {
    /// Nodes that failed in this run; their steps are skipped until a new run.
    pub(crate) failed: BTreeMap<String, NodeFailure>,
    /// Whether the cloud user's privileges were checked in this run.
    pub(crate) cloud_user_checked: bool,
    /// DHCP nodes powered on without an address yet, since when.
    pub(crate) address_wait: BTreeMap<String, SystemTime>,
    /// Nodes to delete whose guests were asked to shut down, since when.
    pub(crate) shutdowns: BTreeMap<String, SystemTime>,
    /// What the run did so far.
    pub(crate) report: ApplyReport,
    /// When the run's first pass started: the bound of its waits.
    pub(crate) started: Option<SystemTime>,
    /// The add-ons were brought up to date in this run (before waiting
    /// for readiness, as the CNI makes nodes Ready).
    pub(crate) addons_synced: bool,
    /// Nodes `--wait ready` waits for (their progress line is open).
    pub(crate) ready_waits: std::collections::BTreeSet<String>,
    /// The holds last reported, so a wait does not repeat them each look.
    pub(crate) holds_reported: Vec<String>,
}

impl RunState {
    /// What the run did so far.
    pub fn report(&self) -> &ApplyReport {
        &self.report
    }
}

/// One pass over `spec`: take the apply lock, observe, plan, run the next
/// steps, release the lock. Never waits for vCenter beyond its calls:
/// shutdown grace and DHCP addresses come back as [`Outcome::RequeueAfter`].
pub async fn reconcile_once(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    options: &ApplyOptions,
    progress: &dyn Progress,
    state: &mut RunState,
) -> Outcome {
    let start_trips = vsphere.round_trips();
    let result = locked(
        vsphere,
        store,
        spec,
        ctx,
        options,
        progress,
        async |run| match run.pass(state).await? {
            Pass::Converged => run.finish(state).await.map(Outcome::Done),
            Pass::Stepped { then } => Ok(Outcome::RequeueAfter(then)),
            Pass::Waiting(pause) => Ok(Outcome::RequeueAfter(pause)),
        },
    )
    .await;
    state.report.round_trips += vsphere.round_trips() - start_trips;
    match result {
        Ok(Outcome::Done(mut report)) => {
            report.round_trips = state.report.round_trips;
            Outcome::Done(report)
        }
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e),
    }
}

/// Longest pause the policy gives.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// When to reconcile again after `error`, the `failures`-th failure in a
/// row (1 for the first): the user's errors (a bad spec, a missing
/// privilege, failed nodes) wait long, as only a change fixes them; a lock
/// held by another run, a busy object or a transport failure back off
/// exponentially from one second; anything else from ten seconds. Never
/// more than five minutes.
pub fn error_policy(error: &Error, failures: u32) -> Duration {
    let transient = match error {
        Error::Store(vkube_store::Error::Locked { .. }) => true,
        Error::Vsphere(e) => {
            e.fault().is_some_and(|f| f.is_transient())
                || matches!(e, vkube_vsphere::Error::Transport { .. })
        }
        _ => false,
    };
    let base = if transient {
        Duration::from_secs(1)
    } else if error.is_user_error() {
        return MAX_BACKOFF;
    } else {
        Duration::from_secs(10)
    };
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vkube_vsphere::Fault;

    #[test]
    fn transient_errors_back_off_and_user_errors_wait_long() {
        let busy = Error::Vsphere(vkube_vsphere::Error::raised(
            "cloning",
            Fault::TaskInProgress,
            None,
        ));
        assert_eq!(error_policy(&busy, 1), Duration::from_secs(1));
        assert_eq!(error_policy(&busy, 4), Duration::from_secs(8));
        assert_eq!(error_policy(&busy, 40), MAX_BACKOFF);
        let missing = Error::NotBootstrapped {
            cluster: "t1".into(),
            missing: "key material".into(),
        };
        assert_eq!(error_policy(&missing, 1), MAX_BACKOFF);
        let odd = Error::Vsphere(vkube_vsphere::Error::raised(
            "cloning",
            Fault::Other("FileFault".into()),
            None,
        ));
        assert_eq!(error_policy(&odd, 2), Duration::from_secs(20));
    }
}
