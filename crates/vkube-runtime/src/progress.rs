//! How the runtime reports what it does, without printing: the CLI shows
//! progress bars, tests collect what happened, a server streams it. Steps
//! and events are enums ([`StepKind`], [`EventKind`]); their text forms are
//! what the CLI shows and the store records.

use std::fmt;

use serde::{Serialize, Serializer};
use vkube_core::cluster::Step;
use vkube_store::EventLevel;

/// Defines an enum whose variants have a fixed text form.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every kind, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What the runtime is doing, as shown per step (`create node`, …).
    StepKind {
        /// Creating the cluster folder.
        CreateFolder => "create folder",
        /// Leasing a node's (or the VIP's) address.
        AllocateAddress => "allocate address",
        /// Cloning and finishing a node.
        CreateNode => "create node",
        /// Changing a node's CPU or memory.
        Reconfigure => "reconfigure",
        /// Powering a node on.
        PowerOn => "power on",
        /// Destroying a node.
        DeleteNode => "delete node",
        /// Releasing a node's address.
        ReleaseAddress => "release address",
        /// Forgetting a node whose VM is gone.
        ForgetNode => "forget node",
        /// Cordoning and draining a node before its removal.
        DrainNode => "drain node",
        /// Removing a control-plane node's etcd member.
        RemoveEtcdMember => "remove etcd member",
        /// Deleting a node's Node object.
        DeleteNodeObject => "delete node object",
        /// Making a drained node schedulable again.
        UncordonNode => "uncordon node",
        /// Taking a cluster over from its VMs.
        Adopt => "adopt",
        /// Finishing a node whose creation was interrupted.
        FinishNode => "finish node",
        /// Destroying a second VM of one node.
        RemoveDuplicate => "remove duplicate",
        /// Waiting for a DHCP node to report its address.
        WaitForAddress => "wait for address",
        /// Waiting for a node to register with Kubernetes and be Ready.
        WaitForReady => "wait for ready",
        /// Applying changed add-ons through the API server.
        UpdateAddons => "update add-ons",
        /// Removing the cluster folder.
        DeleteFolder => "delete folder",
    }
);

text_enum!(
    /// What an event records; the text form is the store's `kind` column.
    EventKind {
        /// The cluster folder was created.
        FolderCreated => "FolderCreated",
        /// An address was leased.
        AddressAllocated => "AddressAllocated",
        /// A node was created (or its creation failed).
        CreateNode => "CreateNode",
        /// A node was reconfigured (or failed to be).
        Reconfigure => "Reconfigure",
        /// A node was powered on (or failed to be).
        PowerOn => "PowerOn",
        /// A node was deleted during an apply (or failed to be).
        DeleteNode => "DeleteNode",
        /// A node was drained (or its drain failed).
        DrainNode => "DrainNode",
        /// A node's etcd member was removed (or its removal failed).
        RemoveEtcdMember => "RemoveEtcdMember",
        /// A node's Node object was deleted (or its deletion failed).
        DeleteNodeObject => "DeleteNodeObject",
        /// A drained node was made schedulable again.
        UncordonNode => "UncordonNode",
        /// A node's Node object was seen for the first time.
        NodeRegistered => "NodeRegistered",
        /// A node became Ready.
        NodeReady => "NodeReady",
        /// The plan waits for something (a replacement to be Ready, etcd).
        Holding => "Holding",
        /// A DHCP node reported its address.
        AddressReported => "AddressReported",
        /// A second VM of a node was destroyed.
        DuplicateRemoved => "DuplicateRemoved",
        /// A node whose creation was interrupted was finished.
        NodeAdopted => "NodeAdopted",
        /// An intent of a run that stopped was closed.
        IntentAbandoned => "IntentAbandoned",
        /// A new bootstrap token was created in the cluster.
        TokenRenewed => "TokenRenewed",
        /// Changed add-ons were applied.
        AddonsApplied => "AddonsApplied",
        /// Add-on updates wait for the API server.
        AddonsPending => "AddonsPending",
        /// The apply converged.
        Applied => "Applied",
        /// An apply stopped with an error.
        ApplyFailed => "ApplyFailed",
        /// The record of a node whose VM is gone was dropped.
        NodeForgotten => "NodeForgotten",
        /// The cluster was taken over from its VMs' markers.
        Adopted => "Adopted",
        /// Deleting the cluster started.
        DeletionStarted => "DeletionStarted",
        /// A node was destroyed by a delete.
        NodeDeleted => "NodeDeleted",
        /// A node could not be destroyed by a delete.
        NodeDeleteFailed => "NodeDeleteFailed",
    }
);

impl StepKind {
    /// The kind of a planned step, and the node it concerns.
    pub fn of(step: &Step) -> (StepKind, Option<&str>) {
        match step {
            Step::CreateFolder { .. } => (StepKind::CreateFolder, None),
            Step::AllocateAddress { node, .. } => (StepKind::AllocateAddress, Some(node)),
            Step::CreateNode { node, .. } => (StepKind::CreateNode, Some(node)),
            Step::Reconfigure { node, .. } => (StepKind::Reconfigure, Some(node)),
            Step::PowerOn { node } => (StepKind::PowerOn, Some(node)),
            Step::DeleteNode { node, .. } => (StepKind::DeleteNode, Some(node)),
            Step::ReleaseAddress { node } => (StepKind::ReleaseAddress, Some(node)),
            Step::ForgetNode { node } => (StepKind::ForgetNode, Some(node)),
            Step::DrainNode { node, .. } => (StepKind::DrainNode, Some(node)),
            Step::RemoveEtcdMember { node, .. } => (StepKind::RemoveEtcdMember, Some(node)),
            Step::DeleteNodeObject { node, .. } => (StepKind::DeleteNodeObject, Some(node)),
            Step::UncordonNode { node } => (StepKind::UncordonNode, Some(node)),
        }
    }

    /// The event recorded when a node step ends, if it records one.
    pub fn event(self) -> Option<EventKind> {
        match self {
            StepKind::CreateNode => Some(EventKind::CreateNode),
            StepKind::Reconfigure => Some(EventKind::Reconfigure),
            StepKind::PowerOn => Some(EventKind::PowerOn),
            StepKind::DeleteNode => Some(EventKind::DeleteNode),
            StepKind::DrainNode => Some(EventKind::DrainNode),
            StepKind::RemoveEtcdMember => Some(EventKind::RemoveEtcdMember),
            StepKind::DeleteNodeObject => Some(EventKind::DeleteNodeObject),
            StepKind::UncordonNode => Some(EventKind::UncordonNode),
            _ => None,
        }
    }
}

/// One event, as recorded in the store's journal.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    /// The cluster.
    pub cluster: &'a str,
    /// How serious.
    pub level: EventLevel,
    /// What happened.
    pub kind: EventKind,
    /// The node concerned, if any.
    pub node: Option<&'a str>,
    /// A line for people.
    pub message: &'a str,
}

/// Receives progress while a cluster is applied or deleted.
pub trait Progress: Send + Sync {
    /// A pass starts with this plan.
    fn pass(&self, _pass: usize, _steps: &[Step]) {}
    /// A step starts.
    fn started(&self, _step: StepKind, _node: Option<&str>) {}
    /// A step ended; `error` is set when it failed.
    fn finished(&self, _step: StepKind, _node: Option<&str>, _error: Option<&str>) {}
    /// A warning the user should see (e.g. linked clone fallback).
    fn warn(&self, _message: &str) {}
    /// An event was recorded in the journal.
    fn event(&self, _event: &Event<'_>) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_steps_record_events_named_as_before() {
        // The store's `kind` column keeps the names older vkube wrote.
        for step in StepKind::ALL {
            if let Some(event) = step.event() {
                let camel: String = step
                    .as_str()
                    .split(' ')
                    .map(|w| w[..1].to_uppercase() + &w[1..])
                    .collect();
                assert_eq!(event.as_str(), camel);
            }
        }
        assert_eq!(
            serde_json::to_string(&StepKind::WaitForAddress).unwrap(),
            "\"wait for address\""
        );
    }
}
