//! A stand-in for kube-apiserver: a test double serving recorded answers of a real 1.30 API
//! server ([`fixtures`]) over mutual TLS, and emulating the behaviour clients rely on
//! (discovery, server-side apply, CRDs becoming served, namespaces, get/list/delete, merge
//! patches, health endpoints, the Eviction API with PodDisruptionBudgets; see `cluster.rs`
//! and `cluster/pods.rs`). No real API server can run here.
//!
//! - TLS: either the test's CA ([`StandInOptions::with_ca`], e.g. the cluster CA vkube
//!   generated) issues the server certificate for the listen IP and is the only CA whose
//!   client certificates are accepted, or a fixed server certificate and client CA are given
//!   ([`StandInOptions::with_server_certificate`]). Only aws-lc-rs is used.
//! - Address: any socket address ([`StandInOptions::listen`]), e.g. a cluster's VIP such as
//!   `127.0.8.5:6443`; by default a free port on 127.0.0.1.
//! - Recording: every request (method, path, query, content type, body, status, client
//!   certificate) and every client certificate with its subject's CN and O, plus helpers
//!   ([`StandIn::requests_matching`], [`StandIn::applied_objects`]).
//! - Cluster state: objects stored by the test ([`StandIn::put_object`], whole recorded lists
//!   with [`StandIn::put_items`], e.g. [`fixtures::NODE_LIST`]), read back and removed
//!   ([`StandIn::object`], [`StandIn::remove_object`]); pods deleted or evicted go at once or
//!   stay terminating until removed ([`StandIn::set_pod_termination`]).
//! - Answers set by the test per route ([`StandIn::respond`], [`StandIn::respond_sequence`],
//!   [`StandIn::respond_with`]) take precedence over the emulation, e.g. an Eviction
//!   answered 429 and then 201, or a recorded 403 for one object.
//! - Running: [`StandIn::start`] on a thread and runtime of its own (synchronous tests, such
//!   as the CLI's that run the `vkube` binary), or [`StandIn::start_async`] on the caller's
//!   runtime. Either stops on drop.
//!
//! ```no_run
//! use vkube_test_support::kube_api::{fixtures, Reply, StandIn, StandInOptions, TestCa};
//!
//! let ca = TestCa::new("kubernetes");
//! let stand_in = StandIn::start(
//!     StandInOptions::with_ca(&ca.cert_pem, &ca.key_pem)
//!         .listen("127.0.8.5:6443".parse().unwrap()),
//! );
//! stand_in.respond(
//!     "PATCH",
//!     "/apis/rbac.authorization.k8s.io/v1/clusterroles/cilium",
//!     Reply::json(403, fixtures::STATUS_403_FORBIDDEN),
//! );
//! // … run the client against stand_in.endpoint() …
//! for applied in stand_in.applied_objects() {
//!     println!("{} {:?}/{}", applied.kind, applied.namespace, applied.name);
//! }
//! ```

mod cluster;
pub mod fixtures;
mod pki;
mod reply;
mod request;
mod selector;
mod server;
mod stand_in;
mod x509;

pub use cluster::PodTermination;
pub use pki::{Issued, TestCa, KUBERNETES_SERVICE_NAMES};
pub use reply::{status_body, Reply};
pub use request::{AppliedObject, ClientCertificate, Recorded, APPLY_PATCH};
pub use stand_in::{StandIn, StandInOptions};
