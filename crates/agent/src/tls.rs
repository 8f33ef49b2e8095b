//! rustls's crypto provider, which reqwest (built with `rustls-no-provider`) and the gateway's
//! client need before a client is built.

/// Installs rustls's ring provider; a provider already installed is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
