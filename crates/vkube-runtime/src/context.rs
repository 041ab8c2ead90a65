//! The effects a run needs from its surroundings, passed in by the caller:
//! the time and a way to wait ([`Clock`]), randomness for key material,
//! tokens and ids ([`Random`]), and who holds a cluster's apply lock
//! ([`LockHolder`]), and how the cluster's own API server and etcd are
//! reached ([`ClusterConnector`]). The CLI passes [`Context::system`];
//! tests pass fakes and get the same run every time; a server passes one
//! holder per replica.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use vkube_store::Timestamp;

use crate::kube::{ClusterConnector, LiveConnector};

/// Time, and waiting.
#[async_trait(?Send)]
pub trait Clock: Send + Sync {
    /// The time now.
    fn now(&self) -> SystemTime;

    /// Wait `duration`.
    async fn sleep(&self, duration: Duration);
}

/// Randomness for key material, tokens and ids: must be unpredictable in
/// production.
pub trait Random: Send + Sync {
    /// Fill `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]);
}

/// Who runs, for the per-cluster apply lock.
pub trait LockHolder: Send + Sync {
    /// This run's holder id, unique among the runs that may race for a
    /// cluster's lock.
    fn id(&self) -> String;

    /// Whether the holder `other` is known to have stopped (e.g. a killed
    /// process on this host), so its lock may be taken over at once rather
    /// than when it expires. `false` when unsure.
    fn is_gone(&self, other: &str) -> bool;
}

/// Everything a run takes from its surroundings.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The time, and waiting.
    pub clock: &'a dyn Clock,
    /// Randomness.
    pub random: &'a dyn Random,
    /// This run's identity for the apply lock.
    pub holder: &'a dyn LockHolder,
    /// How the cluster's own API server and etcd are reached.
    pub cluster: &'a dyn ClusterConnector,
}

impl Context<'_> {
    /// The time now, as the store records it.
    pub fn timestamp(&self) -> Timestamp {
        self.clock.now().into()
    }

    /// A random lowercase hex id of `bytes` bytes.
    pub fn hex_id(&self, bytes: usize) -> String {
        let mut raw = vec![0u8; bytes];
        self.random.fill(&mut raw);
        raw.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Context<'static> {
    /// The operating system's clock and randomness, and this process as
    /// the lock holder.
    pub fn system() -> Context<'static> {
        static HOLDER: ProcessHolder = ProcessHolder::new();
        Context {
            clock: &SystemClock,
            random: &OsRandom,
            holder: &HOLDER,
            cluster: &LiveConnector,
        }
    }
}

/// The system clock; waits on tokio's timer.
pub struct SystemClock;

#[async_trait(?Send)]
impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The operating system's random generator.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, dest: &mut [u8]) {
        getrandom::getrandom(dest).expect("the operating system's random generator");
    }
}

/// This process as the lock holder: `host:pid:nonce`. Another holder of
/// this host whose process no longer exists (`/proc/<pid>`) is gone.
pub struct ProcessHolder {
    id: OnceLock<String>,
}

impl ProcessHolder {
    /// The holder for this process (its id is made on first use).
    pub const fn new() -> ProcessHolder {
        ProcessHolder {
            id: OnceLock::new(),
        }
    }
}

impl Default for ProcessHolder {
    fn default() -> Self {
        ProcessHolder::new()
    }
}

/// This host's name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

impl LockHolder for ProcessHolder {
    fn id(&self) -> String {
        self.id
            .get_or_init(|| {
                let mut nonce = [0u8; 4];
                OsRandom.fill(&mut nonce);
                let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}:{}:{nonce}", host_name(), std::process::id())
            })
            .clone()
    }

    fn is_gone(&self, other: &str) -> bool {
        let mut parts = other.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return false;
        };
        host == host_name()
            && pid
                .parse::<u32>()
                .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_holder_knows_dead_processes_of_its_host_only() {
        let holder = ProcessHolder::new();
        let id = holder.id();
        assert_eq!(id, holder.id(), "one id per holder");
        assert!(!holder.is_gone(&id), "this process runs");
        let host = host_name();
        // Pids are below 2^22 on Linux.
        assert!(holder.is_gone(&format!("{host}:4294967295:00")));
        assert!(!holder.is_gone("another-host:4294967295:00"));
        assert!(!holder.is_gone("garbage"));
    }
}
