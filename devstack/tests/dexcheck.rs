//! The Dex config checker, on exactly what `devstack render` writes (the real binary):
//! the rendered config passes; each broken rule — Dex's own and ours — is reported with
//! the field it concerns. Also the rendered folder: compose file, file modes, identity.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use devstack::dexcheck::{Expected, Problem, check, check_text};
use devstack::identity::Identity;
use devstack::settings::{ADMIN_GROUP, CLI_CLIENT_ID, VIEWER_GROUP};
use devstack::stack::dex::DexConfig;

const ISSUER: &str = "http://127.0.0.1:5556/dex";

/// Renders into `out` with the binary; returns the Dex config text and the identity.
fn render(state: &Path, out: &Path) -> (String, Identity) {
    let run = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["render", "--out"])
        .arg(out)
        .env("DEVSTACK_STATE_DIR", state)
        .env_remove("DEVSTACK_DEX_PORT")
        .env("DEVSTACK_NETWORK", "bridge")
        .output()
        .expect("run devstack render");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let text = std::fs::read_to_string(out.join("dex/config.yaml")).unwrap();
    (text, Identity::load(state).unwrap().expect("identity kept"))
}

fn expected(identity: &Identity) -> Expected<'_> {
    devstack::dexcheck::expected(ISSUER, identity)
}

fn fields(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

#[test]
fn rendered_config_passes_and_every_broken_rule_is_named() {
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (text, identity) = render(state.path(), out.path());
    assert_eq!(check_text(&text, &expected(&identity)), []);
    let good: DexConfig = serde_yaml::from_str(&text).unwrap();

    // Each mutation breaks one rule; the problem names its field.
    type Mutation = (&'static str, fn(&mut DexConfig));
    let cases: Vec<Mutation> = vec![
        ("issuer", |c| c.issuer = String::new()),
        ("issuer", |c| c.issuer = "http://127.0.0.1:5556/dex/".into()),
        ("storage.type", |c| c.storage.kind = "sqlite".into()),
        ("storage.config.file", |c| c.storage.config = None),
        ("web", |c| c.web.http = None),
        ("web.http", |c| c.web.http = Some("0.0.0.0:5557".into())),
        ("staticPasswords", |c| c.enable_password_db = false),
        ("oauth2.passwordConnector", |c| c.oauth2.password_connector = None),
        ("oauth2.passwordConnector", |c| {
            c.oauth2.password_connector = Some("ldap".into())
        }),
        ("oauth2.grantTypes[0]", |c| c.oauth2.grant_types[0] = "magic".into()),
        ("oauth2.grantTypes", |c| {
            c.oauth2.grant_types.retain(|g| g != "password")
        }),
        ("staticClients[0].public", |c| c.static_clients[0].public = false),
        ("staticClients[0].redirectURIs", |c| {
            c.static_clients[0].redirect_uris.retain(|u| u != "/device/callback")
        }),
        ("staticClients[0].redirectURIs[0]", |c| {
            c.static_clients[0].redirect_uris[0] = "http://dev.example.com/cb".into()
        }),
        ("staticClients[0].redirectURIs[0]", |c| {
            c.static_clients[0].redirect_uris[0] = "callback".into()
        }),
        ("staticClients[1].secret", |c| c.static_clients[1].secret = None),
        ("staticClients[1].id", |c| c.static_clients[1].id = CLI_CLIENT_ID.into()),
        ("staticClients[1].trustedPeers", |c| {
            c.static_clients[1].trusted_peers.clear()
        }),
        ("staticPasswords[0].hash", |c| {
            c.static_passwords[0].hash = "plain-text".into()
        }),
        ("staticPasswords[0].hash", |c| {
            c.static_passwords[0].hash = bcrypt::hash("someone-else's", 10).unwrap()
        }),
        ("staticPasswords[0].hash", |c| {
            c.static_passwords[0].hash = bcrypt::hash("x", 4).unwrap()
        }),
        ("staticPasswords[0].userID", |c| c.static_passwords[0].user_id.clear()),
        ("staticPasswords[0].groups", |c| c.static_passwords[0].groups.clear()),
        // The viewer: its own password, and never an admin.
        ("staticPasswords[1].hash", |c| {
            c.static_passwords[1].hash = c.static_passwords[0].hash.clone()
        }),
        ("staticPasswords[1].groups", |c| {
            c.static_passwords[1].groups.push(ADMIN_GROUP.into())
        }),
        ("staticPasswords", |c| {
            c.static_passwords.pop();
        }),
    ];
    for (field, mutate) in cases {
        let mut config = good.clone();
        mutate(&mut config);
        let problems = check(&config, &expected(&identity));
        assert!(
            fields(&problems).contains(&field),
            "breaking {field} should be reported there; got {problems:?}"
        );
    }
    let problems = check_text("issuer: [unclosed", &expected(&identity));
    assert!(problems[0].message.contains("not a Dex configuration"), "{problems:?}");
}

#[test]
fn render_writes_configs_a_compose_file_and_keeps_the_identity_private() {
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (_, identity) = render(state.path(), out.path());
    for file in [
        "dex/config.yaml",
        "signoz/otel-collector.yaml",
        "signoz/clickhouse-cluster.xml",
        "signoz/clickhouse-functions.xml",
        "signoz/custom-function.xml",
        "signoz/otel-collector-opamp.yaml",
        "proxy.yaml",
        "compose.yaml",
    ] {
        assert!(out.path().join(file).is_file(), "{file} written");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&Identity::path(state.path())), 0o600);
    assert_eq!(mode(state.path()), 0o700);
    // The client secret and password hash: the folder is the owner's alone (the file stays
    // readable for Dex's own user in its container, which gets it by a file mount).
    assert_eq!(mode(&out.path().join("dex")), 0o700);
    assert_eq!(mode(&out.path().join("signoz")), 0o700);
    let dev = &identity.developer;
    assert!(bcrypt::verify(&dev.password, &dev.password_hash).unwrap());
    assert_eq!(dev.email, "dev@local.prism");
    assert_eq!(dev.groups, [ADMIN_GROUP]);
    let viewer = identity.viewer().expect("a viewer");
    assert!(bcrypt::verify(&viewer.password, &viewer.password_hash).unwrap());
    assert_eq!(viewer.email, "viewer@local.prism");
    assert_eq!(viewer.groups, [VIEWER_GROUP]);
    assert_ne!(viewer.password, dev.password);

    // The compose file: every service, start conditions from readiness, files mounted.
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.path().join("compose.yaml")).unwrap()).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    assert_eq!(services.len(), 7);
    let ui = &compose["services"]["signoz"];
    assert_eq!(ui["ports"][0], "127.0.0.1:3301:8080");
    assert_eq!(
        ui["depends_on"]["telemetrystore-migrator"]["condition"],
        "service_completed_successfully"
    );
    // What upstream's compose sets and the engine sets too: restart policies, ClickHouse's
    // limits, the migrator retried.
    assert_eq!(ui["restart"], "unless-stopped");
    assert_eq!(
        compose["services"]["telemetrystore-migrator"]["restart"],
        "on-failure:5"
    );
    assert_eq!(compose["services"]["dex"]["restart"], "unless-stopped");
    assert_eq!(compose["services"]["clickhouse"]["ulimits"]["nofile"]["soft"], 262144);
    assert_eq!(
        compose["services"]["clickhouse"]["environment"]["CLICKHOUSE_SKIP_USER_SETUP"],
        "1"
    );
    let functions = std::fs::read_to_string(out.path().join("signoz/custom-function.xml")).unwrap();
    assert!(functions.contains("<name>histogramQuantile</name>"), "{functions}");
    assert_eq!(
        compose["services"]["clickhouse"]["depends_on"]["zookeeper"]["condition"],
        "service_healthy"
    );
    let dex = &compose["services"]["dex"];
    assert_eq!(dex["volumes"][1], "./dex/config.yaml:/etc/dex/devstack.yaml:ro");
    assert_eq!(compose["volumes"]["dex-data"]["name"], "devstack-dex-data");
    let collector = std::fs::read_to_string(out.path().join("signoz/otel-collector.yaml")).unwrap();
    assert!(collector.contains("endpoint: 0.0.0.0:4317") && collector.contains("endpoint: 0.0.0.0:4318"));

    // A second render keeps the identity (and so the same Dex config).
    let again = tempfile::tempdir().unwrap();
    let (_, same) = render(state.path(), again.path());
    assert_eq!(same, identity);
    assert_eq!(
        std::fs::read(out.path().join("dex/config.yaml")).unwrap(),
        std::fs::read(again.path().join("dex/config.yaml")).unwrap()
    );
}

/// An identity file from before the viewer existed: the developer is kept as it was (same
/// password, same subject), and a viewer is added and kept.
#[test]
fn an_identity_without_a_viewer_gets_one_and_keeps_the_developer() {
    let state = tempfile::tempdir().unwrap();
    let fresh = Identity::load_or_create(state.path()).unwrap();
    let mut older: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Identity::path(state.path())).unwrap()).unwrap();
    older
        .as_object_mut()
        .unwrap()
        .remove("viewer")
        .expect("a viewer was written");
    std::fs::write(Identity::path(state.path()), older.to_string()).unwrap();
    assert!(Identity::load(state.path()).unwrap().unwrap().viewer().is_none());

    let upgraded = Identity::load_or_create(state.path()).unwrap();
    assert_eq!(upgraded.developer, fresh.developer);
    assert_eq!(upgraded.proxy_client_secret, fresh.proxy_client_secret);
    let viewer = upgraded.viewer().expect("a viewer added");
    assert_eq!(Identity::load(state.path()).unwrap().unwrap().viewer(), Some(viewer));
}
