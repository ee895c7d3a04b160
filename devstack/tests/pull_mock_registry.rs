//! Pulling, against a MOCK container registry (no registry can be reached from these
//! machines): an in-test Registry HTTP API v2 on 127.0.0.1 (which dockerd treats as
//! insecure by default, so plain HTTP on loopback) serving one image — a layer holding a
//! static busybox, its config and a schema-2 manifest, digests computed here. The real
//! dockerd pulls it: `--pull missing` pulls once and shows progress, a second `up` pulls
//! nothing, `--pull always` asks the registry again, and a tag the registry does not have
//! fails naming the image.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use devstack::NetworkMode;
use devstack::engine::{Engine, EngineError, PullPolicy, UpOptions};
use devstack::stack::{Port, Ready, Service, Stack};
use sha2::{Digest, Sha256};

const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The one image the mock serves: blobs by digest, the manifest for any tag but `missing`.
struct Image {
    manifest: Vec<u8>,
    blobs: Vec<(String, Vec<u8>)>,
    manifest_requests: AtomicUsize,
    blob_requests: AtomicUsize,
}

fn image(busybox: &std::path::Path) -> Image {
    let mut layer = tar::Builder::new(Vec::new());
    layer
        .append_path_with_name(busybox, "bin/busybox")
        .expect("busybox into the layer");
    for applet in ["sh", "httpd", "mkdir", "echo"] {
        let mut head = tar::Header::new_gnu();
        head.set_entry_type(tar::EntryType::Symlink);
        head.set_size(0);
        head.set_mode(0o777);
        layer
            .append_link(&mut head, format!("bin/{applet}"), "busybox")
            .expect("applet link");
    }
    let layer = layer.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": digest(&config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": gz.len(), "digest": digest(&gz)}],
    })
    .to_string()
    .into_bytes();
    Image {
        manifest,
        blobs: vec![(digest(&config), config), (digest(&gz), gz)],
        manifest_requests: AtomicUsize::new(0),
        blob_requests: AtomicUsize::new(0),
    }
}

async fn manifest(State(image): State<Arc<Image>>, Path((_name, tag)): Path<(String, String)>) -> Response {
    image.manifest_requests.fetch_add(1, Ordering::SeqCst);
    if tag == "missing" {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, MANIFEST_TYPE.parse().unwrap());
    headers.insert("docker-content-digest", digest(&image.manifest).parse().unwrap());
    (headers, image.manifest.clone()).into_response()
}

async fn blob(State(image): State<Arc<Image>>, Path((_name, wanted)): Path<(String, String)>) -> Response {
    image.blob_requests.fetch_add(1, Ordering::SeqCst);
    match image.blobs.iter().find(|(d, _)| *d == wanted) {
        Some((d, bytes)) => {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, "application/octet-stream".parse().unwrap());
            headers.insert("docker-content-digest", d.parse().unwrap());
            (headers, bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Starts the MOCK registry; returns its host:port and the image it serves.
async fn mock_registry(busybox: &std::path::Path) -> (String, Arc<Image>) {
    let image = Arc::new(image(busybox));
    let app = axum::Router::new()
        .route(
            "/v2/",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{}") }),
        )
        .route("/v2/{name}/manifests/{tag}", axum::routing::get(manifest))
        .route("/v2/{name}/blobs/{digest}", axum::routing::get(blob))
        .with_state(image.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_from_a_mock_registry_once_with_progress_and_names_a_missing_tag() {
    let Ok(engine) = Engine::connect().await else {
        support::skip("no Docker engine; run ci/install-servers.sh as root");
        return;
    };
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .map(std::path::PathBuf::from)
        .into_iter()
        .find(|p| p.exists())
    else {
        support::skip("no static busybox to build the mock registry's image from (apt-get install busybox-static)");
        return;
    };
    let (registry, served) = mock_registry(&busybox).await;
    let tag = format!("t{}", std::process::id());
    let reference = format!("{registry}/mock-standin:{tag}");
    let port = support::free_port();
    let mut service = Service::new("web", "mock", reference.clone());
    service.command = vec![
        "sh".into(),
        "-c".into(),
        format!("mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p {port} -h /tmp/w"),
    ];
    service.ports = vec![Port::same(port)];
    service.ready = Ready::Http { port, path: "/".into() };
    service.timeout = Duration::from_secs(30);
    let network = match std::env::var("DEVSTACK_NETWORK").as_deref() {
        Ok("host") => NetworkMode::Host,
        _ => NetworkMode::Bridge,
    };
    let stack = Stack {
        project: format!("dst-pull-{}", std::process::id()),
        network,
        services: vec![service],
        files: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let options = |pull| UpOptions {
        pull,
        timeout: Duration::from_secs(60),
        ..UpOptions::new(dir.path().to_path_buf())
    };
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |l: &str| lines.lock().unwrap().push(l.to_string());

    // Checks run inside, so the image and containers are removed whatever happens.
    let result = async {
        engine
            .up(&stack, &options(PullPolicy::Missing), &progress)
            .await
            .map_err(|e| format!("first up: {e}"))?;
        let shown = lines.lock().unwrap().join("\n");
        if !(shown.contains(&format!("pulling {reference} for web")) && shown.contains(&format!("pulled {reference}")))
        {
            return Err(format!("progress not shown: {shown}"));
        }
        let blobs = served.blob_requests.load(Ordering::SeqCst);
        if blobs < 2 {
            return Err(format!("the layer and config were fetched: {blobs} blob requests"));
        }
        // Present now: another up pulls nothing.
        let manifests = served.manifest_requests.load(Ordering::SeqCst);
        engine.down(&stack, true).await.map_err(|e| e.to_string())?;
        engine
            .up(&stack, &options(PullPolicy::Missing), &progress)
            .await
            .map_err(|e| e.to_string())?;
        let after = served.manifest_requests.load(Ordering::SeqCst);
        if after != manifests {
            return Err(format!(
                "--pull missing asked the registry again ({manifests} -> {after})"
            ));
        }
        // --pull always asks again.
        engine.down(&stack, true).await.map_err(|e| e.to_string())?;
        engine
            .up(&stack, &options(PullPolicy::Always), &progress)
            .await
            .map_err(|e| e.to_string())?;
        if served.manifest_requests.load(Ordering::SeqCst) <= after {
            return Err("--pull always did not ask the registry".into());
        }
        // A tag the registry does not have.
        let mut missing = stack.clone();
        missing.services[0].image = format!("{registry}/mock-standin:missing");
        match engine.up(&missing, &options(PullPolicy::Missing), &progress).await {
            Err(EngineError::Pull {
                service,
                image,
                message,
            }) if service == "web" && image.ends_with(":missing") => {
                if !message.contains("manifest unknown") && !message.contains("not found") {
                    return Err(format!("the registry's answer is not passed on: {message}"));
                }
            }
            other => return Err(format!("expected a pull error naming the image, got {other:?}")),
        }
        Ok::<(), String>(())
    }
    .await;
    let _ = engine.down(&stack, true).await;
    let _ = engine.remove_image(&reference).await;
    if let Err(e) = result {
        panic!("{e}");
    }
}
