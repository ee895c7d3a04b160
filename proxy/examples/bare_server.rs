//! The reference the proxy's throughput is compared with (`ci/bench-proxy.sh`): the
//! fastest gRPC server this project can write for `prism.keyvalue.v1.KeyValueBasic/Get`
//! of one 128-byte value, so that "proxy / bare" says how close the proxy comes to what
//! gRPC itself costs on the machine.
//!
//! What makes it fast, each measured in `reports/baseline/proxy.md`:
//! - the map is built once and read without a lock (a Get-only load needs no writes; any
//!   concurrent map costs at least this);
//! - `--runtime current-thread` (default): one thread, no cross-thread wake-ups or work
//!   stealing;
//! - `--serve hyper` (default): the generated tonic service under hyper's HTTP/2
//!   connection directly, without `tonic::transport::Server`'s router and layers;
//!   `--serve tonic` is the usual `Server::builder().add_service(..)`;
//! - no `date` header on responses (gRPC does not use it);
//! - mimalloc as the allocator, and the `fast` profile (fat LTO, one codegen unit) when
//!   built as `ci/bench-proxy.sh` builds it.
//!
//!   bare_server ADDR [--runtime current-thread|multi-thread] [--serve hyper|tonic]
//!
//! Any key gets the benchmark value (`bench_get`'s); every other method is UNIMPLEMENTED.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use prism_proto::keyvalue::v1::key_value_basic_server::{KeyValueBasic, KeyValueBasicServer};
use prism_proto::keyvalue::v1::*;
use tonic::{Request, Response, Status};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &[u8] = b"bench:key";
const VALUE_BYTES: usize = 128;

/// Keys and values, read-only after start.
struct Bare {
    map: Arc<HashMap<Bytes, Bytes, foldhash::fast::RandomState>>,
}

#[tonic::async_trait]
impl KeyValueBasic for Bare {
    async fn set(&self, _: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        Err(Status::unimplemented("bare server: Get only"))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let value = self.map.get(&request.into_inner().key).cloned();
        Ok(Response::new(GetResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn delete(&self, _: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        Err(Status::unimplemented("bare server: Get only"))
    }

    async fn exists(&self, _: Request<ExistsRequest>) -> Result<Response<ExistsResponse>, Status> {
        Err(Status::unimplemented("bare server: Get only"))
    }
}

struct Args {
    addr: std::net::SocketAddr,
    current_thread: bool,
    hyper: bool,
}

fn args() -> anyhow::Result<Args> {
    let usage = "usage: bare_server ADDR [--runtime current-thread|multi-thread] [--serve hyper|tonic]";
    let mut it = std::env::args().skip(1);
    let addr = it.next().context(usage)?.parse().context("ADDR must be host:port")?;
    let mut args = Args {
        addr,
        current_thread: true,
        hyper: true,
    };
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().as_deref()) {
            ("--runtime", Some("current-thread")) => args.current_thread = true,
            ("--runtime", Some("multi-thread")) => args.current_thread = false,
            ("--serve", Some("hyper")) => args.hyper = true,
            ("--serve", Some("tonic")) => args.hyper = false,
            _ => bail!("{usage}"),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let runtime = if args.current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Runtime::new()?
    };
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut map = HashMap::with_hasher(foldhash::fast::RandomState::default());
    map.insert(Bytes::from_static(KEY), Bytes::from(vec![b'v'; VALUE_BYTES]));
    let service = KeyValueBasicServer::new(Bare { map: Arc::new(map) });
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    if !args.hyper {
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await?;
        return Ok(());
    }
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2.auto_date_header(false);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let connection = http2.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service.clone()));
        tokio::spawn(connection);
    }
}
