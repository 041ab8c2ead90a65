//! The runtime's error type: each variant names the cluster, node or field.

use vkube_core::cluster::Problem;

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One node that could not be brought to its desired state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeFailure {
    /// VM name.
    pub node: String,
    /// What was being done.
    pub step: crate::progress::StepKind,
    /// vCenter's fault, as one line.
    pub message: String,
}

/// What can stop an apply or delete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec does not validate.
    #[error(transparent)]
    Spec(#[from] vkube_core::cluster::Error),
    /// Paths in the spec that do not resolve in vCenter, all at once.
    #[error("the spec does not match vCenter:{}", problems.iter().map(|p| format!("\n  {}: {}", p.field, p.message)).collect::<String>())]
    Placement {
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// A vCenter call failed.
    #[error(transparent)]
    Vsphere(#[from] vkube_vsphere::Error),
    /// The state store failed or refused.
    #[error(transparent)]
    Store(#[from] vkube_store::Error),
    /// Some nodes failed; the others were applied.
    #[error("{} node(s) of cluster `{cluster}` failed:{}", failures.len(), failures.iter().map(|f| format!("\n  {} ({}): {}", f.node, f.step, f.message)).collect::<String>())]
    NodesFailed {
        /// Cluster name.
        cluster: String,
        /// Each failure.
        failures: Vec<NodeFailure>,
    },
    /// The plan did not converge within the allowed passes.
    #[error("cluster `{cluster}` did not converge after {passes} passes; run apply again")]
    NotConverged {
        /// Cluster name.
        cluster: String,
        /// Passes made.
        passes: usize,
    },
    /// A role-catalog slot is bound to a path that does not fit.
    #[error("binding slot `{slot}`: {problem}")]
    Binding {
        /// The slot.
        slot: vkube_core::roles::Slot,
        /// What is wrong, naming the path.
        problem: String,
    },
    /// A role-catalog slot is bound to an object of the wrong kind.
    #[error("slot `{slot}` is bound to `{path}`, which is a {found}, not a {expected}")]
    SlotMismatch {
        /// The slot.
        slot: vkube_core::roles::Slot,
        /// The bound path.
        path: String,
        /// What the object is.
        found: String,
        /// What the slot needs.
        expected: String,
    },
    /// The cluster's own vCenter user (CPI/CSI) lacks privileges.
    #[error("cloud user `{user}` lacks {} privilege(s) that the vSphere CPI/CSI need:{}\n  grant them with `vkube roles apply vsphere-cpi|vsphere-csi --principal {user} --bind …`", missing.len(), missing.iter().map(|m| format!("\n  {} on `{}` ({}, role {})", m.privilege, m.object, m.profile, m.role)).collect::<String>())]
    CloudUserLacksPrivileges {
        /// The user.
        user: String,
        /// Every missing privilege.
        missing: Vec<crate::cloud::MissingPrivilege>,
    },
    /// The cluster has not been bootstrapped far enough for this.
    #[error("cluster `{cluster}` has no {missing} yet: run `vkube cluster apply` first")]
    NotBootstrapped {
        /// Cluster name.
        cluster: String,
        /// What is missing.
        missing: String,
    },
    /// A scale named a node group the cluster does not have.
    #[error("cluster `{cluster}` has no node pool `{group}`")]
    NoSuchGroup {
        /// Cluster name.
        cluster: String,
        /// The group asked for.
        group: String,
    },
    /// The cluster folder holds VMs of this cluster that this state did not
    /// create (another state file's, or a lost one's): nothing is changed.
    #[error("{}", crate::ownership::foreign_message(cluster, folder, known_uid.as_deref(), found, unmarked))]
    ForeignVms {
        /// Cluster name.
        cluster: String,
        /// The cluster folder's path.
        folder: String,
        /// The uid this state knows the cluster by, if it knows it.
        known_uid: Option<String>,
        /// The VMs found, by the uid their markers carry.
        found: std::collections::BTreeMap<String, Vec<String>>,
        /// VMs named as this cluster's nodes without any vkube marker.
        unmarked: Vec<String>,
    },
    /// The cluster's VMs exist but the state holds no key material for it.
    #[error("cluster `{cluster}` has node VMs ({}) but this state holds no key material (PKI) for it, and a new one would not be trusted by them: an adoption stopped before it finished; run `vkube cluster adopt -f SPEC` again", crate::ownership::quoted(nodes))]
    MissingKeyMaterial {
        /// Cluster name.
        cluster: String,
        /// Its node VMs.
        nodes: Vec<String>,
    },
    /// The cluster was adopted with a new PKI, which its nodes do not
    /// trust: no node can join it.
    #[error("cluster `{cluster}` was adopted with `--new-pki`: its nodes trust a CA this state does not hold, so new node(s) {} could not join; scaling down, resizing and deleting work, growing or replacing nodes does not", crate::ownership::quoted(nodes))]
    UntrustedPki {
        /// Cluster name.
        cluster: String,
        /// The nodes the plan would create.
        nodes: Vec<String>,
    },
    /// `vkube cluster adopt` cannot take the cluster over.
    #[error("cannot adopt cluster `{cluster}`: {reason}")]
    AdoptRefused {
        /// Cluster name.
        cluster: String,
        /// Why, and what to do.
        reason: String,
    },
    /// An input file or value vkube was given cannot be used.
    #[error("{what}: {problem}")]
    Input {
        /// What was read, e.g. "CA file `ca.pem`".
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// An add-on cannot be rendered from the cluster's settings.
    #[error(transparent)]
    Addon(#[from] vkube_core::addons::Error),
    /// A call to the cluster's Kubernetes API failed.
    #[error(transparent)]
    Kubernetes(#[from] vkube_kube::Error),
    /// A step was not started because vCenter had stopped answering.
    #[error("not started: {reason}")]
    NotStarted {
        /// The first call vCenter did not answer.
        reason: String,
    },
    /// vCenter stopped answering during an apply: no further step is
    /// started.
    #[error("{detail}; no further step was started (running the apply again when vCenter answers is safe)")]
    VcenterSilent {
        /// The first call vCenter did not answer.
        detail: String,
    },
    /// `--wait ready` ran out of time: some nodes never registered with
    /// Kubernetes, or never became Ready.
    #[error("cluster `{cluster}`: not every node was Ready within {}{}{}{}", vkube_core::cluster::format_duration(*timeout), crate::kube_view::listed("\n  never registered with Kubernetes: ", never_registered), crate::kube_view::listed("\n  registered but not Ready: ", not_ready), api.as_ref().map(|a| format!("\n  the API server did not answer: {a}")).unwrap_or_default())]
    NotReady {
        /// Cluster name.
        cluster: String,
        /// How long the apply waited.
        timeout: std::time::Duration,
        /// Nodes whose Node object never appeared.
        never_registered: Vec<String>,
        /// Nodes registered but not `Ready=True`.
        not_ready: Vec<String>,
        /// Why the API server could not be asked, when it could not.
        api: Option<String>,
    },
    /// The plan kept waiting (for a replacement to be Ready, for etcd, for
    /// the API server) longer than the apply's timeout.
    #[error("cluster `{cluster}`: still waiting after {}:{}", vkube_core::cluster::format_duration(*timeout), holds.iter().map(|h| format!("\n  {h}")).collect::<String>())]
    StillHeld {
        /// Cluster name.
        cluster: String,
        /// How long the apply waited.
        timeout: std::time::Duration,
        /// What the plan waits for, one line each.
        holds: Vec<String>,
    },
    /// A call to the cluster's etcd failed.
    #[error(transparent)]
    Etcd(#[from] vkube_kube::etcd::EtcdError),
    /// A role catalog names privilege ids this vCenter does not know.
    #[error("refusing to apply role profile `{profile}`: this vCenter does not know {count} privilege ids (listed above); rerun with `--skip-unknown` to leave them out")]
    UnknownPrivileges {
        /// The catalog's profile.
        profile: String,
        /// How many ids.
        count: usize,
    },
    /// Existing roles' privileges differ from the catalog's.
    #[error("refusing to change existing role(s) {}: their privileges differ from profile `{profile}` (see `--dry-run`) and vCenter cannot tell whether vkube created them; rerun with `--adopt-roles` to make them match", roles.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))]
    RolesDiffer {
        /// The roles.
        roles: Vec<String>,
        /// The catalog's profile.
        profile: String,
    },
    /// A grant would replace the principal's `Admin` permission.
    #[error("refusing to grant `{role}` on `{path}` to `{principal}`: it would replace that principal's `Admin` permission there")]
    WouldReplaceAdmin {
        /// The role granted.
        role: String,
        /// Where.
        path: String,
        /// To whom.
        principal: String,
    },
    /// vCenter's tags contradict the topology file.
    #[error("vCenter's tags conflict with the topology file ({} conflicts); nothing was changed; pass `--force` to detach the tags in the way:{}", conflicts.len(), conflicts.iter().map(|c| format!("\n  {c}")).collect::<String>())]
    ZoneConflicts {
        /// The conflicts.
        conflicts: Vec<vkube_core::topology::Conflict>,
    },
    /// A step of a zones setup failed.
    #[error("step {} of {total}: {step} ({index} done; re-run `vkube zones setup` to finish): {source}", index + 1)]
    ZoneStep {
        /// Steps done before it.
        index: usize,
        /// Steps in the plan.
        total: usize,
        /// The step.
        step: String,
        /// Why (boxed: the variant stays small).
        source: Box<vkube_vsphere::Error>,
    },
    /// A topology file or plan is unusable.
    #[error(transparent)]
    Topology(#[from] vkube_core::topology::Error),
    /// A role catalog cannot be planned.
    #[error(transparent)]
    Roles(#[from] vkube_core::roles::Error),
    /// Stored data could not be read back.
    #[error("stored {what} of cluster `{cluster}` is unreadable: {detail}")]
    Corrupt {
        /// Cluster name.
        cluster: String,
        /// What was read.
        what: String,
        /// Why it failed.
        detail: String,
    },
}

impl Error {
    /// Whether the user can fix this (bad spec, missing object, missing privilege, …).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Spec(_)
            | Error::Placement { .. }
            | Error::Binding { .. }
            | Error::SlotMismatch { .. }
            | Error::NotBootstrapped { .. }
            | Error::Input { .. }
            | Error::NoSuchGroup { .. }
            | Error::ForeignVms { .. }
            | Error::MissingKeyMaterial { .. }
            | Error::UntrustedPki { .. }
            | Error::AdoptRefused { .. }
            | Error::Addon(_)
            | Error::CloudUserLacksPrivileges { .. }
            | Error::NodesFailed { .. }
            | Error::NotConverged { .. }
            | Error::NotReady { .. }
            | Error::StillHeld { .. }
            | Error::UnknownPrivileges { .. }
            | Error::RolesDiffer { .. }
            | Error::WouldReplaceAdmin { .. }
            | Error::ZoneConflicts { .. }
            | Error::Topology(_)
            | Error::Roles(_) => true,
            Error::ZoneStep { .. } | Error::NotStarted { .. } | Error::VcenterSilent { .. } => {
                false
            }
            Error::Store(e) => !matches!(
                e,
                vkube_store::Error::Database { .. }
                    | vkube_store::Error::Io { .. }
                    | vkube_store::Error::Corrupt { .. }
            ),
            Error::Kubernetes(e) => !matches!(e, vkube_kube::Error::Decode { .. }),
            // Refusals (quorum, no such member) are the user's; transport is not.
            Error::Etcd(e) => !e.is_transient(),
            Error::Vsphere(_) | Error::Corrupt { .. } => false,
        }
    }
}
