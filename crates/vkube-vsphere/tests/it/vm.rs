//! Node VM operations against the simulator: folder, clone, settings,
//! power, destroy, Storage DRS placement, one-call observation.

use std::collections::BTreeMap;
use std::time::Duration;

use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::vm::{self, CloneRequest, NetworkTarget, VmSettings};
use vkube_vsphere::{Details, Inventory, Session};

use crate::support::connect;

struct Placement {
    template: vim_rs::types::structs::ManagedObjectReference,
    vm_folder: vim_rs::types::structs::ManagedObjectReference,
    pool: vim_rs::types::structs::ManagedObjectReference,
    datastore: vim_rs::types::structs::ManagedObjectReference,
    network: vim_rs::types::structs::ManagedObjectReference,
}

async fn placement(session: &Session) -> Placement {
    let inv = Inventory::load(session).await.unwrap();
    Placement {
        template: inv
            .resolve("/DC0/vm/DC0_C0_RP0_VM0", "VM")
            .unwrap()
            .moref()
            .clone(),
        vm_folder: inv.resolve("/DC0/vm", "folder").unwrap().moref().clone(),
        pool: inv
            .resolve("/DC0/host/DC0_C0/Resources", "pool")
            .unwrap()
            .moref()
            .clone(),
        datastore: inv
            .resolve("/DC0/datastore/LocalDS_0", "datastore")
            .unwrap()
            .moref()
            .clone(),
        network: inv
            .resolve("/DC0/network/DC0_DVPG0", "network")
            .unwrap()
            .moref()
            .clone(),
    }
}

fn settings(network: NetworkTarget) -> VmSettings {
    VmSettings {
        num_cpus: Some(4),
        memory_mib: Some(8192),
        disk_gib: Some(40),
        network: Some(network),
        extra_config: BTreeMap::from([
            ("vkube.cluster.uid".to_string(), "uid-1".to_string()),
            ("vkube.pool".to_string(), "workers".to_string()),
        ]),
        disk_uuid_enabled: true,
        annotation: Some("managed by vkube".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_creation_is_idempotent() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let p = placement(&session).await;
    let first = vm::ensure_folder(&session, &p.vm_folder, "prod-a")
        .await
        .unwrap();
    let second = vm::ensure_folder(&session, &p.vm_folder, "prod-a")
        .await
        .unwrap();
    assert_eq!(first, second);
    let inv = Inventory::load(&session).await.unwrap();
    assert_eq!(
        inv.resolve("/DC0/vm/prod-a", "folder").unwrap().id,
        first.value
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_then_settings_converge_and_are_observed_in_one_call() {
    let _ = env_logger::builder().is_test(true).try_init();
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let p = placement(&session).await;
    let folder = vm::ensure_folder(&session, &p.vm_folder, "prod-a")
        .await
        .unwrap();
    let network = NetworkTarget::resolve(&session, &p.network).await.unwrap();
    assert!(matches!(network, NetworkTarget::Distributed { .. }));
    let wanted = settings(network);
    let request = CloneRequest {
        name: "prod-a-workers-0".into(),
        template: p.template.clone(),
        folder: folder.clone(),
        pool: p.pool.clone(),
        datastore: p.datastore.clone(),
        linked_snapshot: None,
        settings: wanted.clone(),
    };
    let created = vm::clone_vm(&session, &request).await.unwrap();
    // The simulator ignores CPU and memory in clone specs: observe and fix.
    vm::ensure_settings(&session, &created, &wanted)
        .await
        .unwrap();
    assert!(
        !vm::ensure_settings(&session, &created, &wanted)
            .await
            .unwrap(),
        "second pass is a no-op"
    );
    vm::power_on(&session, &created).await.unwrap();
    vm::power_on(&session, &created).await.unwrap();

    let before = session.round_trips();
    let observed = vm::observe_folder(&session, &folder).await.unwrap();
    assert_eq!(session.round_trips() - before, 3);
    assert_eq!(observed.len(), 1);
    let node = &observed[0];
    assert_eq!((node.num_cpus, node.memory_mib), (4, 8192));
    assert_eq!(node.disk_kib, 40 * 1024 * 1024);
    assert!(node.disk_uuid_enabled);
    assert_eq!(node.power_state, "poweredOn");
    assert_eq!(
        node.extra_config
            .get("vkube.cluster.uid")
            .map(String::as_str),
        Some("uid-1")
    );
    assert!(node.mac.is_some());

    vm::power_off(&session, &created, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        vm::observe_vm(&session, &created)
            .await
            .unwrap()
            .unwrap()
            .power_state,
        "poweredOff"
    );
    vm::destroy(&session, &created).await.unwrap();
    vm::destroy(&session, &created).await.unwrap();
    assert!(vm::observe_vm(&session, &created).await.unwrap().is_none());
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_drs_recommends_a_datastore_of_the_pod() {
    let sim = Simulator::start(SimulatorConfig {
        datastore_clusters: 1,
        datastores: 2,
        ..Default::default()
    });
    let session = connect(&sim).await;
    let p = placement(&session).await;
    let inv = Inventory::load(&session).await.unwrap();
    let pod = inv.select(|d| matches!(d, Details::DatastoreCluster { .. }))[0];
    // The simulator creates pods empty: move the datastores in, as an admin would.
    let datastores: Vec<_> = inv
        .select(|d| matches!(d, Details::Datastore { .. }))
        .iter()
        .map(|e| e.moref().clone())
        .collect();
    let task = vim_rs::mo::StoragePod::new(session.client(), &pod.id)
        .move_into_folder_task(&datastores)
        .await
        .unwrap();
    session
        .wait_task("moving datastores into the pod", task)
        .await
        .unwrap();
    let inv = Inventory::load(&session).await.unwrap();
    let pod = inv.select(|d| matches!(d, Details::DatastoreCluster { .. }))[0];
    let members: Vec<String> = inv.children(&pod.id).iter().map(|e| e.id.clone()).collect();
    let chosen = vm::recommend_datastore(
        &session,
        pod.moref(),
        &p.template,
        &p.vm_folder,
        &p.pool,
        "x-0",
    )
    .await;
    assert!(!members.is_empty(), "the simulator's pod holds datastores");
    let ds = chosen.unwrap();
    assert!(members.contains(&ds.value), "{ds:?} not in {members:?}");
    session.close().await;
}
