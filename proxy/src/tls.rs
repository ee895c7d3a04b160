//! TLS plumbing shared by the server (`tls:` in the config) and the client (`https://`).

/// Makes aws-lc-rs the process's rustls crypto provider unless one is already set.
/// Dependencies enable both rustls providers (async-nats asks for ring, reqwest for
/// aws-lc-rs), and rustls then refuses to guess: the choice is made here, once.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}
