//! Node images in vCenter: importing OVF packages over HTTP NFC leases
//! (from a file, a directory or a URL, streamed), the changes that make a
//! VM a node template, and reading templates' facts for the check in
//! `vkube_core::images`.
//!
//! The simulator (govmomi 0.24) runs the import path end to end but
//! discards uploaded bytes and sends lease URLs with host `*`, which
//! [`lease::replace_wildcard_host`] turns into the server's host.

pub mod facts;
pub mod import;
pub mod lease;
pub mod package;
pub mod port;
pub mod prepare;
pub mod stream;

pub use import::{import, Finish, Imported, BASE_SNAPSHOT};
pub use lease::ImportTarget;
pub use package::{open_directory, open_ova, verify_ova, Package, VerifiedOva};
pub use port::{Cancel, ImagePort};
pub use stream::{ByteReader, NoTransferProgress, TransferProgress};

/// An HTTP client for image sources (`http(s)://` URLs of OVAs): the
/// system's trust roots, `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` honoured, no
/// limit on the whole transfer but one on each read, so a stalled server
/// fails the import instead of hanging it.
pub fn source_client(connect_timeout: std::time::Duration) -> crate::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(std::time::Duration::from_secs(120))
        .user_agent(concat!("vkube/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| crate::Error::Invalid(format!("cannot build the HTTP client: {e}")))
}
