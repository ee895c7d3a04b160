//! Helpers for the end-to-end Get benchmark (`ci/bench-proxy.sh`):
//!
//!   bench_get bare-server ADDR        a bare tonic server answering KeyValueBasic/Get from
//!                                     an in-memory map (the reference the proxy is
//!                                     compared with; any key gets the benchmark value);
//!                                     every other call is UNIMPLEMENTED
//!   bench_get preload ENDPOINT NS     stores the benchmark key in a running proxy
//!   bench_get request-body FILE       writes the gRPC-framed GetRequest h2load sends
//!   bench_get open-loop ENDPOINT RATE SECONDS
//!                                     sends Gets at a fixed arrival rate (open model) and
//!                                     prints latency percentiles: from each request's
//!                                     intended send time (corrected for coordinated
//!                                     omission) and from its actual send time, plus the
//!                                     generator's own send lag. h2load's --rps mode sends
//!                                     in bursts, which inflates its latencies even against
//!                                     the bare server, so this is used for latency at a
//!                                     given rate instead.
//!
//! Both servers answer the same 128-byte value for the same key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use bytes::Bytes;
use prism_proto::keyvalue::v1::key_value_basic_server::{KeyValueBasic, KeyValueBasicServer};
use prism_proto::keyvalue::v1::*;
use prism_proxy::client::PrismClient;
use prism_proxy::interfaces::KeyValueBasic as _;
use prost::Message;
use tonic::{Request, Response, Status};

const KEY: &[u8] = b"bench:key";
const VALUE_BYTES: usize = 128;

struct Bare {
    map: Arc<RwLock<HashMap<Bytes, Bytes>>>,
}

#[tonic::async_trait]
impl KeyValueBasic for Bare {
    async fn set(&self, _: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        Err(Status::unimplemented("bare server: Get only"))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let key = request.into_inner().key;
        let value = self
            .map
            .read()
            .map_err(|_| Status::internal("poisoned"))?
            .get(&key)
            .cloned();
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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The bare server runs on the same runtime kind as prism-proxy (multi-threaded, one
    // worker per available core), so the comparison is server code against server code.
    // The load generator paces on a single thread.
    let runtime = if args.first().map(String::as_str) == Some("bare-server") {
        tokio::runtime::Runtime::new()?
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Vec<String>) -> anyhow::Result<()> {
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["bare-server", addr] => {
            let addr = addr.parse().context("ADDR must be host:port")?;
            let map = Arc::new(RwLock::new(HashMap::from([(Bytes::from_static(KEY), value)])));
            tonic::transport::Server::builder()
                .add_service(KeyValueBasicServer::new(Bare { map }))
                .serve(addr)
                .await?;
        }
        ["preload", endpoint, namespace] => {
            let client = PrismClient::connect(endpoint, namespace).await?;
            client.set(Bytes::from_static(KEY), value.clone()).await?;
            let got = client.get(Bytes::from_static(KEY)).await?;
            if got.as_ref().map(Bytes::len) != Some(VALUE_BYTES) {
                bail!("preload check failed: got {got:?}");
            }
        }
        ["check", endpoint] => {
            // Works against both servers: raw client, namespace header set.
            let mut client = key_value_basic_client::KeyValueBasicClient::connect(endpoint.to_string()).await?;
            let mut request = Request::new(GetRequest {
                key: Bytes::from_static(KEY),
            });
            request.metadata_mut().insert("x-prism-namespace", "default".parse()?);
            let got = client.get(request).await?.into_inner();
            if !got.found || got.value.len() != VALUE_BYTES {
                bail!("{endpoint} did not return the benchmark value");
            }
        }
        ["open-loop", endpoint, rate, seconds] => {
            let rate: f64 = rate.parse().context("RATE must be requests per second")?;
            let seconds: f64 = seconds.parse().context("SECONDS must be a number")?;
            open_loop(endpoint, rate, seconds).await?;
        }
        ["request-body", file] => {
            let message = GetRequest {
                key: Bytes::from_static(KEY),
            }
            .encode_to_vec();
            // gRPC length-prefixed message: 1 byte "not compressed", 4 bytes big-endian length.
            let mut framed = vec![0u8];
            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
            framed.extend_from_slice(&message);
            std::fs::write(file, framed).with_context(|| format!("writing {file}"))?;
        }
        _ => bail!("usage: bench_get bare-server ADDR | preload ENDPOINT NS | check ENDPOINT | request-body FILE"),
    }
    Ok(())
}

/// Waits for `at` more precisely than tokio's 1 ms timer: sleeps to within 2 ms, then
/// yields to the runtime (so responses are processed) until the time has come. Without
/// this, arrivals within a millisecond leave in one burst and queue behind each other.
async fn pace_until(at: tokio::time::Instant) {
    let coarse = at.checked_sub(std::time::Duration::from_millis(2));
    if let Some(coarse) = coarse.filter(|c| *c > tokio::time::Instant::now()) {
        tokio::time::sleep_until(coarse).await;
    }
    while tokio::time::Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Fixed-rate Get load over 4 HTTP/2 connections; the first second is warm-up.
async fn open_loop(endpoint: &str, rate: f64, seconds: f64) -> anyhow::Result<()> {
    use std::time::Duration;
    use tokio::time::Instant;

    const CONNECTIONS: usize = 4;
    const MAX_IN_FLIGHT: usize = 10_000;
    let warmup = Duration::from_secs(1);
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        clients.push(key_value_basic_client::KeyValueBasicClient::new(channel));
    }
    let new_hist = || hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
    let stats = Arc::new(std::sync::Mutex::new((new_hist()?, new_hist()?, new_hist()?, 0u64)));
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let namespace: tonic::metadata::AsciiMetadataValue = "default".parse()?;
    let total = ((warmup.as_secs_f64() + seconds) * rate) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let (mut dropped, mut tasks) = (0u64, tokio::task::JoinSet::new());
    for i in 0..total {
        let intended = start + interval.mul_f64(i as f64);
        pace_until(intended).await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let mut client = clients[i as usize % CONNECTIONS].clone();
        let (stats, namespace) = (stats.clone(), namespace.clone());
        let measured = intended.duration_since(start) >= warmup;
        tasks.spawn(async move {
            let sent = Instant::now();
            let mut request = Request::new(GetRequest {
                key: Bytes::from_static(KEY),
            });
            request.metadata_mut().insert("x-prism-namespace", namespace);
            let ok = client.get(request).await.is_ok_and(|r| r.get_ref().found);
            let done = Instant::now();
            drop(permit);
            if measured {
                let mut s = stats.lock().expect("stats lock");
                let us = |d: Duration| (d.as_micros() as u64).max(1);
                let _ = s.0.record(us(done - intended));
                let _ = s.1.record(us(done - sent));
                let _ = s.2.record(us(sent - intended));
                s.3 += u64::from(!ok);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64() - warmup.as_secs_f64();
    let s = stats.lock().expect("stats lock");
    let line = |name: &str, h: &hdrhistogram::Histogram<u64>| {
        format!(
            "{name}: p50={}us p90={}us p99={}us p99.9={}us max={}us",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        )
    };
    println!(
        "open-loop target={rate}/s achieved={:.0}/s measured={} errors={} dropped={dropped}",
        s.0.len() as f64 / elapsed,
        s.0.len(),
        s.3
    );
    println!("  {}", line("latency from intended send (corrected)", &s.0));
    println!("  {}", line("service time from actual send", &s.1));
    println!("  {}", line("generator send lag", &s.2));
    Ok(())
}
