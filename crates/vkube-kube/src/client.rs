//! [`KubeClient`]: a kube-rs client for one cluster, with vkube's timeouts and error mapping,
//! and the [`ClusterApi`] implementation.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::access::ClusterAccess;
use crate::api::{AppliedObject, ClusterApi, ServerVersion};
use crate::discovery::DiscoveryCache;
use crate::drain::{DrainOptions, DrainReport};
use crate::error::{self, Error, Redactor, Result};
use crate::health::ApiHealth;
use crate::nodes::{Deletion, NodeInfo};

/// How long a manifest waits, at most, for a CustomResourceDefinition applied earlier in the
/// same stream to be served (the API server establishes CRDs asynchronously, usually within a
/// second or two).
pub const DEFAULT_CRD_ESTABLISH_WAIT: Duration = Duration::from_secs(30);

/// A client for one cluster's API server. Cheap to clone; clones share the connection pool and
/// the discovery cache.
///
/// Must be created inside a Tokio runtime (kube spawns its request buffer on it).
#[derive(Clone)]
pub struct KubeClient {
    pub(crate) client: kube::Client,
    pub(crate) endpoint: String,
    pub(crate) timeout: Duration,
    pub(crate) discovery: DiscoveryCache,
    pub(crate) crd_establish_wait: Duration,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A success answer: HTTP status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl KubeClient {
    /// A client for `access`: TLS verified against `access.ca_pem` only, client certificate
    /// authentication, `access.timeout` for connecting and for every request.
    pub fn new(access: &ClusterAccess) -> Result<KubeClient> {
        let validated = access.validate()?;
        Self::from_config(validated.endpoint, validated.config, access.timeout)
    }

    /// A client from a kubeconfig document (its current context), as kubectl would use it;
    /// `timeout` bounds connecting and every request.
    pub async fn from_kubeconfig_text(text: &str, timeout: Duration) -> Result<KubeClient> {
        if timeout.is_zero() {
            return Err(Error::InvalidAccess {
                reason: "the timeout must be greater than zero".into(),
            });
        }
        // Parse errors may quote the offending value; never let a key or token through.
        let redactor = kubeconfig_secrets(text);
        let invalid = |e: &dyn std::fmt::Display| Error::InvalidAccess {
            reason: redactor.scrub(&format!("the kubeconfig is not usable: {e}")),
        };
        let kubeconfig = kube::config::Kubeconfig::from_yaml(text).map_err(|e| invalid(&e))?;
        let options = kube::config::KubeConfigOptions::default();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| invalid(&e))?;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let endpoint = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        Self::from_config(endpoint, config, timeout)
    }

    fn from_config(endpoint: String, config: kube::Config, timeout: Duration) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidAccess {
                reason: "a KubeClient must be created inside a Tokio runtime".into(),
            });
        }
        crate::tls::ensure_default_provider();
        let client = kube::Client::try_from(config).map_err(|e| Error::InvalidAccess {
            reason: format!("cannot build a client for {endpoint}: {e}"),
        })?;
        Ok(KubeClient {
            client,
            endpoint,
            timeout,
            discovery: DiscoveryCache::default(),
            crd_establish_wait: DEFAULT_CRD_ESTABLISH_WAIT,
        })
    }

    /// The same client with another bound on waiting for CRDs of a stream to be served.
    pub fn with_crd_establish_wait(mut self, wait: Duration) -> KubeClient {
        self.crd_establish_wait = wait;
        self
    }

    /// The API server URL this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Send `request` and read the whole answer within the timeout, whatever its status;
    /// only transport failures (and the timeout) are errors.
    pub(crate) async fn exchange(&self, request: http::Request<Vec<u8>>) -> Result<Answer> {
        let exchange = async {
            let response = self
                .client
                .send(request.map(kube::client::Body::from))
                .await
                .map_err(|e| match e {
                    // Token or exec-plugin credentials that could not be obtained.
                    kube::Error::Auth(auth) => Error::InvalidAccess {
                        reason: format!("the client credentials are not usable: {auth}"),
                    },
                    other => error::from_transport(&self.endpoint, &other),
                })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(|e| error::from_transport(&self.endpoint, &e))?
                .to_vec();
            Ok::<_, Error>(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| error::timed_out(&self.endpoint, self.timeout))?
    }

    /// Send `request` and read the whole answer within the timeout; non-success statuses
    /// become errors about `what`, with `redactor` applied to the server's message.
    pub(crate) async fn call(
        &self,
        what: &str,
        request: http::Request<Vec<u8>>,
        redactor: &Redactor,
    ) -> Result<Answer> {
        let answer = self.exchange(request).await?;
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(self.failure(what, &answer, redactor))
        }
    }

    /// The error for a non-success `answer` to the operation `what`.
    pub(crate) fn failure(&self, what: &str, answer: &Answer, redactor: &Redactor) -> Error {
        error::from_status(&self.endpoint, what, answer.status, &answer.body, redactor)
    }

    /// `GET path` expecting a JSON body of type `T`.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<T> {
        let answer = self
            .call(what, get(what, path)?, &Redactor::default())
            .await?;
        decode(what, &answer.body)
    }

    /// `GET path` expecting a JSON body of type `T`; `None` for 404.
    pub(crate) async fn get_json_if_found<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<Option<T>> {
        let answer = self.exchange(get(what, path)?).await?;
        match answer.status {
            404 => Ok(None),
            _ if answer.is_success() => decode(what, &answer.body).map(Some),
            _ => Err(self.failure(what, &answer, &Redactor::default())),
        }
    }
}

impl Answer {
    /// Whether the status is 2xx.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `text` percent-encoded for a query value (everything but RFC 3986's unreserved
/// characters).
pub(crate) fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `GET` of `path` accepting JSON.
pub(crate) fn get(what: &str, path: &str) -> Result<http::Request<Vec<u8>>> {
    http::Request::get(path)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| Error::InvalidInput(format!("{what}: {e}")))
}

/// A request with a JSON body of `content_type` (e.g. a merge patch), accepting JSON.
pub(crate) fn with_json_body(
    what: &str,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: &serde_json::Value,
) -> Result<http::Request<Vec<u8>>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body.to_string().into_bytes())
        .map_err(|e| Error::InvalidInput(format!("{what}: {e}")))
}

/// Decode a JSON answer body.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Values of a kubeconfig that must never appear in an error message.
fn kubeconfig_secrets(text: &str) -> Redactor {
    const SECRET_KEYS: [&str; 3] = ["client-key-data:", "token:", "password:"];
    Redactor::new(text.lines().filter_map(|line| {
        let line = line.trim().trim_start_matches("- ");
        SECRET_KEYS.iter().find_map(|key| {
            let value = line.strip_prefix(key)?.trim().trim_matches(['"', '\'']);
            (!value.is_empty()).then(|| value.to_string())
        })
    }))
}

#[async_trait]
impl ClusterApi for KubeClient {
    async fn version(&self) -> Result<ServerVersion> {
        self.get_json("GET /version", "/version").await
    }

    async fn apply_manifest(
        &self,
        yaml_stream: &str,
        field_manager: &str,
    ) -> Result<Vec<AppliedObject>> {
        self.apply_stream(yaml_stream, field_manager).await
    }

    async fn ensure_bootstrap_token(
        &self,
        token_id: &str,
        token_secret: &str,
        expires: SystemTime,
        description: &str,
    ) -> Result<()> {
        self.apply_bootstrap_token(token_id, token_secret, expires, description)
            .await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.list_nodes().await
    }

    async fn node(&self, name: &str) -> Result<Option<NodeInfo>> {
        self.get_node(name).await
    }

    async fn cordon(&self, name: &str) -> Result<NodeInfo> {
        self.set_unschedulable(name, true).await
    }

    async fn uncordon(&self, name: &str) -> Result<NodeInfo> {
        self.set_unschedulable(name, false).await
    }

    async fn drain(&self, name: &str, options: &DrainOptions) -> Result<DrainReport> {
        self.drain_node(name, options).await
    }

    async fn delete_node(&self, name: &str) -> Result<Deletion> {
        self.remove_node(name).await
    }

    async fn etcd_endpoints(&self) -> Result<Vec<crate::EtcdEndpoint>> {
        self.list_etcd_endpoints().await
    }

    async fn api_health(&self) -> Result<ApiHealth> {
        self.readiness().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_escape("spec.nodeName=demo-w-0"),
            "spec.nodeName%3Ddemo-w-0"
        );
        assert_eq!(query_escape("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn kubeconfig_secret_values_are_collected_for_scrubbing() {
        let text = "users:\n- name: admin\n  user:\n    client-key-data: S0VZS0VZS0VZ\n    token: \"abcdef.0123456789abcdef\"\n";
        let redactor = kubeconfig_secrets(text);
        let scrubbed = redactor.scrub("bad S0VZS0VZS0VZ and abcdef.0123456789abcdef");
        assert_eq!(scrubbed, "bad <redacted> and <redacted>");
    }

    #[tokio::test]
    async fn unparsable_kubeconfigs_do_not_echo_the_key() {
        let text = "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    client-key-data: [S0VZS0VZS0VZ\n";
        let err = KubeClient::from_kubeconfig_text(text, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidAccess { .. }), "{err:?}");
        assert!(!err.to_string().contains("S0VZS0VZS0VZ"), "{err}");
    }

    #[test]
    fn clients_need_a_tokio_runtime() {
        let config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        let err = KubeClient::from_config(
            "https://127.0.0.1:6443".into(),
            config,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("inside a Tokio runtime"), "{err}");
    }
}
