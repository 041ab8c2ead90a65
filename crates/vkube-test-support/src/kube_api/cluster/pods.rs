//! Pods going away: `DELETE` of a pod, and the Eviction API (`POST
//! /api/v1/namespaces/<ns>/pods/<name>/eviction`) as the API server's eviction handler decides
//! it (Kubernetes 1.30):
//!
//! - a pod that is `Succeeded`, `Failed` or `Pending`, or already terminating, is deleted
//!   without looking at PodDisruptionBudgets;
//! - otherwise the budgets of its namespace whose selector matches its labels count (an empty
//!   selector matches nothing): more than one answers the recorded 500; one whose status
//!   lags its generation answers 429 (`still being processed`); one with
//!   `status.disruptionsAllowed` 0 answers 429 naming it with its desired and current
//!   healthy counts; else its `disruptionsAllowed` is decremented, the pod entered in
//!   `disruptedPods`, and the pod deleted (201). A pod that is not Ready while the budget
//!   has its healthy pods is deleted without decrementing, as the server does.
//!
//! Deleting removes the pod at once ([`PodTermination::Immediate`]) or, as a kubelet takes
//! its time, marks it terminating (`deletionTimestamp`, `deletionGracePeriodSeconds`) until the
//! test removes it ([`PodTermination::UntilRemoved`]). Pods never scheduled, and deletions
//! with a grace period of 0, go at once either way.

use serde_json::{json, Value};

use super::{bad_request, Cluster};
use crate::kube_api::fixtures::{STATUS_201_EVICTION, STATUS_500_EVICTION_MULTIPLE_BUDGETS};
use crate::kube_api::reply::{status_body, Reply};
use crate::kube_api::request::Recorded;

/// What deleting or evicting a pod does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodTermination {
    /// The pod is gone at once, as if its kubelet had confirmed the deletion immediately.
    #[default]
    Immediate,
    /// The pod stays, terminating (`metadata.deletionTimestamp` set), until the test removes
    /// it with [`crate::kube_api::StandIn::remove_object`].
    UntilRemoved,
}

/// The grace period a pod gets when neither the request nor its spec names one.
const DEFAULT_GRACE_SECONDS: i64 = 30;

impl Cluster {
    /// `DELETE` of a pod: 200 with the pod (terminating or gone), or 404.
    pub(super) fn delete_pod(&mut self, request: &Recorded, name: &str) -> Reply {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let grace = request
            .query_value("gracePeriodSeconds")
            .and_then(|v| v.parse().ok())
            .or_else(|| body["gracePeriodSeconds"].as_i64());
        match self.terminate_pod(&request.path, grace) {
            Some(pod) => Reply::value(200, &pod),
            None => pod_not_found(name),
        }
    }

    /// `POST …/pods/<name>/eviction`.
    pub(super) fn evict(&mut self, request: &Recorded, namespace: &str, name: &str) -> Reply {
        let Ok(eviction) = serde_json::from_slice::<Value>(&request.body) else {
            return bad_request("the eviction body is not a JSON object");
        };
        if eviction["metadata"]["name"] != name {
            return bad_request("name in URL does not match name in Eviction object");
        }
        let pod_path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        let Some(pod) = self.objects.get(&pod_path).cloned() else {
            return pod_not_found(name);
        };
        let grace = eviction["deleteOptions"]["gracePeriodSeconds"].as_i64();
        let evicted = |cluster: &mut Cluster| {
            cluster.terminate_pod(&pod_path, grace);
            Reply::json(201, STATUS_201_EVICTION)
        };
        if budgets_do_not_apply(&pod) {
            return evicted(self);
        }
        let budgets = self.budgets_covering(namespace, &pod);
        let (budget_path, budget) = match budgets.as_slice() {
            [] => return evicted(self),
            [one] => one.clone(),
            _ => return Reply::json(500, STATUS_500_EVICTION_MULTIPLE_BUDGETS),
        };
        let budget_name = budget["metadata"]["name"].as_str().unwrap_or_default();
        let status = &budget["status"];
        let number = |key: &str| status[key].as_i64().unwrap_or(0);
        if number("observedGeneration") < budget["metadata"]["generation"].as_i64().unwrap_or(0) {
            return too_many_requests(
                format!(
                    "The disruption budget {budget_name} is still being processed by the server."
                ),
                Some(10),
            );
        }
        let (desired, current) = (number("desiredHealthy"), number("currentHealthy"));
        if !pod_is_ready(&pod) && current >= desired && desired > 0 {
            return evicted(self);
        }
        if number("disruptionsAllowed") <= 0 {
            return too_many_requests(
                format!(
                    "The disruption budget {budget_name} needs {desired} healthy pods and has \
                     {current} currently"
                ),
                None,
            );
        }
        let mut budget = budget.clone();
        let allowed = number("disruptionsAllowed") - 1;
        budget["status"]["disruptionsAllowed"] = json!(allowed);
        budget["status"]["disruptedPods"][name] = json!(super::now());
        if allowed == 0 {
            if let Some(conditions) = budget["status"]["conditions"].as_array_mut() {
                for condition in conditions
                    .iter_mut()
                    .filter(|c| c["type"] == "DisruptionAllowed")
                {
                    condition["status"] = json!("False");
                    condition["reason"] = json!("InsufficientPods");
                    condition["lastTransitionTime"] = json!(super::now());
                }
            }
        }
        self.resource_version += 1;
        budget["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.objects.insert(budget_path, budget);
        evicted(self)
    }

    /// The PodDisruptionBudgets of `namespace` whose selector matches `pod`, with their paths.
    fn budgets_covering(&self, namespace: &str, pod: &Value) -> Vec<(String, Value)> {
        let prefix = format!("/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/");
        let labels = &pod["metadata"]["labels"];
        self.objects
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(_, budget)| selector_matches(&budget["spec"]["selector"], labels))
            .map(|(path, budget)| (path.clone(), budget.clone()))
            .collect()
    }

    /// Deletes the pod at `path` (removed, or marked terminating); the pod as the answer to
    /// the deletion shows it, `None` when there is none.
    fn terminate_pod(&mut self, path: &str, grace: Option<i64>) -> Option<Value> {
        let mut pod = self.objects.get(path)?.clone();
        let grace = grace
            .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        let scheduled = pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        if self.pod_termination == PodTermination::Immediate || grace <= 0 || !scheduled {
            return self.remove(path);
        }
        if pod["metadata"]["deletionTimestamp"].is_string() {
            return Some(pod);
        }
        let deadline = chrono::Utc::now() + chrono::Duration::seconds(grace);
        pod["metadata"]["deletionTimestamp"] =
            json!(deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        self.resource_version += 1;
        pod["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.objects.insert(path.to_string(), pod.clone());
        Some(pod)
    }
}

/// Pods whose eviction deletes them without consulting budgets: finished, not started, or
/// already terminating.
fn budgets_do_not_apply(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Pending")
    ) || pod["metadata"]["deletionTimestamp"].is_string()
}

fn pod_is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// A `metav1.LabelSelector` (matchLabels and matchExpressions) against a pod's labels, as the
/// eviction handler evaluates it: a missing or empty selector matches nothing, nor does one
/// with an unknown operator.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let match_labels = selector["matchLabels"].as_object();
    let expressions = selector["matchExpressions"].as_array();
    if match_labels.is_none_or(|m| m.is_empty()) && expressions.is_none_or(|e| e.is_empty()) {
        return false;
    }
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let labels_hold = match_labels
        .into_iter()
        .flatten()
        .all(|(key, value)| label(key) == value.as_str());
    let expressions_hold = expressions.into_iter().flatten().all(|expression| {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match expression["operator"].as_str() {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    });
    labels_hold && expressions_hold
}

/// 429 as the eviction handler words it, with the budget's cause.
fn too_many_requests(cause: String, retry_after_seconds: Option<u32>) -> Reply {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if let Some(seconds) = retry_after_seconds {
        details["retryAfterSeconds"] = json!(seconds);
    }
    Reply::json(
        429,
        status_body(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            details,
        ),
    )
}

fn pod_not_found(name: &str) -> Reply {
    Reply::failure(
        404,
        "NotFound",
        &format!("pods \"{name}\" not found"),
        json!({"name": name, "kind": "pods"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_api::fixtures::STATUS_429_EVICTION_BLOCKED;

    #[test]
    fn the_generated_429_is_the_recorded_one() {
        let generated = too_many_requests(
            "The disruption budget web needs 2 healthy pods and has 2 currently".into(),
            None,
        );
        let generated: Value = serde_json::from_slice(&generated.body).unwrap();
        let recorded: Value = serde_json::from_str(STATUS_429_EVICTION_BLOCKED).unwrap();
        assert_eq!(generated, recorded);
    }

    #[test]
    fn label_selectors_match_like_the_eviction_handler() {
        let labels = json!({"app": "web", "tier": "front"});
        let matches = |selector: Value| selector_matches(&selector, &labels);
        assert!(matches(json!({"matchLabels": {"app": "web"}})));
        assert!(!matches(json!({"matchLabels": {"app": "db"}})));
        assert!(matches(json!({"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["web", "db"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "tier", "operator": "NotIn", "values": ["back"]},
            {"key": "tier", "operator": "Exists"},
        ]})));
        assert!(!matches(
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["back"]},
            ]})
        ));
        assert!(!matches(json!({})), "an empty selector matches nothing");
        assert!(!matches(Value::Null));
        assert!(!matches(
            json!({"matchExpressions": [{"key": "app", "operator": "Like"}]})
        ));
    }
}
