//! The API server behaviour behind the recorded answers, driven over mutual TLS from a
//! synchronous test: server-side apply with its failures, discovery of applied CRDs, stored
//! objects with list, selectors and delete, and answers the test sets per route.

use serde_json::{json, Value};
use vkube_test_support::kube_api::{
    fixtures, AppliedObject, Issued, Reply, StandIn, StandInOptions, TestCa,
};

use crate::client::Client;

/// A stand-in for a fresh CA, and a client holding that CA's admin certificate.
fn stand_in_and_admin() -> (StandIn, Client) {
    let ca = TestCa::new("kubernetes");
    let admin: Issued = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
    let ca_pem = ca.cert_pem.clone();
    let stand_in = StandIn::start(StandInOptions::with_test_ca(ca));
    let client = Client::new(stand_in.addr(), &ca_pem, &admin);
    (stand_in, client)
}

fn config_map(namespace: &str, name: &str, size: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"size": size},
    })
}

#[test]
fn apply_creates_then_updates_and_applied_objects_lists_what_was_accepted() {
    let (stand_in, client) = stand_in_and_admin();
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "addons"}});
    let created = client.apply("/api/v1/namespaces/addons", "vkube", &namespace);
    assert_eq!(created.status, 201, "{}", created.body);

    let path = "/api/v1/namespaces/addons/configmaps/widget";
    let first = client.apply(path, "vkube", &config_map("addons", "widget", "3"));
    assert_eq!(first.status, 201);
    let second = client.apply(path, "vkube", &config_map("addons", "widget", "4"));
    assert_eq!(second.status, 200);
    let (first, second) = (first.json(), second.json());
    assert_eq!(first["metadata"]["uid"], second["metadata"]["uid"]);
    assert_ne!(
        first["metadata"]["resourceVersion"],
        second["metadata"]["resourceVersion"]
    );
    assert_eq!(second["metadata"]["managedFields"][0]["manager"], "vkube");
    assert_eq!(stand_in.object(path).unwrap()["data"]["size"], "4");

    // Refused: a namespace that does not exist, and a merge patch instead of an apply.
    let missing = client.apply(
        "/api/v1/namespaces/nowhere/configmaps/widget",
        "vkube",
        &config_map("nowhere", "widget", "1"),
    );
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json()["message"],
        "namespaces \"nowhere\" not found"
    );
    let json_patch = client
        .send(
            "PATCH",
            &format!("{path}?fieldManager=vkube"),
            Some("application/json-patch+json"),
            br#"[{"op":"replace","path":"/data/size","value":"5"}]"#,
        )
        .unwrap();
    assert_eq!(json_patch.status, 415);
    assert_eq!(
        json_patch.json(),
        serde_json::from_str::<Value>(fixtures::STATUS_415_UNSUPPORTED_MEDIA_TYPE).unwrap()
    );
    let unnamed = client.apply(path, "", &config_map("addons", "widget", "5"));
    assert_eq!(unnamed.status, 400);

    let applied = stand_in.applied_objects();
    let summary: Vec<(&str, Option<&str>, &str)> = applied
        .iter()
        .map(|a| (a.kind.as_str(), a.namespace.as_deref(), a.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("Namespace", None, "addons"),
            ("ConfigMap", Some("addons"), "widget"),
            ("ConfigMap", Some("addons"), "widget"),
        ]
    );
    assert_eq!(
        applied[2],
        AppliedObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("addons".into()),
            name: "widget".into(),
            field_manager: "vkube".into(),
            body: config_map("addons", "widget", "4"),
        }
    );
    let patches = stand_in.requests_matching("PATCH", "/api/v1/namespaces/addons/configmaps/");
    let statuses: Vec<u16> = patches.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 200, 415, 400]);
    assert_eq!(
        patches[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(patches[0].query_value("force").as_deref(), Some("true"));
    assert_eq!(patches[0].json(), config_map("addons", "widget", "3"));
}

#[test]
fn bootstrap_token_secret_is_stored_in_kube_system() {
    let (stand_in, client) = stand_in_and_admin();
    let path = "/api/v1/namespaces/kube-system/secrets/bootstrap-token-7h3k9q";
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bootstrap-token-7h3k9q", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "7h3k9q"},
    });
    assert_eq!(client.apply(path, "vkube", &secret).status, 201);
    assert_eq!(
        stand_in.object(path).unwrap()["type"],
        "bootstrap.kubernetes.io/token"
    );
    assert_eq!(stand_in.applied_objects()[0].kind, "Secret");
}

#[test]
fn an_applied_crd_is_discovered_after_the_configured_polls() {
    let (stand_in, client) = stand_in_and_admin();
    stand_in.set_crd_establish_polls(1);
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.vkube.io"},
        "spec": {
            "group": "example.vkube.io",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Cluster",
            "versions": [{"name": "v1", "served": true, "storage": true}],
        },
    });
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.vkube.io";
    assert_eq!(client.apply(path, "vkube", &crd).status, 201);
    assert_eq!(client.get("/apis/example.vkube.io/v1").unwrap().status, 404);
    let served = client.get("/apis/example.vkube.io/v1").unwrap();
    assert_eq!(served.status, 200);
    assert_eq!(served.json()["resources"][0]["kind"], "Widget");
    let widget =
        json!({"apiVersion": "example.vkube.io/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let applied = client.apply("/apis/example.vkube.io/v1/widgets/w", "vkube", &widget);
    assert_eq!(applied.status, 201, "{}", applied.body);
}

fn node(name: &str, ready: &str, role: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/hostname": name});
    if let Some(role) = role {
        labels[format!("node-role.kubernetes.io/{role}")] = json!("");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    })
}

#[test]
fn objects_put_by_the_test_are_listed_with_selectors_fetched_and_deleted() {
    let (stand_in, client) = stand_in_and_admin();
    assert_eq!(
        stand_in.put_object(node("cp-1", "True", Some("control-plane"))),
        "/api/v1/nodes/cp-1"
    );
    stand_in.put_object(node("w-1", "True", None));
    stand_in.put_object(node("w-2", "False", None));
    let names = |answer: &Value| -> Vec<String> {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };

    let all = client.get("/api/v1/nodes").unwrap().json();
    assert_eq!(all["kind"], "NodeList");
    assert_eq!(names(&all), ["cp-1", "w-1", "w-2"]);
    assert!(
        all["items"][0].get("kind").is_none(),
        "built-in list items carry no kind"
    );
    let workers = client
        .get("/api/v1/nodes?labelSelector=%21node-role.kubernetes.io%2Fcontrol-plane")
        .unwrap()
        .json();
    assert_eq!(names(&workers), ["w-1", "w-2"]);
    let one = client
        .get("/api/v1/nodes?fieldSelector=metadata.name%3Dw-2")
        .unwrap()
        .json();
    assert_eq!(names(&one), ["w-2"]);
    let set_based = client
        .get("/api/v1/nodes?labelSelector=a+in+%28b%29")
        .unwrap();
    assert_eq!(set_based.status, 400);
    let watch = client.get("/api/v1/nodes?watch=true").unwrap();
    assert_eq!(watch.status, 400);
    assert!(
        watch.body.contains("does not emulate watches"),
        "{}",
        watch.body
    );

    let fetched = client.get("/api/v1/nodes/w-1").unwrap().json();
    assert_eq!(fetched["status"]["conditions"][0]["status"], "True");
    assert!(fetched["metadata"]["uid"].is_string());

    let deleted = client
        .send("DELETE", "/api/v1/nodes/w-1", None, b"")
        .unwrap();
    assert_eq!(deleted.status, 200);
    let deleted = deleted.json();
    assert_eq!(deleted["status"], "Success");
    assert_eq!(deleted["details"]["name"], "w-1");
    assert_eq!(deleted["details"]["kind"], "nodes");
    assert_eq!(deleted["details"]["uid"], fetched["metadata"]["uid"]);
    let gone = client.get("/api/v1/nodes/w-1").unwrap();
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["message"], "nodes \"w-1\" not found");
    assert_eq!(
        client
            .send("DELETE", "/api/v1/nodes/w-1", None, b"")
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        stand_in.requests_matching("DELETE", "/api/v1/nodes/").len(),
        2
    );

    assert!(stand_in.remove_object("/api/v1/nodes/w-2").is_some());
    assert_eq!(
        names(&client.get("/api/v1/nodes").unwrap().json()),
        ["cp-1"]
    );
    let rbac = client
        .get("/apis/rbac.authorization.k8s.io/v1/clusterroles/missing")
        .unwrap()
        .json();
    assert_eq!(
        rbac["message"],
        "clusterroles.rbac.authorization.k8s.io \"missing\" not found"
    );
    assert_eq!(rbac["details"]["group"], "rbac.authorization.k8s.io");
}

#[test]
fn namespaced_lists_cover_one_namespace_or_all() {
    let (stand_in, client) = stand_in_and_admin();
    for (ns, name) in [("default", "a"), ("kube-system", "b"), ("kube-system", "c")] {
        stand_in.put_object(config_map(ns, name, "1"));
    }
    let count = |path: &str| {
        client.get(path).unwrap().json()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count("/api/v1/configmaps"), 3);
    assert_eq!(count("/api/v1/namespaces/kube-system/configmaps"), 2);
    let namespaces = client.get("/api/v1/namespaces").unwrap().json();
    assert_eq!(namespaces["items"].as_array().unwrap().len(), 4);
}

#[test]
fn answers_set_by_the_test_take_precedence_per_route() {
    let (stand_in, client) = stand_in_and_admin();
    let path = "/apis/rbac.authorization.k8s.io/v1/clusterroles/cilium";
    stand_in.respond(
        "PATCH",
        path,
        Reply::json(403, fixtures::STATUS_403_FORBIDDEN),
    );
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cilium"}, "rules": []});
    let refused = client.apply(path, "vkube-addons", &role);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["reason"], "Forbidden");
    assert!(
        stand_in.applied_objects().is_empty(),
        "a refused apply is not applied"
    );
    stand_in.clear_response("PATCH", path);
    assert_eq!(client.apply(path, "vkube-addons", &role).status, 201);

    // An eviction blocked twice by a PodDisruptionBudget, then granted.
    let eviction = "/api/v1/namespaces/default/pods/web-0/eviction";
    let blocked = Reply::failure(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        json!({"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}),
    );
    stand_in.respond_sequence(
        "POST",
        eviction,
        vec![blocked.clone(), blocked, Reply::json(201, "{}")],
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            client
                .send("POST", eviction, Some("application/json"), b"{}")
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(statuses, [429, 429, 201, 201]);

    // A handler sees the request and may leave it to the stand-in.
    stand_in.respond_with("GET", "/api/v1/nodes", |request| {
        (request.query_value("watch").as_deref() == Some("true"))
            .then(|| Reply::json(200, "{\"type\":\"ADDED\",\"object\":{}}\n"))
    });
    assert_eq!(client.get("/api/v1/nodes?watch=true").unwrap().status, 200);
    assert_eq!(
        client.get("/api/v1/nodes").unwrap().json()["kind"],
        "NodeList"
    );

    stand_in.answer_everything_with(Reply::json(401, fixtures::STATUS_401_UNAUTHORIZED));
    assert_eq!(client.get("/version").unwrap().status, 401);
    stand_in.answer_normally();
    assert_eq!(client.get("/version").unwrap().status, 200);
}
