//! Integration tests for `vkube-store`: one binary, a temp state file per
//! test.

mod clusters;
mod ipam;
mod journal;
mod locks;
mod migrate;
mod multi_process;
mod open;
mod secrets;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;
use vkube_core::ipam::{IpPool, RawIpPool, RawRange};
use vkube_store::{Node, NodePhase, SqliteStore, Timestamp};

/// A temp directory holding a fresh state file; removed on drop.
pub struct TestState {
    pub dir: TempDir,
}

#[allow(clippy::new_without_default)]
impl TestState {
    pub fn new() -> Self {
        TestState {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub fn open(&self) -> SqliteStore {
        SqliteStore::open(self.path()).expect("open state")
    }
}

/// A range pool `start..=end` in `10.0.<third>.0/24`, gateway `.1`.
pub fn range_pool(name: &str, third: u8, start: u8, end: u8) -> IpPool {
    RawIpPool {
        name: name.into(),
        range: Some(RawRange {
            start: format!("10.0.{third}.{start}"),
            end: format!("10.0.{third}.{end}"),
        }),
        prefix: Some(24),
        gateway: Some(format!("10.0.{third}.1")),
        name_servers: vec!["10.0.0.53".into()],
        search_domains: vec!["lab.example.com".into()],
        ..RawIpPool::default()
    }
    .validate()
    .expect("valid test pool")
}

/// A subnet pool.
pub fn subnet_pool(name: &str, subnet: &str, gateway: &str) -> IpPool {
    RawIpPool {
        name: name.into(),
        subnet: Some(subnet.into()),
        gateway: Some(gateway.into()),
        name_servers: vec!["10.0.0.53".into()],
        ..RawIpPool::default()
    }
    .validate()
    .expect("valid test pool")
}

/// `seconds` after the epoch: tests pass time in, the store never reads it.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds)
}

/// A planned node `name`, index `index` of pool `pool`.
pub fn node(name: &str, pool: &str, index: u32) -> Node {
    Node {
        name: name.into(),
        pool: pool.into(),
        index,
        domain: None,
        vm_id: None,
        ip: None,
        phase: NodePhase::Planned,
        spec_hash: "h1".into(),
    }
}

/// Re-executes this test binary running only `test` (a child-side test
/// that does nothing unless `env` is set), with `env=value`.
pub fn spawn_child(test: &str, env: &str, value: String) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What follows `marker` on each stdout line that has it. The harness
/// prints `test … ... ` without a newline before a child's first line, so
/// the marker may be mid-line.
pub fn marked_lines(stdout: &[u8], marker: &str) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| line.split_once(marker).map(|(_, rest)| rest.to_owned()))
        .collect()
}
