//! The `VimClient` every vkube call goes through: one deadline per request
//! (see [`super::deadline`]), round-trip counting, and logging in again when
//! the session ended.
//!
//! # When a call is sent again
//!
//! A session ends when vCenter expires it, restarts, or an administrator
//! terminates it — at any point, also between a task's start and its end.
//! Whether a failed call may be sent again depends on what its first
//! attempt may have done:
//!
//! - **`NotAuthenticated`**: vCenter refused the call before running it, so
//!   any call — a task start included — is sent again after a new login.
//! - **Reads** ([`safe_to_repeat`]: property retrieval, `Query*`, `Find*`,
//!   container views…) change nothing. When one fails the way a lost
//!   session makes a read fail — an answer `vim_rs` cannot parse, which is
//!   how the simulator answers a property read without a session (values
//!   replaced by per-property faults) — vkube asks whether the session is
//!   still there (`CurrentTime`, one cheap call) and, if it is gone, logs in
//!   and reads again. Other faults of a single read (`ManagedObjectNotFound`
//!   for a view of the old session) cannot be fixed by sending the same
//!   request again; [`super::Session::read_retrying`] handles those.
//! - **Everything else** (`CloneVM_Task`, `ReconfigVM_Task`, `CreateFolder`,
//!   role and permission changes…) is never sent twice on a failure that
//!   could have reached vCenter — a timeout, a reset connection, an answer
//!   that did not parse. The error goes to the caller; the apply finds what
//!   the first attempt did (a VM with its markers) when it observes again.
//! - A request that missed its deadline is never repeated here: the first
//!   may still be running, and a second would wait as long.
//!
//! A read made of several calls whose objects belong to the session (a
//! container view, a continuation token) cannot be fixed by repeating one
//! call; [`super::Session::read_retrying`] runs such reads again whole.
//!
//! Each login has an HTTP client of its own: the SOAP session lives in a
//! cookie, and `vim_rs` logs a client out when it is dropped, so a shared
//! cookie jar would let a replaced client log out its successor's session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use vim_rs::core::client::{
    BoxFuture, Client, Error as VimError, PropertyValue, Transport, TransportMode, VimClient,
};
use vim_rs::types::structs::ServiceContent;

use crate::error::{Error, Result};

use super::deadline::{bounded, NoAnswer};
use super::{login, ConnectOptions};

/// How often one call may be tried in all: each retry needs a session that
/// was found gone again, so this only bounds a server that ends every new
/// session at once.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// Whether `method` only reads (or makes session-scoped scratch objects), so
/// that sending it twice is harmless.
pub(crate) fn safe_to_repeat(method: &str) -> bool {
    const PREFIXES: [&str; 5] = ["Retrieve", "ContinueRetrieve", "Query", "Find", "Fetch"];
    const METHODS: [&str; 7] = [
        "CurrentTime",
        "CreateContainerView",
        "DestroyView",
        "HasPrivilegeOnEntities",
        "HasPrivilegeOnEntity",
        "HasUserPrivilegeOnEntities",
        "RecommendDatastores",
    ];
    PREFIXES.iter().any(|p| method.starts_with(p)) || METHODS.contains(&method)
}

/// Where the session stands after a failure.
enum Liveness {
    LoggedIn,
    LoggedOut,
    /// The check itself failed (e.g. no answer): not a reason to log in.
    Unknown,
}

/// The client of one login, and which login it is.
struct Current {
    generation: u64,
    client: Arc<Client>,
}

/// A `VimClient` that bounds, counts and re-logs in (see the module docs).
pub struct ReloginClient {
    /// Kept for `service_content()`, which must hand out a reference.
    initial: Arc<Client>,
    current: RwLock<Current>,
    relogin: tokio::sync::Mutex<()>,
    options: ConnectOptions,
    mode: TransportMode,
    host: String,
    round_trips: AtomicU64,
    relogins: AtomicU64,
}

impl ReloginClient {
    pub(crate) fn new(client: Arc<Client>, options: ConnectOptions, mode: TransportMode) -> Self {
        ReloginClient {
            initial: client.clone(),
            current: RwLock::new(Current {
                generation: 0,
                client,
            }),
            relogin: tokio::sync::Mutex::new(()),
            host: options.endpoint.address(),
            options,
            mode,
            round_trips: AtomicU64::new(0),
            relogins: AtomicU64::new(0),
        }
    }

    /// The client of the current login.
    pub(crate) fn current(&self) -> Arc<Client> {
        self.current.read().expect("session lock").client.clone()
    }

    /// Which login is current (grows by one per re-login).
    pub(crate) fn generation(&self) -> u64 {
        self.current.read().expect("session lock").generation
    }

    fn current_with_generation(&self) -> (u64, Arc<Client>) {
        let guard = self.current.read().expect("session lock");
        (guard.generation, guard.client.clone())
    }

    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Count `n` round trips made beside this client (the REST API's).
    pub(crate) fn add_round_trips(&self, n: u64) {
        self.round_trips.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn relogins(&self) -> u64 {
        self.relogins.load(Ordering::Relaxed)
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Log in again, unless another caller already did since `generation`.
    pub(crate) async fn renew(&self, generation: u64) -> Result<()> {
        let _serialized = self.relogin.lock().await;
        if self.generation() != generation {
            return Ok(());
        }
        tracing::info!("the vCenter session ended; logging in again");
        let fresh = login(&self.options, self.mode).await?;
        let replaced = {
            let mut current = self.current.write().expect("session lock");
            let replaced = current.client.clone();
            *current = Current {
                generation: generation + 1,
                client: fresh,
            };
            replaced
        };
        self.relogins.fetch_add(1, Ordering::Relaxed);
        // Its session is gone; closing the client now (not waiting) keeps
        // its drop from blocking on a logout later.
        let limit = self.options.timeouts.request;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(limit, replaced.close()).await;
        });
        Ok(())
    }

    /// Whether the session of `generation` is gone: another caller already
    /// logged in again, or vCenter says this session is not logged in.
    pub(crate) async fn lost(&self, generation: u64) -> bool {
        let (now, client) = self.current_with_generation();
        if now != generation {
            return true;
        }
        matches!(self.liveness(&client).await, Liveness::LoggedOut)
    }

    /// Ask vCenter whether `client`'s session is logged in. `CurrentTime`
    /// needs a session and answers `NotAuthenticated` without one, on
    /// vCenter and on the simulator alike (the simulator answers a read of
    /// `SessionManager.currentSession` without a session with a fault
    /// `vim_rs` cannot parse, which would be ambiguous).
    async fn liveness(&self, client: &Arc<Client>) -> Liveness {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let asked = client.invoke(
            "",
            "ServiceInstance",
            "ServiceInstance",
            "CurrentTime",
            None,
        );
        let timeouts = &self.options.timeouts;
        match bounded(timeouts, &self.host, || "`CurrentTime`".into(), asked).await {
            Ok(_) => Liveness::LoggedIn,
            Err(e) if Error::is_not_authenticated(&e) => Liveness::LoggedOut,
            Err(e) => {
                tracing::debug!("cannot tell whether the vCenter session is alive: {e}");
                Liveness::Unknown
            }
        }
    }

    /// Run `call` on the current client within its deadline, and again on a
    /// new login when the rules in the module docs allow.
    async fn with_relogin<'a, T, F>(
        &'a self,
        method: &'a str,
        mo_id: &'a str,
        call: F,
    ) -> vim_rs::core::client::Result<T>
    where
        F: Fn(Arc<Client>) -> BoxFuture<'a, vim_rs::core::client::Result<T>>,
    {
        let describe = || format!("`{method}` on `{mo_id}`");
        let mut attempt = 1;
        loop {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let (generation, client) = self.current_with_generation();
            let timeouts = &self.options.timeouts;
            let err = match bounded(timeouts, &self.host, describe, call(client)).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if attempt >= MAX_ATTEMPTS || NoAnswer::decode(&err).is_some() {
                return Err(err);
            }
            let again = Error::is_not_authenticated(&err)
                || (safe_to_repeat(method)
                    && matches!(err, VimError::ParseError(_))
                    && self.lost(generation).await);
            if !again {
                return Err(err);
            }
            tracing::debug!("{} failed with the session gone ({err}); again", describe());
            self.renew(generation).await.map_err(relogin_failed)?;
            attempt += 1;
        }
    }
}

/// A failed re-login, as the `vim_rs` error of the call that needed it.
fn relogin_failed(err: Error) -> VimError {
    match err {
        Error::NoAnswer {
            host, call, waited, ..
        } => NoAnswer { host, call, waited }.encode(),
        other => VimError::ParseError(format!("logging in again failed: {other}")),
    }
}

impl VimClient for ReloginClient {
    fn service_content(&self) -> &ServiceContent {
        self.initial.service_content()
    }

    fn transport(&self) -> Transport {
        self.initial.transport()
    }

    fn api_release(&self) -> String {
        self.initial.api_release()
    }

    fn invoke<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        method_name: &'a str,
        params: Option<&'a (dyn miniserde::Serialize + Send + Sync)>,
    ) -> BoxFuture<'a, vim_rs::core::client::Result<Bytes>> {
        Box::pin(self.with_relogin(method_name, mo_id, move |c| {
            Box::pin(async move { c.invoke(svc, mo_type, mo_id, method_name, params).await })
        }))
    }

    fn invoke_optional<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        method_name: &'a str,
        params: Option<&'a (dyn miniserde::Serialize + Send + Sync)>,
    ) -> BoxFuture<'a, vim_rs::core::client::Result<Option<Bytes>>> {
        Box::pin(self.with_relogin(method_name, mo_id, move |c| {
            Box::pin(async move {
                c.invoke_optional(svc, mo_type, mo_id, method_name, params)
                    .await
            })
        }))
    }

    fn invoke_void<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        method_name: &'a str,
        params: Option<&'a (dyn miniserde::Serialize + Send + Sync)>,
    ) -> BoxFuture<'a, vim_rs::core::client::Result<()>> {
        Box::pin(self.with_relogin(method_name, mo_id, move |c| {
            Box::pin(async move {
                c.invoke_void(svc, mo_type, mo_id, method_name, params)
                    .await
            })
        }))
    }

    fn fetch_property_raw<'a>(
        &'a self,
        svc: &'a str,
        mo_type: &'a str,
        mo_id: &'a str,
        property: &'a str,
    ) -> BoxFuture<'a, vim_rs::core::client::Result<Option<PropertyValue>>> {
        // A property read is a `RetrievePropertiesEx` under the hood.
        Box::pin(self.with_relogin("RetrievePropertiesEx", mo_id, move |c| {
            Box::pin(async move { c.fetch_property_raw(svc, mo_type, mo_id, property).await })
        }))
    }

    fn close(&self) -> BoxFuture<'_, vim_rs::core::client::Result<()>> {
        Box::pin(async move {
            let current = self.current();
            let limit = self.options.timeouts.request;
            let host = self.host.clone();
            match tokio::time::timeout(limit, current.close()).await {
                Ok(result) => result,
                Err(_) => Err(NoAnswer {
                    host,
                    call: "the logout".into(),
                    waited: limit,
                }
                .encode()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_safe_to_repeat() {
        for read in [
            "RetrievePropertiesEx",
            "ContinueRetrievePropertiesEx",
            "RetrieveEntityPermissions",
            "QueryConfigOption",
            "FindByInventoryPath",
            "CreateContainerView",
            "CurrentTime",
            "RecommendDatastores",
        ] {
            assert!(safe_to_repeat(read), "{read}");
        }
        for change in [
            "CloneVM_Task",
            "ReconfigVM_Task",
            "PowerOnVM_Task",
            "Destroy_Task",
            "CreateFolder",
            "ImportVApp",
            "AddAuthorizationRole",
            "SetEntityPermissions",
            "ShutdownGuest",
        ] {
            assert!(!safe_to_repeat(change), "{change}");
        }
    }
}
