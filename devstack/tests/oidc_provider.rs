//! devstack's OIDC client against a REAL, independent OpenID provider: npm's
//! `oidc-provider` (OpenID-certified; neither Dex nor the project's in-test issuer),
//! installed by ci/install-oidc-provider.sh and served by tests/oidc-provider/server.mjs
//! with the device flow, refresh tokens and RS256 keys. A person's part of the device
//! flow (the code page, the sign-in, the consent) is done by `support::browser` on the
//! provider's own pages. Skipped (counted; a failure in strict mode) without Node.
//!
//! - the device flow signs the viewer in; the token is RS256, verified by the proxy's
//!   validator, and a refresh gives a new one;
//! - the proxy, configured for this provider, lets the viewer's token into an open
//!   namespace and refuses it (PERMISSION_DENIED) where `prism:admin` is required, while
//!   the developer's token gets in;
//! - refusing in the browser, and a code nobody uses, end with errors that say so.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use devstack::oidc::{CachedToken, ClientSettings, DeviceCode, OidcClient, OidcError};
use prism_proxy::BackendError;
use prism_proxy::auth::Caller;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
use prism_proxy::interfaces::KeyValueBasic;
use support::browser::Browser;

const CLIENT: &str = "prism-cli";
const DEV: &str = "dev@local.prism";
const VIEWER: &str = "viewer@local.prism";

/// The provider, running; killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
    _accounts: tempfile::NamedTempFile,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts server.mjs with the developer and the viewer as accounts; `None` (a counted
    /// skip) without the installed provider.
    fn start(device_code_ttl: Duration) -> Option<Provider> {
        let Ok(dir) = std::env::var("PRISM_OIDC_PROVIDER_DIR") else {
            support::skip("PRISM_OIDC_PROVIDER_DIR not set; run ci/install-oidc-provider.sh");
            return None;
        };
        let accounts = tempfile::NamedTempFile::new().unwrap();
        let list = serde_json::json!([
            { "email": DEV, "groups": ["prism:admin"] },
            { "email": VIEWER, "groups": ["prism:viewer"] },
        ]);
        std::fs::write(accounts.path(), list.to_string()).unwrap();
        let port = support::free_port();
        let mut child = Command::new("node")
            .arg(std::path::Path::new(&dir).join("server.mjs"))
            .arg(port.to_string())
            .arg(accounts.path())
            .env("DEVICE_CODE_TTL", device_code_ttl.as_secs().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node server.mjs");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // The provider logs to stdout too; a closed pipe would kill it (EPIPE).
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let issuer = format!("http://127.0.0.1:{port}/dex");
        assert_eq!(first.trim(), format!("listening {issuer}"), "the provider started");
        Some(Provider {
            child,
            issuer,
            _accounts: accounts,
        })
    }

    /// devstack's client with this provider's client, whose ID tokens carry it as `aud`.
    fn client(&self) -> OidcClient {
        let client = ClientSettings {
            client_id: CLIENT.into(),
            audience: CLIENT.into(),
            scope: "openid email groups offline_access".into(),
        };
        OidcClient::with_client(&self.issuer, client).unwrap()
    }
}

/// What the person does in the browser.
#[derive(Clone, Copy)]
enum Person {
    SignsInAs(&'static str),
    Aborts,
}

/// The person's part on the provider's pages: the code page (code filled in), the
/// confirm page, then sign-in and consent, or abort at the confirm page. Returns the last
/// page's body.
async fn browse(code: &DeviceCode, person: Person) -> String {
    let browser = Browser::new();
    let page = browser
        .get(code.verification_uri_complete.as_deref().expect("a page with the code"))
        .await;
    let input = page.form_with("user_code");
    assert!(
        input.fields.contains(&("user_code".into(), code.user_code.clone())),
        "the code is filled in: {input:?}"
    );
    let confirm = browser.submit(&input).await.form_with("confirm");
    let email = match person {
        Person::Aborts => return browser.submit(&confirm.set("abort", "yes")).await.body,
        Person::SignsInAs(email) => email,
    };
    let page = browser.submit(&confirm).await;
    let sign_in = page.form_with("login").set("login", email).set("password", "any");
    let page = browser.submit(&sign_in).await;
    let consent = page.form_with("prompt");
    browser.submit(&consent).await.body
}

/// A device login: the client polls while the person acts; the poll's result and the
/// last page.
async fn device_login(provider: &Provider, person: Person) -> (Result<(CachedToken, Caller), OidcError>, String) {
    let client = provider.client();
    let code = client.device_start().await.expect("a device code");
    assert!(
        code.verification_uri.starts_with(&provider.issuer),
        "{}",
        code.verification_uri
    );
    let poll = async { client.device_wait(&code).await };
    tokio::join!(poll, browse(&code, person))
}

fn header(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_refresh_and_group_checks_with_a_certified_provider() {
    let Some(provider) = Provider::start(Duration::from_secs(600)) else {
        return;
    };
    let (viewer, last) = device_login(&provider, Person::SignsInAs(VIEWER)).await;
    let (viewer, caller) = viewer.expect("the viewer's token");
    assert!(last.contains("Sign-in Success"), "{last}");
    assert_eq!(caller.subject.as_deref(), Some(VIEWER));
    assert_eq!(caller.groups, ["prism:viewer"]);
    assert_eq!(header(&viewer.id_token)["alg"], "RS256");

    // The refresh grant: a new token, verified the same way, for the same person.
    let refresh = viewer
        .refresh_token
        .clone()
        .expect("offline_access gave a refresh token");
    let (refreshed, again) = provider.client().refresh(&refresh).await.expect("refreshed");
    assert_eq!(again.subject.as_deref(), Some(VIEWER));
    assert_eq!(again.groups, ["prism:viewer"]);
    let reused = provider.client().refresh("not-a-refresh-token").await;
    assert!(
        matches!(&reused, Err(OidcError::Refused { error, .. }) if error == "invalid_grant"),
        "{:?}",
        reused.err()
    );

    let (dev, _) = device_login(&provider, Person::SignsInAs(DEV)).await;
    let (dev, caller) = dev.expect("the developer's token");
    assert_eq!(caller.groups, ["prism:admin"]);

    // The proxy, told only this provider's issuer and audience.
    let mut admin = NamespaceConfig::new(BackendConfig::memstore());
    admin.groups = Some(vec!["prism:admin".into()]);
    let open = NamespaceConfig::new(BackendConfig::memstore());
    let mut config = Config::ephemeral([("admin".to_string(), admin), ("default".to_string(), open)]);
    let issuer = provider.issuer.clone();
    config
        .apply_env(|name| match name {
            "PRISM_OIDC_ISSUER" => Some(issuer.clone()),
            "PRISM_OIDC_AUDIENCE" => Some(CLIENT.into()),
            _ => None,
        })
        .expect("env applies");
    let proxy = prism_proxy::server::start(&config).await.expect("proxy");
    let put = |namespace: &'static str, token: String| {
        let addr = format!("http://{}", proxy.grpc_addr);
        async move {
            let client = PrismClient::connect(&addr, namespace).await?;
            let client = client.with_metadata("authorization", &format!("Bearer {token}"))?;
            client.set(Bytes::from("k"), Bytes::from("v")).await
        }
    };
    put("default", refreshed.id_token.clone())
        .await
        .expect("the viewer in an open namespace");
    let refused = put("admin", refreshed.id_token.clone()).await;
    assert!(matches!(refused, Err(BackendError::PermissionDenied(_))), "{refused:?}");
    put("admin", dev.id_token.clone())
        .await
        .expect("the developer where prism:admin is required");
    let mut tampered = dev.id_token.clone();
    tampered.pop();
    tampered.push(if dev.id_token.ends_with('A') { 'B' } else { 'A' });
    let forged = put("default", tampered).await;
    assert!(matches!(forged, Err(BackendError::Unauthenticated(_))), "{forged:?}");
    proxy.drain(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_unused_device_code_ends_with_an_error_that_says_so() {
    // Longer than one poll (the provider asks for 5 s), shorter than two.
    let Some(provider) = Provider::start(Duration::from_secs(8)) else {
        return;
    };
    let (denied, _) = device_login(&provider, Person::Aborts).await;
    let denied = denied.expect_err("aborted in the browser");
    assert!(matches!(denied, OidcError::DeviceDenied { .. }), "{denied}");
    assert!(denied.to_string().contains("refused in the browser"), "{denied}");

    // Nobody signs in: the code lapses after 8 s.
    let client = provider.client();
    let code = client.device_start().await.unwrap();
    assert!(code.expires_in <= 8, "{code:?}");
    let expired = client.device_wait(&code).await.expect_err("nobody signed in");
    assert!(matches!(expired, OidcError::DeviceExpired { .. }), "{expired}");
    assert!(expired.to_string().contains(&code.user_code), "{expired}");
}
