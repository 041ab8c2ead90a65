//! The stand-in kube-apiserver from the outside: mutual TLS with a CA the test supplies, fixed
//! and free addresses, recording, the emulated API, answers set by the test, and both ways of
//! running it.

mod client;
mod disruption;
mod ecosystem;
mod emulation;
mod lifecycle;
mod tls;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};

/// A loopback address no other test (in this or a parallel test process) listens on:
/// `127.<pid>.<n>`, every 127.0.0.0/8 address being local on Linux.
pub fn own_loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU8 = AtomicU8::new(2);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        (pid >> 8) as u8,
        pid as u8,
        NEXT.fetch_add(1, Ordering::Relaxed),
    )
}
