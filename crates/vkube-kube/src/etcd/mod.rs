//! etcd membership for control-plane changes: list the members, check every member's
//! health, and remove a member — refusing to remove the last one or one whose removal would
//! leave the rest without a healthy quorum ([`check_removal`]) — over etcd's gRPC JSON
//! gateway (`POST /v3/cluster/member/list`, `/v3/cluster/member/remove`,
//! `/v3/maintenance/status`, `/v3/maintenance/transfer-leadership`, `GET /health`), which
//! etcd serves on its client port next to gRPC (etcd 3.4 and later).
//!
//! # How vkube reaches etcd
//!
//! kubeadm's stacked etcd listens on `https://<node-ip>:2379` and `https://127.0.0.1:2379`,
//! advertises `https://<node-ip>:2379` as the member's client URL, presents a server
//! certificate from the etcd CA naming the node's IP, `localhost`, `127.0.0.1` and `::1`, and
//! accepts any client certificate the etcd CA signed (`--client-cert-auth`). vkube holds that
//! CA (`ClusterPki::etcd_ca`), so it issues itself a short-lived client certificate
//! (`ClusterPki::etcd_client_certificate`, one hour) and talks to each member directly at its
//! client URL — what `etcdctl --endpoints` does from an admin host. That needs vkube to reach
//! the control-plane node IPs on port 2379, the network it already reaches the VIP on.
//!
//! Where that port is filtered, Cluster API's control-plane provider tunnels through the API
//! server instead (`pods/portforward` to the `etcd-<node>` static pod). That route is not
//! implemented yet: the client works against base URLs, so a tunnel's local address
//! (`https://127.0.0.1:<port>`, which the etcd server certificate names) can serve as an
//! endpoint unchanged, one tunnel per member for the per-member health checks.
//!
//! # Safety of a removal
//!
//! [`EtcdClient::remove_member`] first checks every member ([`EtcdClient::health`]), refuses
//! unsafe removals ([`check_removal`]), moves leadership away from the member if it leads
//! (so the cluster does not wait out an election), and sends the removal to another healthy
//! member.

mod access;
mod client;
mod error;
mod health;
mod members;
mod quorum;

pub use access::EtcdAccess;
pub use client::{EtcdClient, Removal, DEFAULT_REMOVAL_SETTLE};
pub use error::EtcdError;
pub use health::{ClusterHealth, MemberHealth, MemberState, MemberStatus};
pub use members::{EtcdMember, MemberId, MemberList};
pub use quorum::{check_removal, quorum_of};
