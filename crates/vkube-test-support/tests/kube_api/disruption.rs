//! Nodes, pods and disruptions: the recorded Node, Pod and PodDisruptionBudget lists stored
//! and served back, merge patches (cordon), the Eviction API deciding like the API server's
//! handler, pods left terminating, the health endpoints — and kubectl's own `get nodes`,
//! `cordon` and `drain` against the stand-in, which read the recorded shapes and 429s as they
//! read a real API server's.

use std::path::Path;

use serde_json::{json, Value};
use vkube_test_support::external_tool::{KUBECTL, KUBERNETES_VALIDATE};
use vkube_test_support::kube_api::{
    fixtures, Issued, PodTermination, StandIn, StandInOptions, TestCa,
};

use crate::client::{Answer, Client};
use crate::ecosystem::kubeconfig;

const WORKER: &str = "demo-workers-0";
const WEB_POD: &str = "/api/v1/namespaces/default/pods/web-6d4cf56db6-q7m2x";
const DB_POD: &str = "/api/v1/namespaces/default/pods/db-0";
const WEB_BUDGET: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web";
const DB_BUDGET: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets/db";

/// A stand-in holding the recorded nodes, pods and budgets of cluster `demo`, an admin
/// client, and the CA and admin certificate (for kubectl).
struct Demo {
    stand_in: StandIn,
    client: Client,
    ca_pem: String,
    admin: Issued,
}

impl Demo {
    fn new() -> Demo {
        let ca = TestCa::new("kubernetes");
        let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
        let ca_pem = ca.cert_pem.clone();
        let stand_in = StandIn::start(StandInOptions::with_test_ca(ca));
        for list in [fixtures::NODE_LIST, fixtures::POD_LIST, fixtures::PDB_LIST] {
            stand_in.put_items(list);
        }
        let client = Client::new(stand_in.addr(), &ca_pem, &admin);
        Demo {
            stand_in,
            client,
            ca_pem,
            admin,
        }
    }

    fn evict(&self, pod_path: &str) -> Answer {
        let name = pod_path.rsplit('/').next().unwrap();
        let eviction = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name},
        });
        self.client
            .send(
                "POST",
                &format!("{pod_path}/eviction"),
                Some("application/json"),
                eviction.to_string().as_bytes(),
            )
            .unwrap()
    }

    fn allowed_disruptions(&self, budget: &str) -> i64 {
        self.stand_in.object(budget).unwrap()["status"]["disruptionsAllowed"]
            .as_i64()
            .unwrap()
    }

    /// Lets `budget` allow `allowed` disruptions, as the disruption controller would once
    /// replacements are healthy.
    fn allow(&self, budget: &str, allowed: i64) {
        let mut object = self.stand_in.object(budget).unwrap();
        object["status"]["disruptionsAllowed"] = json!(allowed);
        self.stand_in.put_object(object);
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn recorded_lists_are_stored_item_by_item_and_served_with_field_selectors() {
    let demo = Demo::new();
    let nodes = demo.client.get("/api/v1/nodes").unwrap().json();
    assert_eq!(
        names(&nodes),
        [
            "demo-cp-0",
            "demo-workers-0",
            "demo-workers-1",
            "demo-workers-2"
        ]
    );
    let node = demo
        .stand_in
        .object("/api/v1/nodes/demo-workers-1")
        .unwrap();
    assert_eq!(node["kind"], "Node", "put_items gives items their kind");
    assert_eq!(
        node["status"]["conditions"][3]["reason"],
        "NodeStatusUnknown"
    );

    let on_worker = demo
        .client
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Ddemo-workers-0&limit=500")
        .unwrap()
        .json();
    assert_eq!(
        names(&on_worker),
        [
            "db-0",
            "debug",
            "report-28751040-8kq5z",
            "web-6d4cf56db6-q7m2x",
            "cilium-p4v9k",
            "kube-proxy-9fz4q",
        ]
    );
    let budgets = demo
        .client
        .get("/apis/policy/v1/namespaces/default/poddisruptionbudgets")
        .unwrap()
        .json();
    assert_eq!(budgets["kind"], "PodDisruptionBudgetList");
    assert_eq!(names(&budgets), ["db", "web"]);
    let discovery = demo.client.get("/apis/policy/v1").unwrap().json();
    assert_eq!(discovery["resources"][0]["kind"], "PodDisruptionBudget");
}

#[test]
fn eviction_honours_disruption_budgets_like_the_api_server() {
    let demo = Demo::new();
    // `web` allows no disruption: the recorded 429, naming the budget in its cause.
    let blocked = demo.evict(WEB_POD);
    assert_eq!(blocked.status, 429);
    assert_eq!(
        blocked.json(),
        json_of(fixtures::STATUS_429_EVICTION_BLOCKED)
    );
    assert!(
        demo.stand_in.object(WEB_POD).is_some(),
        "a blocked pod stays"
    );

    // `db` allows one: granted, decremented, recorded in disruptedPods, pod deleted.
    let granted = demo.evict(DB_POD);
    assert_eq!(granted.status, 201);
    assert_eq!(granted.json(), json_of(fixtures::STATUS_201_EVICTION));
    assert!(demo.stand_in.object(DB_POD).is_none());
    let db = demo.stand_in.object(DB_BUDGET).unwrap();
    assert_eq!(db["status"]["disruptionsAllowed"], 0);
    assert!(db["status"]["disruptedPods"]["db-0"].is_string());
    assert_eq!(db["status"]["conditions"][0]["reason"], "InsufficientPods");

    // No budget covers these; a finished pod never consults one.
    for pod in ["debug", "report-28751040-8kq5z"] {
        let path = format!("/api/v1/namespaces/default/pods/{pod}");
        assert_eq!(demo.evict(&path).status, 201, "{pod}");
        assert!(demo.stand_in.object(&path).is_none(), "{pod}");
    }

    // Once the controller allows a disruption again, the same eviction is granted.
    demo.allow(WEB_BUDGET, 1);
    assert_eq!(demo.evict(WEB_POD).status, 201);
    assert_eq!(demo.allowed_disruptions(WEB_BUDGET), 0);
}

#[test]
fn evictions_the_api_server_refuses_otherwise() {
    let demo = Demo::new();
    let other_web = "/api/v1/namespaces/default/pods/web-6d4cf56db6-t9w4c";
    // A second budget over the same pods: the recorded 500.
    let mut second = demo.stand_in.object(WEB_BUDGET).unwrap();
    second["metadata"] = json!({"name": "web-strict", "namespace": "default", "generation": 1});
    demo.stand_in.put_object(second);
    let multiple = demo.evict(other_web);
    assert_eq!(multiple.status, 500);
    assert_eq!(
        multiple.json(),
        json_of(fixtures::STATUS_500_EVICTION_MULTIPLE_BUDGETS)
    );
    demo.stand_in
        .remove_object("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web-strict");

    // A budget whose status lags its spec: 429 until the controller catches up.
    let mut web = demo.stand_in.object(WEB_BUDGET).unwrap();
    web["metadata"]["generation"] = json!(2);
    web["status"]["disruptionsAllowed"] = json!(1);
    demo.stand_in.put_object(web);
    let processing = demo.evict(other_web).json();
    assert_eq!(processing["code"], 429);
    assert_eq!(
        processing["details"],
        json!({
            "causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web is still being processed by the server."}],
            "retryAfterSeconds": 10,
        })
    );

    let wrong_name = demo
        .client
        .send(
            "POST",
            &format!("{other_web}/eviction"),
            Some("application/json"),
            br#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"other"}}"#,
        )
        .unwrap();
    assert_eq!(wrong_name.status, 400);
    assert_eq!(
        wrong_name.json()["message"],
        "name in URL does not match name in Eviction object"
    );
    let missing = demo.evict("/api/v1/namespaces/default/pods/gone");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["message"], "pods \"gone\" not found");
    let get = demo.client.get(&format!("{other_web}/eviction")).unwrap();
    assert_eq!(get.status, 405);
}

#[test]
fn pods_stay_terminating_until_the_test_removes_them() {
    let demo = Demo::new();
    demo.stand_in
        .set_pod_termination(PodTermination::UntilRemoved);
    assert_eq!(demo.evict(DB_POD).status, 201);
    let terminating = demo.client.get(DB_POD).unwrap().json();
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        terminating["metadata"]["deletionGracePeriodSeconds"], 60,
        "the pod's own grace period"
    );
    // Evicting a terminating pod consults no budget (db now allows none) and changes nothing.
    assert_eq!(demo.allowed_disruptions(DB_BUDGET), 0);
    assert_eq!(demo.evict(DB_POD).status, 201);

    let deleted = demo
        .client
        .send(
            "DELETE",
            "/api/v1/namespaces/default/pods/debug",
            Some("application/json"),
            br#"{"gracePeriodSeconds":5}"#,
        )
        .unwrap();
    assert_eq!(deleted.status, 200);
    let deleted = deleted.json();
    assert_eq!(
        deleted["kind"], "Pod",
        "pods answer a deletion with the pod"
    );
    assert_eq!(deleted["metadata"]["deletionGracePeriodSeconds"], 5);
    let forced = demo
        .client
        .send(
            "DELETE",
            "/api/v1/namespaces/default/pods/web-6d4cf56db6-q7m2x?gracePeriodSeconds=0",
            None,
            b"",
        )
        .unwrap();
    assert_eq!(forced.status, 200);
    assert_eq!(
        demo.client.get(WEB_POD).unwrap().status,
        404,
        "grace 0 is immediate"
    );

    demo.stand_in.remove_object(DB_POD);
    assert_eq!(demo.client.get(DB_POD).unwrap().status, 404);
}

#[test]
fn merge_patches_cordon_and_uncordon_stored_nodes() {
    let demo = Demo::new();
    let path = format!("/api/v1/nodes/{WORKER}");
    let before = demo.stand_in.object(&path).unwrap();
    let patch = |content_type: &str, body: &str| {
        demo.client
            .send("PATCH", &path, Some(content_type), body.as_bytes())
            .unwrap()
    };
    let cordoned = patch(
        "application/merge-patch+json",
        r#"{"spec":{"unschedulable":true}}"#,
    );
    assert_eq!(cordoned.status, 200, "{}", cordoned.body);
    let cordoned = cordoned.json();
    assert_eq!(cordoned["spec"]["unschedulable"], true);
    assert_eq!(cordoned["spec"]["podCIDR"], before["spec"]["podCIDR"]);
    assert_eq!(cordoned["metadata"]["uid"], before["metadata"]["uid"]);
    assert_ne!(
        cordoned["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    let uncordoned = patch(
        "application/strategic-merge-patch+json",
        r#"{"spec":{"unschedulable":null}}"#,
    );
    assert_eq!(uncordoned.status, 200);
    assert!(demo.stand_in.object(&path).unwrap()["spec"]
        .get("unschedulable")
        .is_none());

    let stale = patch(
        "application/merge-patch+json",
        r#"{"metadata":{"resourceVersion":"1"},"spec":{"unschedulable":true}}"#,
    );
    assert_eq!(stale.status, 409);
    assert!(stale.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Operation cannot be fulfilled on nodes \"demo-workers-0\""));
    let with_list = patch(
        "application/strategic-merge-patch+json",
        r#"{"spec":{"taints":[]}}"#,
    );
    assert_eq!(
        with_list.status, 400,
        "lists are merged by key: not evaluated"
    );
    let json_patch = patch("application/json-patch+json", "[]");
    assert_eq!(json_patch.status, 415);
    let missing = demo
        .client
        .send(
            "PATCH",
            "/api/v1/nodes/missing",
            Some("application/merge-patch+json"),
            b"{}",
        )
        .unwrap();
    assert_eq!(missing.status, 404);
}

#[test]
fn health_endpoints_answer_ok_in_text() {
    let demo = Demo::new();
    for path in ["/readyz", "/livez", "/healthz"] {
        let answer = demo.client.get(path).unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "ok"), "{path}");
    }
}

/// The hand-written objects pass the Kubernetes 1.30 OpenAPI schema, strictly (no unknown or
/// misspelled field).
#[test]
fn recorded_objects_pass_kubernetes_validate_strict() {
    if !KUBERNETES_VALIDATE.available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for list in [fixtures::NODE_LIST, fixtures::POD_LIST, fixtures::PDB_LIST] {
        let list = json_of(list);
        let kind = list["kind"].as_str().unwrap().trim_end_matches("List");
        for (index, item) in list["items"].as_array().unwrap().iter().enumerate() {
            let mut object = json!({"apiVersion": list["apiVersion"], "kind": kind});
            object
                .as_object_mut()
                .unwrap()
                .extend(item.as_object().unwrap().clone());
            let path = dir.path().join(format!("{kind}-{index}.json"));
            std::fs::write(&path, object.to_string()).unwrap();
            files.push(path);
        }
    }
    let out = KUBERNETES_VALIDATE
        .command()
        .args(["--strict", "-k", "1.30.0"])
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed ").count(), files.len(), "{text}");
}

/// kubectl in a scratch home with a kubeconfig for the demo stand-in.
struct Kubectl {
    dir: tempfile::TempDir,
    config: String,
}

impl Kubectl {
    fn new(demo: &Demo) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("cluster-ca.crt", &demo.ca_pem);
        write("admin.crt", &demo.admin.cert_pem);
        write("admin.key", &demo.admin.key_pem);
        let config = kubeconfig(dir.path(), "admin.conf", &demo.stand_in.endpoint(), "admin");
        Kubectl { dir, config }
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let home: &Path = self.dir.path();
        let out = KUBECTL
            .command()
            .args(["--kubeconfig", &self.config, "--cache-dir"])
            .arg(home.join("cache"))
            .args(["--request-timeout", "10s"])
            .args(args)
            .env("HOME", home)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

#[test]
fn kubectl_reads_the_recorded_nodes() {
    if !KUBECTL.available() {
        return;
    }
    let demo = Demo::new();
    let kubectl = Kubectl::new(&demo);
    // The stand-in sends plain lists (no server-side Table), so the columns are kubectl's
    // own JSONPath over the recorded objects.
    let columns = "NAME:.metadata.name,READY:.status.conditions[?(@.type==\"Ready\")].status,\
                   REASON:.status.conditions[?(@.type==\"Ready\")].reason,\
                   KUBELET:.status.nodeInfo.kubeletVersion,TAINTS:.spec.taints[*].key";
    let (ok, text) = kubectl.run(&[
        "get",
        "nodes",
        "--no-headers",
        "-o",
        &format!("custom-columns={}", columns.replace(' ', "")),
    ]);
    assert!(ok, "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "demo-cp-0",
                "True",
                "KubeletReady",
                "v1.30.4",
                "node-role.kubernetes.io/control-plane"
            ],
            vec![
                "demo-workers-0",
                "True",
                "KubeletReady",
                "v1.30.4",
                "<none>"
            ],
            vec![
                "demo-workers-1",
                "Unknown",
                "NodeStatusUnknown",
                "v1.30.4",
                "node.kubernetes.io/unreachable,node.kubernetes.io/unreachable"
            ],
            vec![
                "demo-workers-2",
                "False",
                "KubeletNotReady",
                "v1.30.4",
                "node.kubernetes.io/not-ready"
            ],
        ],
        "{text}"
    );
}

/// `kubectl drain` (cordon by strategic merge patch, pod list by field selector, DaemonSet
/// lookups, evictions, waiting for the pods to go) works against the stand-in: blocked by
/// the recorded 429 of budget `web` until its timeout, then through once `web` allows a
/// disruption.
#[test]
fn kubectl_drain_is_blocked_by_the_recorded_429_then_drains() {
    if !KUBECTL.available() {
        return;
    }
    let demo = Demo::new();
    for name in ["cilium", "kube-proxy"] {
        demo.stand_in.put_object(json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"k8s-app": name}}},
        }));
    }
    let kubectl = Kubectl::new(&demo);
    let drain = [
        "drain",
        WORKER,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout",
        "2s",
    ];
    let (ok, text) = kubectl.run(&drain);
    assert!(!ok, "the web budget must block the drain: {text}");
    assert!(
        text.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{text}"
    );
    assert!(text.contains("node/demo-workers-0 cordoned"), "{text}");
    let node = demo
        .stand_in
        .object(&format!("/api/v1/nodes/{WORKER}"))
        .unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);

    demo.allow(WEB_BUDGET, 1);
    let (ok, text) = kubectl.run(&drain);
    assert!(ok, "{text}");
    assert!(text.contains("pod/web-6d4cf56db6-q7m2x evicted"), "{text}");
    assert!(text.contains("node/demo-workers-0 drained"), "{text}");
    let left = demo
        .client
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Ddemo-workers-0")
        .unwrap()
        .json();
    assert_eq!(names(&left), ["cilium-p4v9k", "kube-proxy-9fz4q"]);
}
