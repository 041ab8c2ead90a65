//! Workloads: DaemonSets and Deployments of a pod template, and the
//! PodDisruptionBudgets that guard them.

use serde::{Serialize, Serializer};

use super::meta::{Labels, Meta, Object, SpecBody};
use super::pod::PodTemplate;

/// `spec` of a DaemonSet.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DaemonSetSpec {
    selector: Selector,
    update_strategy: Strategy,
    template: PodTemplate,
}

/// `spec` of a Deployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeploymentSpec {
    replicas: u32,
    selector: Selector,
    strategy: Strategy,
    template: PodTemplate,
}

/// `spec` of a PodDisruptionBudget.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DisruptionBudgetSpec {
    max_unavailable: u32,
    selector: Selector,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: Labels,
}

impl Selector {
    fn of(labels: &Labels) -> Selector {
        Selector {
            match_labels: labels.clone(),
        }
    }
}

/// How a workload replaces its pods.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub(crate) enum Strategy {
    /// A few pods at a time.
    RollingUpdate {
        /// How many.
        #[serde(rename = "rollingUpdate")]
        rolling_update: RollingUpdate,
    },
    /// All old pods stopped before new ones start (Deployments only).
    Recreate,
}

/// How many pods a rolling update replaces at once.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RollingUpdate {
    max_unavailable: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_surge: Option<Amount>,
}

impl Strategy {
    /// At most `max_unavailable` pods down, and (Deployments) at most
    /// `max_surge` extra ones up, at a time.
    pub(crate) fn rolling(max_unavailable: Amount, max_surge: Option<Amount>) -> Strategy {
        Strategy::RollingUpdate {
            rolling_update: RollingUpdate {
                max_unavailable,
                max_surge,
            },
        }
    }
}

/// A number of pods, absolute or as a share of the desired ones.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Amount {
    /// That many pods.
    Pods(u32),
    /// That percentage of the pods (`25%`).
    Percent(u8),
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Amount::Pods(count) => serializer.serialize_u32(*count),
            Amount::Percent(share) => serializer.collect_str(&format_args!("{share}%")),
        }
    }
}

/// A DaemonSet of `template`, replaced `max_unavailable` nodes at a time.
pub(crate) fn daemon_set(
    meta: Meta,
    max_unavailable: u32,
    template: PodTemplate,
) -> Object<SpecBody<DaemonSetSpec>> {
    let spec = DaemonSetSpec {
        selector: Selector::of(template.selector()),
        update_strategy: Strategy::rolling(Amount::Pods(max_unavailable), None),
        template,
    };
    Object::new("apps/v1", "DaemonSet", meta, SpecBody { spec })
}

/// A Deployment of `replicas` pods of `template`, replaced by `strategy`.
pub(crate) fn deployment(
    meta: Meta,
    replicas: u32,
    strategy: Strategy,
    template: PodTemplate,
) -> Object<SpecBody<DeploymentSpec>> {
    let spec = DeploymentSpec {
        replicas,
        selector: Selector::of(template.selector()),
        strategy,
        template,
    };
    Object::new("apps/v1", "Deployment", meta, SpecBody { spec })
}

/// A PodDisruptionBudget allowing `max_unavailable` pods labelled
/// `selector` down at once (voluntary disruptions: drains, evictions).
pub(crate) fn pod_disruption_budget(
    meta: Meta,
    selector: &Labels,
    max_unavailable: u32,
) -> Object<SpecBody<DisruptionBudgetSpec>> {
    let spec = DisruptionBudgetSpec {
        max_unavailable,
        selector: Selector::of(selector),
    };
    Object::new("policy/v1", "PodDisruptionBudget", meta, SpecBody { spec })
}
