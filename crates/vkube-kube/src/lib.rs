//! vkube's Kubernetes API client, on kube-rs.
//!
//! [`ClusterApi`] is what the runtime needs from a cluster — the server version (reachability
//! through the VIP), server-side apply of add-on manifest streams, bootstrap tokens, the
//! nodes with their readiness and conditions, cordon, drain through the Eviction API
//! (PodDisruptionBudgets honoured), Node deletion and the API server's readiness — and
//! [`KubeClient`] implements it against a real API server, built from [`ClusterAccess`] (the
//! endpoint, cluster CA and client certificate vkube's admin kubeconfig holds) or from
//! kubeconfig text.
//!
//! # Runtime requirements
//! - A [`KubeClient`] must be created and used inside a Tokio runtime (kube spawns a request
//!   buffer task; timeouts use Tokio's timer).
//! - TLS is rustls with aws-lc-rs. Creating a client installs aws-lc-rs as rustls's
//!   process-wide default crypto provider if no default is installed yet, so the presence of
//!   other providers in the binary cannot make rustls panic.
//!
//! [`etcd`] is the etcd membership client (member list, health, guarded removal) a
//! control-plane replacement needs; it reaches etcd directly with a certificate from the
//! cluster's etcd CA (see its module documentation).
//!
//! Errors ([`Error`]) name the endpoint or the object (`apply of ClusterRole cilium
//! (document 4)`) and never contain key material.

#![deny(missing_docs)]

mod access;
mod api;
mod apply;
mod bootstrap_token;
mod budgets;
mod client;
mod discovery;
mod drain;
mod error;
pub mod etcd;
mod etcd_pods;
mod eviction;
mod health;
mod manifest;
mod nodes;
mod timestamp;
mod tls;

pub use access::ClusterAccess;
pub use api::{AppliedObject, ApplyOutcome, ClusterApi, ObjectRef, ServerVersion};
pub use bootstrap_token::BOOTSTRAP_TOKEN_FIELD_MANAGER;
pub use client::{KubeClient, DEFAULT_CRD_ESTABLISH_WAIT};
pub use drain::{
    Backoff, BlockedEviction, DrainOptions, DrainReport, PodRef, SkipReason, SkippedPod,
    DEFAULT_DRAIN_TIMEOUT,
};
pub use error::{Error, Result};
pub use etcd_pods::{EtcdEndpoint, ETCD_CLIENT_URLS_ANNOTATION};
pub use health::ApiHealth;
pub use nodes::{
    ConditionStatus, Deletion, NodeAddress, NodeCondition, NodeInfo, Readiness, Taint,
    CONTROL_PLANE_LABEL,
};
