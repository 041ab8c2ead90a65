//! The API server's health as it reports it: `GET /readyz` (Kubernetes 1.16 and later; `GET
//! /healthz` where a server or proxy has no `/readyz`). A failing check answers 500 with one
//! line per check, `[-]etcd failed: reason withheld` for the failed ones; no answer at all is
//! [`crate::Error::Unreachable`], whose message is one line.

use std::fmt;

use crate::client::KubeClient;
use crate::error::{Error, Redactor, Result};

/// What `/readyz` said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ApiHealth {
    /// 200 `ok`: the API server serves requests.
    Ready,
    /// It answered but is not ready (e.g. it cannot reach etcd, or is shutting down).
    #[serde(rename_all = "camelCase")]
    NotReady {
        /// The HTTP status, usually 500.
        status: u16,
        /// The checks that failed (`etcd`, `etcd-readiness`, …), or the answer's first line
        /// when it lists none.
        failed_checks: Vec<String>,
    },
}

impl ApiHealth {
    /// Whether the server is ready.
    pub fn is_ready(&self) -> bool {
        matches!(self, ApiHealth::Ready)
    }
}

impl fmt::Display for ApiHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiHealth::Ready => f.write_str("ready"),
            ApiHealth::NotReady {
                status,
                failed_checks,
            } => write!(
                f,
                "not ready (HTTP {status}): {} failed",
                failed_checks.join(", ")
            ),
        }
    }
}

/// The failed checks of a health answer: the names of the `[-]name failed…` lines, else
/// its first line (cut to 200 characters).
fn failed_checks(body: &str) -> Vec<String> {
    let failed: Vec<String> = body
        .lines()
        .filter_map(|line| line.trim().strip_prefix("[-]"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    if !failed.is_empty() {
        return failed;
    }
    let first = body.lines().map(str::trim).find(|l| !l.is_empty());
    vec![first.unwrap_or("no detail").chars().take(200).collect()]
}

impl KubeClient {
    pub(crate) async fn readiness(&self) -> Result<ApiHealth> {
        let answer = match self.health_answer("/readyz").await? {
            (404, _) => self.health_answer("/healthz").await?,
            found => found,
        };
        match answer {
            (200, _) => Ok(ApiHealth::Ready),
            (status @ (500 | 503), body) => Ok(ApiHealth::NotReady {
                status,
                failed_checks: failed_checks(&body),
            }),
            (status, body) => Err(crate::error::from_status(
                &self.endpoint,
                "GET /readyz",
                status,
                body.as_bytes(),
                &Redactor::default(),
            )),
        }
    }

    async fn health_answer(&self, path: &str) -> Result<(u16, String)> {
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, "text/plain, */*")
            .body(Vec::new())
            .map_err(|e| Error::InvalidInput(format!("GET {path}: {e}")))?;
        let answer = self.exchange(request).await?;
        Ok((
            answer.status,
            String::from_utf8_lossy(&answer.body).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vkube_test_support::kube_api::fixtures::READYZ_ETCD_FAILED;

    #[test]
    fn failed_checks_are_read_from_the_recorded_answer() {
        assert_eq!(
            failed_checks(READYZ_ETCD_FAILED),
            ["etcd", "etcd-readiness"]
        );
        assert_eq!(failed_checks("\nshutting down\n"), ["shutting down"]);
        let health = ApiHealth::NotReady {
            status: 500,
            failed_checks: failed_checks(READYZ_ETCD_FAILED),
        };
        assert_eq!(
            health.to_string(),
            "not ready (HTTP 500): etcd, etcd-readiness failed"
        );
        assert_eq!(
            serde_json::to_value(&health).unwrap(),
            serde_json::json!({"state": "notReady", "status": 500, "failedChecks": ["etcd", "etcd-readiness"]})
        );
    }
}
