//! Which PodDisruptionBudgets stand in the way of an eviction: the budgets of the pod's
//! namespace whose label selector matches its labels (read when a drain gives up, to name
//! them), and the budget the API server's 429 names in its `DisruptionBudget` cause.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::ObjectList;

use crate::client::KubeClient;
use crate::error::Result;

/// Whether `selector` selects a pod with `labels`, as the eviction handler decides it: every
/// `matchLabels` entry and every `matchExpressions` term must hold; a missing or empty
/// selector, or one with an operator the API does not define, selects nothing.
pub(crate) fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let match_labels = selector.match_labels.as_ref().filter(|m| !m.is_empty());
    let expressions = selector
        .match_expressions
        .as_ref()
        .filter(|e| !e.is_empty());
    if match_labels.is_none() && expressions.is_none() {
        return false;
    }
    let labels_hold = match_labels
        .into_iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_hold = expressions.into_iter().flatten().all(|term| {
        let value = labels.get(&term.key);
        let values = term.values.as_deref().unwrap_or_default();
        match term.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_hold && expressions_hold
}

/// The budget a `DisruptionBudget` cause names: `The disruption budget web needs 2 healthy
/// pods and has 2 currently`, `The disruption budget web is still being processed by the
/// server.`
pub(crate) fn budget_named_in(cause: &str) -> Option<&str> {
    let rest = cause.strip_prefix("The disruption budget ")?;
    let name = rest.split_whitespace().next()?;
    (!name.is_empty()).then_some(name)
}

impl KubeClient {
    /// The budgets (`namespace/name`) of `namespace` that select a pod with `labels`.
    pub(crate) async fn budgets_selecting(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let path = format!("/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets");
        let what = format!("list of PodDisruptionBudgets in namespace {namespace}");
        let budgets: ObjectList<PodDisruptionBudget> = self.get_json(&what, &path).await?;
        Ok(budgets
            .items
            .iter()
            .filter(|budget| {
                let selector = budget.spec.as_ref().and_then(|s| s.selector.as_ref());
                selector_matches(selector, labels)
            })
            .filter_map(|budget| budget.metadata.name.as_ref())
            .map(|name| format!("{namespace}/{name}"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use vkube_test_support::kube_api::fixtures::PDB_LIST;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn term(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn selectors_match_like_the_eviction_handler() {
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        let by_labels = |pairs: &[(&str, &str)]| LabelSelector {
            match_labels: Some(labels(pairs)),
            match_expressions: None,
        };
        let by_terms = |terms: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: None,
            match_expressions: Some(terms),
        };
        assert!(selector_matches(Some(&by_labels(&[("app", "web")])), &pod));
        assert!(!selector_matches(Some(&by_labels(&[("app", "db")])), &pod));
        assert!(selector_matches(
            Some(&by_terms(vec![
                term("app", "In", &["web", "db"]),
                term("tier", "NotIn", &["back"]),
                term("tier", "Exists", &[]),
                term("canary", "DoesNotExist", &[]),
            ])),
            &pod
        ));
        assert!(!selector_matches(
            Some(&by_terms(vec![term("app", "NotIn", &["web"])])),
            &pod
        ));
        assert!(!selector_matches(
            Some(&by_terms(vec![term("app", "Like", &["web"])])),
            &pod
        ));
        assert!(
            !selector_matches(Some(&LabelSelector::default()), &pod),
            "empty: nothing"
        );
        assert!(!selector_matches(None, &pod));
    }

    #[test]
    fn recorded_budgets_select_their_pods() {
        let list: ObjectList<PodDisruptionBudget> = serde_json::from_str(PDB_LIST).unwrap();
        let selecting = |pod: &BTreeMap<String, String>| -> Vec<String> {
            list.items
                .iter()
                .filter(|b| selector_matches(b.spec.as_ref().unwrap().selector.as_ref(), pod))
                .map(|b| b.metadata.name.clone().unwrap())
                .collect()
        };
        assert_eq!(
            selecting(&labels(&[
                ("app", "web"),
                ("pod-template-hash", "6d4cf56db6")
            ])),
            ["web"]
        );
        assert_eq!(selecting(&labels(&[("app", "db")])), ["db"]);
        assert!(selecting(&labels(&[("run", "debug")])).is_empty());
    }

    #[test]
    fn causes_name_their_budget() {
        assert_eq!(
            budget_named_in("The disruption budget web needs 2 healthy pods and has 2 currently"),
            Some("web")
        );
        assert_eq!(
            budget_named_in("The disruption budget db is still being processed by the server."),
            Some("db")
        );
        assert_eq!(budget_named_in("something else"), None);
    }
}
