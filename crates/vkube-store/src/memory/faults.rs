//! Fault injection for crash tests: which calls a [`MemoryStore`] makes
//! fail, and how it counts writes so a test can enumerate "crash at write
//! 1..=N".
//!
//! A fault fires once, on the call it names: the `n`th write from when it
//! was injected ([`Fault::at_write`]) or the next call of one
//! [`Operation`] ([`Fault::next`]). By default the call fails before it
//! changes anything, like a database that went away; with
//! [`Fault::after_commit`] the change is kept and only the answer is lost,
//! like a commit whose reply never arrived.
//!
//! [`MemoryStore`]: super::MemoryStore

use crate::error::Error;

/// One method of the store traits, by name: what a [`Fault`] targets and
/// what [`MemoryStore::write_log`](super::MemoryStore::write_log) records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// [`Store::create_pools`](crate::Store::create_pools).
    CreatePools,
    /// [`Store::pool`](crate::Store::pool).
    Pool,
    /// [`Store::pools`](crate::Store::pools).
    Pools,
    /// [`Store::delete_pool`](crate::Store::delete_pool).
    DeletePool,
    /// [`Store::allocate`](crate::Store::allocate).
    Allocate,
    /// [`Store::allocate_address`](crate::Store::allocate_address).
    AllocateAddress,
    /// [`Store::release_node`](crate::Store::release_node).
    ReleaseNode,
    /// [`Store::release_cluster`](crate::Store::release_cluster).
    ReleaseCluster,
    /// [`Store::leases`](crate::Store::leases).
    Leases,
    /// [`ClusterStore::create_cluster`](crate::ClusterStore::create_cluster).
    CreateCluster,
    /// [`ClusterStore::cluster`](crate::ClusterStore::cluster).
    Cluster,
    /// [`ClusterStore::clusters`](crate::ClusterStore::clusters).
    Clusters,
    /// [`ClusterStore::update_cluster_spec`](crate::ClusterStore::update_cluster_spec).
    UpdateClusterSpec,
    /// [`ClusterStore::set_cluster_phase`](crate::ClusterStore::set_cluster_phase).
    SetClusterPhase,
    /// [`ClusterStore::set_cluster_status`](crate::ClusterStore::set_cluster_status).
    SetClusterStatus,
    /// [`ClusterStore::set_cluster_vcenter`](crate::ClusterStore::set_cluster_vcenter).
    SetClusterVcenter,
    /// [`ClusterStore::mark_deleting`](crate::ClusterStore::mark_deleting).
    MarkDeleting,
    /// [`ClusterStore::remove_cluster`](crate::ClusterStore::remove_cluster).
    RemoveCluster,
    /// [`ClusterStore::upsert_node`](crate::ClusterStore::upsert_node).
    UpsertNode,
    /// [`ClusterStore::node`](crate::ClusterStore::node).
    Node,
    /// [`ClusterStore::nodes`](crate::ClusterStore::nodes).
    Nodes,
    /// [`ClusterStore::delete_node`](crate::ClusterStore::delete_node).
    DeleteNode,
    /// [`ClusterStore::ensure_secret`](crate::ClusterStore::ensure_secret).
    EnsureSecret,
    /// [`ClusterStore::secret`](crate::ClusterStore::secret).
    Secret,
    /// [`ClusterStore::record_addons`](crate::ClusterStore::record_addons).
    RecordAddons,
    /// [`ClusterStore::addons`](crate::ClusterStore::addons).
    Addons,
    /// [`ClusterStore::replace_secret`](crate::ClusterStore::replace_secret).
    ReplaceSecret,
    /// [`Journal::record_intent`](crate::Journal::record_intent).
    RecordIntent,
    /// [`Journal::complete_intent`](crate::Journal::complete_intent).
    CompleteIntent,
    /// [`Journal::open_intents`](crate::Journal::open_intents).
    OpenIntents,
    /// [`Journal::append_event`](crate::Journal::append_event).
    AppendEvent,
    /// [`Journal::events`](crate::Journal::events).
    Events,
    /// [`ApplyLocks::acquire_apply_lock`](crate::ApplyLocks::acquire_apply_lock).
    AcquireApplyLock,
    /// [`ApplyLocks::renew_apply_lock`](crate::ApplyLocks::renew_apply_lock).
    RenewApplyLock,
    /// [`ApplyLocks::release_apply_lock`](crate::ApplyLocks::release_apply_lock).
    ReleaseApplyLock,
    /// [`ApplyLocks::expire_apply_lock`](crate::ApplyLocks::expire_apply_lock).
    ExpireApplyLock,
    /// [`ApplyLocks::apply_lock`](crate::ApplyLocks::apply_lock).
    ApplyLock,
    /// [`CredentialStore::set_credentials`](crate::CredentialStore::set_credentials).
    SetCredentials,
    /// [`CredentialStore::credentials`](crate::CredentialStore::credentials).
    Credentials,
    /// [`CredentialStore::list_credentials`](crate::CredentialStore::list_credentials).
    ListCredentials,
    /// [`CredentialStore::delete_credentials`](crate::CredentialStore::delete_credentials).
    DeleteCredentials,
    /// [`CredentialStore::rotate_key`](crate::CredentialStore::rotate_key).
    RotateKey,
    /// [`StateBackend::schema_version`](crate::StateBackend::schema_version).
    SchemaVersion,
}

impl Operation {
    /// The trait method's name, e.g. `upsert_node`.
    pub const fn as_str(self) -> &'static str {
        use Operation::*;
        match self {
            CreatePools => "create_pools",
            Pool => "pool",
            Pools => "pools",
            DeletePool => "delete_pool",
            Allocate => "allocate",
            AllocateAddress => "allocate_address",
            ReleaseNode => "release_node",
            ReleaseCluster => "release_cluster",
            Leases => "leases",
            CreateCluster => "create_cluster",
            Cluster => "cluster",
            Clusters => "clusters",
            UpdateClusterSpec => "update_cluster_spec",
            SetClusterPhase => "set_cluster_phase",
            SetClusterStatus => "set_cluster_status",
            SetClusterVcenter => "set_cluster_vcenter",
            MarkDeleting => "mark_deleting",
            RemoveCluster => "remove_cluster",
            UpsertNode => "upsert_node",
            Node => "node",
            Nodes => "nodes",
            DeleteNode => "delete_node",
            EnsureSecret => "ensure_secret",
            Secret => "secret",
            RecordAddons => "record_addons",
            Addons => "addons",
            ReplaceSecret => "replace_secret",
            RecordIntent => "record_intent",
            CompleteIntent => "complete_intent",
            OpenIntents => "open_intents",
            AppendEvent => "append_event",
            Events => "events",
            AcquireApplyLock => "acquire_apply_lock",
            RenewApplyLock => "renew_apply_lock",
            ReleaseApplyLock => "release_apply_lock",
            ExpireApplyLock => "expire_apply_lock",
            ApplyLock => "apply_lock",
            SetCredentials => "set_credentials",
            Credentials => "credentials",
            ListCredentials => "list_credentials",
            DeleteCredentials => "delete_credentials",
            RotateKey => "rotate_key",
            SchemaVersion => "schema_version",
        }
    }

    /// Whether the method may change the state: every call of one counts
    /// as a write ([`MemoryStore::write_count`](super::MemoryStore::write_count)),
    /// whatever it then decides.
    pub const fn is_write(self) -> bool {
        use Operation::*;
        matches!(
            self,
            CreatePools
                | DeletePool
                | Allocate
                | AllocateAddress
                | ReleaseNode
                | ReleaseCluster
                | CreateCluster
                | UpdateClusterSpec
                | SetClusterPhase
                | SetClusterStatus
                | SetClusterVcenter
                | MarkDeleting
                | RemoveCluster
                | UpsertNode
                | DeleteNode
                | EnsureSecret
                | RecordAddons
                | ReplaceSecret
                | RecordIntent
                | CompleteIntent
                | AppendEvent
                | AcquireApplyLock
                | RenewApplyLock
                | ReleaseApplyLock
                | ExpireApplyLock
                | SetCredentials
                | DeleteCredentials
                | RotateKey
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which call a [`Fault`] fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The `n`th write from when the fault is injected.
    WriteFromNow(u64),
    /// The next call of this operation.
    Next(Operation),
}

/// A failure planned for one call; see [`MemoryStore::inject`](super::MemoryStore::inject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    trigger: Trigger,
    after_commit: bool,
}

impl Fault {
    /// The `n`th write from when the fault is injected (1: the next write).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn at_write(n: u64) -> Fault {
        assert!(n >= 1, "writes are counted from 1");
        Fault {
            trigger: Trigger::WriteFromNow(n),
            after_commit: false,
        }
    }

    /// The next call of `operation` (a write or a read).
    pub fn next(operation: Operation) -> Fault {
        Fault {
            trigger: Trigger::Next(operation),
            after_commit: false,
        }
    }

    /// The call's change is made and kept, and the caller still gets the
    /// error: a commit whose answer was lost. (A read just fails; a write
    /// that fails on its own changes nothing, and its caller sees the
    /// injected error.)
    pub fn after_commit(self) -> Fault {
        Fault {
            after_commit: true,
            ..self
        }
    }
}

/// What an injected fault's error carries as its source: find it with
/// [`InjectedFault::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault {
    /// The call that failed.
    pub operation: Operation,
    /// Its number among the store's writes, for a write.
    pub write: Option<u64>,
    /// Whether the call's change was kept ([`Fault::after_commit`]).
    pub applied: bool,
}

impl InjectedFault {
    /// The injected fault `error` reports, if it is one.
    pub fn of(error: &Error) -> Option<&InjectedFault> {
        match error {
            Error::Database { source, .. } => source.downcast_ref::<InjectedFault>(),
            _ => None,
        }
    }

    fn into_error(self) -> Error {
        Error::database(format!("calling `{}`", self.operation), self)
    }
}

impl std::fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fault injected into `{}`", self.operation)?;
        if let Some(write) = self.write {
            write!(f, " (write {write})")?;
        }
        f.write_str(if self.applied {
            ": the change was made, the answer lost"
        } else {
            ": nothing was changed"
        })
    }
}

impl std::error::Error for InjectedFault {}

/// The faults pending and the writes seen, for one state.
#[derive(Debug, Default)]
pub(super) struct FaultPlan {
    pending: Vec<Pending>,
    log: Vec<Operation>,
}

/// A fault waiting for its call.
#[derive(Debug, Clone, Copy)]
struct Pending {
    on: DueOn,
    after_commit: bool,
}

/// The call a pending fault fires on.
#[derive(Debug, Clone, Copy)]
enum DueOn {
    /// The write with this number (counted over the state's life).
    Write(u64),
    /// The next call of this operation.
    Call(Operation),
}

/// What a call must do about faults, decided as it starts.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Run normally.
    Proceed,
    /// Fail at once, changing nothing.
    Refuse(Error),
    /// Run, keep the change, then fail with this.
    LoseAnswer(Error),
}

impl FaultPlan {
    /// Writes counted so far.
    pub(super) fn write_count(&self) -> u64 {
        self.log.len() as u64
    }

    /// The operations of those writes, in order.
    pub(super) fn write_log(&self) -> &[Operation] {
        &self.log
    }

    pub(super) fn inject(&mut self, fault: Fault) {
        let on = match fault.trigger {
            Trigger::WriteFromNow(n) => DueOn::Write(self.write_count() + n),
            Trigger::Next(operation) => DueOn::Call(operation),
        };
        self.pending.push(Pending {
            on,
            after_commit: fault.after_commit,
        });
    }

    pub(super) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Counts the call if it is a write and takes the faults due for it
    /// (several due at once fire as one, the first injected deciding
    /// whether the change is kept).
    pub(super) fn on_call(&mut self, operation: Operation) -> Verdict {
        let write = operation.is_write().then(|| {
            self.log.push(operation);
            self.write_count()
        });
        let due = |fault: &Pending| match fault.on {
            DueOn::Write(n) => write == Some(n),
            DueOn::Call(target) => target == operation,
        };
        let Some(first) = self.pending.iter().position(due) else {
            return Verdict::Proceed;
        };
        let fault = self.pending[first];
        self.pending.retain(|fault| !due(fault));
        let applied = fault.after_commit && write.is_some();
        let error = InjectedFault {
            operation,
            write,
            applied,
        }
        .into_error();
        if applied {
            Verdict::LoseAnswer(error)
        } else {
            Verdict::Refuse(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(verdict: Verdict) -> InjectedFault {
        match verdict {
            Verdict::Refuse(error) => InjectedFault::of(&error).unwrap().clone(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn write_faults_count_from_injection_and_fire_once() {
        let mut plan = FaultPlan::default();
        assert!(matches!(
            plan.on_call(Operation::CreatePools),
            Verdict::Proceed
        ));
        assert!(matches!(plan.on_call(Operation::Pools), Verdict::Proceed));
        assert_eq!(plan.write_count(), 1, "reads are not counted");
        plan.inject(Fault::at_write(2));
        assert!(matches!(
            plan.on_call(Operation::Allocate),
            Verdict::Proceed
        ));
        let fault = refused(plan.on_call(Operation::UpsertNode));
        assert_eq!(
            fault,
            InjectedFault {
                operation: Operation::UpsertNode,
                write: Some(3),
                applied: false
            }
        );
        assert!(matches!(
            plan.on_call(Operation::UpsertNode),
            Verdict::Proceed
        ));
        assert_eq!(
            plan.write_log(),
            [
                Operation::CreatePools,
                Operation::Allocate,
                Operation::UpsertNode,
                Operation::UpsertNode
            ]
        );
    }

    #[test]
    fn operation_faults_wait_for_their_operation_reads_included() {
        let mut plan = FaultPlan::default();
        plan.inject(Fault::next(Operation::Nodes));
        plan.inject(Fault::next(Operation::RecordIntent).after_commit());
        assert!(matches!(
            plan.on_call(Operation::UpsertNode),
            Verdict::Proceed
        ));
        let fault = refused(plan.on_call(Operation::Nodes));
        assert_eq!((fault.write, fault.applied), (None, false));
        match plan.on_call(Operation::RecordIntent) {
            Verdict::LoseAnswer(error) => {
                let fault = InjectedFault::of(&error).unwrap();
                assert_eq!((fault.write, fault.applied), (Some(2), true));
                assert_eq!(
                    error.to_string(),
                    "state database error while calling `record_intent`"
                );
                let source = std::error::Error::source(&error).unwrap().to_string();
                assert_eq!(
                    source,
                    "fault injected into `record_intent` (write 2): the change was made, the answer lost"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan.on_call(Operation::RecordIntent),
            Verdict::Proceed
        ));
    }

    #[test]
    fn faults_due_together_fire_as_one_and_clear_empties_the_plan() {
        let mut plan = FaultPlan::default();
        plan.inject(Fault::at_write(1));
        plan.inject(Fault::next(Operation::Allocate).after_commit());
        let fault = refused(plan.on_call(Operation::Allocate));
        assert!(!fault.applied, "the first injected decides");
        assert!(matches!(
            plan.on_call(Operation::Allocate),
            Verdict::Proceed
        ));
        plan.inject(Fault::next(Operation::Allocate));
        plan.clear();
        assert!(matches!(
            plan.on_call(Operation::Allocate),
            Verdict::Proceed
        ));
        assert!(InjectedFault::of(&Error::NoStatePath).is_none());
    }

    #[test]
    #[should_panic(expected = "counted from 1")]
    fn write_zero_is_refused() {
        let _ = Fault::at_write(0);
    }
}
