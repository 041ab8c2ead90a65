//! TLS to PostgreSQL over rustls (aws-lc-rs, the workspace's one crypto
//! provider): tokio-postgres' `MakeTlsConnect` for it, and the roots the
//! server certificate is checked against.
//!
//! Verification is always full: the chain must lead to a trusted root and
//! the certificate must name the host connected to (libpq's
//! `verify-full`). Encrypting without checking who answers would hand the
//! password and every sealed secret to whoever sits on the path, so there
//! is no such mode. No channel binding: the verified certificate already
//! ties the session to the server.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;

use crate::error::{Error, Result};

/// Connects with TLS, verifying the server against fixed roots.
#[derive(Clone)]
pub(super) struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl RustlsConnect {
    /// Trusting the certificates in the PEM file `roots`, or the system's
    /// roots when `None`.
    pub(super) fn new(roots: Option<&Path>) -> Result<RustlsConnect> {
        let invalid = |problem: String| Error::Invalid {
            field: "state",
            problem,
        };
        let mut store = RootCertStore::empty();
        match roots {
            Some(file) => {
                let certificates = CertificateDer::pem_file_iter(file)
                    .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|error| {
                        invalid(format!(
                            "cannot read PostgreSQL root certificates from `{}`: {error}",
                            file.display()
                        ))
                    })?;
                let (added, _) = store.add_parsable_certificates(certificates);
                if added == 0 {
                    return Err(invalid(format!(
                        "`{}` holds no usable root certificate for PostgreSQL",
                        file.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    return Err(invalid(
                        "no system root certificates to check the PostgreSQL server with; \
                         name a CA file with `sslrootcert=` or PGSSLROOTCERT"
                            .into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid(format!("TLS setup: {error}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(RustlsConnect {
            config: Arc::new(config),
        })
    }
}

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnector;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(
        &mut self,
        host: &str,
    ) -> std::result::Result<RustlsConnector, Self::Error> {
        let name =
            ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))?.to_owned();
        Ok(RustlsConnector {
            config: Arc::clone(&self.config),
            name,
        })
    }
}

/// One connection's handshake.
pub(super) struct RustlsConnector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnector {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, socket)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An established TLS session.
pub(super) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}
