//! Draining a node before its VM goes away, as `kubectl drain --ignore-daemonsets
//! --delete-emptydir-data` does it: cordon, list the node's pods (`fieldSelector
//! spec.nodeName=<node>`), leave DaemonSet pods (their controller ignores cordons and would
//! recreate them) and mirror pods (the kubelet's static pods: the API cannot delete them) in
//! place, and evict every other pod through the Eviction API, concurrently. An eviction the
//! API server refuses with 429 (a PodDisruptionBudget allows no disruption now) is retried
//! with a bounded exponential backoff until the drain's deadline; each granted eviction is
//! followed until the pod is gone (or replaced by a pod of the same name). At the deadline a
//! drain still blocked fails naming the budgets in the way, or, when forced, deletes the
//! blocked pods instead. Pods without a controller are evicted too (the node is going away;
//! they are lost either way) and reported as such.
//!
//! Nothing sleeps but the retry and poll waits, each bounded by the deadline; their lengths
//! are part of [`DrainOptions`], so tests run with milliseconds.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::core::ObjectList;
use tokio::time::Instant;

use crate::client::{self, KubeClient};
use crate::error::{humanize, Error, Result};
use crate::eviction::{EvictionOutcome, Refusal};
use crate::nodes::{check_name, LIST_PAGE};

/// Default bound of a drain: five minutes.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The annotation the kubelet puts on the API mirror of a static pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// How a drain runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOptions {
    /// Bound of the whole drain: cordon, evictions with their retries, and waiting for the
    /// evicted pods to be gone.
    pub timeout: Duration,
    /// At the deadline, delete the pods whose eviction is still refused (bypassing their
    /// PodDisruptionBudgets) instead of failing, and accept pods still terminating.
    pub force: bool,
    /// Grace period given to evicted pods; `None`: each pod's own
    /// `terminationGracePeriodSeconds`.
    pub grace_period: Option<Duration>,
    /// Waits between attempts of a refused eviction.
    pub retry: Backoff,
    /// How often an evicted pod is checked for being gone.
    pub poll_interval: Duration,
}

impl Default for DrainOptions {
    fn default() -> DrainOptions {
        DrainOptions {
            timeout: DEFAULT_DRAIN_TIMEOUT,
            force: false,
            grace_period: None,
            retry: Backoff::default(),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Exponential backoff: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling to 10 s (kubectl waits a fixed 5 s).
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait after `wait`.
    pub(crate) fn next(&self, wait: Duration) -> Duration {
        (wait * 2).min(self.max).max(self.initial)
    }
}

/// A pod, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PodRef {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for PodRef {
    /// `namespace/name`, as kubectl writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a drain left a pod on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// Controlled by a DaemonSet, which runs it on every node regardless of cordons.
    DaemonSet,
    /// The mirror of a static pod: the kubelet runs it from a file; it goes with the node.
    Mirror,
}

/// A pod a drain left in place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedPod {
    /// Which pod.
    pub pod: PodRef,
    /// Why.
    pub reason: SkipReason,
}

/// An eviction the API server still refused when the drain's time was up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlockedEviction {
    /// Which pod.
    pub pod: PodRef,
    /// The PodDisruptionBudgets (`namespace/name`) that select it; empty when none could be
    /// determined.
    pub budgets: Vec<String>,
    /// The API server's last answer, e.g. `Cannot evict pod as it would violate the pod's
    /// disruption budget. (The disruption budget web needs 2 healthy pods and has 2
    /// currently)`.
    pub message: String,
}

impl fmt::Display for BlockedEviction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.budgets.as_slice() {
            [] => write!(f, "eviction of pod {} refused: {}", self.pod, self.message),
            budgets => write!(
                f,
                "eviction of pod {} blocked by PodDisruptionBudget {} ({})",
                self.pod,
                budgets.join(", "),
                self.message
            ),
        }
    }
}

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainReport {
    /// The node.
    pub node: String,
    /// Pods evicted through the Eviction API and gone from the node.
    pub evicted: Vec<PodRef>,
    /// Of those, the pods no controller recreates (bare pods): they are gone for good.
    pub unmanaged: Vec<PodRef>,
    /// Pods deleted because their eviction was still refused at the deadline
    /// ([`DrainOptions::force`]), with what blocked them; their deletion is not waited for.
    pub deleted: Vec<BlockedEviction>,
    /// Pods evicted but not gone by the deadline (only with `force`; without it they fail
    /// the drain).
    pub still_terminating: Vec<PodRef>,
    /// DaemonSet and mirror pods left in place.
    pub skipped: Vec<SkippedPod>,
    /// How many eviction attempts the API server refused (429) along the way.
    pub refused_attempts: u32,
}

/// A pod to evict, with what following it needs.
#[derive(Debug, Clone)]
pub(crate) struct DrainPod {
    pub(crate) pod: PodRef,
    pub(crate) uid: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) unmanaged: bool,
}

/// What the node's pods are to a drain.
#[derive(Debug, Default)]
struct Classified {
    evict: Vec<DrainPod>,
    skipped: Vec<SkippedPod>,
}

fn classify(pods: Vec<Pod>) -> Classified {
    let mut classified = Classified::default();
    for pod in pods {
        let metadata = pod.metadata;
        let pod_ref = PodRef {
            namespace: metadata.namespace.unwrap_or_default(),
            name: metadata.name.unwrap_or_default(),
        };
        let controller = metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|owner| owner.controller == Some(true));
        let mirror = metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
        let skip = if mirror {
            Some(SkipReason::Mirror)
        } else if controller.as_ref().is_some_and(|c| c.kind == "DaemonSet") {
            Some(SkipReason::DaemonSet)
        } else {
            None
        };
        match skip {
            Some(reason) => classified.skipped.push(SkippedPod {
                pod: pod_ref,
                reason,
            }),
            None => classified.evict.push(DrainPod {
                pod: pod_ref,
                uid: metadata.uid.unwrap_or_default(),
                labels: metadata.labels.unwrap_or_default(),
                unmanaged: controller.is_none(),
            }),
        }
    }
    classified
}

fn check_options(options: &DrainOptions) -> Result<()> {
    let zero = [
        ("timeout", options.timeout),
        ("retry backoff", options.retry.initial),
        ("poll interval", options.poll_interval),
    ]
    .into_iter()
    .find(|(_, duration)| duration.is_zero());
    match zero {
        Some((what, _)) => Err(Error::InvalidInput(format!(
            "the drain {what} must be greater than zero"
        ))),
        None if options.retry.max < options.retry.initial => Err(Error::InvalidInput(
            "the drain's longest retry wait is shorter than its first".into(),
        )),
        None => Ok(()),
    }
}

impl KubeClient {
    pub(crate) async fn drain_node(
        &self,
        node: &str,
        options: &DrainOptions,
    ) -> Result<DrainReport> {
        check_name("node", node)?;
        check_options(options)?;
        let deadline = Instant::now() + options.timeout;
        self.set_unschedulable(node, true).await?;
        let Classified { evict, skipped } = classify(self.pods_on(node).await?);
        tracing::info!(
            node,
            evicting = evict.len(),
            skipped = skipped.len(),
            "draining node"
        );
        let outcomes = futures::future::join_all(
            evict
                .iter()
                .map(|pod| self.evict_and_follow(pod, options, deadline)),
        )
        .await;

        let mut report = DrainReport {
            node: node.to_string(),
            skipped,
            ..DrainReport::default()
        };
        let mut refused = Vec::new();
        for (pod, outcome) in evict.iter().zip(outcomes) {
            let (outcome, refusals) = outcome?;
            report.refused_attempts += refusals;
            match outcome {
                EvictionOutcome::Gone => {
                    report.evicted.push(pod.pod.clone());
                    if pod.unmanaged {
                        report.unmanaged.push(pod.pod.clone());
                    }
                }
                EvictionOutcome::Terminating => report.still_terminating.push(pod.pod.clone()),
                EvictionOutcome::Refused(refusal) => refused.push((pod, refusal)),
            }
        }
        let mut blocked = Vec::with_capacity(refused.len());
        for (pod, refusal) in refused {
            blocked.push(self.blocked_eviction(pod, refusal).await?);
        }
        if !options.force && (!blocked.is_empty() || !report.still_terminating.is_empty()) {
            return Err(Error::DrainTimedOut {
                node: node.to_string(),
                timeout: options.timeout,
                blocked,
                terminating: report.still_terminating,
            });
        }
        let grace = options.grace_period.map(|g| g.as_secs());
        for blocked in blocked {
            let what = format!(
                "forced deletion of pod {} (drain of node {node})",
                blocked.pod
            );
            let path = pod_path(&blocked.pod);
            self.delete_object(&what, &path, grace).await?;
            tracing::warn!(node, pod = %blocked.pod, "deleted a pod whose eviction stayed blocked");
            report.deleted.push(blocked);
        }
        tracing::info!(
            node,
            evicted = report.evicted.len(),
            deleted = report.deleted.len(),
            "node drained"
        );
        Ok(report)
    }

    /// Every pod bound to `node`, page by page.
    async fn pods_on(&self, node: &str) -> Result<Vec<Pod>> {
        let selector = client::query_escape(&format!("spec.nodeName={node}"));
        let what = format!("list of the pods on node {node}");
        let mut pods = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/pods?fieldSelector={selector}&limit={LIST_PAGE}");
            if let Some(token) = &token {
                path.push_str(&format!("&continue={}", client::query_escape(token)));
            }
            let page: ObjectList<Pod> = self.get_json(&what, &path).await?;
            pods.extend(page.items);
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(pods);
            }
        }
    }

    /// The refused eviction of `pod` with the budgets that select it (or, failing that, the
    /// budget the server's cause names).
    async fn blocked_eviction(&self, pod: &DrainPod, refusal: Refusal) -> Result<BlockedEviction> {
        let mut budgets = self
            .budgets_selecting(&pod.pod.namespace, &pod.labels)
            .await?;
        if budgets.is_empty() {
            budgets = refusal
                .budgets_named()
                .map(|name| format!("{}/{name}", pod.pod.namespace))
                .collect();
        }
        Ok(BlockedEviction {
            pod: pod.pod.clone(),
            budgets,
            message: refusal.to_string(),
        })
    }
}

/// The API path of a pod.
pub(crate) fn pod_path(pod: &PodRef) -> String {
    format!("/api/v1/namespaces/{}/pods/{}", pod.namespace, pod.name)
}

/// [`Error::DrainTimedOut`]'s message: what blocked, what was still terminating.
pub(crate) fn timeout_message(
    node: &str,
    timeout: Duration,
    blocked: &[BlockedEviction],
    terminating: &[PodRef],
) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = blocked.iter().take(SHOWN).map(|b| b.to_string()).collect();
    if blocked.len() > SHOWN {
        parts.push(format!("{} more evictions refused", blocked.len() - SHOWN));
    }
    if !terminating.is_empty() {
        let mut pods: Vec<String> = terminating
            .iter()
            .take(SHOWN)
            .map(|p| p.to_string())
            .collect();
        if terminating.len() > SHOWN {
            pods.push(format!("and {} more", terminating.len() - SHOWN));
        }
        parts.push(format!(
            "evicted but still terminating: {}",
            pods.join(", ")
        ));
    }
    format!(
        "draining node {node} did not finish within {}: {}",
        humanize(timeout),
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vkube_test_support::kube_api::fixtures::POD_LIST;

    fn recorded_pods_on(node: &str) -> Vec<Pod> {
        let list: ObjectList<Pod> = serde_json::from_str(POD_LIST).unwrap();
        list.items
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect()
    }

    fn names(pods: &[DrainPod]) -> Vec<&str> {
        pods.iter().map(|p| p.pod.name.as_str()).collect()
    }

    #[test]
    fn daemon_set_and_mirror_pods_stay_everything_else_is_evicted() {
        let worker = classify(recorded_pods_on("demo-workers-0"));
        assert_eq!(
            names(&worker.evict),
            [
                "web-6d4cf56db6-q7m2x",
                "db-0",
                "debug",
                "report-28751040-8kq5z"
            ]
        );
        let unmanaged: Vec<&str> = worker
            .evict
            .iter()
            .filter(|p| p.unmanaged)
            .map(|p| p.pod.name.as_str())
            .collect();
        assert_eq!(unmanaged, ["debug"]);
        assert_eq!(
            worker.skipped,
            [
                SkippedPod {
                    pod: PodRef {
                        namespace: "kube-system".into(),
                        name: "cilium-p4v9k".into()
                    },
                    reason: SkipReason::DaemonSet
                },
                SkippedPod {
                    pod: PodRef {
                        namespace: "kube-system".into(),
                        name: "kube-proxy-9fz4q".into()
                    },
                    reason: SkipReason::DaemonSet
                },
            ]
        );
        let control_plane = classify(recorded_pods_on("demo-cp-0"));
        assert_eq!(names(&control_plane.evict), ["coredns-7db6d8ff4d-k2m4z"]);
        let reasons: Vec<(&str, SkipReason)> = control_plane
            .skipped
            .iter()
            .map(|s| (s.pod.name.as_str(), s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("kube-apiserver-demo-cp-0", SkipReason::Mirror),
                ("etcd-demo-cp-0", SkipReason::Mirror),
                ("cilium-x8d2w", SkipReason::DaemonSet),
            ]
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        let mut wait = backoff.initial;
        let mut waits = vec![wait];
        for _ in 0..3 {
            wait = backoff.next(wait);
            waits.push(wait);
        }
        assert_eq!(waits, [100, 200, 350, 350].map(Duration::from_millis));
    }

    #[test]
    fn zero_durations_are_refused() {
        let mut options = DrainOptions::default();
        assert!(check_options(&options).is_ok());
        options.poll_interval = Duration::ZERO;
        let err = check_options(&options).unwrap_err().to_string();
        assert!(err.contains("poll interval"), "{err}");
        options = DrainOptions {
            retry: Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(1),
            },
            ..DrainOptions::default()
        };
        assert!(check_options(&options).is_err());
    }

    #[test]
    fn the_timeout_message_names_budgets_and_terminating_pods() {
        let pod = |name: &str| PodRef {
            namespace: "default".into(),
            name: name.into(),
        };
        let blocked = BlockedEviction {
            pod: pod("web-1"),
            budgets: vec!["default/web".into()],
            message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        };
        let text = timeout_message(
            "demo-workers-0",
            Duration::from_secs(120),
            &[blocked],
            &[pod("db-0")],
        );
        assert_eq!(
            text,
            "draining node demo-workers-0 did not finish within 2m: eviction of pod \
             default/web-1 blocked by PodDisruptionBudget default/web (Cannot evict pod as it \
             would violate the pod's disruption budget.); evicted but still terminating: \
             default/db-0"
        );
    }
}
