//! The operations vkube needs from a cluster, as a trait so that the runtime can be tested with
//! a fake. Object-safe (`Arc<dyn ClusterApi>`) and `Send + Sync`, so the runtime can hold one
//! per cluster and call it from spawned tasks. Every result is typed ([`NodeInfo`],
//! [`DrainReport`], [`ApiHealth`]): callers never see the API's JSON.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::drain::{DrainOptions, DrainReport};
use crate::error::Result;
use crate::health::ApiHealth;
use crate::nodes::{Deletion, NodeInfo};

/// What vkube asks of a cluster's API server.
#[async_trait]
pub trait ClusterApi: Send + Sync {
    /// `GET /version`: the server's build, and the cheapest proof that the API answers and
    /// accepts the client credentials.
    async fn version(&self) -> Result<ServerVersion>;

    /// Server-side apply (with `force`, so vkube owns the fields it sets) of every document of a
    /// multi-document YAML stream, in stream order; returns what was applied, in order.
    ///
    /// The whole stream is parsed and checked before the first request. Kinds are resolved
    /// through API discovery (cached per client); a CustomResourceDefinition applied earlier in
    /// the stream makes its kinds usable by later documents. Namespaced objects without a
    /// namespace go to `default`, as with kubectl. Stops at the first failure; applying the
    /// same stream again is safe.
    async fn apply_manifest(
        &self,
        yaml_stream: &str,
        field_manager: &str,
    ) -> Result<Vec<AppliedObject>>;

    /// Create or update the kube-system Secret `bootstrap-token-<token_id>` that lets kubelets
    /// join with the token `<token_id>.<token_secret>` until `expires` — the Secret
    /// `kubeadm token create` writes (authentication and signing usages, extra group
    /// `system:bootstrappers:kubeadm:default-node-token`).
    async fn ensure_bootstrap_token(
        &self,
        token_id: &str,
        token_secret: &str,
        expires: SystemTime,
        description: &str,
    ) -> Result<()>;

    /// Every Node (`GET /api/v1/nodes`, page by page), in name order.
    async fn nodes(&self) -> Result<Vec<NodeInfo>>;

    /// One Node; `None` when it is not registered (404).
    async fn node(&self, name: &str) -> Result<Option<NodeInfo>>;

    /// Marks the node unschedulable (`spec.unschedulable: true`, a merge patch, as `kubectl
    /// cordon`); returns it as stored. Idempotent; [`crate::Error::NotFound`] when there is no
    /// such node.
    async fn cordon(&self, name: &str) -> Result<NodeInfo>;

    /// Makes the node schedulable again (removes `spec.unschedulable`); returns it as stored.
    async fn uncordon(&self, name: &str) -> Result<NodeInfo>;

    /// Cordons the node and evicts its pods through the Eviction API, honouring
    /// PodDisruptionBudgets (see [`DrainOptions`] and the `drain` module): DaemonSet and
    /// mirror pods stay; a refused eviction is retried until the timeout, then the drain fails
    /// with [`crate::Error::DrainTimedOut`] naming the budgets in the way — or, with
    /// `force`, deletes those pods instead. Returns what was evicted, deleted and skipped.
    /// A failed drain leaves the node cordoned ([`uncordon`](Self::uncordon) undoes it).
    async fn drain(&self, name: &str, options: &DrainOptions) -> Result<DrainReport>;

    /// Deletes the Node object (after its VM is drained, before the VM is destroyed).
    /// Deleting a node that does not exist is [`Deletion::AlreadyAbsent`], not an error.
    async fn delete_node(&self, name: &str) -> Result<Deletion>;

    /// Where the cluster's etcd members serve clients, from kubeadm's etcd static pods in
    /// `kube-system` (see [`crate::EtcdEndpoint`]); empty when there are none.
    async fn etcd_endpoints(&self) -> Result<Vec<crate::EtcdEndpoint>>;

    /// The API server's readiness (`GET /readyz`): [`ApiHealth::NotReady`] when it answers
    /// but a check fails; [`crate::Error::Unreachable`] (one line) when it does not answer.
    async fn api_health(&self) -> Result<ApiHealth>;
}

// Checked when compiling: the runtime holds `Arc<dyn ClusterApi>` across spawned tasks, so
// the trait must stay object-safe, `Send` and `Sync`.
const _: fn() = || {
    fn holdable<T: ?Sized + Send + Sync>() {}
    holdable::<dyn ClusterApi>();
};

/// The API server's build information (`GET /version`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerVersion {
    /// `major`, e.g. `1`.
    pub major: String,
    /// `minor`, e.g. `30` (some distributions append `+`).
    pub minor: String,
    /// `gitVersion`, e.g. `v1.30.4`.
    pub git_version: String,
    /// `platform`, e.g. `linux/amd64`.
    pub platform: String,
}

impl ServerVersion {
    /// Major and minor version as numbers, from `gitVersion` (`v1.30.4-eks-1` → `(1, 30)`),
    /// falling back to the `major`/`minor` fields.
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let from_git = || {
            let mut parts = self.git_version.strip_prefix('v')?.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some((major, minor))
        };
        let from_fields = || {
            let digits = |s: &str| s.trim_end_matches('+').parse().ok();
            Some((digits(&self.major)?, digits(&self.minor)?))
        };
        from_git().or_else(from_fields)
    }
}

/// One object of a manifest, by identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `DaemonSet`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    /// `DaemonSet kube-system/cilium`, `ClusterRole cilium`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Whether an apply created the object or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    /// The object did not exist (HTTP 201).
    Created,
    /// The object existed and now carries the applied fields (HTTP 200; possibly unchanged).
    Configured,
}

/// The result of applying one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppliedObject {
    /// Which object.
    pub object: ObjectRef,
    /// Created or configured.
    pub outcome: ApplyOutcome,
    /// `metadata.resourceVersion` after the apply, as the server returned it.
    pub resource_version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(git: &str, major: &str, minor: &str) -> ServerVersion {
        ServerVersion {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            platform: "linux/amd64".into(),
        }
    }

    #[test]
    fn major_minor_reads_git_version_then_the_fields() {
        assert_eq!(version("v1.30.4", "1", "30").major_minor(), Some((1, 30)));
        assert_eq!(
            version("v1.29.8-eks-a737599", "1", "29+").major_minor(),
            Some((1, 29))
        );
        assert_eq!(version("custom", "1", "31+").major_minor(), Some((1, 31)));
        assert_eq!(version("custom", "", "").major_minor(), None);
    }

    #[test]
    fn server_version_reads_the_recorded_version_answer() {
        let body = vkube_test_support::kube_api::fixtures::VERSION_1_30;
        let version: ServerVersion = serde_json::from_str(body).unwrap();
        assert_eq!(version, self::version("v1.30.4", "1", "30"));
    }

    #[test]
    fn object_refs_read_like_kubectl_output() {
        let mut object = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            namespace: Some("kube-system".into()),
            name: "cilium".into(),
        };
        assert_eq!(object.to_string(), "DaemonSet kube-system/cilium");
        object.namespace = None;
        object.kind = "ClusterRole".into();
        assert_eq!(object.to_string(), "ClusterRole cilium");
    }
}
