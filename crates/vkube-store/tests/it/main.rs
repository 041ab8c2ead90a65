//! Integration tests for `vkube-store`: one binary, a temp state file per
//! test.

mod ipam;
mod multi_process;
mod open;

use std::path::PathBuf;

use tempfile::TempDir;
use vkube_core::ipam::{IpPool, RawIpPool, RawRange};
use vkube_store::SqliteStore;

/// A temp directory holding a fresh state file; removed on drop.
#[allow(clippy::new_without_default)]
pub struct TestState {
    pub dir: TempDir,
}

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
