//! [`EtcdClient`]: HTTP/1.1 over rustls (aws-lc-rs) with the client certificate, to etcd's
//! JSON gateway on any member's client URL.

use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::access::EtcdAccess;
use super::error::EtcdError;
use super::health::{
    judge, ClusterHealth, MemberHealth, MemberState, MemberStatus, WireHealth, WireStatus,
};
use super::members::{EtcdMember, MemberId, MemberList, WireMember, WireMembers};
use super::quorum::check_removal;
use crate::error::{humanize, one_line, transport_failure, TransportFailure};

/// A client for one cluster's etcd. Cheap to clone (clones share the connection pool).
/// Must be used inside a Tokio runtime.
#[derive(Clone)]
pub struct EtcdClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoints: Vec<String>,
    timeout: Duration,
    removal_settle: Duration,
}

/// How long a removal is retried while etcd refuses it as `unhealthy cluster` (its own
/// check wants peers active for 5 s, e.g. after a leadership move or a member's restart).
pub const DEFAULT_REMOVAL_SETTLE: Duration = Duration::from_secs(15);

/// The pause between such retries.
const SETTLE_POLL: Duration = Duration::from_millis(500);

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    /// The member removed.
    pub removed: EtcdMember,
    /// The members left, as the member that carried out the removal lists them.
    pub remaining: Vec<EtcdMember>,
    /// The member that took over leadership, when the removed member led.
    pub leadership_moved_to: Option<EtcdMember>,
}

/// An answer of any status.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl EtcdClient {
    /// A client for `access` (validated: endpoints, CA, client certificate and key).
    pub fn new(access: &EtcdAccess) -> Result<EtcdClient, EtcdError> {
        let (endpoints, tls) = access.validate()?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(access.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(tcp);
        let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(EtcdClient {
            http,
            endpoints,
            timeout: access.timeout,
            removal_settle: DEFAULT_REMOVAL_SETTLE,
        })
    }

    /// The endpoints asked first.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The members (sorted by name, then ID), from the first endpoint that answers.
    pub async fn members(&self) -> Result<MemberList, EtcdError> {
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            match self.member_list_at(endpoint).await {
                Ok(list) => return Ok(list),
                Err(error) if error.is_transient() => failures.push(error.to_string()),
                Err(error) => return Err(error),
            }
        }
        Err(EtcdError::NoEndpointAnswered { failures })
    }

    async fn member_list_at(&self, endpoint: &str) -> Result<MemberList, EtcdError> {
        let wire: WireMembers = self
            .post(
                endpoint,
                "/v3/cluster/member/list",
                &json!({}),
                "member list",
            )
            .await?;
        Ok(MemberList {
            cluster_id: MemberId(wire.header.cluster_id),
            members: sorted(wire.members),
            answered_by: endpoint.to_string(),
        })
    }

    /// Every member's health, each asked at its own client URLs (concurrently).
    pub async fn health(&self) -> Result<ClusterHealth, EtcdError> {
        let list = self.members().await?;
        let members = futures::future::join_all(
            list.members
                .into_iter()
                .map(|member| self.member_health(member)),
        )
        .await;
        Ok(ClusterHealth {
            cluster_id: list.cluster_id,
            members,
        })
    }

    async fn member_health(&self, member: EtcdMember) -> MemberHealth {
        if member.client_urls.is_empty() {
            return MemberHealth {
                member,
                endpoint: None,
                state: MemberState::NotStarted,
            };
        }
        let mut last_failure = String::new();
        for endpoint in &member.client_urls {
            match self.endpoint_state(endpoint).await {
                Ok(state) => {
                    return MemberHealth {
                        endpoint: Some(endpoint.clone()),
                        member,
                        state,
                    }
                }
                Err(error) => last_failure = error.to_string(),
            }
        }
        MemberHealth {
            member,
            endpoint: None,
            state: MemberState::Unreachable {
                reason: last_failure,
            },
        }
    }

    /// The health of the member at `endpoint`: `Err` only when it does not answer at all.
    pub async fn endpoint_state(&self, endpoint: &str) -> Result<MemberState, EtcdError> {
        let endpoint = endpoint.trim_end_matches('/');
        let health = self
            .send(endpoint, http::Method::GET, "/health", None)
            .await?;
        let wire: WireHealth = serde_json::from_slice(&health.body).unwrap_or_default();
        let status = self.status(endpoint).await.map_err(|e| e.to_string());
        Ok(judge(health.status, &wire, status))
    }

    /// `POST /v3/maintenance/status` of the member at `endpoint`.
    pub async fn status(&self, endpoint: &str) -> Result<MemberStatus, EtcdError> {
        let wire: WireStatus = self
            .post(endpoint, "/v3/maintenance/status", &json!({}), "status")
            .await?;
        Ok(wire.into())
    }

    /// Removes `target` from the cluster after checking every member: refused
    /// ([`EtcdError::RemovalRefused`]) when it is the last member or the members left would
    /// lack a healthy quorum (see [`check_removal`]). When `target` leads, leadership moves
    /// to a healthy member first. The removal is sent to a healthy member other than
    /// `target`. etcd itself refuses a removal for a few seconds after peers (re)connect
    /// (`etcdserver: unhealthy cluster`: its own check wants 5 s of activity); such refusals
    /// are retried, checks included, within the settle window
    /// ([`with_removal_settle`](Self::with_removal_settle)).
    pub async fn remove_member(&self, target: MemberId) -> Result<Removal, EtcdError> {
        let deadline = Instant::now() + self.removal_settle;
        let mut leadership_moved_to = None;
        loop {
            let health = self.health().await?;
            check_removal(&health, target)?;
            let removed = health
                .member(target)
                .map(|m| m.member.clone())
                .expect("check_removal found it");
            let Some((successor, via)) = health
                .members
                .iter()
                .filter(|m| m.member.id != target && !m.member.is_learner)
                .filter(|m| m.state.is_healthy())
                .find_map(|m| {
                    m.endpoint
                        .clone()
                        .map(|endpoint| (m.member.clone(), endpoint))
                })
            else {
                return Err(EtcdError::RemovalRefused {
                    member: removed.to_string(),
                    reason: "no other healthy voting member answers to carry out the removal"
                        .into(),
                });
            };
            let leader = health.leader().filter(|l| l.member.id == target);
            if let Some(endpoint) = leader.and_then(|l| l.endpoint.clone()) {
                self.move_leader(&endpoint, successor.id).await?;
                tracing::info!(from = %removed, to = %successor, "etcd leadership moved");
                leadership_moved_to = Some(successor);
            }
            let what = format!("removal of member {removed}");
            let body = json!({"ID": target.0.to_string()});
            match self
                .post::<WireMembers>(&via, "/v3/cluster/member/remove", &body, &what)
                .await
            {
                Ok(wire) => {
                    tracing::info!(member = %removed, "etcd member removed");
                    return Ok(Removal {
                        removed,
                        remaining: sorted(wire.members),
                        leadership_moved_to,
                    });
                }
                Err(EtcdError::Api { message, .. }) if message.contains("member not found") => {
                    return Err(EtcdError::NoSuchMember {
                        member: removed.to_string(),
                    })
                }
                Err(error) if settling(&error) && Instant::now() < deadline => {
                    tracing::debug!(member = %removed, %error, "etcd not ready for the removal yet");
                    tokio::time::sleep(SETTLE_POLL).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The same client with another bound on retrying removals etcd refuses while its peers
    /// settle.
    pub fn with_removal_settle(mut self, settle: Duration) -> EtcdClient {
        self.removal_settle = settle;
        self
    }

    /// Asks the leader at `leader_endpoint` to hand leadership to `to`.
    pub async fn move_leader(&self, leader_endpoint: &str, to: MemberId) -> Result<(), EtcdError> {
        let _: Value = self
            .post(
                leader_endpoint,
                "/v3/maintenance/transfer-leadership",
                &json!({"targetID": to.0.to_string()}),
                &format!("leadership transfer to {to}"),
            )
            .await?;
        Ok(())
    }

    /// `POST path` with a JSON body, expecting a JSON answer of type `T`.
    async fn post<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<T, EtcdError> {
        let answer = self
            .send(endpoint, http::Method::POST, path, Some(body))
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(gateway_error(endpoint, what, &answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| EtcdError::Decode {
            endpoint: endpoint.to_string(),
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    async fn send(
        &self,
        endpoint: &str,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, EtcdError> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{endpoint}{path}"))
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| EtcdError::InvalidAccess {
                reason: format!("`{endpoint}{path}` is not a usable URL: {e}"),
            })?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| transport_error(endpoint, &e))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| transport_error(endpoint, &e))?
                .to_bytes()
                .to_vec();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| EtcdError::Unreachable {
                endpoint: endpoint.to_string(),
                reason: format!("no answer within {}", humanize(self.timeout)),
            })?
    }
}

/// etcd's refusals of a membership change that pass once its peers settle.
fn settling(error: &EtcdError) -> bool {
    match error {
        EtcdError::Api {
            status, message, ..
        } => {
            *status == 503
                || [
                    "unhealthy cluster",
                    "not enough started members",
                    "leader changed",
                ]
                .iter()
                .any(|m| message.contains(m))
        }
        _ => false,
    }
}

/// Members by name, then ID (etcd lists them by ID).
fn sorted(members: Vec<WireMember>) -> Vec<EtcdMember> {
    let mut members: Vec<EtcdMember> = members.into_iter().map(EtcdMember::from).collect();
    members.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    members
}

fn transport_error(endpoint: &str, error: &(dyn std::error::Error + 'static)) -> EtcdError {
    match transport_failure(error, "etcd CA") {
        TransportFailure::Tls(reason) => EtcdError::Tls {
            endpoint: endpoint.to_string(),
            reason,
        },
        TransportFailure::Unreachable(reason) => EtcdError::Unreachable {
            endpoint: endpoint.to_string(),
            reason,
        },
    }
}

/// The gateway's error body `{"error": …, "message": …, "code": <gRPC code>}`.
fn gateway_error(endpoint: &str, what: &str, answer: &Answer) -> EtcdError {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Wire {
        message: String,
        error: String,
    }
    let wire: Wire = serde_json::from_slice(&answer.body).unwrap_or_default();
    let message = [wire.message, wire.error]
        .into_iter()
        .find(|m| !m.is_empty())
        .unwrap_or_else(|| one_line(&String::from_utf8_lossy(&answer.body)));
    EtcdError::Api {
        endpoint: endpoint.to_string(),
        what: what.to_string(),
        status: answer.status,
        message,
    }
}
