//! Helpers for the end-to-end Get benchmarks (`ci/bench-proxy.sh`, `ci/bench-loadtest.sh`):
//!
//!   bench_get preload ENDPOINT NS     stores the benchmark key in a running proxy
//!   bench_get check ENDPOINT          fails unless ENDPOINT (the proxy, or the reference
//!                                     `bare_server`) answers the benchmark Get with the
//!                                     128-byte value
//!   bench_get request-body FILE       writes the gRPC-framed GetRequest h2load sends
//!
//! The reference server itself is `bare_server` (beside this file).

use anyhow::{Context, bail};
use bytes::Bytes;
use prism_proto::keyvalue::v1::*;
use prism_proxy::client::PrismClient;
use prism_proxy::interfaces::KeyValueBasic as _;
use prost::Message;
use tonic::Request;

const KEY: &[u8] = b"bench:key";
const VALUE_BYTES: usize = 128;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Vec<String>) -> anyhow::Result<()> {
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
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
        _ => bail!("usage: bench_get preload ENDPOINT NS | check ENDPOINT | request-body FILE"),
    }
    Ok(())
}
