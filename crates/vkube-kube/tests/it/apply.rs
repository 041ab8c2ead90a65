//! Server-side apply of manifest streams against the stand-in: request shape, scopes,
//! discovery caching and refresh for CRDs, and recorded failures mapped to errors that name
//! the object and document.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vkube_kube::{ApplyOutcome, ClusterApi, Error, ObjectRef};

use crate::stand_in_with_client;
use vkube_test_support::kube_api::fixtures::{STATUS_403_FORBIDDEN, STATUS_409_CONFLICT};
use vkube_test_support::kube_api::{Recorded, Reply};

const FIELD_MANAGER: &str = "vkube-addons";

const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.vkube.io
spec:
  group: example.vkube.io
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
    subresources: {status: {}}
"#;

const WIDGET: &str = r#"apiVersion: example.vkube.io/v1
kind: Widget
metadata: {name: default, namespace: vkube-addons}
spec: {size: 3}
"#;

/// Namespace, namespaced and cluster-scoped objects of four built-in groups, a CRD, an object
/// of the CRD's kind, and a ConfigMap without a namespace.
fn addon_stream() -> String {
    let head = r#"apiVersion: v1
kind: Namespace
metadata:
  name: vkube-addons
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: widget-controller
  namespace: vkube-addons
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widget-controller
rules:
- apiGroups: [example.vkube.io]
  resources: [widgets, widgets/status]
  verbs: [get, list, watch, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: widget-controller
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: widget-controller}
subjects:
- {kind: ServiceAccount, name: widget-controller, namespace: vkube-addons}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: widget-controller
  namespace: vkube-addons
  labels: {app.kubernetes.io/name: widget-controller}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: widget-controller}
  template:
    metadata:
      labels: {app.kubernetes.io/name: widget-controller}
    spec:
      serviceAccountName: widget-controller
      containers:
      - name: controller
        image: registry.example.com/widget-controller:v1.2.3
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: vsphere-zone-a
provisioner: csi.vsphere.vmware.com
volumeBindingMode: WaitForFirstConsumer
---
"#;
    let tail = r#"---
apiVersion: v1
kind: ConfigMap
metadata:
  name: widget-defaults
data: {size: "3"}
"#;
    format!("{head}{WIDGET_CRD}---\n{WIDGET}{tail}")
}

fn patches(requests: &[Recorded]) -> Vec<&Recorded> {
    requests.iter().filter(|r| r.method == "PATCH").collect()
}

fn discovery_gets(requests: &[Recorded], path: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

fn yaml_documents(stream: &str) -> Vec<Value> {
    stream
        .split("\n---\n")
        .map(|doc| serde_yaml::from_str::<Value>(doc).unwrap())
        .collect()
}

#[tokio::test]
async fn apply_stream_with_crd_then_custom_resource_against_stand_in_recorded_discovery() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let stream = addon_stream();
    let applied = client.apply_manifest(&stream, FIELD_MANAGER).await.unwrap();

    let objects: Vec<String> = applied.iter().map(|a| a.object.to_string()).collect();
    assert_eq!(
        objects,
        [
            "Namespace vkube-addons",
            "ServiceAccount vkube-addons/widget-controller",
            "ClusterRole widget-controller",
            "ClusterRoleBinding widget-controller",
            "Deployment vkube-addons/widget-controller",
            "StorageClass vsphere-zone-a",
            "CustomResourceDefinition widgets.example.vkube.io",
            "Widget vkube-addons/default",
            "ConfigMap default/widget-defaults",
        ]
    );
    assert!(
        applied.iter().all(|a| a.outcome == ApplyOutcome::Created),
        "{applied:?}"
    );
    assert!(applied.iter().all(|a| a.resource_version.is_some()));
    assert_eq!(
        applied[7].object,
        ObjectRef {
            api_version: "example.vkube.io/v1".into(),
            kind: "Widget".into(),
            namespace: Some("vkube-addons".into()),
            name: "default".into(),
        }
    );

    let requests = stand_in.requests();
    let sent = patches(&requests);
    let paths: Vec<&str> = sent.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/vkube-addons",
            "/api/v1/namespaces/vkube-addons/serviceaccounts/widget-controller",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/widget-controller",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/widget-controller",
            "/apis/apps/v1/namespaces/vkube-addons/deployments/widget-controller",
            "/apis/storage.k8s.io/v1/storageclasses/vsphere-zone-a",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.vkube.io",
            "/apis/example.vkube.io/v1/namespaces/vkube-addons/widgets/default",
            "/api/v1/namespaces/default/configmaps/widget-defaults",
        ]
    );
    let documents = yaml_documents(&stream);
    for (request, document) in sent.iter().zip(&documents) {
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        let mut query = request.query_pairs();
        query.sort();
        assert_eq!(
            query,
            [
                ("fieldManager".to_string(), FIELD_MANAGER.to_string()),
                ("force".to_string(), "true".to_string())
            ],
            "{}",
            request.path
        );
        let mut expected = document.clone();
        if expected["kind"] == "ConfigMap" {
            expected["metadata"]["namespace"] = json!("default");
        }
        assert_eq!(request.json(), expected, "{}", request.path);
    }

    // One discovery request per group version, before its first object.
    for path in [
        "/api/v1",
        "/apis/rbac.authorization.k8s.io/v1",
        "/apis/apps/v1",
        "/apis/storage.k8s.io/v1",
        "/apis/apiextensions.k8s.io/v1",
        "/apis/example.vkube.io/v1",
    ] {
        assert_eq!(discovery_gets(&requests, path), 1, "{path}");
    }
    let stored = stand_in
        .object("/apis/example.vkube.io/v1/namespaces/vkube-addons/widgets/default")
        .unwrap();
    assert_eq!(
        stored["metadata"]["managedFields"][0]["manager"],
        FIELD_MANAGER
    );

    // Applying again changes nothing's identity, configures everything, and asks discovery
    // nothing new.
    let again = client.apply_manifest(&stream, FIELD_MANAGER).await.unwrap();
    assert_eq!(again.len(), 9);
    assert!(
        again.iter().all(|a| a.outcome == ApplyOutcome::Configured),
        "{again:?}"
    );
    let requests = stand_in.requests();
    assert_eq!(patches(&requests).len(), 18);
    assert_eq!(requests.iter().filter(|r| r.method == "GET").count(), 6);
}

#[tokio::test]
async fn unknown_kind_then_its_crd_refreshes_cached_discovery_on_stand_in() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: vkube-addons}\n";
    let stream = format!("{namespace}---\n{WIDGET}");
    let err = client
        .apply_manifest(&stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    match &err {
        Error::UnknownKind {
            document,
            object,
            api_version,
            kind,
            ..
        } => {
            assert_eq!(*document, 2);
            assert_eq!(object, "Widget vkube-addons/default");
            assert_eq!(
                (api_version.as_str(), kind.as_str()),
                ("example.vkube.io/v1", "Widget")
            );
        }
        other => panic!("expected UnknownKind, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("is its CustomResourceDefinition installed?"),
        "{err}"
    );
    let widget_discovery = "/apis/example.vkube.io/v1";
    assert_eq!(discovery_gets(&stand_in.requests(), widget_discovery), 1);

    // The group version is cached as not served; the CRD's arrival makes the client ask
    // again. A second CRD in the same group version, in the same stream, makes it ask once
    // more, right away: this client does not wait for CRDs to be established at all.
    let gadget_crd = WIDGET_CRD
        .replace("widgets.example", "gadgets.example")
        .replace("Widget", "Gadget")
        .replace("widget", "gadget");
    let gadget = WIDGET.replace("Widget", "Gadget");
    let stream = format!("{WIDGET_CRD}---\n{WIDGET}---\n{gadget_crd}---\n{gadget}");
    let no_waiting = client.with_crd_establish_wait(Duration::ZERO);
    let applied = no_waiting
        .apply_manifest(&stream, FIELD_MANAGER)
        .await
        .unwrap();
    let objects: Vec<String> = applied.iter().map(|a| a.object.to_string()).collect();
    assert_eq!(objects[1], "Widget vkube-addons/default");
    assert_eq!(objects[3], "Gadget vkube-addons/default");
    assert_eq!(discovery_gets(&stand_in.requests(), widget_discovery), 3);
}

#[tokio::test]
async fn crd_not_yet_established_is_awaited_on_stand_in() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let client = client.with_crd_establish_wait(Duration::from_secs(10));
    stand_in.set_crd_establish_polls(2);
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: vkube-addons}\n";
    let stream = format!("{namespace}---\n{WIDGET_CRD}---\n{WIDGET}");
    let started = Instant::now();
    let applied = client.apply_manifest(&stream, FIELD_MANAGER).await.unwrap();
    assert_eq!(applied.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        discovery_gets(&stand_in.requests(), "/apis/example.vkube.io/v1"),
        3
    );
}

#[tokio::test]
async fn crd_never_established_fails_after_the_wait_on_stand_in() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let client = client.with_crd_establish_wait(Duration::from_millis(1200));
    stand_in.set_crd_establish_polls(1000);
    let stream = format!("{WIDGET_CRD}---\n{WIDGET}");
    let started = Instant::now();
    let err = client
        .apply_manifest(&stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownKind { document: 2, .. }),
        "{err:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1200) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn invalid_document_stops_the_stream_before_any_request_to_stand_in() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let stream = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
                  apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\n\
                  apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: a}\n";
    let err = client
        .apply_manifest(stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidManifest { document: 3, .. }),
        "{err:?}"
    );
    assert!(stand_in.requests().is_empty());

    let err = client
        .apply_manifest("apiVersion: v1\n", "")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn cluster_scoped_object_with_a_namespace_is_refused_before_patching_stand_in() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let stream = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
                  metadata: {name: widget-controller, namespace: kube-system}\nrules: []\n";
    let err = client
        .apply_manifest(stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::InvalidManifest { document: 1, .. }),
        "{err:?}"
    );
    assert!(text.contains("ClusterRole is cluster-scoped"), "{text}");
    assert!(patches(&stand_in.requests()).is_empty());
}

#[tokio::test]
async fn recorded_403_from_stand_in_is_forbidden_naming_the_object() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.respond(
        "PATCH",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/cilium",
        Reply::json(403, STATUS_403_FORBIDDEN),
    );
    let stream = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: cilium, namespace: kube-system}\n---\n\
                  apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: cilium}\nrules: []\n---\n\
                  apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\n";
    let err = client
        .apply_manifest(stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    match &err {
        Error::Forbidden { what, message } => {
            assert_eq!(what, "apply of ClusterRole cilium (document 2)");
            assert!(
                message.contains("User \"vkube-addons\" cannot patch resource \"clusterroles\""),
                "{message}"
            );
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let sent: Vec<String> = patches(&stand_in.requests())
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(sent.len(), 2, "the stream stops at the failure: {sent:?}");
}

#[tokio::test]
async fn recorded_409_from_stand_in_is_a_conflict() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.respond(
        "PATCH",
        "/api/v1/namespaces/kube-system/configmaps/cilium-config",
        Reply::json(409, STATUS_409_CONFLICT),
    );
    let stream = "apiVersion: v1\nkind: ConfigMap\n\
                  metadata: {name: cilium-config, namespace: kube-system, resourceVersion: \"1\"}\n";
    let err = client
        .apply_manifest(stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    match &err {
        Error::Conflict { what, message } => {
            assert_eq!(
                what,
                "apply of ConfigMap kube-system/cilium-config (document 1)"
            );
            assert!(
                message.contains("the object has been modified"),
                "{message}"
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn object_in_a_missing_namespace_is_not_found_on_stand_in() {
    let (_pki, _stand_in, client) = stand_in_with_client().await;
    let stream =
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: cilium, namespace: cilium}\n";
    let err = client
        .apply_manifest(stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    match &err {
        Error::NotFound { what, message } => {
            assert_eq!(what, "apply of ServiceAccount cilium/cilium (document 1)");
            assert_eq!(message, "namespaces \"cilium\" not found");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn secret_values_echoed_by_stand_in_are_redacted() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    let echo = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Secret \"vsphere-config-secret\" is invalid: data[csi-vsphere.conf]: Invalid value: \"[Global]\\npassword = hunter2-pass\\n\"",
        "reason": "Invalid", "code": 422
    });
    stand_in.respond(
        "PATCH",
        "/api/v1/namespaces/kube-system/secrets/vsphere-config-secret",
        Reply::json(422, echo.to_string()),
    );
    let stream = "apiVersion: v1\nkind: Secret\nmetadata: {name: vsphere-config-secret, namespace: kube-system}\n\
                  stringData:\n  csi-vsphere.conf: \"[Global]\\npassword = hunter2-pass\\n\"\n";
    let err = client
        .apply_manifest(stream, FIELD_MANAGER)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    assert!(!text.contains("hunter2-pass"), "{text}");
    assert!(
        text.contains("Secret kube-system/vsphere-config-secret"),
        "{text}"
    );
}
