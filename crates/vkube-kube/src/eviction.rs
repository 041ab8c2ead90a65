//! Evicting one pod for a drain: `POST …/pods/<name>/eviction` (policy/v1 `Eviction`),
//! retried while the API server refuses it (429 from a PodDisruptionBudget, 500 when several
//! budgets select the pod, or the API being briefly unreachable) until the deadline, then
//! followed until the pod is gone.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::time::Instant;

use crate::budgets::budget_named_in;
use crate::client::{self, KubeClient};
use crate::drain::{pod_path, DrainOptions, DrainPod};
use crate::error::{Error, Redactor, Result};

/// How the eviction of one pod ended.
#[derive(Debug)]
pub(crate) enum EvictionOutcome {
    /// Evicted, and the pod is gone (or replaced by another pod of the same name).
    Gone,
    /// Evicted, but the pod was still terminating at the deadline.
    Terminating,
    /// Still refused at the deadline.
    Refused(Refusal),
}

/// The API server's refusal of an eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// HTTP status: 429, or 500 for several budgets.
    pub(crate) status: u16,
    /// The `Status` message.
    pub(crate) message: String,
    /// The messages of its `details.causes`.
    pub(crate) causes: Vec<String>,
    /// `details.retryAfterSeconds`.
    pub(crate) retry_after: Option<Duration>,
}

impl Refusal {
    /// The budgets its causes name.
    pub(crate) fn budgets_named(&self) -> impl Iterator<Item = &str> {
        self.causes.iter().filter_map(|c| budget_named_in(c))
    }

    fn parse(status: u16, body: &[u8]) -> Refusal {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct StatusBody {
            message: String,
            details: Details,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default, rename_all = "camelCase")]
        struct Details {
            causes: Vec<Cause>,
            retry_after_seconds: Option<u64>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Cause {
            message: String,
        }
        let parsed: StatusBody = serde_json::from_slice(body).unwrap_or_default();
        let message = if parsed.message.is_empty() {
            format!("HTTP {status}")
        } else {
            parsed.message
        };
        Refusal {
            status,
            message,
            causes: parsed
                .details
                .causes
                .into_iter()
                .map(|c| c.message)
                .filter(|m| !m.is_empty())
                .collect(),
            retry_after: parsed
                .details
                .retry_after_seconds
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        }
    }
}

impl fmt::Display for Refusal {
    /// The message, then the causes in parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.causes.is_empty() {
            write!(f, " ({})", self.causes.join("; "))?;
        }
        Ok(())
    }
}

/// What one eviction request got.
enum Attempt {
    Granted,
    /// 404: the pod is already gone.
    AlreadyGone,
    Refused(Refusal),
    /// The API could not be asked (transient: unreachable, 5xx other than several budgets).
    Unavailable(Error),
}

/// Whether a pod still stands.
enum PodState {
    Gone,
    Present,
}

impl KubeClient {
    /// Evicts `pod`, retrying refusals until `deadline`, and follows it until it is gone;
    /// returns the outcome and how many attempts were refused.
    pub(crate) async fn evict_and_follow(
        &self,
        pod: &DrainPod,
        options: &DrainOptions,
        deadline: Instant,
    ) -> Result<(EvictionOutcome, u32)> {
        let mut wait = options.retry.initial;
        let mut refusals = 0;
        loop {
            match self.request_eviction(pod, options).await? {
                Attempt::Granted => break,
                Attempt::AlreadyGone => return Ok((EvictionOutcome::Gone, refusals)),
                Attempt::Refused(refusal) => {
                    refusals += 1;
                    if refusals == 1 {
                        tracing::info!(pod = %pod.pod, reason = %refusal, "eviction refused, retrying");
                    } else {
                        tracing::debug!(pod = %pod.pod, reason = %refusal, "eviction refused again");
                    }
                    let pause = refusal
                        .retry_after
                        .map_or(wait, |after| after.min(options.retry.max).max(wait));
                    if !sleep_before(deadline, pause).await {
                        return Ok((EvictionOutcome::Refused(refusal), refusals));
                    }
                }
                Attempt::Unavailable(error) => {
                    tracing::debug!(pod = %pod.pod, %error, "eviction not answered, retrying");
                    if !sleep_before(deadline, wait).await {
                        return Err(error);
                    }
                }
            }
            wait = options.retry.next(wait);
        }
        tracing::info!(pod = %pod.pod, "evicted");
        loop {
            if let PodState::Gone = self.pod_state(pod).await? {
                return Ok((EvictionOutcome::Gone, refusals));
            }
            if !sleep_before(deadline, options.poll_interval).await {
                return Ok((EvictionOutcome::Terminating, refusals));
            }
        }
    }

    async fn request_eviction(&self, pod: &DrainPod, options: &DrainOptions) -> Result<Attempt> {
        let what = format!("eviction of pod {}", pod.pod);
        let mut eviction = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.pod.name, "namespace": pod.pod.namespace},
        });
        if let Some(grace) = options.grace_period {
            eviction["deleteOptions"] = json!({"gracePeriodSeconds": grace.as_secs()});
        }
        let path = format!("{}/eviction", pod_path(&pod.pod));
        let request = client::with_json_body(
            &what,
            http::Method::POST,
            &path,
            "application/json",
            &eviction,
        )?;
        let answer = match self.exchange(request).await {
            Ok(answer) => answer,
            Err(error) if error.is_transient() => return Ok(Attempt::Unavailable(error)),
            Err(error) => return Err(error),
        };
        let refusal = || Refusal::parse(answer.status, &answer.body);
        Ok(match answer.status {
            200..=299 => Attempt::Granted,
            404 => Attempt::AlreadyGone,
            429 => Attempt::Refused(refusal()),
            // Several budgets select the pod: refused until someone removes one.
            500 if refusal()
                .message
                .contains("more than one PodDisruptionBudget") =>
            {
                Attempt::Refused(refusal())
            }
            _ => {
                let error = self.failure(&what, &answer, &Redactor::default());
                if error.is_transient() {
                    Attempt::Unavailable(error)
                } else {
                    return Err(error);
                }
            }
        })
    }

    /// Whether the evicted pod still stands: a pod of the same name with another UID is a
    /// replacement (a StatefulSet's), so the evicted one is gone.
    async fn pod_state(&self, pod: &DrainPod) -> Result<PodState> {
        let what = format!("GET of evicted pod {}", pod.pod);
        let found: Option<Pod> = match self.get_json_if_found(&what, &pod_path(&pod.pod)).await {
            Ok(found) => found,
            // Following the pod is best effort until the deadline.
            Err(error) if error.is_transient() => return Ok(PodState::Present),
            Err(error) => return Err(error),
        };
        Ok(match found {
            Some(current) if current.metadata.uid.as_deref() == Some(pod.uid.as_str()) => {
                PodState::Present
            }
            _ => PodState::Gone,
        })
    }
}

/// Sleeps `pause`, or until `deadline` if that comes first (so a last attempt happens at
/// the deadline); `false` at once when the deadline has passed.
async fn sleep_before(deadline: Instant, pause: Duration) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    tokio::time::sleep(pause.min(deadline - now)).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use vkube_test_support::kube_api::fixtures::{
        STATUS_429_EVICTION_BLOCKED, STATUS_500_EVICTION_MULTIPLE_BUDGETS,
    };

    #[test]
    fn recorded_refusals_are_read_with_their_causes() {
        let blocked = Refusal::parse(429, STATUS_429_EVICTION_BLOCKED.as_bytes());
        assert_eq!(
            blocked.to_string(),
            "Cannot evict pod as it would violate the pod's disruption budget. (The disruption \
             budget web needs 2 healthy pods and has 2 currently)"
        );
        assert_eq!(blocked.budgets_named().collect::<Vec<_>>(), ["web"]);
        assert_eq!(blocked.retry_after, None);
        let several = Refusal::parse(500, STATUS_500_EVICTION_MULTIPLE_BUDGETS.as_bytes());
        assert!(several
            .message
            .contains("more than one PodDisruptionBudget"));
        assert!(several.causes.is_empty());
        let processing = Refusal::parse(
            429,
            br#"{"kind":"Status","message":"m","details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web is still being processed by the server."}],"retryAfterSeconds":10},"code":429}"#,
        );
        assert_eq!(processing.retry_after, Some(Duration::from_secs(10)));
        assert_eq!(Refusal::parse(429, b"").message, "HTTP 429");
    }
}
