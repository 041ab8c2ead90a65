//! A vCenter session: connect (TLS probe, transport choice, login), re-login
//! once when the session expires, count API round trips, log out on close.
//!
//! `vim_rs` stubs take an `Arc<dyn VimClient>`; [`Session::client`] hands out
//! a [`ReloginClient`] so every call in vkube gets expiry handling and
//! round-trip counting without knowing about either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use vim_rs::core::client::{
    BoxFuture, Client, ClientBuilder, PropertyValue, Transport, TransportMode, VimClient,
    VimClientHandle, WireLoggingMode,
};
use vim_rs::types::structs::ServiceContent;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::tls::{self, PeerCertificate, TlsPolicy};

/// Which wire protocol to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// VI/JSON when the server offers it (vCenter 8.0U1+), SOAP otherwise.
    #[default]
    Auto,
    /// VI/JSON only.
    Json,
    /// SOAP/XML only.
    Soap,
}

/// Everything needed to open a session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where vCenter is.
    pub endpoint: Endpoint,
    /// Login user.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Certificate trust.
    pub tls: TlsPolicy,
    /// Wire protocol.
    pub transport: TransportChoice,
    /// Log request summaries on `vim_rs::wire::*` (never bodies of session calls).
    pub wire_log: bool,
    /// Connect and handshake timeout.
    pub connect_timeout: Duration,
}

/// What `vkube about` shows.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct About {
    /// e.g. "VMware vCenter Server 8.0.2 build-123".
    pub full_name: String,
    /// Product version.
    pub version: String,
    /// Build number.
    pub build: String,
    /// API version the server reports.
    pub api_version: String,
    /// `VirtualCenter` or `HostAgent`.
    pub api_type: String,
    /// vCenter instance UUID.
    pub instance_uuid: Option<String>,
    /// `json` or `soap`.
    pub transport: String,
    /// SDK URL.
    pub url: String,
    /// Server certificate SHA-256 fingerprint.
    pub thumbprint_sha256: String,
    /// Server certificate SHA-1 fingerprint.
    pub thumbprint_sha1: String,
}

/// An open, logged-in vCenter session. Cheap to share by reference; call
/// [`Session::close`] when done (idempotent).
pub struct Session {
    client: Arc<ReloginClient>,
    tasks: crate::tasks::TaskWaits,
    certificate: PeerCertificate,
    endpoint: Endpoint,
    options: ConnectOptions,
    http: reqwest::Client,
}

impl Session {
    /// Probe TLS, pick the transport, log in, and check the server is a vCenter.
    pub async fn connect(options: ConnectOptions) -> Result<Session> {
        let endpoint = options.endpoint.clone();
        let certificate = tls::probe(&endpoint, &options.tls, options.connect_timeout).await?;
        let http = tls::http_client(&options.tls, options.connect_timeout)?;
        let mode = match options.transport {
            TransportChoice::Auto => TransportMode::Auto,
            TransportChoice::Json => TransportMode::Json,
            TransportChoice::Soap => TransportMode::Soap,
        };
        let client = login(&options, &http, mode).await?;
        let transport = client.transport();
        let about = &client.service_content().about;
        if about.api_type != "VirtualCenter" {
            let _ = client.close().await;
            return Err(Error::NotVcenter {
                url: endpoint.sdk_url(),
                detail: format!(
                    "it is `{}` (API type `{}`)",
                    about.full_name, about.api_type
                ),
            });
        }
        // Re-logins reuse the transport that worked, without probing again.
        let relogin_mode = match transport {
            Transport::Json => TransportMode::Json,
            _ => TransportMode::Soap,
        };
        tracing::debug!(url = %endpoint.sdk_url(), ?transport, "logged in");
        Ok(Session {
            client: Arc::new(ReloginClient {
                initial: client.clone(),
                current: RwLock::new((0, client)),
                relogin: tokio::sync::Mutex::new(()),
                options: options.clone(),
                http: http.clone(),
                mode: relogin_mode,
                round_trips: AtomicU64::new(0),
                relogins: AtomicU64::new(0),
            }),
            tasks: Default::default(),
            certificate,
            endpoint,
            options,
            http,
        })
    }

    /// The handle `vim_rs` managed-object stubs take.
    pub fn client(&self) -> VimClientHandle {
        self.client.clone()
    }

    /// The server's root objects.
    pub fn content(&self) -> &ServiceContent {
        self.client.initial.service_content()
    }

    /// The HTTP client with this session's TLS policy (for the REST APIs).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The options this session was opened with (REST logins reuse them).
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The server's certificate fingerprints.
    pub fn certificate(&self) -> &PeerCertificate {
        &self.certificate
    }

    /// API calls made since login (each one HTTP round trip).
    pub fn round_trips(&self) -> u64 {
        self.client.round_trips.load(Ordering::Relaxed)
    }

    /// Count `n` round trips made beside the SOAP client (the REST API's).
    pub(crate) fn add_round_trips(&self, n: u64) {
        self.client.round_trips.fetch_add(n, Ordering::Relaxed);
    }

    /// How often the session expired and was re-established.
    pub fn relogins(&self) -> u64 {
        self.client.relogins.load(Ordering::Relaxed)
    }

    /// Product and connection facts.
    pub fn about(&self) -> About {
        let about = &self.content().about;
        About {
            full_name: about.full_name.clone(),
            version: about.version.clone(),
            build: about.build.clone(),
            api_version: about.api_version.clone(),
            api_type: about.api_type.clone(),
            instance_uuid: about.instance_uuid.clone(),
            transport: match self.client.transport() {
                Transport::Json => "json".into(),
                _ => "soap".into(),
            },
            url: self.endpoint.sdk_url(),
            thumbprint_sha256: self.certificate.sha256.clone(),
            thumbprint_sha1: self.certificate.sha1.clone(),
        }
    }

    /// Wait for a vSphere task; returns its result when that is a managed
    /// object (e.g. a clone's new VM). Tasks waited for in parallel are
    /// polled together (see [`crate::tasks`]).
    pub async fn wait_task(
        &self,
        operation: &str,
        task: vim_rs::types::structs::ManagedObjectReference,
    ) -> Result<Option<vim_rs::types::structs::ManagedObjectReference>> {
        crate::tasks::wait(self, &self.tasks, operation, task).await
    }

    /// Log out. Idempotent; errors are logged, not returned, since there is
    /// nothing a caller can do about a failed logout.
    pub async fn close(&self) {
        let current = self.client.current();
        if let Err(e) = current.close().await {
            tracing::debug!("logout failed: {e}");
        }
    }
}

async fn login(
    options: &ConnectOptions,
    http: &reqwest::Client,
    mode: TransportMode,
) -> Result<Arc<Client>> {
    let builder = ClientBuilder::new(&options.endpoint.address())
        .http_client(http.clone())
        .basic_authn(&options.username, options.password.expose())
        .app_details("vkube", env!("CARGO_PKG_VERSION"))
        .wire_logging(if options.wire_log {
            WireLoggingMode::Summary
        } else {
            WireLoggingMode::Off
        })
        .transport(mode);
    builder.build().await.map_err(|e| login_error(options, e))
}

fn login_error(options: &ConnectOptions, err: vim_rs::core::client::Error) -> Error {
    use vim_rs::core::client::Error as E;
    let url = options.endpoint.sdk_url();
    match &err {
        E::MethodFault(f) if crate::error::fault_of(f) == crate::Fault::InvalidLogin => {
            Error::InvalidLogin {
                user: options.username.clone(),
                host: options.endpoint.address(),
            }
        }
        E::MethodFault(_) => Error::from_client("login", err),
        E::ReqwestError(e) if e.status().is_some() => Error::NotVcenter {
            url,
            detail: format!(
                "it answered HTTP {} at `/sdk`",
                e.status().map(|s| s.as_u16()).unwrap_or(0)
            ),
        },
        E::ReqwestError(_) => Error::from_client("login", err),
        E::ParseError(text) => Error::NotVcenter {
            url,
            detail: match http_status_in(text) {
                Some(status) => format!("it answered HTTP {status} at `/sdk`"),
                None => "its answer at `/sdk` is not the vSphere API".into(),
            },
        },
        _ => Error::NotVcenter {
            url,
            detail: "its answer at `/sdk` is not the vSphere API".into(),
        },
    }
}

/// `vim_rs` reports a non-SOAP error page as "HTTP 404 Not Found (...)".
fn http_status_in(text: &str) -> Option<&str> {
    let rest = &text[text.find("HTTP ")? + 5..];
    rest.split_whitespace()
        .next()
        .filter(|code| code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()))
}

/// Whether a method reads properties (where the simulator reports an expired
/// session differently; see `ReloginClient::session_lost`).
fn reads_properties(method_name: &str) -> bool {
    method_name.starts_with("RetrieveProperties") || method_name == "ContinueRetrievePropertiesEx"
}

/// A `VimClient` that re-establishes an expired session once per call and
/// counts round trips.
pub struct ReloginClient {
    /// Kept for `service_content()`, which must hand out a reference.
    initial: Arc<Client>,
    current: RwLock<(u64, Arc<Client>)>,
    relogin: tokio::sync::Mutex<()>,
    options: ConnectOptions,
    http: reqwest::Client,
    mode: TransportMode,
    round_trips: AtomicU64,
    relogins: AtomicU64,
}

impl ReloginClient {
    fn current(&self) -> Arc<Client> {
        self.current.read().expect("session lock").1.clone()
    }

    fn current_with_generation(&self) -> (u64, Arc<Client>) {
        let guard = self.current.read().expect("session lock");
        (guard.0, guard.1.clone())
    }

    /// Log in again unless another task already did since `generation`.
    async fn renew(&self, generation: u64) -> vim_rs::core::client::Result<()> {
        let _serialized = self.relogin.lock().await;
        if self.current.read().expect("session lock").0 != generation {
            return Ok(());
        }
        tracing::info!("vCenter session expired; logging in again");
        let fresh = login(&self.options, &self.http, self.mode)
            .await
            .map_err(|e| {
                vim_rs::core::client::Error::ParseError(format!("re-login failed: {e}"))
            })?;
        *self.current.write().expect("session lock") = (generation + 1, fresh);
        self.relogins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Run `call` on the current client; when the session turns out to have
    /// expired, renew it and run the call once more.
    async fn with_relogin<'a, T, F>(
        &'a self,
        reads_properties: bool,
        call: F,
    ) -> vim_rs::core::client::Result<T>
    where
        F: Fn(Arc<Client>) -> BoxFuture<'a, vim_rs::core::client::Result<T>>,
    {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let (generation, client) = self.current_with_generation();
        match call(client.clone()).await {
            Err(e)
                if Error::is_not_authenticated(&e)
                    || (reads_properties && self.session_lost(&client, &e).await) =>
            {
                self.renew(generation).await?;
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                call(self.current()).await
            }
            other => other,
        }
    }

    /// vCenter answers an expired session with a `NotAuthenticated` fault. The
    /// simulator instead answers property reads with a `NotAuthenticated` per
    /// property in `missingSet`, which arrives here as a parse error; there,
    /// ask `CurrentTime` (which needs a session) before deciding.
    async fn session_lost(&self, client: &Arc<Client>, err: &vim_rs::core::client::Error) -> bool {
        if !matches!(err, vim_rs::core::client::Error::ParseError(_)) {
            return false;
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match client
            .invoke(
                "",
                "ServiceInstance",
                "ServiceInstance",
                "CurrentTime",
                None,
            )
            .await
        {
            Err(e) => Error::is_not_authenticated(&e),
            Ok(_) => false,
        }
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
        Box::pin(self.with_relogin(reads_properties(method_name), move |c| {
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
        Box::pin(self.with_relogin(reads_properties(method_name), move |c| {
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
        Box::pin(self.with_relogin(false, move |c| {
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
        Box::pin(self.with_relogin(true, move |c| {
            Box::pin(async move { c.fetch_property_raw(svc, mo_type, mo_id, property).await })
        }))
    }

    fn close(&self) -> BoxFuture<'_, vim_rs::core::client::Result<()>> {
        Box::pin(async move { self.current().close().await })
    }
}
