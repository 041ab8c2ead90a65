//! The [`Journal`] trait: the operation journal (intents) and the event log
//! of each cluster.
//!
//! An *intent* is written before each vCenter change and completed after
//! it. After a crash, an intent with no completion tells the next run which
//! action may be half-done (a clone that may have produced a VM), so it can
//! look for exactly that object in vCenter instead of guessing. The journal
//! does not decide anything: the next run still plans from what it
//! observes, then closes the old intent as `Abandoned`.
//!
//! *Events* are the human-readable history behind `vkube cluster events`
//! and `describe`: what happened, when, at which level.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::lock::Fence;
use crate::time::Timestamp;

text_enum! {
    /// What an intent is about to do in vCenter. Stored as text.
    pub enum IntentAction {
        /// Clone a node's VM.
        CreateNode,
        /// Change a node VM's hardware or extra config.
        ReconfigureNode,
        /// Power a node's VM on.
        PowerOnNode,
        /// Power a node's VM off.
        PowerOffNode,
        /// Destroy a node's VM.
        DeleteNode,
        /// Create the cluster's VM folder.
        CreateFolder,
        /// Delete the cluster's VM folder.
        DeleteFolder,
        /// Attach the ownership tag to an object.
        AttachTag,
        /// Cordon a node and evict its pods.
        DrainNode,
        /// Remove a control-plane node's etcd member.
        RemoveEtcdMember,
        /// Delete a node's Node object.
        DeleteNodeObject,
        /// Make a drained node schedulable again.
        UncordonNode,
    }
}

text_enum! {
    /// How serious an event is. Stored as text.
    pub enum EventLevel {
        /// Progress.
        Info,
        /// Something needs attention but the apply goes on.
        Warning,
        /// A step failed.
        Error,
    }
}

/// Identifies an intent; never reused, even after its cluster is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IntentId(i64);

impl IntentId {
    /// The id as stored.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// An id read back from elsewhere (e.g. an intent's own log line).
    pub const fn from_raw(id: i64) -> Self {
        IntentId(id)
    }
}

impl std::fmt::Display for IntentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How an intent ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "message", rename_all = "PascalCase")]
pub enum IntentOutcome {
    /// vCenter confirmed the change.
    Succeeded,
    /// vCenter refused or the task failed; the message says why.
    Failed(String),
    /// A later run found the intent open (its process stopped mid-action)
    /// and closed it after observing vCenter; the message says what it
    /// found.
    Abandoned(String),
}

impl IntentOutcome {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            IntentOutcome::Succeeded => "Succeeded",
            IntentOutcome::Failed(_) => "Failed",
            IntentOutcome::Abandoned(_) => "Abandoned",
        }
    }

    pub(crate) fn message(&self) -> Option<&str> {
        match self {
            IntentOutcome::Succeeded => None,
            IntentOutcome::Failed(message) | IntentOutcome::Abandoned(message) => Some(message),
        }
    }

    pub(crate) fn parse(outcome: &str, message: Option<String>) -> Option<Self> {
        let message = || message.clone().unwrap_or_default();
        match outcome {
            "Succeeded" => Some(IntentOutcome::Succeeded),
            "Failed" => Some(IntentOutcome::Failed(message())),
            "Abandoned" => Some(IntentOutcome::Abandoned(message())),
            _ => None,
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// Its id.
    pub id: IntentId,
    /// The cluster.
    pub cluster: String,
    /// The node concerned, for node actions.
    pub node: Option<String>,
    /// What was about to be done.
    pub action: IntentAction,
    /// The caller's details (the step, the VM name and tag it will carry).
    pub detail: serde_json::Value,
    /// When it was recorded.
    pub started_at: Timestamp,
    /// When it was completed; `None` while open.
    pub completed_at: Option<Timestamp>,
    /// How it ended; `None` while open.
    pub outcome: Option<IntentOutcome>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Position in the log (increasing; orders events of one second).
    pub sequence: i64,
    /// The cluster.
    pub cluster: String,
    /// When it happened.
    pub at: Timestamp,
    /// How serious it is.
    pub level: EventLevel,
    /// A short CamelCase reason, e.g. `NodeCreated`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// The node concerned, if any.
    pub node: Option<String>,
}

impl Event {
    /// An event not yet appended (sequence 0 until the store assigns one).
    pub(crate) fn new(
        cluster: &str,
        at: Timestamp,
        level: EventLevel,
        kind: &str,
        message: &str,
        node: Option<&str>,
    ) -> Event {
        Event {
            sequence: 0,
            cluster: cluster.to_owned(),
            at,
            level,
            kind: kind.to_owned(),
            message: message.to_owned(),
            node: node.map(str::to_owned),
        }
    }
}

/// The operation journal and event log.
///
/// Every method runs in its own transaction and is safe for several
/// processes sharing one state. Times are passed in, never read. Intents
/// are fenced by the apply lock (see [`Fence`]); events are not.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Records that `action` is about to be done; call (and let it commit)
    /// before the vCenter call. Not idempotent: each call adds an intent,
    /// so a caller retrying after a lost answer should first look at
    /// [`open_intents`](Self::open_intents). Fails with `ClusterNotFound`,
    /// or `LockLost` (then nothing may be done in vCenter either).
    async fn record_intent(
        &self,
        fence: &Fence,
        node: Option<&str>,
        action: IntentAction,
        detail: &serde_json::Value,
        now: Timestamp,
    ) -> Result<IntentId>;

    /// Closes an intent. Idempotent: completing it again keeps the first
    /// outcome and returns it. Fails with `IntentNotFound` (also once its
    /// cluster has been removed, or when it belongs to another cluster than
    /// the fence's) or `LockLost`.
    async fn complete_intent(
        &self,
        fence: &Fence,
        id: IntentId,
        outcome: IntentOutcome,
        now: Timestamp,
    ) -> Result<Intent>;

    /// Intents never completed, oldest first: after a crash, the actions
    /// that may be half-done. Fails with `ClusterNotFound`.
    async fn open_intents(&self, cluster: &str) -> Result<Vec<Intent>>;

    /// Appends an event. Fails with `ClusterNotFound`, or `Invalid` for an
    /// empty kind.
    async fn append_event(
        &self,
        cluster: &str,
        now: Timestamp,
        level: EventLevel,
        kind: &str,
        message: &str,
        node: Option<&str>,
    ) -> Result<Event>;

    /// The last `limit` events of the cluster, newest last. Fails with
    /// `ClusterNotFound`.
    async fn events(&self, cluster: &str, limit: usize) -> Result<Vec<Event>>;
}
