//! One module per command group. Each maps its flags to library calls and
//! renders results through `crate::output`; none prints errors or exits.

pub mod about;
pub mod cluster;
pub mod credentials;
pub mod image;
pub mod inventory;
pub mod ippool;
pub mod ls;
pub mod roles;
pub mod state;
pub mod zones;

use anyhow::{Context as _, Result};
use vkube_vsphere::{Session, TlsPolicy};

use crate::settings::{terminal_prompt, ConnectionArgs};

/// The state `--state`/`VKUBE_STATE` names, opened (file or PostgreSQL).
pub async fn open_state(
    state: &vkube_store::StateLocation,
) -> Result<std::sync::Arc<dyn vkube_store::StateStore>> {
    state
        .open()
        .await
        .with_context(|| format!("opening state `{state}`"))
}

/// A command-line mistake the user can fix (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An open session plus the user's default datacenter.
pub struct Connected {
    /// The vCenter session.
    pub session: Session,
    /// `--datacenter` / `VKUBE_DATACENTER` / `GOVC_DATACENTER`.
    pub datacenter: Option<String>,
}

impl Connected {
    /// Absolute inventory path: relative paths are taken inside the default
    /// datacenter, as govc does.
    pub fn absolute(&self, path: &str) -> Result<String> {
        if path.starts_with('/') {
            return Ok(path.to_string());
        }
        match &self.datacenter {
            Some(dc) => Ok(format!("/{}/{path}", dc.trim_matches('/'))),
            None => Err(UsageError(format!(
                "`{path}` is a relative path: start it with `/` or set a datacenter with `--datacenter` (or `GOVC_DATACENTER`)"
            ))
            .into()),
        }
    }
}

/// Open a vCenter session from the connection flags and environment.
/// With TLS verification off, say so and show the thumbprint to pin.
pub async fn connect(args: &ConnectionArgs) -> Result<Connected> {
    let resolved = args.resolve(&|name| std::env::var(name).ok(), &terminal_prompt)?;
    let url = resolved.options.endpoint.sdk_url();
    let insecure = resolved.options.tls == TlsPolicy::Insecure;
    let session = Session::connect(resolved.options.clone())
        .await
        .with_context(|| format!("connecting to `{url}`"))?;
    if insecure {
        let cert = session.certificate();
        eprintln!(
            "warning: TLS verification is off for `{url}`; its certificate is SHA-256 {} (SHA-1 {}); pin it with `--thumbprint`",
            cert.sha256, cert.sha1
        );
    }
    Ok(Connected {
        session,
        datacenter: resolved.datacenter,
    })
}
