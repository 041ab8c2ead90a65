//! Named cloud credentials: the vCenter user a cluster's CPI and CSI run
//! as (`spec.cloudCredentials`). Stored apart from any cluster, since they
//! are set before the cluster exists and may serve several clusters;
//! passwords are sealed at rest like every secret (see `sealing`).

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::rules::check_name;
use crate::sealing::Rotation;
use crate::time::Timestamp;

/// Stored credentials, password included. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The name clusters refer to.
    pub name: String,
    /// vCenter user, `user@domain`.
    pub username: String,
    /// The password. Secret.
    pub password: String,
    /// When first stored.
    pub created_at: Timestamp,
    /// When last replaced.
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("name", &self.name)
            .field("username", &self.username)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// What listing shows: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSummary {
    /// The name clusters refer to.
    pub name: String,
    /// vCenter user.
    pub username: String,
    /// When last replaced (Unix seconds).
    pub updated_at: i64,
}

/// Named credentials and the key that seals every secret.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Stores or replaces the credentials `name`. Returns whether they
    /// changed (same user and password again changes nothing).
    async fn set_credentials(
        &self,
        name: &str,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<bool>;

    /// The credentials `name`, or `CredentialsNotFound`.
    async fn credentials(&self, name: &str) -> Result<StoredCredentials>;

    /// Every stored name and user, by name.
    async fn list_credentials(&self) -> Result<Vec<CredentialsSummary>>;

    /// Removes the credentials `name`; returns whether they existed.
    async fn delete_credentials(&self, name: &str) -> Result<bool>;

    /// Re-seals every secret (cluster secrets and credentials) under a new
    /// key and replaces the key file. Crash-safe at any point (see the
    /// `sealing` module).
    async fn rotate_key(&self) -> Result<Rotation>;
}

/// The checks `set_credentials` makes before writing.
pub(crate) fn check_credentials(name: &str, username: &str, password: &str) -> Result<()> {
    check_name("credentials name", name)?;
    if username.is_empty() {
        return Err(Error::Invalid {
            field: "username",
            problem: "a vCenter user is required (user@domain)".into(),
        });
    }
    if password.is_empty() {
        return Err(Error::Invalid {
            field: "password",
            problem: "the password is empty".into(),
        });
    }
    Ok(())
}
