//! Node health checks of the control plane and node pools
//! (`spec.controlPlane.healthCheck`, `spec.nodePools[].healthCheck`), read
//! as Cluster API's MachineHealthCheck: a node is unhealthy when one of its
//! conditions has held a listed status for longer than that entry's timeout,
//! or when it has not registered with the API server `nodeStartupTimeout`
//! after power-on; unhealthy nodes are replaced while at most `maxUnhealthy`
//! of the group are unhealthy.
//!
//! This module holds the validated [`HealthCheck`], its validation from
//! [`RawHealthCheck`] and its canonical YAML form. Deciding health and what
//! to replace is the planner's (`plan::health`). Health settings are not
//! part of [`NodeGroup::spec_hash`](super::NodeGroup::spec_hash): changing
//! them never replaces a node.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bounds::{
    quoted, MAX_HEALTH_TIMEOUT, MAX_UNHEALTHY_CONDITIONS, MIN_NODE_STARTUP_TIMEOUT,
};
use super::duration::{format_duration, parse_duration};
use super::error::Problems;
use super::raw::{RawHealthCheck, RawIntOrPercent, RawUnhealthyCondition};

/// The node condition the default health check watches.
pub const READY_CONDITION: &str = "Ready";
/// How long `Ready` may be `False` or `Unknown` by default.
pub const DEFAULT_UNHEALTHY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long after power-on a node may stay unregistered by default.
pub const DEFAULT_NODE_STARTUP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The status of a Kubernetes condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown` (for `Ready`: the kubelet stopped posting, or has not yet).
    Unknown,
}

impl ConditionStatus {
    /// As Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }

    fn parse(text: &str) -> Option<ConditionStatus> {
        [
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unhealthy condition: `kind` has had `status` for longer than
/// `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnhealthyCondition {
    pub(crate) kind: String,
    pub(crate) status: ConditionStatus,
    pub(crate) timeout: Duration,
}

impl UnhealthyCondition {
    /// Condition type, e.g. `Ready`.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The status that is unhealthy.
    pub fn status(&self) -> ConditionStatus {
        self.status
    }
    /// How long it must hold.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for UnhealthyCondition {
    /// `Ready=False for 5m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} for {}",
            self.kind,
            self.status,
            format_duration(self.timeout)
        )
    }
}

/// How many unhealthy nodes of a group may be remediated at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxUnhealthy {
    /// At most this many.
    Count(u32),
    /// At most this percentage of the group's nodes, rounded down (as
    /// Cluster API does: `40%` of 3 nodes is 1).
    Percent(u32),
}

impl MaxUnhealthy {
    /// How many of `total` nodes may be unhealthy for remediation to go on.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            MaxUnhealthy::Count(count) => count as usize,
            MaxUnhealthy::Percent(percent) => total * percent as usize / 100,
        }
    }
}

impl fmt::Display for MaxUnhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnhealthy::Count(count) => write!(f, "{count}"),
            MaxUnhealthy::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

/// A validated `healthCheck`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub(crate) unhealthy_conditions: Vec<UnhealthyCondition>,
    pub(crate) node_startup_timeout: Option<Duration>,
    pub(crate) max_unhealthy: MaxUnhealthy,
}

impl Default for HealthCheck {
    /// `Ready` `False` or `Unknown` for 5m, 10m to register, 100%.
    fn default() -> HealthCheck {
        HealthCheck {
            unhealthy_conditions: [ConditionStatus::False, ConditionStatus::Unknown]
                .into_iter()
                .map(|status| UnhealthyCondition {
                    kind: READY_CONDITION.into(),
                    status,
                    timeout: DEFAULT_UNHEALTHY_TIMEOUT,
                })
                .collect(),
            node_startup_timeout: Some(DEFAULT_NODE_STARTUP_TIMEOUT),
            max_unhealthy: MaxUnhealthy::Percent(100),
        }
    }
}

impl HealthCheck {
    /// The conditions that make a node unhealthy, in spec order.
    pub fn unhealthy_conditions(&self) -> &[UnhealthyCondition] {
        &self.unhealthy_conditions
    }
    /// How long a powered-on node may stay unregistered; `None`: no limit.
    pub fn node_startup_timeout(&self) -> Option<Duration> {
        self.node_startup_timeout
    }
    /// The remediation limit.
    pub fn max_unhealthy(&self) -> MaxUnhealthy {
        self.max_unhealthy
    }

    /// The YAML form with every default written out.
    pub(crate) fn to_raw(&self) -> RawHealthCheck {
        RawHealthCheck {
            unhealthy_conditions: Some(
                self.unhealthy_conditions
                    .iter()
                    .map(|c| RawUnhealthyCondition {
                        kind: c.kind.clone(),
                        status: c.status.as_str().into(),
                        timeout: format_duration(c.timeout),
                    })
                    .collect(),
            ),
            node_startup_timeout: Some(format_duration(
                self.node_startup_timeout.unwrap_or(Duration::ZERO),
            )),
            max_unhealthy: Some(match self.max_unhealthy {
                MaxUnhealthy::Count(count) => RawIntOrPercent::Count(i64::from(count)),
                MaxUnhealthy::Percent(percent) => RawIntOrPercent::Text(format!("{percent}%")),
            }),
        }
    }
}

/// Validates `raw`, the `healthCheck` at `at` (e.g. `spec.nodePools[1]`),
/// recording problems under `at.healthCheck.…`; `None` when any was found.
pub(crate) fn validate_health_check(
    p: &mut Problems,
    at: &str,
    raw: &RawHealthCheck,
) -> Option<HealthCheck> {
    let at = format!("{at}.healthCheck");
    let before = p.list.len();
    let defaults = HealthCheck::default();
    let unhealthy_conditions = match &raw.unhealthy_conditions {
        None => defaults.unhealthy_conditions,
        Some(list) => validate_conditions(p, &format!("{at}.unhealthyConditions"), list),
    };
    let node_startup_timeout = match &raw.node_startup_timeout {
        None => defaults.node_startup_timeout,
        Some(text) => {
            let field = format!("{at}.nodeStartupTimeout");
            match parse_duration(text) {
                Err(e) => {
                    p.push(field, e);
                    None
                }
                Ok(Duration::ZERO) => None,
                Ok(timeout) if timeout < MIN_NODE_STARTUP_TIMEOUT => {
                    p.push(
                        field,
                        format!(
                            "{} is shorter than the {} a VM needs to boot and join (`0` turns the check off)",
                            format_duration(timeout),
                            format_duration(MIN_NODE_STARTUP_TIMEOUT)
                        ),
                    );
                    None
                }
                Ok(timeout) => check_at_most(p, &field, timeout),
            }
        }
    };
    let max_unhealthy = match &raw.max_unhealthy {
        None => Some(defaults.max_unhealthy),
        Some(value) => parse_max_unhealthy(value)
            .map_err(|e| p.push(format!("{at}.maxUnhealthy"), e))
            .ok(),
    };
    if p.list.len() != before {
        return None;
    }
    Some(HealthCheck {
        unhealthy_conditions,
        node_startup_timeout,
        max_unhealthy: max_unhealthy?,
    })
}

fn validate_conditions(
    p: &mut Problems,
    at: &str,
    raws: &[RawUnhealthyCondition],
) -> Vec<UnhealthyCondition> {
    if raws.is_empty() {
        p.push(
            at,
            "lists no condition: name at least one, or leave the field out for `Ready` `False` or `Unknown` for 5m",
        );
    }
    if raws.len() > MAX_UNHEALTHY_CONDITIONS {
        p.push(
            at,
            format!("{} entries, at most {MAX_UNHEALTHY_CONDITIONS}", raws.len()),
        );
    }
    let mut conditions: Vec<UnhealthyCondition> = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        let field = |name: &str| format!("{at}[{index}].{name}");
        let kind = raw.kind.trim();
        let kind_ok = check_condition_type(kind)
            .map_err(|e| p.push(field("type"), e))
            .is_ok();
        let status = match ConditionStatus::parse(raw.status.trim()) {
            Some(ConditionStatus::True) if kind == READY_CONDITION => {
                p.push(field("status"), "`Ready` `True` is a healthy node");
                None
            }
            Some(status) => Some(status),
            None => {
                p.push(
                    field("status"),
                    format!(
                        "`{}` is not one of `True`, `False`, `Unknown` (quote them in YAML: \"False\")",
                        quoted(raw.status.trim())
                    ),
                );
                None
            }
        };
        let timeout = match parse_duration(&raw.timeout) {
            Err(e) => {
                p.push(field("timeout"), e);
                None
            }
            Ok(Duration::ZERO) => {
                p.push(
                    field("timeout"),
                    "must be longer than 0: every node passes through a short `NotReady` while it starts",
                );
                None
            }
            Ok(timeout) => check_at_most(p, &field("timeout"), timeout),
        };
        let (Some(status), Some(timeout), true) = (status, timeout, kind_ok) else {
            continue;
        };
        if let Some(other) = conditions
            .iter()
            .position(|c| c.kind == kind && c.status == status)
        {
            p.push(
                field("type"),
                format!("`{kind}` `{status}` is already listed at {at}[{other}]"),
            );
            continue;
        }
        conditions.push(UnhealthyCondition {
            kind: kind.to_owned(),
            status,
            timeout,
        });
    }
    conditions
}

fn check_at_most(p: &mut Problems, field: &str, timeout: Duration) -> Option<Duration> {
    if timeout > MAX_HEALTH_TIMEOUT {
        p.push(
            field,
            format!(
                "{} is longer than the {} a health check may wait",
                format_duration(timeout),
                format_duration(MAX_HEALTH_TIMEOUT)
            ),
        );
        return None;
    }
    Some(timeout)
}

/// A node condition type: `Ready`, `DiskPressure`, or one a node problem
/// detector sets (`KernelDeadlock`, `example.com/Frozen`).
fn check_condition_type(kind: &str) -> Result<(), String> {
    let valid = !kind.is_empty()
        && kind.len() <= 128
        && kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a node condition type like `Ready` or `DiskPressure`",
            quoted(kind)
        ))
    }
}

fn parse_max_unhealthy(value: &RawIntOrPercent) -> Result<MaxUnhealthy, String> {
    let count = |count: i64| {
        u32::try_from(count)
            .map(MaxUnhealthy::Count)
            .map_err(|_| format!("{count} is not a count of nodes (0 or more)"))
    };
    match value {
        RawIntOrPercent::Count(n) => count(*n),
        RawIntOrPercent::Text(text) => {
            let text = text.trim();
            let bad = || {
                format!(
                    "`{}` is not a count like `2` or a percentage like `40%`",
                    quoted(text)
                )
            };
            match text.strip_suffix('%') {
                Some(number) => {
                    let percent: u32 = number.parse().map_err(|_| bad())?;
                    if percent > 100 {
                        return Err(format!("{percent}% is more than 100%"));
                    }
                    Ok(MaxUnhealthy::Percent(percent))
                }
                None => count(text.parse().map_err(|_| bad())?),
            }
        }
    }
}
