//! Nodes against the stand-in serving the recorded Node list of cluster `demo`: typed nodes,
//! one node or none, cordon and uncordon by merge patch, Node deletion, list pages.

use serde_json::json;
use vkube_kube::{ClusterApi, ConditionStatus, Deletion, Error, Readiness};
use vkube_test_support::kube_api::fixtures::NODE_LIST;
use vkube_test_support::kube_api::Reply;

use crate::stand_in_with_client;

#[tokio::test]
async fn stand_in_recorded_node_list_reads_as_typed_nodes() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.put_items(NODE_LIST);
    let nodes = client.nodes().await.unwrap();
    let summary: Vec<(&str, Readiness, Option<&str>, usize)> = nodes
        .iter()
        .map(|n| {
            let reason = n.ready.as_ref().and_then(|c| c.reason.as_deref());
            (n.name.as_str(), n.readiness(), reason, n.taints.len())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("demo-cp-0", Readiness::Ready, Some("KubeletReady"), 1),
            ("demo-workers-0", Readiness::Ready, Some("KubeletReady"), 0),
            (
                "demo-workers-1",
                Readiness::Unknown,
                Some("NodeStatusUnknown"),
                2
            ),
            (
                "demo-workers-2",
                Readiness::NotReady,
                Some("KubeletNotReady"),
                1
            ),
        ]
    );
    assert!(nodes[0].is_control_plane());
    assert_eq!(nodes[1].internal_ip(), Some("10.20.0.21"));
    assert_eq!(nodes[1].kubelet_version.as_deref(), Some("v1.30.4"));
    assert_eq!(
        nodes[3].condition("MemoryPressure").unwrap().status,
        ConditionStatus::False
    );
    let list = &stand_in.requests_matching("GET", "/api/v1/nodes")[0];
    assert_eq!(list.query_value("limit").as_deref(), Some("500"));
}

#[tokio::test]
async fn stand_in_node_by_name_and_an_unregistered_node_is_none() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.put_items(NODE_LIST);
    let node = client.node("demo-workers-1").await.unwrap().unwrap();
    assert_eq!(node.readiness(), Readiness::Unknown);
    assert_eq!(
        node.provider_id.as_deref(),
        Some("vsphere://4237a4f1-6b0e-9c3d-1f2a-5e6d7c8b9a03")
    );
    assert!(client.node("demo-workers-9").await.unwrap().is_none());
    let err = client.node("Demo/../x").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn stand_in_cordon_and_uncordon_patch_spec_unschedulable() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.put_items(NODE_LIST);
    let cordoned = client.cordon("demo-workers-0").await.unwrap();
    assert!(cordoned.unschedulable);
    let stored = stand_in.object("/api/v1/nodes/demo-workers-0").unwrap();
    assert_eq!(stored["spec"]["unschedulable"], true);
    let patch = &stand_in.requests_matching("PATCH", "/api/v1/nodes/demo-workers-0")[0];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch.json(), json!({"spec": {"unschedulable": true}}));
    assert!(
        client.cordon("demo-workers-0").await.unwrap().unschedulable,
        "idempotent"
    );

    let uncordoned = client.uncordon("demo-workers-0").await.unwrap();
    assert!(!uncordoned.unschedulable);
    let stored = stand_in.object("/api/v1/nodes/demo-workers-0").unwrap();
    assert!(stored["spec"].get("unschedulable").is_none());

    let err = client.cordon("demo-workers-9").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { what, .. } if what == "cordon of node demo-workers-9"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("nodes \"demo-workers-9\" not found"),
        "{err}"
    );
}

#[tokio::test]
async fn stand_in_node_delete_then_already_absent() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.put_items(NODE_LIST);
    assert_eq!(
        client.delete_node("demo-workers-1").await.unwrap(),
        Deletion::Deleted
    );
    assert!(stand_in.object("/api/v1/nodes/demo-workers-1").is_none());
    assert_eq!(
        client.delete_node("demo-workers-1").await.unwrap(),
        Deletion::AlreadyAbsent
    );
    let deletes = stand_in.requests_matching("DELETE", "/api/v1/nodes/demo-workers-1");
    assert_eq!(
        deletes.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 404]
    );
    assert_eq!(deletes[0].json()["kind"], "DeleteOptions");
    let names: Vec<String> = client
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["demo-cp-0", "demo-workers-0", "demo-workers-2"]);
}

#[tokio::test]
async fn stand_in_node_list_pages_follow_the_continue_token() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let list: serde_json::Value = serde_json::from_str(NODE_LIST).unwrap();
    let items = list["items"].as_array().unwrap();
    let page = |items: &[serde_json::Value], token: &str| {
        Reply::value(
            200,
            &json!({"kind": "NodeList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "48213", "continue": token},
                    "items": items}),
        )
    };
    stand_in.respond_sequence(
        "GET",
        "/api/v1/nodes",
        vec![
            page(&items[..2], "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ=="),
            page(&items[2..], ""),
        ],
    );
    let nodes = client.nodes().await.unwrap();
    assert_eq!(nodes.len(), 4);
    let requests = stand_in.requests_matching("GET", "/api/v1/nodes");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].query_value("continue"), None);
    assert_eq!(
        requests[1].query_value("continue").as_deref(),
        Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==")
    );
}

#[tokio::test]
async fn stand_in_etcd_endpoints_come_from_the_recorded_etcd_static_pod_annotation() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    assert!(client.etcd_endpoints().await.unwrap().is_empty());
    stand_in.put_items(vkube_test_support::kube_api::fixtures::POD_LIST);
    let endpoints = client.etcd_endpoints().await.unwrap();
    assert_eq!(
        endpoints,
        [vkube_kube::EtcdEndpoint {
            node: "demo-cp-0".into(),
            client_urls: vec!["https://10.20.0.11:2379".into()],
        }]
    );
    let list = stand_in.requests_matching("GET", "/api/v1/namespaces/kube-system/pods");
    assert_eq!(
        list[0].query_value("labelSelector").as_deref(),
        Some("component=etcd,tier=control-plane")
    );
}
