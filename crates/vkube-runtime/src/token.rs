//! The cluster's kubeadm bootstrap token, with an expiry.
//!
//! `kubeadm init` on the first control-plane node creates the token with a
//! TTL (default 24 h). Nodes created later join with it while it is valid;
//! after that, vkube makes a fresh token, creates it in the cluster
//! through the API server (the Secret `kubeadm token create` would write),
//! and only then records it and renders it for the new nodes. Before the
//! cluster exists (no control-plane node yet), a stale token is simply
//! replaced: the init node will create whatever token it is given.
//!
//! Stored as JSON `{"token": "...", "expiresAt": <unix seconds>}`; a plain
//! token string from an older vkube (created with `ttl: 0s`) never expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use vkube_core::cluster::bootstrap::token::BootstrapToken;
use vkube_store::ClusterStore;

use crate::access::SECRET_TOKEN;
use crate::error::{Error, Result};

/// kubeadm's default token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// A token closer than this to its expiry is not handed to a new node: the
/// node may take this long to boot and join (kubeadm retries included).
pub const RENEW_BEFORE: Duration = Duration::from_secs(3600);

/// The token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredToken {
    /// The token.
    pub token: BootstrapToken,
    /// When it stops working (Unix seconds); `None` for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl StoredToken {
    /// A new token valid `ttl` from `now`.
    pub fn fresh(now: SystemTime, ttl: Duration, random: &mut dyn FnMut(&mut [u8])) -> StoredToken {
        let mut source = |buf: &mut [u8]| random(buf);
        StoredToken {
            token: BootstrapToken::generate(&mut source),
            expires_at: Some(unix(now) + ttl.as_secs()),
        }
    }

    /// Parses the stored text (JSON, or a legacy plain token).
    pub fn parse(cluster: &str, text: &str) -> Result<StoredToken> {
        let corrupt = |detail: String| Error::Corrupt {
            cluster: cluster.to_owned(),
            what: "bootstrap token".into(),
            detail,
        };
        if text.trim_start().starts_with('{') {
            return serde_json::from_str(text).map_err(|e| corrupt(e.to_string()));
        }
        let token = text.parse::<BootstrapToken>().map_err(corrupt)?;
        Ok(StoredToken {
            token,
            expires_at: None,
        })
    }

    /// The stored text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("plain struct serializes")
    }

    /// Whether a node created at `now` can still join with it.
    pub fn usable_at(&self, now: SystemTime) -> bool {
        self.expires_at
            .is_none_or(|at| unix(now) + RENEW_BEFORE.as_secs() < at)
    }

    /// The expiry as a time, if any.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires_at
            .map(|at| UNIX_EPOCH + Duration::from_secs(at))
    }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The stored token, storing `fresh` first when there is none (the first
/// writer wins).
pub async fn ensure(
    store: &dyn ClusterStore,
    cluster: &str,
    fresh: &StoredToken,
) -> Result<StoredToken> {
    let stored = store
        .ensure_secret(cluster, SECRET_TOKEN, &fresh.to_text())
        .await?;
    StoredToken::parse(cluster, &stored)
}

/// Replaces `old` with `new` unless another writer replaced it first;
/// returns what is stored afterwards.
pub async fn replace(
    store: &dyn ClusterStore,
    cluster: &str,
    old: &StoredToken,
    new: &StoredToken,
) -> Result<StoredToken> {
    // The stored text of a legacy token is the plain string.
    let old_text = match old.expires_at {
        Some(_) => old.to_text(),
        None => store
            .secret(cluster, SECRET_TOKEN)
            .await?
            .unwrap_or_else(|| old.to_text()),
    };
    let stored = store
        .replace_secret(cluster, SECRET_TOKEN, &old_text, &new.to_text())
        .await?;
    StoredToken::parse(cluster, &stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn expiry_and_legacy_tokens() {
        let mut counter = 0u8;
        let mut random = |buf: &mut [u8]| {
            counter += 1;
            buf.fill(counter)
        };
        let token = StoredToken::fresh(at(1_000_000), DEFAULT_TOKEN_TTL, &mut random);
        assert_eq!(token.expires_at, Some(1_000_000 + 86_400));
        assert!(token.usable_at(at(1_000_000)));
        // Within the renewal margin, a new node must not get it.
        assert!(!token.usable_at(at(1_000_000 + 86_400 - 1800)));
        assert!(!token.usable_at(at(1_000_000 + 90_000)));
        let parsed = StoredToken::parse("demo", &token.to_text()).unwrap();
        assert_eq!(parsed, token);
        let legacy = StoredToken::parse("demo", "abcdef.0123456789abcdef").unwrap();
        assert_eq!(legacy.expires_at, None);
        assert!(legacy.usable_at(at(u64::from(u32::MAX))));
        let err = StoredToken::parse("demo", "nonsense").unwrap_err();
        assert!(err.to_string().contains("bootstrap token"), "{err}");
        assert!(
            !token.to_text().is_empty() && !format!("{token:?}").contains(token.token.secret())
        );
    }
}
