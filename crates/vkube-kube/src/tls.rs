//! The rustls crypto provider. kube builds its TLS configuration with rustls's process-wide
//! default provider; rustls panics when no default is installed and more than one provider is
//! compiled in. vkube compiles in aws-lc-rs (vkube-vsphere uses it with explicit configs), so
//! this crate installs aws-lc-rs as the default when none is set yet — an already installed
//! default (whoever chose it) is left alone.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The provider used for up-front key checks and installed as the process default.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Make sure rustls has a process-wide default provider before kube builds its client.
pub(crate) fn ensure_default_provider() {
    if CryptoProvider::get_default().is_none() {
        // Fails only if another thread installed one in between, which is just as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}
