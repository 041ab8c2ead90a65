//! Inventory snapshot and path resolution against the simulator.

use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::{Details, Error, Inventory};

use crate::support::connect;

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_has_govc_paths_and_details() {
    let sim = Simulator::start(SimulatorConfig {
        datastore_clusters: 1,
        ..Default::default()
    });
    let session = connect(&sim).await;
    let inv = Inventory::load(&session).await.unwrap();
    let dc = inv.resolve("/DC0", "datacenter").unwrap();
    assert!(matches!(dc.details, Details::Datacenter));
    let cluster = inv.resolve("/DC0/host/DC0_C0", "cluster").unwrap();
    let Details::ComputeCluster { hosts } = &cluster.details else {
        panic!("{cluster:?}")
    };
    assert_eq!(hosts.len(), 3);
    assert!(inv
        .resolve("/DC0/host/DC0_C0/Resources", "resource pool")
        .is_ok());
    assert!(inv.resolve("/DC0/host/DC0_C0/DC0_C0_H0", "host").is_ok());
    let ds = inv
        .resolve("/DC0/datastore/LocalDS_0", "datastore")
        .unwrap();
    let Details::Datastore {
        capacity_bytes,
        free_bytes,
        hosts,
        ..
    } = &ds.details
    else {
        panic!("{ds:?}")
    };
    assert!(*capacity_bytes > 0 && *free_bytes > 0 && !hosts.is_empty());
    let vm = inv.resolve("/DC0/vm/DC0_C0_RP0_VM0", "VM").unwrap();
    let Details::VirtualMachine {
        template,
        power_state,
        ..
    } = &vm.details
    else {
        panic!()
    };
    assert!(!template);
    assert_eq!(power_state, "poweredOn");
    assert!(!inv
        .select(|d| matches!(d, Details::DatastoreCluster { .. }))
        .is_empty());
    assert!(!inv
        .select(|d| matches!(d, Details::Network { .. }))
        .is_empty());
    // Trailing and doubled slashes are tolerated.
    assert_eq!(inv.resolve("/DC0//vm/", "folder").unwrap().name, "vm");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_path_names_the_missing_segment() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let inv = Inventory::load(&session).await.unwrap();
    let err = inv.resolve("/DC0/vm/k8s/prod", "VM folder").unwrap_err();
    let Error::NotFound {
        parent, missing, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((parent.as_str(), missing.as_str()), ("/DC0/vm", "k8s"));
    assert_eq!(
        err.to_string(),
        "VM folder `/DC0/vm/k8s/prod` not found: `/DC0/vm` has no `k8s`"
    );
    session.close().await;
}

async fn round_trips_for(vms_per_pool: u32) -> (u64, usize) {
    let sim = Simulator::start(SimulatorConfig {
        vms: vms_per_pool,
        ..Default::default()
    });
    let session = connect(&sim).await;
    let before = session.round_trips();
    let inv = Inventory::load(&session).await.unwrap();
    let trips = session.round_trips() - before;
    let vms = inv
        .select(|d| matches!(d, Details::VirtualMachine { .. }))
        .len();
    session.close().await;
    (trips, vms)
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trips_do_not_grow_with_the_inventory() {
    let (small_trips, small_vms) = round_trips_for(2).await;
    let (large_trips, large_vms) = round_trips_for(60).await;
    assert!(
        large_vms >= 100 && large_vms > small_vms * 10,
        "{small_vms} vs {large_vms}"
    );
    assert_eq!(small_trips, large_trips);
    assert_eq!(small_trips, 1, "one traversal from the root folder");
}
