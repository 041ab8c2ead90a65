//! Draining against the stand-in playing cluster `demo` (recorded Nodes, Pods and
//! PodDisruptionBudgets; the Eviction API decided as the 1.30 handler does): DaemonSet and
//! mirror pods stay, 429s are retried until the budget allows, a budget that never does
//! fails the drain naming it, `force` deletes instead, evicted pods are followed until gone.

use std::time::{Duration, Instant};

use serde_json::json;
use vkube_kube::{Backoff, ClusterApi, DrainOptions, Error, KubeClient, PodRef, SkipReason};
use vkube_test_support::kube_api::fixtures::{
    NODE_LIST, PDB_LIST, POD_LIST, STATUS_429_EVICTION_BLOCKED,
};
use vkube_test_support::kube_api::{PodTermination, Reply, StandIn};

use crate::stand_in_with_client;
use crate::support::TestPki;

const WORKER: &str = "demo-workers-0";
const WEB_POD: &str = "/api/v1/namespaces/default/pods/web-6d4cf56db6-q7m2x";
const WEB_BUDGET: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web";

/// The stand-in as cluster `demo` and an admin client.
async fn demo() -> (TestPki, StandIn, KubeClient) {
    let (pki, stand_in, client) = stand_in_with_client().await;
    for list in [NODE_LIST, POD_LIST, PDB_LIST] {
        stand_in.put_items(list);
    }
    (pki, stand_in, client)
}

/// Drain options with test-sized waits.
fn within(timeout: Duration) -> DrainOptions {
    DrainOptions {
        timeout,
        retry: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        poll_interval: Duration::from_millis(20),
        ..DrainOptions::default()
    }
}

/// Lets a budget allow `allowed` disruptions, as the disruption controller does once
/// replacement pods are healthy.
fn allow(stand_in: &StandIn, budget: &str, allowed: i64) {
    let mut object = stand_in.object(budget).unwrap();
    object["status"]["disruptionsAllowed"] = json!(allowed);
    stand_in.put_object(object);
}

fn pod(namespace: &str, name: &str) -> PodRef {
    PodRef {
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn pods_left_on(stand_in: &StandIn, node: &str) -> Vec<String> {
    let mut left = Vec::new();
    for namespace in ["default", "kube-system"] {
        for name in [
            "web-6d4cf56db6-q7m2x",
            "db-0",
            "debug",
            "report-28751040-8kq5z",
            "cilium-p4v9k",
            "kube-proxy-9fz4q",
        ] {
            let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
            if let Some(found) = stand_in.object(&path) {
                if found["spec"]["nodeName"] == node {
                    left.push(name.to_string());
                }
            }
        }
    }
    left
}

#[tokio::test]
async fn stand_in_drain_evicts_all_but_daemon_set_pods_and_reports_them() {
    let (_pki, stand_in, client) = demo().await;
    allow(&stand_in, WEB_BUDGET, 1);
    let report = client
        .drain(WORKER, &within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        report.evicted,
        [
            pod("default", "db-0"),
            pod("default", "debug"),
            pod("default", "report-28751040-8kq5z"),
            pod("default", "web-6d4cf56db6-q7m2x"),
        ],
        "in the order the API server lists them"
    );
    assert_eq!(report.unmanaged, [pod("default", "debug")]);
    let skipped: Vec<(String, SkipReason)> = report
        .skipped
        .iter()
        .map(|s| (s.pod.to_string(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "kube-system/cilium-p4v9k".to_string(),
                SkipReason::DaemonSet
            ),
            (
                "kube-system/kube-proxy-9fz4q".to_string(),
                SkipReason::DaemonSet
            ),
        ]
    );
    assert!(report.deleted.is_empty() && report.still_terminating.is_empty());
    assert_eq!(report.refused_attempts, 0);
    assert_eq!(
        pods_left_on(&stand_in, WORKER),
        ["cilium-p4v9k", "kube-proxy-9fz4q"]
    );

    // Cordoned first, pods listed by field selector, evictions through policy/v1.
    let node = stand_in.object("/api/v1/nodes/demo-workers-0").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    let list = &stand_in.requests_matching("GET", "/api/v1/pods")[0];
    assert_eq!(
        list.query_value("fieldSelector").as_deref(),
        Some("spec.nodeName=demo-workers-0")
    );
    let eviction = &stand_in.requests_matching("POST", WEB_POD)[0];
    assert_eq!(eviction.path, format!("{WEB_POD}/eviction"));
    assert_eq!(
        eviction.json(),
        json!({"apiVersion": "policy/v1", "kind": "Eviction",
               "metadata": {"name": "web-6d4cf56db6-q7m2x", "namespace": "default"}})
    );
    assert_eq!(
        stand_in.object(WEB_BUDGET).unwrap()["status"]["disruptionsAllowed"],
        0,
        "the eviction used the budget's one disruption"
    );
    assert!(stand_in
        .requests_matching("POST", "/api/v1/namespaces/kube-system/")
        .is_empty());
}

#[tokio::test]
async fn stand_in_drain_retries_429_until_the_budget_allows_it() {
    let (_pki, stand_in, client) = demo().await;
    let options = DrainOptions {
        grace_period: Some(Duration::from_secs(10)),
        ..within(Duration::from_secs(10))
    };
    let started = Instant::now();
    let (report, ()) = tokio::join!(client.drain(WORKER, &options), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        allow(&stand_in, WEB_BUDGET, 1);
    });
    let report = report.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(report
        .evicted
        .contains(&pod("default", "web-6d4cf56db6-q7m2x")));
    assert!(report.refused_attempts >= 2, "{report:?}");
    let statuses: Vec<u16> = stand_in
        .requests_matching("POST", &format!("{WEB_POD}/eviction"))
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    let first = &stand_in.requests_matching("POST", &format!("{WEB_POD}/eviction"))[0];
    assert_eq!(
        first.json()["deleteOptions"],
        json!({"gracePeriodSeconds": 10})
    );
}

#[tokio::test]
async fn stand_in_drain_blocked_by_a_budget_fails_naming_it() {
    let (_pki, stand_in, client) = demo().await;
    let started = Instant::now();
    let err = client
        .drain(WORKER, &within(Duration::from_millis(400)))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let Error::DrainTimedOut {
        node,
        blocked,
        terminating,
        ..
    } = &err
    else {
        panic!("expected DrainTimedOut, got {err:?}");
    };
    assert_eq!(node, WORKER);
    assert!(terminating.is_empty());
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].pod, pod("default", "web-6d4cf56db6-q7m2x"));
    assert_eq!(blocked[0].budgets, ["default/web"]);
    assert_eq!(
        err.to_string(),
        "draining node demo-workers-0 did not finish within 400ms: eviction of pod \
         default/web-6d4cf56db6-q7m2x blocked by PodDisruptionBudget default/web (Cannot \
         evict pod as it would violate the pod's disruption budget. (The disruption budget \
         web needs 2 healthy pods and has 2 currently))"
    );
    // The pods no budget protects were evicted; the blocked one stays; the node stays
    // cordoned.
    assert_eq!(
        pods_left_on(&stand_in, WORKER),
        ["web-6d4cf56db6-q7m2x", "cilium-p4v9k", "kube-proxy-9fz4q"]
    );
    let budget_lists = stand_in.requests_matching(
        "GET",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
    );
    assert_eq!(
        budget_lists.len(),
        1,
        "budgets are read once, when giving up"
    );
}

#[tokio::test]
async fn stand_in_forced_drain_deletes_blocked_pods_after_the_timeout() {
    let (_pki, stand_in, client) = demo().await;
    let options = DrainOptions {
        force: true,
        ..within(Duration::from_millis(300))
    };
    let report = client.drain(WORKER, &options).await.unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(
        report.deleted[0].pod,
        pod("default", "web-6d4cf56db6-q7m2x")
    );
    assert_eq!(report.deleted[0].budgets, ["default/web"]);
    assert!(!report.evicted.contains(&report.deleted[0].pod));
    assert!(report.still_terminating.is_empty());
    let deletes = stand_in.requests_matching("DELETE", WEB_POD);
    assert_eq!(deletes.len(), 1);
    assert!(stand_in.object(WEB_POD).is_none());
    assert_eq!(
        stand_in.object(WEB_BUDGET).unwrap()["status"]["disruptionsAllowed"],
        0,
        "a deletion bypasses the budget"
    );

    // Forced, evicted pods still terminating at the deadline are reported, not an error.
    let (_pki, stand_in, client) = demo().await;
    allow(&stand_in, WEB_BUDGET, 1);
    stand_in.set_pod_termination(PodTermination::UntilRemoved);
    let report = client.drain(WORKER, &options).await.unwrap();
    assert_eq!(report.still_terminating.len(), 4, "{report:?}");
    assert!(report.evicted.is_empty() && report.deleted.is_empty());
}

#[tokio::test]
async fn stand_in_drain_follows_evicted_pods_until_they_are_gone() {
    let (_pki, stand_in, client) = demo().await;
    allow(&stand_in, WEB_BUDGET, 1);
    stand_in.set_pod_termination(PodTermination::UntilRemoved);
    let db = "/api/v1/namespaces/default/pods/db-0";
    let options = within(Duration::from_secs(10));
    let started = Instant::now();
    let (report, ()) = tokio::join!(client.drain(WORKER, &options), async {
        // The kubelets finish their pods one after the other.
        for name in [
            "web-6d4cf56db6-q7m2x",
            "db-0",
            "debug",
            "report-28751040-8kq5z",
        ] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let path = format!("/api/v1/namespaces/default/pods/{name}");
            while stand_in
                .object(&path)
                .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_null())
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stand_in.remove_object(&path);
        }
    });
    let report = report.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(report.evicted.len(), 4);
    assert!(
        stand_in.requests_matching("GET", db).len() > 1,
        "db-0 was followed"
    );

    // Pods that never finish fail the drain.
    let (_pki, stand_in, client) = demo().await;
    allow(&stand_in, WEB_BUDGET, 1);
    stand_in.set_pod_termination(PodTermination::UntilRemoved);
    let err = client
        .drain(WORKER, &within(Duration::from_millis(300)))
        .await
        .unwrap_err();
    let Error::DrainTimedOut {
        blocked,
        terminating,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(blocked.is_empty());
    assert_eq!(terminating.len(), 4, "{err}");
    assert!(
        err.to_string()
            .contains("evicted but still terminating: default/db-0, default/debug"),
        "{err}"
    );
}

#[tokio::test]
async fn stand_in_drain_refused_for_several_budgets_names_them_all() {
    let (_pki, stand_in, client) = demo().await;
    allow(&stand_in, WEB_BUDGET, 1);
    let mut strict = stand_in.object(WEB_BUDGET).unwrap();
    strict["metadata"] = json!({"name": "web-strict", "namespace": "default", "generation": 1});
    stand_in.put_object(strict);
    let err = client
        .drain(WORKER, &within(Duration::from_millis(200)))
        .await
        .unwrap_err();
    let Error::DrainTimedOut { blocked, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(blocked[0].budgets, ["default/web", "default/web-strict"]);
    assert!(
        err.to_string()
            .contains("more than one PodDisruptionBudget"),
        "{err}"
    );
}

#[tokio::test]
async fn stand_in_recorded_429_names_its_budget_when_no_budget_selects_the_pod() {
    let (_pki, stand_in, client) = demo().await;
    // The budget list says nothing (e.g. the client may not list budgets): the cause of
    // the recorded 429 still names `web`.
    stand_in.respond(
        "GET",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        Reply::value(200, &json!({"kind": "PodDisruptionBudgetList", "apiVersion": "policy/v1", "metadata": {}, "items": []})),
    );
    stand_in.respond(
        "POST",
        "/api/v1/namespaces/default/pods/debug/eviction",
        Reply::json(429, STATUS_429_EVICTION_BLOCKED),
    );
    allow(&stand_in, WEB_BUDGET, 1);
    let err = client
        .drain(WORKER, &within(Duration::from_millis(200)))
        .await
        .unwrap_err();
    let Error::DrainTimedOut { blocked, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(blocked[0].pod, pod("default", "debug"));
    assert_eq!(blocked[0].budgets, ["default/web"]);
}

#[tokio::test]
async fn stand_in_drain_of_an_unknown_node_fails_before_touching_pods() {
    let (_pki, stand_in, client) = demo().await;
    let err = client
        .drain("demo-workers-9", &within(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(stand_in.requests_matching("GET", "/api/v1/pods").is_empty());
    assert!(stand_in.requests_matching("POST", "/api/v1/").is_empty());
}

#[tokio::test]
async fn stand_in_drain_of_a_control_plane_node_leaves_static_pods() {
    let (_pki, stand_in, client) = demo().await;
    let report = client
        .drain("demo-cp-0", &within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        report.evicted,
        [pod("kube-system", "coredns-7db6d8ff4d-k2m4z")]
    );
    let mirrors: Vec<String> = report
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::Mirror)
        .map(|s| s.pod.name.clone())
        .collect();
    assert_eq!(mirrors, ["etcd-demo-cp-0", "kube-apiserver-demo-cp-0"]);
    assert!(stand_in
        .object("/api/v1/namespaces/kube-system/pods/etcd-demo-cp-0")
        .is_some());
}
