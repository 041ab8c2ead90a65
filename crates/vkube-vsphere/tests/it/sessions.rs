//! Sessions that end at any point: the simulator ends every session on a
//! schedule (`-expire-sessions-every`), busy or not, together with the
//! container views it owned. Reads keep returning whole answers, and tasks
//! started across expiries run exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::collect::{retrieve_objects, Wanted};
use vkube_vsphere::vm::{CloneRequest, VmSettings};
use vkube_vsphere::{
    DatastoreId, Details, FolderId, Inventory, ResourcePoolId, Session, VmId, VspherePort,
};

use crate::support::connect;

const EXPIRY: Duration = Duration::from_millis(250);

fn expiring(method_delays: &[(&str, u64)]) -> Simulator {
    Simulator::start(SimulatorConfig {
        expire_sessions_every: Some(EXPIRY),
        method_delays: method_delays
            .iter()
            .map(|(m, ms)| (m.to_string(), *ms))
            .collect(),
        ..Default::default()
    })
}

/// At most one re-login per expiry (concurrent callers share one), and at
/// least two: the sessions really did end, repeatedly, under the reads.
fn assert_relogins_fit(session: &Session, elapsed: Duration) {
    let expiries = (elapsed.as_millis() / EXPIRY.as_millis()) as u64;
    let relogins = session.relogins();
    assert!(
        (2..=expiries + 2).contains(&relogins),
        "{relogins} re-logins in {elapsed:?} ({expiries} expiries)"
    );
}

/// The default inventory has 4 VMs: 2 in the cluster's pool, 2 on the standalone host.
const VMS: usize = 4;

async fn read_everything(session: &Session) {
    let inventory = Inventory::load(session).await.expect("inventory");
    let vms: Vec<_> = inventory
        .select(|d| matches!(d, Details::VirtualMachine { .. }))
        .into_iter()
        .map(|e| e.moref().clone())
        .collect();
    assert_eq!(vms.len(), VMS, "the inventory is whole");
    let folder = inventory.resolve("/DC0/vm", "folder").expect("VM folder");
    let observed = vkube_vsphere::vm::observe_folder(session, folder.moref())
        .await
        .expect("observe the VM folder");
    assert_eq!(observed.len(), VMS, "every VM observed");
    assert!(observed
        .iter()
        .all(|v| !v.name.is_empty() && v.num_cpus > 0));
    let named = retrieve_objects(
        session,
        &vms,
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["name"],
        }],
    )
    .await
    .expect("names");
    assert_eq!(named.len(), VMS);
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_through_container_views_survive_repeated_session_expiry() {
    // Slow view creation and retrieval, so expiries land between them too.
    let sim = expiring(&[("CreateContainerView", 40), ("RetrievePropertiesEx", 30)]);
    let session = Arc::new(connect(&sim).await);
    let started = Instant::now();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move {
                let mut rounds = 0;
                while started.elapsed() < Duration::from_secs(3) {
                    read_everything(&session).await;
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    for reader in readers {
        assert!(reader.await.expect("reader") > 3);
    }
    assert_relogins_fit(&session, started.elapsed());
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_started_across_expiries_run_exactly_once() {
    // A clone call spans an expiry; its task is waited for across more.
    let sim = expiring(&[("CloneVM_Task", 300), ("PowerOnVM_Task", 100)]);
    let session = connect(&sim).await;
    let started = Instant::now();
    let inventory = Inventory::load(&session).await.unwrap();
    let entity = |path: &str| inventory.resolve(path, "object").unwrap();
    let parent = FolderId::of(entity("/DC0/vm")).unwrap();
    let folder = session.ensure_folder(&parent, "expiring").await.unwrap();
    let mut created = BTreeMap::new();
    for i in 0..3 {
        let name = format!("expiring-{i}");
        let request = CloneRequest {
            name: name.clone(),
            template: VmId::of(entity("/DC0/vm/DC0_C0_RP0_VM0")).unwrap(),
            folder: folder.clone(),
            pool: ResourcePoolId::of(entity("/DC0/host/DC0_C0/Resources")).unwrap(),
            datastore: DatastoreId::of(entity("/DC0/datastore/LocalDS_0")).unwrap(),
            linked_snapshot: None,
            settings: VmSettings {
                extra_config: BTreeMap::from([("vkube.node".to_string(), name.clone())]),
                ..Default::default()
            },
            power_on: false,
        };
        let vm = session.clone_vm(&request).await.expect("clone");
        session.power_on(&vm).await.expect("power on");
        created.insert(name, vm.id().to_owned());
    }
    let observed = session.folder_vms(&folder).await.unwrap();
    let mut found: Vec<(String, String)> = observed
        .iter()
        .map(|v| (v.name.clone(), v.id.clone()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        created.into_iter().collect::<Vec<_>>(),
        "each clone ran once"
    );
    assert!(
        observed
            .iter()
            .all(|v| v.power_state == "poweredOn"
                && v.extra_config.get("vkube.node") == Some(&v.name))
    );
    assert_relogins_fit(&session, started.elapsed());
    session.close().await;
}
