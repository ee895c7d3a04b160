//! `devstack up --only dex --with redis` end to end: the REAL Dex (`PRISM_DEVSTACK_DEX_IMAGE`,
//! built by ci/build-dex.sh) and a real redis-server (`PRISM_ACCEPT_REDIS_IMAGE`, the local
//! image ci/install-servers.sh packs from Debian's redis-server, standing in for the official
//! `redis` image a laptop pulls), then the proxy started from the `proxy.yaml` devstack
//! wrote, over real gRPC: a developer token is let in and its value lands in that Redis,
//! no token is refused, the `admin` namespace takes the developer (prism:admin) and refuses the
//! viewer (PERMISSION_DENIED), who still gets into `redis`. `env` exports
//! the backend's URL and the config's path; a second `up` changes nothing.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};

use bytes::Bytes;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{AuthMode, Config};
use prism_proxy::interfaces::KeyValueBasic;

/// The images, or a (counted) skip.
fn images() -> Option<(String, String)> {
    let mut found = Vec::new();
    for (var, script) in [
        ("PRISM_DEVSTACK_DEX_IMAGE", "ci/build-dex.sh"),
        ("PRISM_ACCEPT_REDIS_IMAGE", "ci/install-servers.sh"),
    ] {
        match std::env::var(var) {
            Ok(image) if !image.is_empty() => found.push(image),
            _ => {
                support::skip(&format!("{var} not set; run {script}"));
                return None;
            }
        }
    }
    let redis = found.pop()?;
    Some((found.pop()?, redis))
}

/// `KEYS <pattern>` straight to the Redis server: how many keys match.
fn redis_keys(port: u16, pattern: &str) -> usize {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "KEYS {pattern}\r\n").unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    let count = reply.strip_prefix('*').and_then(|r| r.split("\r\n").next()).unwrap();
    count.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_redis_wires_a_proxy_from_the_rendered_config() {
    let Some((dex_image, redis_image)) = images() else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let project = format!("dst-with-{}", std::process::id());
    let (dex_port, redis_port) = (support::free_port(), support::free_port());
    let env = [
        ("DEVSTACK_DEX_PORT", dex_port.to_string()),
        ("DEVSTACK_IMAGE_DEX", dex_image),
        ("DEVSTACK_IMAGE_BACKEND_REDIS", redis_image),
    ];
    let run = |args: &[&str]| support::devstack(state.path(), &project, &env, args);
    struct Down<'a>(&'a dyn Fn(&[&str]) -> support::Run);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            (self.0)(&["down", "--reset"]);
        }
    }
    let _down = Down(&run);

    let with = format!("redis:{redis_port}");
    let up_args = [
        "up",
        "--only",
        "dex",
        "--with",
        &with,
        "--pull",
        "never",
        "--timeout",
        "90s",
    ];
    let up = run(&up_args);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(up.stderr.contains("backend-redis ready (created"), "{}", up.stderr);
    assert!(
        up.stderr.contains(&format!("redis:    redis://127.0.0.1:{redis_port}")),
        "{}",
        up.stderr
    );
    let config_path = state.path().join("config/proxy.yaml");
    assert!(
        up.stderr
            .contains(&format!("prism-proxy --config {}", config_path.display())),
        "{}",
        up.stderr
    );

    // The proxy, from exactly the file devstack wrote (listeners moved to free ports).
    let mut config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
    let AuthMode::Oidc(oidc) = &config.auth else {
        panic!("auth: oidc against the stack's Dex")
    };
    assert_eq!(oidc.issuer, format!("http://127.0.0.1:{dex_port}/dex"));
    assert_eq!(
        config.namespaces.keys().map(String::as_str).collect::<Vec<_>>(),
        ["admin", "default", "redis"]
    );
    assert!(
        config.telemetry.otlp.is_none(),
        "no collector with --only dex, so no export"
    );
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    (config.listen, config.admin_listen) = (any, any);
    let proxy = prism_proxy::server::start(&config).await.unwrap();
    let endpoint = format!("http://{}", proxy.grpc_addr);

    let bearer_of = |user: &str| {
        let token = run(&["token", "--user", user]);
        assert_eq!(token.code, 0, "{}", token.stderr);
        format!("Bearer {}", token.stdout.trim())
    };
    let (bearer, viewer) = (bearer_of("dev"), bearer_of("viewer"));
    let client_as = |namespace: &'static str, bearer: &String| {
        let (endpoint, bearer) = (endpoint.clone(), bearer.clone());
        async move {
            PrismClient::connect(&endpoint, namespace)
                .await
                .unwrap()
                .with_metadata("authorization", &bearer)
                .unwrap()
        }
    };
    let client = |namespace: &'static str| client_as(namespace, &bearer);
    assert_eq!(redis_keys(redis_port, "prism:*"), 0);
    let redis = client("redis").await;
    redis.set(Bytes::from("greeting"), Bytes::from("hello")).await.unwrap();
    assert_eq!(
        redis.get(Bytes::from("greeting")).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert!(
        redis_keys(redis_port, "prism:*") >= 1,
        "the value is in the stack's Redis, under the namespace's prefix"
    );
    // The developer is in prism:admin, so the admin namespace lets them in.
    client("admin")
        .await
        .set(Bytes::from("k"), Bytes::from("v"))
        .await
        .unwrap();
    // The viewer is not: a group check tried both ways, with real Dex tokens.
    let viewer_admin = client_as("admin", &viewer).await.get(Bytes::from("k")).await;
    assert!(
        matches!(viewer_admin, Err(prism_proxy::BackendError::PermissionDenied(_))),
        "{viewer_admin:?}"
    );
    client_as("redis", &viewer)
        .await
        .get(Bytes::from("greeting"))
        .await
        .unwrap();
    let anonymous = PrismClient::connect(&endpoint, "redis").await.unwrap();
    let refused = anonymous.get(Bytes::from("greeting")).await.unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("unauthenticated") || refused.to_string().contains("token"),
        "{refused}"
    );

    let exports = run(&["env"]);
    assert_eq!(exports.code, 0, "{}", exports.stderr);
    assert!(
        exports.stdout.contains(&format!(
            "export PRISM_DEVSTACK_REDIS_URL='redis://127.0.0.1:{redis_port}'"
        )),
        "{}",
        exports.stdout
    );
    assert!(
        exports.stdout.contains("PRISM_DEVSTACK_PROXY_CONFIG"),
        "{}",
        exports.stdout
    );
    let status = run(&["status"]);
    assert_eq!(
        status.code, 0,
        "dex and backend-redis are what was asked: {}",
        status.stdout
    );
    assert!(status.stdout.contains("backend-redis"), "{}", status.stdout);

    let again = run(&up_args);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("(0 created or replaced)"), "{}", again.stderr);
    proxy.drain(std::time::Duration::from_secs(5)).await;
}
