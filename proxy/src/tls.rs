//! TLS plumbing shared by the server (`tls:` in the config) and the client (`https://`).

/// Makes ring the process's rustls crypto provider unless one is already set. Some
/// builds have both rustls providers (reqwest, for OIDC, asks for aws-lc-rs), and rustls
/// then refuses to guess: the choice is made here, once.
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
