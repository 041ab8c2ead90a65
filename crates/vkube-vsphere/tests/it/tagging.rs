//! The tagging client and topology observe/apply against the simulator's
//! vAPI REST endpoints (`/rest` only; the simulator has no `/api`).

use std::time::Duration;

use vkube_core::topology::{plan_setup, PlanOptions, Step, Topology, MANAGED_MARKER};
use vkube_test_support::{Simulator, SimulatorConfig};
use vkube_vsphere::tagging::{CategorySpec, DynamicId, Flavor, TagSpec};
use vkube_vsphere::{topology, Error, Inventory, Secret, TaggingClient};

use crate::support::connect;

fn category(name: &str, types: &[&str]) -> CategorySpec {
    CategorySpec {
        name: name.into(),
        description: format!("test ({MANAGED_MARKER})"),
        cardinality: "SINGLE".into(),
        associable_types: types.iter().map(|t| t.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn categories_tags_and_attachments_round_trip() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let tagging = TaggingClient::login(&session).await.unwrap();
    assert_eq!(
        tagging.flavor(),
        Flavor::Rest,
        "the simulator serves only /rest"
    );
    let inventory = Inventory::load(&session).await.unwrap();
    let dc = inventory.resolve("/DC0", "datacenter").unwrap();
    let cluster = inventory.resolve("/DC0/host/DC0_C0", "cluster").unwrap();
    let dc_id = DynamicId {
        type_name: "Datacenter".into(),
        id: dc.id.clone(),
    };
    let cluster_id = DynamicId {
        type_name: "ClusterComputeResource".into(),
        id: cluster.id.clone(),
    };

    let region = tagging
        .create_category(&category("k8s-region", &["Datacenter"]))
        .await
        .unwrap();
    let zone = tagging
        .create_category(&category(
            "k8s-zone",
            &["ClusterComputeResource", "Datastore"],
        ))
        .await
        .unwrap();
    let again = tagging
        .create_category(&category("k8s-zone", &[]))
        .await
        .unwrap_err();
    assert!(again.is_already_exists(), "{again:?}");

    let categories = tagging.categories().await.unwrap();
    assert_eq!(
        categories
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["k8s-region", "k8s-zone"]
    );
    assert_eq!(categories[1].cardinality, "SINGLE");
    assert_eq!(
        categories[1].associable_types,
        ["ClusterComputeResource", "Datastore"]
    );
    assert!(categories[1].description.contains(MANAGED_MARKER));

    tagging
        .set_associable_types(
            &zone,
            "k8s-zone",
            &[
                "ClusterComputeResource".into(),
                "Datastore".into(),
                "HostSystem".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        tagging
            .category(&zone)
            .await
            .unwrap()
            .associable_types
            .len(),
        3
    );

    let r1 = tagging
        .create_tag(&TagSpec {
            name: "r1".into(),
            description: String::new(),
            category_id: region.clone(),
        })
        .await
        .unwrap();
    let az1 = tagging
        .create_tag(&TagSpec {
            name: "az1".into(),
            description: String::new(),
            category_id: zone.clone(),
        })
        .await
        .unwrap();
    let dup = tagging
        .create_tag(&TagSpec {
            name: "az1".into(),
            description: String::new(),
            category_id: zone.clone(),
        })
        .await
        .unwrap_err();
    assert!(dup.is_already_exists(), "{dup:?}");
    assert_eq!(
        tagging.tag_ids_for_category(&zone).await.unwrap(),
        std::slice::from_ref(&az1)
    );
    assert_eq!(tagging.tag(&az1).await.unwrap().category_id, zone);
    assert!(tagging
        .tag_ids_for_category("no-such-category")
        .await
        .unwrap()
        .is_empty());

    tagging.attach(&r1, &dc_id).await.unwrap();
    tagging.attach(&az1, &cluster_id).await.unwrap();
    tagging.attach(&az1, &cluster_id).await.unwrap();
    assert_eq!(
        tagging.attached_objects(&az1).await.unwrap(),
        std::slice::from_ref(&cluster_id)
    );
    assert_eq!(
        tagging.attached_tags(&dc_id).await.unwrap(),
        std::slice::from_ref(&r1)
    );
    let batch = tagging
        .attached_objects_on_tags(&[r1.clone(), az1.clone()])
        .await
        .unwrap();
    assert_eq!(batch[&r1], std::slice::from_ref(&dc_id));
    assert_eq!(batch[&az1], std::slice::from_ref(&cluster_id));

    tagging.detach(&az1, &cluster_id).await.unwrap();
    assert!(tagging.attached_objects(&az1).await.unwrap().is_empty());

    let missing = tagging
        .tag("urn:vmomi:InventoryServiceTag:nope:GLOBAL")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, Error::RestFault { status: 404, .. }),
        "{missing:?}"
    );
    assert!(tagging.round_trips() > 10);
    tagging.close().await;
    tagging.close().await;
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_an_invalid_login() {
    let sim = Simulator::start_default();
    let session = connect(&sim).await;
    let options = session.options();
    let err = TaggingClient::login_with(
        session.http().clone(),
        &options.endpoint,
        &options.username,
        &Secret::new("wrong"),
    )
    .await
    .err()
    .expect("login must fail");
    assert!(matches!(err, Error::InvalidLogin { .. }), "{err:?}");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_rest_session_is_renewed_once() {
    let sim = Simulator::start(SimulatorConfig {
        session_idle_timeout: Some(Duration::from_millis(700)),
        ..Default::default()
    });
    let session = connect(&sim).await;
    let tagging = TaggingClient::login(&session).await.unwrap();
    assert!(tagging.category_ids().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(tagging.category_ids().await.unwrap().is_empty());
    assert_eq!(tagging.relogins(), 1);
    tagging.close().await;
}

const TOPOLOGY: &str = "
regions:
  - {name: region-0, datacenter: DC0}
  - {name: region-1, datacenter: DC1}
zones:
  - {name: zone-0a, region: region-0, computeCluster: DC0_C0, datastores: [LocalDS_0]}
  - {name: zone-0b, region: region-0, computeCluster: DC0_C1}
  - {name: zone-1a, region: region-1, computeCluster: DC1_C0, datastores: [LocalDS_0]}
  - {name: zone-1b, region: region-1, computeCluster: DC1_C1}
";

#[tokio::test(flavor = "multi_thread")]
async fn observe_plan_apply_converges() {
    let sim = Simulator::start(SimulatorConfig {
        datacenters: 2,
        clusters: 2,
        ..Default::default()
    });
    let session = connect(&sim).await;
    let tagging = TaggingClient::login(&session).await.unwrap();
    let desired = Topology::from_yaml(TOPOLOGY, "topology.yaml").unwrap();

    let observed = topology::observe(&session, &tagging, "k8s-region", "k8s-zone")
        .await
        .unwrap();
    // Every host of a datacenter mounts its local datastore (see `inventory_facts`).
    let ds = observed.datastore_at("/DC0/datastore/LocalDS_0").unwrap();
    assert_eq!(ds.hosts.len(), 7, "{ds:?}");
    let plan = plan_setup(&desired, &observed, PlanOptions::default()).unwrap();
    assert!(plan.conflicts.is_empty());
    let attaches = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Attach { .. }))
        .count();
    assert_eq!((plan.steps.len(), attaches), (2 + 6 + 8, 8));
    let mut applier = topology::Applier::new(&tagging, &observed);
    for step in &plan.steps {
        applier.apply(step).await.unwrap();
    }
    // Applying a create again adopts what exists.
    applier.apply(&plan.steps[0]).await.unwrap();

    let before = tagging.round_trips();
    let again = topology::observe(&session, &tagging, "k8s-region", "k8s-zone")
        .await
        .unwrap();
    // 1 + 2 categories, 2 × (1 + 2 or 4) tags... bounded, and one batch for attachments.
    assert_eq!(tagging.round_trips() - before, 3 + (1 + 2) + (1 + 4) + 1);
    assert!(plan_setup(&desired, &again, PlanOptions::default())
        .unwrap()
        .is_empty());
    let dc1 = again.datacenter_at("/DC1").unwrap();
    let region_1 = again.tag("k8s-region", "region-1").unwrap();
    assert_eq!(
        again
            .objects_of(&region_1.id)
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>(),
        [dc1.id.as_str()]
    );
    tagging.close().await;
    session.close().await;
}
