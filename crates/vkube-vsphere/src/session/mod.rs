//! A vCenter session: connect (TLS probe, transport choice, login), log in
//! again whenever the session ends, bound every request by a deadline,
//! count API round trips, log out on close.
//!
//! `vim_rs` stubs take an `Arc<dyn VimClient>`; [`Session::client`] hands out
//! a [`ReloginClient`] so every call in vkube gets deadlines, expiry handling
//! and round-trip counting without knowing about any of them. Reads made of
//! several calls go through [`Session::read_retrying`].

mod deadline;
mod relogin;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use vim_rs::core::client::{
    Client, ClientBuilder, Transport, TransportMode, VimClient, VimClientHandle, WireLoggingMode,
};
use vim_rs::types::structs::ServiceContent;

pub use deadline::WAITING_TARGET;
pub(crate) use deadline::{human, NoAnswer};
pub use relogin::ReloginClient;

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
    /// How long to wait for vCenter's answers.
    pub timeouts: Timeouts,
}

/// How long vkube waits for vCenter before it says so, and before it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The longest wait for one API request (a read, a task start, a login).
    /// vCenter answers each in well under a second when healthy; this only
    /// ends the wait on one that hung. Default 30 s.
    pub request: Duration,
    /// A task whose state and progress have not changed for this long is
    /// given up on: the bound follows the task's own progress, so a long
    /// clone that keeps moving is never cut short. Default 10 min.
    pub task_stall: Duration,
    /// A request or task that takes longer than this is logged at info
    /// level, saying what vkube waits for (a request again each time its
    /// wait doubles, a task every 30 s). With a deadline shorter than twice
    /// this, the first notice comes at half the deadline. Default 5 s.
    pub slow_notice: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_secs(30),
            task_stall: Duration::from_secs(600),
            slow_notice: Duration::from_secs(5),
        }
    }
}

impl Timeouts {
    /// When to first say what vkube waits for, for a wait bounded by `limit`.
    pub(crate) fn first_notice(&self, limit: Duration) -> Duration {
        self.slow_notice
            .min(limit / 2)
            .max(Duration::from_millis(1))
    }
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
    /// What this session just saw of VMs and templates (see [`crate::vm::Seen`]).
    pub(crate) seen: crate::vm::Seen,
    certificate: PeerCertificate,
    endpoint: Endpoint,
    /// For the REST APIs (the SOAP logins have clients of their own).
    http: reqwest::Client,
}

impl Session {
    /// Probe TLS, pick the transport, log in, and check the server is a vCenter.
    pub async fn connect(options: ConnectOptions) -> Result<Session> {
        let endpoint = options.endpoint.clone();
        let certificate = tls::probe(&endpoint, &options.tls, options.connect_timeout).await?;
        let http = tls::http_client(&options.tls, options.connect_timeout, options.timeouts)?;
        let mode = match options.transport {
            TransportChoice::Auto => TransportMode::Auto,
            TransportChoice::Json => TransportMode::Json,
            TransportChoice::Soap => TransportMode::Soap,
        };
        let client = login(&options, mode).await?;
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
            client: Arc::new(ReloginClient::new(client, options, relogin_mode)),
            tasks: Default::default(),
            seen: Default::default(),
            certificate,
            endpoint,
            http,
        })
    }

    /// The handle `vim_rs` managed-object stubs take.
    pub fn client(&self) -> VimClientHandle {
        self.client.clone()
    }

    /// The server's root objects.
    pub fn content(&self) -> &ServiceContent {
        self.client.service_content()
    }

    /// The HTTP client with this session's TLS policy (for the REST APIs).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The options this session was opened with (REST logins reuse them).
    pub fn options(&self) -> &ConnectOptions {
        self.client.options()
    }

    /// The server's certificate fingerprints.
    pub fn certificate(&self) -> &PeerCertificate {
        &self.certificate
    }

    /// API calls made since login (each one HTTP round trip).
    pub fn round_trips(&self) -> u64 {
        self.client.round_trips()
    }

    /// Count `n` round trips made beside the SOAP client (the REST API's).
    pub(crate) fn add_round_trips(&self, n: u64) {
        self.client.add_round_trips(n);
    }

    /// How often the session ended and was re-established.
    pub fn relogins(&self) -> u64 {
        self.client.relogins()
    }

    /// `host:port` of the vCenter, as errors name it.
    pub fn host(&self) -> &str {
        self.client.host()
    }

    /// Run a read-only operation made of several calls (a container view
    /// and the retrieval through it, paged retrievals, a read and its
    /// fallback). When it fails and the session turns out to have ended
    /// meanwhile, log in again and run it again from the start.
    ///
    /// Everything an attempt creates on the server — container views,
    /// continuation tokens — belongs to the session it ran in and dies with
    /// it; the next attempt creates its own. `attempt` gets the login
    /// generation it runs under, for [`Session::lost_since`]. Never for
    /// operations that change vCenter: see [`ReloginClient`] for those.
    pub(crate) async fn read_retrying<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut tries = 1;
        loop {
            let generation = self.client.generation();
            let err = match attempt(generation).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if tries >= relogin::MAX_ATTEMPTS
                || err.is_no_answer()
                || !self.lost_since(generation).await
            {
                return Err(err);
            }
            tracing::debug!("a read failed with the session gone ({err}); reading again");
            self.client.renew(generation).await?;
            tries += 1;
        }
    }

    /// Whether the login of `generation` has ended (someone logged in again
    /// since, or vCenter says the session is gone): one cheap call at most.
    pub(crate) async fn lost_since(&self, generation: u64) -> bool {
        self.client.lost(generation).await
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

    /// Log out (within the request deadline). Idempotent; errors are logged,
    /// not returned, since there is nothing a caller can do about a failed
    /// logout.
    pub async fn close(&self) {
        if let Err(e) = self.client.close().await {
            tracing::debug!("logout failed: {e}");
        }
    }
}

/// Log in with an HTTP client of this login's own (see [`ReloginClient`]
/// on why logins share no cookie jar), within the request deadline.
async fn login(options: &ConnectOptions, mode: TransportMode) -> Result<Arc<Client>> {
    let http = tls::http_client(&options.tls, options.connect_timeout, options.timeouts)?;
    let host = options.endpoint.address();
    deadline::bounded_login(&options.timeouts, &host, build_client(options, http, mode)).await
}

async fn build_client(
    options: &ConnectOptions,
    http: reqwest::Client,
    mode: TransportMode,
) -> Result<Arc<Client>> {
    let builder = ClientBuilder::new(&options.endpoint.address())
        .http_client(http)
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
