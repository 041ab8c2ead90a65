//! The runtime against the in-memory vCenter ([`crate::fake`]) and the
//! in-memory store ([`MemoryStore`]), whose calls finish without yielding: convergence, no-op re-runs, a fault or a crash
//! at every mutating call of an apply followed by a fresh apply,
//! `DuplicateName` adoption, cloud-user refusal and delete. Deterministic:
//! a fixed clock, seeded randomness, a single-threaded runtime.

use std::collections::BTreeSet;
use std::time::Duration;

use vkube_core::cluster::bootstrap::recover::guestinfo_value;
use vkube_core::cluster::mac::is_manual_vmware_mac;
use vkube_core::cluster::{ClusterSpec, MARKER_CLUSTER_UID};
use vkube_core::roles::Catalog;
use vkube_store::{
    ClusterPhase, ClusterStore, CredentialStore, Fault as StoreFault, ForceDelete, LeaseFilter,
    MemoryStore, Operation, StateStore, Store, Timestamp,
};
use vkube_vsphere::Fault;

use crate::cloud::CLOUD_PROFILES;
use crate::context::{Clock as _, Context};
use crate::fake::{self, FakeClock, FakeHolder, FakeVsphere, Injection, SeededRandom};
use crate::fake_kube::FakeCluster;
use crate::{
    AdoptOptions, AdoptReport, ApplyOptions, ApplyReport, DeleteOptions, Error, NoProgress,
    Outcome, RunState,
};

/// One control-plane node and two workers in one placement domain.
fn spec_text() -> String {
    spec_with(2, false)
}

/// The test cluster with `workers` workers, its addresses from DHCP when `dhcp`.
fn spec_with(workers: u32, dhcp: bool) -> String {
    let text = format!(
        r#"apiVersion: vkube.dev/v1alpha1
kind: Cluster
metadata:
  name: t1
spec:
  kubernetesVersion: v1.30.2
  datacenter: {dc}
  folder: /{dc}/vm
  template: {template}
  cloneMode: full
  osFamily: ubuntu
  ipAllocation: static
  placementDomains:
    - name: az1
      computeCluster: {cluster}
      resourcePool: {pool}
      datastore: {datastore}
      network: {network}
      ipPool: nodes
  controlPlane:
    replicas: 1
    vip:
      address: 10.20.0.5
    cpu: 2
    memoryMiB: 4096
    diskGiB: 40
    placementDomain: az1
  nodePools:
    - name: workers
      replicas: {workers}
      cpu: 4
      memoryMiB: 8192
      diskGiB: 60
      placementDomains: [az1]
  sshAuthorizedKeys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8gk0G1vLmnRgZc0eXKzAdFfVbN6f4p0g0cX3cZ1n9v admin@example
  ntpServers: [0.pool.ntp.org]
  cloudCredentials: demo-cloud
"#,
        dc = fake::DATACENTER,
        template = fake::TEMPLATE,
        cluster = fake::COMPUTE_CLUSTER,
        pool = fake::RESOURCE_POOL,
        datastore = fake::DATASTORE,
        network = fake::NETWORK,
    );
    if dhcp {
        text.replace("ipAllocation: static", "ipAllocation: dhcp")
            .replace("      ipPool: nodes\n", "")
    } else {
        text
    }
}

const POOLS: &str = "pools:
  - name: nodes
    range: { start: 10.20.0.10, end: 10.20.0.200 }
    prefix: 24
    gateway: 10.20.0.1
    nameServers: [10.20.0.2]
";

const NODES: [&str; 3] = ["t1-cp-0", "t1-workers-0", "t1-workers-1"];

/// A state with the test pools and the cloud credentials, as a new state
/// file a user set up would be.
async fn seeded_store() -> MemoryStore {
    let store = MemoryStore::new();
    let raws = vkube_core::ipam::parse_pools_yaml(POOLS).expect("pools parse");
    let pools = vkube_core::ipam::validate_pools(&raws, false).expect("pools validate");
    store
        .create_pools(&pools, false)
        .await
        .expect("pools stored");
    store
        .set_credentials(
            "demo-cloud",
            "k8s-demo@vsphere.local",
            "Cl0ud-Pa55!",
            Timestamp::from_unix_seconds(1_767_225_600),
        )
        .await
        .expect("credentials stored");
    store
}

/// Every privilege the CPI and CSI catalogs name.
fn cloud_privileges() -> Vec<String> {
    CLOUD_PROFILES
        .iter()
        .flat_map(|profile| {
            let catalog = Catalog::builtin(profile).expect("built-in profile");
            catalog
                .roles()
                .iter()
                .flat_map(|role| role.privilege_set())
                .map(|id| id.as_str().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

struct Harness {
    store: std::sync::Arc<dyn StateStore>,
    /// The same store, for its fault hooks.
    memory: MemoryStore,
    vsphere: FakeVsphere,
    clock: FakeClock,
    random: SeededRandom,
    /// The cluster's own API server and etcd.
    kube: FakeCluster,
    spec: ClusterSpec,
}

fn options() -> ApplyOptions {
    ApplyOptions {
        parallel: 2,
        power_off_grace: Duration::from_secs(5),
        ..Default::default()
    }
}

impl Harness {
    async fn new() -> Harness {
        Harness::with_privileges(cloud_privileges()).await
    }

    async fn with_privileges(privileges: Vec<String>) -> Harness {
        let memory = seeded_store().await;
        let store: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(memory.clone());
        let spec = crate::parse_spec(store.as_ref(), &spec_text())
            .await
            .expect("spec validates");
        Harness {
            store,
            memory,
            vsphere: FakeVsphere::new(privileges),
            clock: FakeClock::new(),
            random: SeededRandom::new(7),
            kube: FakeCluster::new(),
            spec,
        }
    }

    fn context<'a>(&'a self, holder: &'a FakeHolder) -> Context<'a> {
        Context {
            clock: &self.clock,
            random: &self.random,
            holder,
            cluster: &self.kube,
        }
    }

    /// Reconcile one pass at a time until done (or `limit` passes), moving
    /// the clock by each requeue; `between` runs after every requeue.
    async fn reconcile(
        &self,
        spec: &ClusterSpec,
        options: &ApplyOptions,
        limit: usize,
        mut between: impl FnMut(usize),
    ) -> (Outcome, Vec<Duration>) {
        let holder = FakeHolder::new("server", &[]);
        let ctx = self.context(&holder);
        let mut state = RunState::default();
        let mut requeues = Vec::new();
        for _ in 0..limit {
            let outcome = crate::reconcile_once(
                &self.vsphere,
                self.store.as_ref(),
                spec,
                &ctx,
                options,
                &NoProgress,
                &mut state,
            )
            .await;
            match outcome {
                Outcome::RequeueAfter(pause) => {
                    requeues.push(pause);
                    ctx.clock.sleep(pause).await;
                    between(requeues.len());
                }
                done_or_failed => return (done_or_failed, requeues),
            }
        }
        panic!("not done after {limit} passes: {requeues:?}");
    }

    async fn apply_as(&self, holder: &str, gone: &[&str]) -> Result<ApplyReport, Error> {
        self.apply_to(self.store.as_ref(), &self.spec, holder, gone)
            .await
    }

    /// Apply `spec` with the state `store` as `holder`, knowing `gone` stopped.
    async fn apply_to(
        &self,
        store: &dyn StateStore,
        spec: &ClusterSpec,
        holder: &str,
        gone: &[&str],
    ) -> Result<ApplyReport, Error> {
        let holder = FakeHolder::new(holder, gone);
        crate::apply(
            &self.vsphere,
            store,
            spec,
            &self.context(&holder),
            &options(),
            &NoProgress,
        )
        .await
    }

    /// Apply as `holder` until a call crashes; `None` when it did.
    async fn apply_until_crash(&self, holder: &str) -> Option<Result<ApplyReport, Error>> {
        self.apply_spec_until_crash(&self.spec, holder).await
    }

    /// Apply `spec` as `holder` until a call crashes; `None` when it did.
    async fn apply_spec_until_crash(
        &self,
        spec: &ClusterSpec,
        holder: &str,
    ) -> Option<Result<ApplyReport, Error>> {
        tokio::select! {
            biased;
            result = self.apply_to(self.store.as_ref(), spec, holder, &[]) => Some(result),
            _ = self.vsphere.crashed() => None,
        }
    }

    /// Adopt the test cluster into `store`.
    async fn adopt_into(
        &self,
        store: &dyn StateStore,
        options: &AdoptOptions,
    ) -> Result<AdoptReport, Error> {
        let holder = FakeHolder::new("adopter", &[]);
        crate::adopt(
            &self.vsphere,
            store,
            &self.spec,
            &self.context(&holder),
            options,
            &NoProgress,
        )
        .await
    }

    /// Delete the test cluster from this state.
    async fn delete(&self, force: ForceDelete) -> Result<crate::DeleteReport, Error> {
        let holder = FakeHolder::new("deleter", &[]);
        crate::delete(
            Some(&self.vsphere),
            self.store.as_ref(),
            "t1",
            &self.context(&holder),
            &DeleteOptions {
                force,
                power_off_grace: Duration::from_secs(5),
                parallel: 2,
                lock_ttl: Duration::from_secs(60),
            },
            &NoProgress,
        )
        .await
    }

    async fn lease_nodes(&self) -> Vec<String> {
        let filter = LeaseFilter {
            pool: None,
            cluster: Some("t1".into()),
        };
        let mut nodes: Vec<String> = self
            .store
            .leases(&filter)
            .await
            .expect("leases")
            .into_iter()
            .map(|l| l.node)
            .collect();
        nodes.sort();
        nodes
    }

    /// vCenter and the store both show exactly one control-plane node and
    /// two workers, finished. A node that failed in one run may be replaced
    /// by the next index in the next (indices after the group's highest),
    /// so names are checked by group.
    async fn assert_converged(&self, context: &str) {
        let vms = self.vsphere.vms();
        let names: Vec<String> = vms.keys().cloned().collect();
        let in_group = |prefix: &str| {
            names
                .iter()
                .filter(|n| {
                    n.strip_prefix(prefix)
                        .is_some_and(|i| i.parse::<u32>().is_ok())
                })
                .count()
        };
        assert_eq!(
            (names.len(), in_group("t1-cp-"), in_group("t1-workers-")),
            (3, 1, 2),
            "{context}: VMs (duplicates show as name#2): {names:?}"
        );
        let uid = self
            .store
            .cluster("t1")
            .await
            .expect("cluster recorded")
            .uid;
        for (name, vm) in &vms {
            assert_eq!(vm.power_state, "poweredOn", "{context}: {name}");
            assert_eq!(
                vm.extra_config.get(MARKER_CLUSTER_UID),
                Some(&uid),
                "{context}: {name} is marked"
            );
            assert!(
                vm.extra_config.contains_key("guestinfo.metadata"),
                "{context}: {name} has its bootstrap data"
            );
        }
        let macs: BTreeSet<_> = vms.values().map(|vm| vm.mac.clone()).collect();
        assert_eq!(macs.len(), names.len(), "{context}: one MAC per node");
        for (name, vm) in &vms {
            let mac = vm.mac.clone().unwrap_or_default();
            assert!(is_manual_vmware_mac(&mac), "{context}: {name}'s MAC {mac}");
            let metadata = guestinfo_value(&vm.extra_config, "guestinfo.metadata")
                .expect("readable metadata")
                .expect("metadata");
            assert!(
                metadata.contains(&mac),
                "{context}: {name}'s network config matches its MAC {mac}"
            );
        }
        assert_eq!(
            self.lease_nodes().await,
            names,
            "{context}: one lease per node, none leaked"
        );
        let mut recorded: Vec<String> = self
            .store
            .nodes("t1")
            .await
            .expect("nodes")
            .into_iter()
            .map(|n| n.node.name)
            .collect();
        recorded.sort();
        assert_eq!(recorded, names, "{context}: nodes recorded");
        assert!(
            self.store
                .open_intents("t1")
                .await
                .expect("intents")
                .is_empty(),
            "{context}: no intent left open"
        );
        let record = self.store.cluster("t1").await.expect("cluster");
        assert_eq!(
            (record.phase, record.last_error),
            (ClusterPhase::Ready, None),
            "{context}"
        );
        assert_eq!(
            record.vcenter_uuid.as_deref(),
            Some(fake::FAKE_VCENTER_UUID),
            "{context}: the vCenter is recorded"
        );
        assert_eq!(
            self.vsphere.folders(),
            ["t1"],
            "{context}: one cluster folder"
        );
    }

    /// Another apply changes nothing in vCenter.
    async fn assert_no_op(&self, holder: &str, context: &str) {
        let before = self.vsphere.mutations();
        let report = self.apply_as(holder, &[]).await.expect("re-apply");
        assert!(!report.changed, "{context}: {report:?}");
        assert_eq!(
            self.vsphere.mutations(),
            before,
            "{context}: no mutating call"
        );
    }
}

/// Store writes of a clean apply of the test cluster.
async fn store_writes_of_a_clean_apply() -> u64 {
    let harness = Harness::new().await;
    let before = harness.memory.write_count();
    harness.apply_as("run-1", &[]).await.expect("apply");
    harness.memory.write_count() - before
}

/// Mutating calls of a clean apply of the test cluster.
async fn mutating_calls_of_a_clean_apply() -> usize {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    harness.vsphere.mutations()
}

#[tokio::test]
async fn a_fresh_apply_converges_and_a_second_is_a_no_op() {
    let harness = Harness::new().await;
    let report = harness.apply_as("run-1", &[]).await.expect("apply");
    assert!(report.changed);
    assert_eq!(report.cluster, "t1");
    harness.assert_converged("fresh apply").await;
    let names: Vec<String> = harness.vsphere.vms().into_keys().collect();
    assert_eq!(names, NODES, "a fresh cluster's indices start at 0");
    let changes = harness.vsphere.changes();
    for node in NODES {
        // A vCenter applies the whole clone spec: one task per node.
        assert_eq!(
            node_changes(&changes, node),
            [format!("clone {node}")],
            "{changes:?}"
        );
    }
    assert!(
        changes.contains(&"create folder t1".to_string()),
        "{changes:?}"
    );
    harness.assert_no_op("run-2", "second apply").await;
}

/// The changes made to VM `node`.
fn node_changes(changes: &[String], node: &str) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.split(' ').next_back() == Some(node))
        .cloned()
        .collect()
}

#[tokio::test]
async fn where_clones_ignore_their_spec_the_difference_is_fixed_once() {
    let harness = Harness::new().await;
    harness.vsphere.clone_like_the_simulator();
    harness.apply_as("run-1", &[]).await.expect("apply");
    harness.assert_converged("simulator-like clones").await;
    let changes = harness.vsphere.changes();
    for node in NODES {
        assert_eq!(
            node_changes(&changes, node),
            [
                format!("clone {node}"),
                format!("reconfigure {node}"),
                format!("power on {node}")
            ],
            "{changes:?}"
        );
    }
    harness.assert_no_op("run-2", "second apply").await;
}

#[tokio::test]
async fn runs_are_deterministic() {
    let first = Harness::new().await;
    first.apply_as("run-1", &[]).await.expect("apply");
    let second = Harness::new().await;
    second.apply_as("run-1", &[]).await.expect("apply");
    assert_eq!(first.vsphere.changes(), second.vsphere.changes());
    assert_eq!(first.vsphere.vms(), second.vsphere.vms());
}

#[tokio::test]
async fn a_fault_at_any_mutating_call_is_recovered_by_the_next_apply() {
    let calls = mutating_calls_of_a_clean_apply().await;
    assert!(
        calls >= 10,
        "a small cluster's apply makes {calls} mutating calls"
    );
    for n in 1..=calls {
        let context = format!("fault at mutating call {n} of {calls}");
        let harness = Harness::new().await;
        harness
            .vsphere
            .inject(n, Injection::Fail(Fault::TaskInProgress));
        let err = harness.apply_as("run-1", &[]).await.expect_err(&context);
        assert!(
            err.to_string().contains("TaskInProgress"),
            "{context}: {err}"
        );
        // The aborted apply leaves the cluster degraded, saying why.
        let record = harness.store.cluster("t1").await.expect(&context);
        assert_eq!(record.phase, ClusterPhase::Degraded, "{context}");
        assert!(
            record
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("TaskInProgress")),
            "{context}: {:?}",
            record.last_error
        );
        let events = harness.store.events("t1", 100).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == "ApplyFailed" && e.message.contains("TaskInProgress")),
            "{context}: {events:?}"
        );
        harness.vsphere.heal();
        harness.apply_as("run-2", &[]).await.expect(&context);
        harness.assert_converged(&context).await;
        harness.assert_no_op("run-3", &context).await;
    }
}

#[tokio::test]
async fn a_crash_at_any_mutating_call_is_recovered_by_the_next_apply() {
    let calls = mutating_calls_of_a_clean_apply().await;
    for n in 1..=calls {
        for injection in [Injection::CrashBefore, Injection::CrashAfter] {
            let context = format!("{injection:?} at mutating call {n} of {calls}");
            let harness = Harness::new().await;
            harness.vsphere.inject(n, injection);
            assert!(
                harness.apply_until_crash("run-1").await.is_none(),
                "{context}: the run crashed"
            );
            harness.vsphere.heal();
            // The killed run's lock is taken over at once: its holder is gone.
            harness.apply_as("run-2", &["run-1"]).await.expect(&context);
            harness.assert_converged(&context).await;
            harness.assert_no_op("run-3", &context).await;
        }
    }
}

#[tokio::test]
async fn a_live_holders_lock_is_respected() {
    let harness = Harness::new().await;
    harness.vsphere.inject(2, Injection::CrashAfter);
    assert!(harness.apply_until_crash("run-1").await.is_none());
    harness.vsphere.heal();
    let before = harness.vsphere.mutations();
    let err = harness.apply_as("run-2", &[]).await.unwrap_err();
    assert!(
        matches!(err, Error::Store(vkube_store::Error::Locked { .. })),
        "{err}"
    );
    assert_eq!(
        harness.vsphere.mutations(),
        before,
        "the refused run changes nothing"
    );
}

#[tokio::test]
async fn a_clone_raced_by_another_run_is_adopted() {
    let harness = Harness::new().await;
    harness.vsphere.race_clone("t1-workers-0");
    harness.apply_as("run-1", &[]).await.expect("apply");
    harness.assert_converged("raced clone").await;
    harness.assert_no_op("run-2", "after adoption").await;
}

#[tokio::test]
async fn a_cloud_user_without_privileges_is_refused_before_any_change() {
    let harness = Harness::with_privileges(Vec::new()).await;
    let err = harness.apply_as("run-1", &[]).await.unwrap_err();
    assert!(
        matches!(err, Error::CloudUserLacksPrivileges { .. }),
        "{err}"
    );
    assert!(
        harness.vsphere.changes().is_empty(),
        "{:?}",
        harness.vsphere.changes()
    );
}

#[tokio::test]
async fn delete_removes_every_vm_the_folder_and_the_leases() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    let holder = FakeHolder::new("run-2", &[]);
    let report = crate::delete(
        Some(&harness.vsphere),
        harness.store.as_ref(),
        "t1",
        &harness.context(&holder),
        &DeleteOptions {
            force: ForceDelete::No,
            power_off_grace: Duration::from_secs(5),
            parallel: 2,
            lock_ttl: Duration::from_secs(60),
        },
        &NoProgress,
    )
    .await
    .expect("delete");
    let mut destroyed = report.destroyed.clone();
    destroyed.sort();
    assert_eq!(destroyed, NODES);
    assert!(
        report.folder_removed && report.orphans.is_empty(),
        "{report:?}"
    );
    assert!(harness.vsphere.vms().is_empty());
    assert!(harness.vsphere.folders().is_empty());
    assert!(
        harness.lease_nodes().await.is_empty(),
        "every lease released"
    );
    assert!(matches!(
        harness.store.cluster("t1").await,
        Err(vkube_store::Error::ClusterNotFound { .. })
    ));
    let shut_down = harness
        .vsphere
        .changes()
        .iter()
        .filter(|c| c.starts_with("shut down "))
        .count();
    assert_eq!(
        shut_down,
        NODES.len(),
        "guests are shut down before destroy"
    );
}

#[tokio::test]
async fn reconcile_once_requeues_until_done_and_a_fresh_run_is_done_at_once() {
    let harness = Harness::new().await;
    let (outcome, requeues) = harness
        .reconcile(&harness.spec, &options(), 20, |_| {})
        .await;
    let Outcome::Done(report) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(report.changed && !requeues.is_empty(), "{report:?}");
    assert!(
        requeues.iter().all(|d| d.is_zero()),
        "nothing to wait for: {requeues:?}"
    );
    harness.assert_converged("single passes").await;
    let before = harness.vsphere.mutations();
    let (outcome, requeues) = harness
        .reconcile(&harness.spec, &options(), 1, |_| {})
        .await;
    assert!(
        matches!(&outcome, Outcome::Done(report) if !report.changed) && requeues.is_empty(),
        "{outcome:?}"
    );
    assert_eq!(harness.vsphere.mutations(), before);
}

async fn dhcp_harness() -> (Harness, ClusterSpec) {
    let harness = Harness::new().await;
    let spec = crate::parse_spec(harness.store.as_ref(), &spec_with(2, true))
        .await
        .expect("DHCP spec");
    (harness, spec)
}

#[tokio::test]
async fn dhcp_addresses_are_requeued_for_not_waited_on() {
    let (harness, spec) = dhcp_harness().await;
    let next = std::cell::Cell::new(20);
    // The guests' DHCP clients answer after the run has looked twice.
    let (outcome, requeues) = harness
        .reconcile(&spec, &options(), 100, |n| {
            if n % 3 == 0 {
                for (name, vm) in harness.vsphere.vms() {
                    if vm.power_state == "poweredOn" && vm.ip.is_none() {
                        next.set(next.get() + 1);
                        harness
                            .vsphere
                            .set_guest_ip(&name, &format!("10.30.0.{}", next.get()));
                    }
                }
            }
        })
        .await;
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    assert!(
        requeues.iter().any(|d| !d.is_zero()),
        "waits for addresses are requeues: {requeues:?}"
    );
    let nodes = harness.store.nodes("t1").await.expect("nodes");
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        let ip = node.node.ip.expect("address recorded").to_string();
        assert!(ip.starts_with("10.30.0."), "{ip}");
    }
    assert!(
        harness.lease_nodes().await.is_empty(),
        "DHCP takes nothing from the pool"
    );
}

#[tokio::test]
async fn a_silent_dhcp_node_fails_once_its_wait_is_over() {
    let (harness, spec) = dhcp_harness().await;
    let options = ApplyOptions {
        ip_wait: Duration::from_secs(10),
        ..options()
    };
    let (outcome, requeues) = harness.reconcile(&spec, &options, 100, |_| {}).await;
    let Outcome::Failed(err) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        err.to_string()
            .contains("no IP address reported within 10s"),
        "{err}"
    );
    let waited: Duration = requeues.iter().sum();
    assert!(waited >= Duration::from_secs(10), "{requeues:?}");
}

/// Apply the test cluster, then reconcile it down to one worker.
async fn scale_down(harness: &Harness) -> (Outcome, Vec<Duration>) {
    harness.apply_as("run-1", &[]).await.expect("apply");
    let smaller = crate::parse_spec(harness.store.as_ref(), &spec_with(1, false))
        .await
        .expect("spec");
    harness.reconcile(&smaller, &options(), 100, |_| {}).await
}

#[tokio::test]
async fn a_removed_node_is_shut_down_by_its_guest_between_passes() {
    let harness = Harness::new().await;
    let (outcome, _) = scale_down(&harness).await;
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let changes = harness.vsphere.changes();
    let removed = "t1-workers-1";
    let shut = changes
        .iter()
        .position(|c| *c == format!("shut down {removed}"));
    let destroyed = changes
        .iter()
        .position(|c| *c == format!("destroy {removed}"));
    assert!(shut.is_some() && shut < destroyed, "{changes:?}");
    assert!(
        !changes.contains(&format!("power off {removed}")),
        "{changes:?}"
    );
    assert_eq!(harness.lease_nodes().await, ["t1-cp-0", "t1-workers-0"]);
}

#[tokio::test]
async fn a_guest_that_ignores_the_shutdown_is_powered_off_after_the_grace() {
    let harness = Harness::new().await;
    harness.vsphere.make_guests_stubborn();
    let (outcome, requeues) = scale_down(&harness).await;
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let waited: Duration = requeues.iter().sum();
    assert!(waited >= options().power_off_grace, "{requeues:?}");
    let changes = harness.vsphere.changes();
    let removed = "t1-workers-1";
    for change in ["shut down", "power off", "destroy"] {
        assert!(
            changes.contains(&format!("{change} {removed}")),
            "{changes:?}"
        );
    }
}

/// The store goes away at its `n`th write from now (the write lost, or
/// committed with its answer lost) and refuses every write after it: what
/// a killed process or a lost database connection leaves behind.
fn store_dies_at_write(memory: &MemoryStore, n: u64, committed: bool, horizon: u64) {
    let first = StoreFault::at_write(n);
    memory.inject(if committed {
        first.after_commit()
    } else {
        first
    });
    for later in n + 1..=horizon {
        memory.inject(StoreFault::at_write(later));
    }
}

#[tokio::test]
async fn a_store_lost_at_any_write_is_recovered_by_the_next_apply() {
    let writes = store_writes_of_a_clean_apply().await;
    assert!(
        writes >= 10,
        "a small cluster's apply writes {writes} times"
    );
    for n in 1..=writes {
        for committed in [false, true] {
            let context = format!("store lost at write {n} of {writes} (committed: {committed})");
            let harness = Harness::new().await;
            store_dies_at_write(&harness.memory, n, committed, writes + 50);
            // Whether the run notices depends on the write (an event is a
            // record, not state): only what it leaves behind matters.
            let _ = harness.apply_as("run-1", &[]).await;
            harness.memory.clear_faults();
            harness.apply_as("run-2", &["run-1"]).await.expect(&context);
            harness.assert_converged(&context).await;
            harness.assert_no_op("run-3", &context).await;
        }
    }
}

#[tokio::test]
async fn a_failed_store_write_fails_the_apply_and_names_the_write() {
    let harness = Harness::new().await;
    harness
        .memory
        .inject(StoreFault::next(vkube_store::Operation::UpsertNode));
    let err = harness
        .apply_as("run-1", &[])
        .await
        .expect_err("apply fails");
    assert!(err.to_string().contains("upsert_node"), "{err}");
    harness.memory.clear_faults();
    harness
        .apply_as("run-2", &["run-1"])
        .await
        .expect("re-apply");
    harness.assert_converged("after a failed node write").await;
}

#[tokio::test]
async fn describe_shows_each_node_from_vcenter_and_the_state() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    let holder = FakeHolder::new("describer", &[]);
    let view = crate::describe::describe(
        &harness.vsphere,
        harness.store.as_ref(),
        "t1",
        &harness.context(&holder),
        Duration::from_secs(5),
    )
    .await
    .expect("describe");
    assert_eq!(
        (view.phase.as_str(), view.control_plane_endpoint.as_str()),
        ("Ready", "10.20.0.5")
    );
    let names: Vec<&str> = view.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, NODES);
    let leases = harness
        .store
        .leases(&LeaseFilter {
            pool: None,
            cluster: Some("t1".into()),
        })
        .await
        .expect("leases");
    for node in &view.nodes {
        assert_eq!(node.power_state, "poweredOn", "{node:?}");
        assert_eq!(node.phase, "PoweredOn", "{node:?}");
        assert_eq!(node.vm, format!("/DC0/vm/t1/{}", node.name), "{node:?}");
        let lease = leases
            .iter()
            .find(|l| l.node == node.name)
            .expect("a lease per node");
        assert_eq!(node.ip, lease.address.to_string());
    }
}

/// A node created after the bootstrap token expired gets a fresh token
/// that vkube first creates in the cluster, through the cluster's API; with
/// the API unreachable that node fails, naming why, and the rest converges.
#[tokio::test]
async fn a_node_after_token_expiry_gets_a_token_created_through_the_cluster_api() {
    let harness = Harness::new().await;
    harness.apply_as("run-1", &[]).await.expect("apply");
    harness
        .clock
        .sleep(crate::token::DEFAULT_TOKEN_TTL + Duration::from_secs(60))
        .await;
    let bigger = crate::parse_spec(harness.store.as_ref(), &spec_with(3, false))
        .await
        .expect("spec");
    harness.kube.set_reachable(false);
    let (outcome, _) = harness.reconcile(&bigger, &options(), 100, |_| {}).await;
    let Outcome::Failed(err) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(err.to_string().contains("t1-workers-2"), "{err}");
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(
        harness.kube.calls().is_empty(),
        "{:?}",
        harness.kube.calls()
    );
    harness.kube.set_reachable(true);
    let (outcome, _) = harness.reconcile(&bigger, &options(), 100, |_| {}).await;
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let calls = harness.kube.calls();
    assert!(
        calls.len() == 1 && calls[0].starts_with("token "),
        "{calls:?}"
    );
}

mod lifecycle;
mod ownership;

/// What a no-op apply of a cluster with `workers` workers costs in calls.
async fn no_op_round_trips(workers: u32) -> u64 {
    let harness = Harness::new().await;
    let spec = crate::parse_spec(harness.store.as_ref(), &spec_with(workers, false))
        .await
        .expect("spec");
    let holder = FakeHolder::new("run-1", &[]);
    let ctx = harness.context(&holder);
    crate::apply(
        &harness.vsphere,
        harness.store.as_ref(),
        &spec,
        &ctx,
        &options(),
        &NoProgress,
    )
    .await
    .expect("apply");
    let report = crate::apply(
        &harness.vsphere,
        harness.store.as_ref(),
        &spec,
        &ctx,
        &options(),
        &NoProgress,
    )
    .await
    .expect("no-op apply");
    assert!(!report.changed, "{report:?}");
    report.round_trips
}

/// A no-op apply reads the inventory once (to resolve the spec) and then
/// only the cluster folder: its cost does not grow with the cluster.
#[tokio::test]
async fn a_no_op_apply_costs_the_same_whatever_the_cluster_size() {
    let small = no_op_round_trips(2).await;
    let large = no_op_round_trips(40).await;
    assert_eq!(small, large, "round trips of a no-op apply");
    // The inventory, the folder's VMs for the ownership check, the tags
    // for the add-on facts, the folder's VMs for the pass, …: six today.
    assert!(small <= 6, "a no-op apply makes {small} calls");
}

/// When vCenter stops answering mid-apply, the steps not started yet are
/// not started (each would only wait out its own deadline) and the apply
/// stops with the call vCenter did not answer; once it answers again, the
/// next apply converges.
#[tokio::test]
async fn an_apply_stops_starting_steps_once_vcenter_stops_answering() {
    let harness = Harness::new().await;
    // The folder, then the first clone: from there on nothing answers.
    harness.vsphere.inject(2, Injection::Silent);
    let err = harness.apply_as("run-1", &[]).await.expect_err("stops");
    let message = err.to_string();
    assert!(
        message.contains("did not answer") && message.contains("no further step was started"),
        "{message}"
    );
    assert!(!err.is_user_error(), "{message}");
    // One clone attempted with 2 slots for 3 nodes: at most the two in
    // flight asked vCenter, the third was never started.
    let asked = harness.vsphere.mutations();
    assert!(
        asked <= 3,
        "{asked} mutating calls reached the silent vCenter"
    );
    harness.vsphere.heal();
    harness
        .apply_as("run-2", &["run-1"])
        .await
        .expect("converges");
    harness
        .assert_converged("after vCenter answered again")
        .await;
}
