//! The gRPC listener: HTTP/2 over TCP (or TLS with ALPN `h2`) served by hyper directly,
//! each connection bounded by `connections`, each request through its connection's
//! [`Admission`]. On shutdown the listener closes at once, every connection is sent
//! GOAWAY, and [`serve`] returns when their calls have finished.
//!
//! tonic's `transport::Server` is not used: its router and layers (axum routing, a boxed
//! request body, error recovery, timeouts the proxy does itself) cost about a sixth of a
//! proxied Get, and a bare tonic service under hyper answers that much faster
//! (reports/baseline/proxy.md). The generated tonic services are still what decode and
//! encode the messages.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::StartError;
use super::admission::{Admission, Gateway};
use super::connections::Bounded;
use crate::config::{TlsConfig, TransportConfig};

/// Streams the proxy may reset on one connection (refused past
/// `max_concurrent_streams`, or malformed) before it sends GOAWAY. hyper's default of
/// 1024 ended a connection that opened 2000 streams at once after 512 refusals (each is
/// counted twice), where tonic's server set no limit; no limit at all is the
/// rapid-reset weakness of RUSTSEC-2024-0003, so a generous bound.
const MAX_LOCAL_RESETS: usize = 65_536;

/// HTTP/2 as `transport` configures it. No `date` header: gRPC does not use it, and
/// formatting it is work on every response.
pub(crate) fn http2(transport: &TransportConfig) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(transport.max_concurrent_streams)
        .initial_stream_window_size(transport.stream_window_bytes)
        .initial_connection_window_size(transport.connection_window_bytes)
        .max_header_list_size(transport.max_header_list_bytes)
        .keep_alive_interval(transport.keepalive_interval)
        .keep_alive_timeout(transport.keepalive_timeout)
        .max_local_error_reset_streams(MAX_LOCAL_RESETS)
        .auto_date_header(false);
    builder
}

/// The TLS acceptor for `tls` (files read now), offering HTTP/2 only.
pub(crate) fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::tls::ensure_crypto_provider();
    let read = |field, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| StartError::TlsFile {
            field,
            path: path.to_path_buf(),
            source,
        })
    };
    let (cert, key) = (read("cert_file", &tls.cert_file)?, read("key_file", &tls.key_file)?);
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Tls(format!("tls.cert_file {}: {e}", tls.cert_file.display())))?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!(
            "tls.cert_file {}: no PEM certificate in it",
            tls.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| StartError::Tls(format!("tls.key_file {}: {e}", tls.key_file.display())))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the connections `incoming` yields until `shutdown`, then drains them.
pub(crate) async fn serve<I, IO>(
    mut incoming: Bounded<I>,
    tls: Option<TlsAcceptor>,
    http2: http2::Builder<TokioExecutor>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) where
    I: futures::Stream<Item = std::io::Result<IO>> + Unpin,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let connection = tokio::select! {
            () = shutdown.cancelled() => break,
            next = incoming.next() => match next {
                Some(Ok(connection)) => connection,
                Some(Err(e)) => {
                    accept_failed(&e).await;
                    continue;
                }
                None => break,
            },
        };
        let service = Admission::new(gateway.clone(), connection.connection());
        let (http2, tls, watcher) = (http2.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(http2.serve_connection(TokioIo::new(connection), service))
                        .await
                }
                Some(tls) => match tls.accept(connection).await {
                    Ok(stream) => {
                        watcher
                            .watch(http2.serve_connection(TokioIo::new(stream), service))
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    // Closing the listener now: new clients are refused instead of waiting for a drain.
    drop(incoming);
    graceful.shutdown().await;
}

/// After a failed accept: a client that gave up is nothing; anything else (out of file
/// descriptors) is logged and waited out briefly instead of retried in a busy loop.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock) {
        return;
    }
    tracing::warn!(error = %e, "accepting a gRPC connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
