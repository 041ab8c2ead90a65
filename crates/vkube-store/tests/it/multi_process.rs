//! Several processes allocating from one state file never share an address.
//!
//! The test binary re-executes itself: the parent starts children running
//! only `multi_process_child` with `VKUBE_IT_CHILD` set; without that
//! variable the child test does nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use std::sync::Arc;

use vkube_store::{LeaseFilter, SqliteStore, Store};

use crate::{fence, subnet_pool, AnyStore, TestState};

const CHILD_ENV: &str = "VKUBE_IT_CHILD";
const PROCESSES: usize = 4;
const PER_PROCESS: usize = 200;

/// Child side: `VKUBE_IT_CHILD=<state path>|<worker>|<count>`. Every
/// cluster/node is allocated twice (the second must be idempotent) and
/// half of them are interleaved with another worker's nodes.
#[tokio::test]
async fn multi_process_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (path, worker, count) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let count: usize = count.parse().unwrap();
    let store: AnyStore = Arc::new(SqliteStore::open(path).await.unwrap());
    let mut fences = Vec::new();
    for cluster in 0..3 {
        fences.push(fence(&store, &format!("cluster-{cluster}")).await);
    }
    for n in 0..count {
        // Clusters are shared between workers, nodes are not.
        let fence = &fences[n % 3];
        let cluster = fence.cluster();
        let node = format!("w{worker}-n{n}");
        let lease = store.allocate(fence, "shared", &node).await.unwrap();
        let again = store.allocate(fence, "shared", &node).await.unwrap();
        assert_eq!(lease, again);
        println!("LEASE {cluster} {node} {}", lease.address);
    }
}

#[tokio::test]
async fn concurrent_processes_never_share_an_address() {
    let state = TestState::new();
    state
        .open()
        .await
        .create_pools(&[subnet_pool("shared", "10.50.0.0/20", "10.50.0.1")], false)
        .await
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|worker| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "multi_process::multi_process_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(
                    CHILD_ENV,
                    format!("{}|{worker}|{PER_PROCESS}", state.path().display()),
                )
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    // What each process was told.
    let mut told: BTreeMap<String, (String, String)> = BTreeMap::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut lines = 0;
        // The harness prints `test … ... ` without a newline before the
        // child's first line, so look for the marker anywhere in a line.
        for line in stdout
            .lines()
            .filter_map(|l| l.split_once("LEASE ").map(|(_, rest)| rest))
        {
            let mut fields = line.split(' ');
            let (cluster, node, address) = (
                fields.next().unwrap(),
                fields.next().unwrap(),
                fields.next().unwrap(),
            );
            let previous = told.insert(address.to_owned(), (cluster.to_owned(), node.to_owned()));
            assert!(
                previous.is_none(),
                "{address} given to {previous:?} and {cluster}/{node}"
            );
            lines += 1;
        }
        assert_eq!(lines, PER_PROCESS);
    }
    assert_eq!(told.len(), PROCESSES * PER_PROCESS);

    // What the state file holds agrees, one lease per (cluster, node).
    let leases = state
        .open()
        .await
        .leases(&LeaseFilter::default())
        .await
        .unwrap();
    assert_eq!(leases.len(), PROCESSES * PER_PROCESS);
    let owners: BTreeSet<(String, String)> = leases
        .iter()
        .map(|l| (l.cluster.clone(), l.node.clone()))
        .collect();
    assert_eq!(owners.len(), PROCESSES * PER_PROCESS);
    for lease in &leases {
        assert_eq!(
            told[&lease.address.to_string()],
            (lease.cluster.clone(), lease.node.clone())
        );
    }
    // Lowest-first with no releases: the addresses form one block from .2.
    let expected: BTreeSet<String> = (2..2 + PROCESSES * PER_PROCESS)
        .map(|n| format!("10.50.{}.{}", n / 256, n % 256))
        .collect();
    assert_eq!(told.keys().cloned().collect::<BTreeSet<_>>(), expected);
}

/// Processes racing to create and migrate a fresh state file: every one
/// opens it, and the migration is recorded exactly once.
#[tokio::test]
async fn concurrent_first_open_migrates_once() {
    let state = TestState::new();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|worker| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "multi_process::multi_process_child",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{}|{worker}|0", state.path().display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let connection = rusqlite::Connection::open(state.path()).unwrap();
    let versions: u32 = connection
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, SqliteStore::latest_schema_version());
}
