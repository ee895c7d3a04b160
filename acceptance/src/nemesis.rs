//! A TCP proxy that misbehaves on request, to put between the Prism proxy and a backend
//! server (Jepsen's nemesis, Toxiproxy's toxics): added latency, a bandwidth limit, a
//! black hole (connections accepted, nothing delivered, as in a partition: bytes wait in
//! the socket buffers and arrive in order once healed, as TCP retransmission would make
//! them), and connections reset (RST) mid-request. A toxic applies at once to open
//! connections and to new ones; [`FaultProxy::heal`] ends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the bytes passing through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toxic {
    /// Pass everything through.
    None,
    /// Hold each chunk this long before passing it on, in each direction.
    Latency(Duration),
    /// At most this many bytes per second in each direction.
    Bandwidth(u64),
    /// Deliver nothing (new connections are accepted and held).
    BlackHole,
}

/// A running fault proxy in front of one upstream server.
pub struct FaultProxy {
    addr: SocketAddr,
    toxic: watch::Sender<Toxic>,
    /// Bumped to reset every open connection.
    resets: watch::Sender<u64>,
    open: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (toxic, _) = watch::channel(Toxic::None);
        let (resets, _) = watch::channel(0u64);
        let open = Arc::new(AtomicUsize::new(0));
        let (toxics, reset_rx, counter) = (toxic.clone(), resets.subscribe(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (toxic, mut reset) = (toxics.subscribe(), reset_rx.clone());
                reset.mark_unchanged();
                let open = counter.clone();
                tokio::spawn(async move {
                    open.fetch_add(1, Ordering::Relaxed);
                    connection(client, upstream, toxic, reset).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Ok(FaultProxy {
            addr,
            toxic,
            resets,
            open,
            accept,
        })
    }

    /// Where clients connect instead of the upstream server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, toxic: Toxic) {
        self.toxic.send_replace(toxic);
    }

    pub fn heal(&self) {
        self.set(Toxic::None);
    }

    /// Resets every open connection (RST to both sides), as a middlebox dropping state
    /// would; new connections are made as usual.
    pub fn reset_all(&self) {
        self.resets.send_modify(|n| *n += 1);
    }

    /// Connections open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

/// One client connection: connect upstream once the toxic lets anything through, then
/// pump both ways until either side closes or a reset is asked for.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut toxic: watch::Receiver<Toxic>,
    mut reset: watch::Receiver<u64>,
) {
    // A black hole accepts and holds: the upstream connection waits for healing.
    if toxic.wait_for(|t| *t != Toxic::BlackHole).await.is_err() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let mut client = client;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let reset_asked = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, toxic.clone());
        let down = pump(server_read, client_write, toxic.clone());
        tokio::select! {
            _ = async { tokio::join!(up, down) } => false,
            _ = reset.changed() => true,
        }
    };
    if reset_asked {
        // Closed with SO_LINGER 0, a socket sends RST rather than FIN.
        for stream in [&client, &server] {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Copies `from` to `to`, each chunk held to the current toxic.
async fn pump<R, W>(mut from: R, mut to: W, mut toxic: watch::Receiver<Toxic>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        // Hold reads during a black hole: bytes wait in the socket buffers.
        if toxic.wait_for(|t| *t != Toxic::BlackHole).await.is_err() {
            return;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let mut chunk = &buffer[..n];
        while !chunk.is_empty() {
            let current = *toxic.borrow_and_update();
            let step = match current {
                Toxic::None => chunk.len(),
                Toxic::Latency(delay) => {
                    tokio::time::sleep(delay).await;
                    chunk.len()
                }
                Toxic::Bandwidth(bytes_per_second) => {
                    // Tenth-of-a-second slices, so a limit change applies soon.
                    let slice = (bytes_per_second / 10).max(1) as usize;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    slice.min(chunk.len())
                }
                Toxic::BlackHole => {
                    if toxic.wait_for(|t| *t != Toxic::BlackHole).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if to.write_all(&chunk[..step]).await.is_err() {
                return;
            }
            chunk = &chunk[step..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(message).await?;
        let mut reply = vec![0u8; message.len()];
        stream.read_exact(&mut reply).await?;
        Ok(reply)
    }

    #[tokio::test]
    async fn each_toxic_does_what_it_says() {
        let nemesis = FaultProxy::start(echo().await).await.unwrap();
        let mut stream = TcpStream::connect(nemesis.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"plain").await.unwrap(), b"plain");
        assert_eq!(nemesis.open_connections(), 1);

        // Latency: held in each direction.
        nemesis.set(Toxic::Latency(Duration::from_millis(100)));
        let started = std::time::Instant::now();
        round_trip(&mut stream, b"slow").await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );

        // A black hole: nothing comes back, and once healed it all does, in order.
        nemesis.set(Toxic::BlackHole);
        stream.write_all(b"held").await.unwrap();
        let mut reply = [0u8; 4];
        let held = tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut reply)).await;
        assert!(held.is_err(), "a black hole answered");
        nemesis.heal();
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&reply, b"held");

        // Bandwidth: 4 KiB at 10 KiB/s takes a while.
        nemesis.set(Toxic::Bandwidth(10 * 1024));
        let started = std::time::Instant::now();
        round_trip(&mut stream, &[7u8; 4096]).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        nemesis.heal();

        // A reset: the client sees the connection reset, not a clean end.
        nemesis.reset_all();
        let mut byte = [0u8; 1];
        let after = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .unwrap();
        assert!(
            matches!(&after, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{after:?}"
        );
        // New connections work as before.
        let mut again = TcpStream::connect(nemesis.addr()).await.unwrap();
        assert_eq!(round_trip(&mut again, b"again").await.unwrap(), b"again");
    }
}
