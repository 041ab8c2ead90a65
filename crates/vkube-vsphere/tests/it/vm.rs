//! Node VM operations against the simulator: folder, clone, settings,
//! power, destroy, Storage DRS placement, one-call observation.

use std::collections::BTreeMap;

use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::vm::{CloneRequest, NetworkTarget, VmSettings};
use vkube_vsphere::{
    DatastoreClusterId, DatastoreId, Details, FolderId, Inventory, NetworkId, PlacementQuery,
    ResourcePoolId, Session, VmId, VspherePort,
};

use crate::support::connect;

struct Placement {
    template: VmId,
    vm_folder: FolderId,
    pool: ResourcePoolId,
    datastore: DatastoreId,
    network: NetworkId,
}

async fn placement(session: &Session) -> Placement {
    let inv = Inventory::load(session).await.unwrap();
    let entity = |path: &str| inv.resolve(path, "object").unwrap().clone();
    Placement {
        template: VmId::of(&entity("/DC0/vm/DC0_C0_RP0_VM0")).unwrap(),
        vm_folder: FolderId::of(&entity("/DC0/vm")).unwrap(),
        pool: ResourcePoolId::of(&entity("/DC0/host/DC0_C0/Resources")).unwrap(),
        datastore: DatastoreId::of(&entity("/DC0/datastore/LocalDS_0")).unwrap(),
        network: NetworkId::of(&entity("/DC0/network/DC0_DVPG0")).unwrap(),
    }
}

/// A MAC in VMware's manual range, chosen before the clone.
const NODE_MAC: &str = "00:50:56:12:34:56";

fn settings(network: NetworkTarget) -> VmSettings {
    VmSettings {
        num_cpus: Some(4),
        memory_mib: Some(8192),
        disk_gib: Some(40),
        network: Some(network),
        mac: Some(NODE_MAC.into()),
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
    let port: &dyn VspherePort = &session;
    assert_eq!(
        port.find_folder(&p.vm_folder, "prod-a").await.unwrap(),
        None
    );
    let first = port.ensure_folder(&p.vm_folder, "prod-a").await.unwrap();
    let second = port.ensure_folder(&p.vm_folder, "prod-a").await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        port.find_folder(&p.vm_folder, "prod-a").await.unwrap(),
        Some(first.clone())
    );
    let inv = Inventory::load(&session).await.unwrap();
    assert_eq!(
        inv.resolve("/DC0/vm/prod-a", "folder").unwrap().id,
        first.id()
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_then_settings_converge_and_are_observed_in_one_call() {
    let _ = env_logger::builder().is_test(true).try_init();
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let p = placement(&session).await;
    let port: &dyn VspherePort = &session;
    let folder = port.ensure_folder(&p.vm_folder, "prod-a").await.unwrap();
    let network = port.network_target(&p.network).await.unwrap();
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
        power_on: true,
    };
    let created = port.clone_vm(&request).await.unwrap();
    // The NIC edit of the clone spec (network and manual MAC) and its
    // extraConfig are applied by the clone itself.
    let cloned = port.vm(&created).await.unwrap().unwrap();
    assert_eq!(cloned.mac.as_deref(), Some(NODE_MAC));
    assert_eq!(cloned.disk_kib, 40 * 1024 * 1024, "grown by the clone");
    assert_eq!(
        cloned.extra_config.get("vkube.pool").map(String::as_str),
        Some("workers")
    );
    assert_eq!(
        port.macs_in_use().await.unwrap().get(NODE_MAC),
        Some(&created.id().to_owned()),
        "the MAC is known as in use, by the clone"
    );
    // The simulator ignores CPU, memory and powerOn in clone specs: observe and fix.
    port.ensure_settings(&created, &wanted).await.unwrap();
    assert!(
        !port.ensure_settings(&created, &wanted).await.unwrap(),
        "second pass is a no-op"
    );
    port.power_on(&created).await.unwrap();
    port.power_on(&created).await.unwrap();

    let before = session.round_trips();
    let observed = port.folder_vms(&folder).await.unwrap();
    assert_eq!(
        session.round_trips() - before,
        1,
        "one read of the folder's children"
    );
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

    port.power_off(&created).await.unwrap();
    port.power_off(&created).await.unwrap();
    assert_eq!(
        port.vm(&created).await.unwrap().unwrap().power_state,
        "poweredOff"
    );
    port.destroy_vm(&created).await.unwrap();
    port.destroy_vm(&created).await.unwrap();
    assert!(port.vm(&created).await.unwrap().is_none());
    port.destroy_folder(&folder).await.unwrap();
    assert_eq!(
        port.find_folder(&p.vm_folder, "prod-a").await.unwrap(),
        None
    );
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
    let port: &dyn VspherePort = &session;
    let chosen = port
        .recommend_datastore(&PlacementQuery {
            pod: DatastoreClusterId::of(pod).unwrap(),
            template: p.template.clone(),
            folder: p.vm_folder.clone(),
            pool: p.pool.clone(),
            name: "x-0".into(),
        })
        .await;
    assert!(!members.is_empty(), "the simulator's pod holds datastores");
    let ds = chosen.unwrap();
    assert!(
        members.iter().any(|m| m == ds.id()),
        "{ds:?} not in {members:?}"
    );
    session.close().await;
}
