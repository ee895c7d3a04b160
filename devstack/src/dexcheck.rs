//! Checks a Dex configuration before Dex sees it: Dex's own rules (what `dex serve`
//! refuses at start, or refuses later at login) and ours (what the devstack relies on:
//! password logins through the `local` connector, one issuer everywhere, usable redirect
//! URIs, the proxy trusting the CLI client, a hash that matches the kept password).
//! `render` and `up` run it on exactly the text they write.

use std::collections::BTreeSet;

pub use prism_proxy::validation::Problem;
use prism_proxy::validation::Problems;

use crate::identity::BCRYPT_COST;
use crate::stack::dex::{DEVICE_CALLBACK, DEVICE_CODE_GRANT, DexConfig};

/// What the rest of the devstack expects of Dex's configuration.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The issuer the proxy and the CLI use.
    pub issuer: &'a str,
    pub cli_client: &'a str,
    pub proxy_client: &'a str,
    /// Users that must be in `staticPasswords`.
    pub users: Vec<ExpectedUser<'a>>,
}

/// A user the rest of the devstack logs in as.
#[derive(Debug, Clone)]
pub struct ExpectedUser<'a> {
    pub email: &'a str,
    /// The kept password, which the hash must verify.
    pub password: &'a str,
    /// A group the user must be in.
    pub group: &'a str,
    /// A group the user must not be in (the viewer, so group checks can refuse it).
    pub not_in: Option<&'a str>,
}

const STORAGE_TYPES: &[&str] = &["memory", "sqlite3", "postgres", "mysql", "etcd", "kubernetes"];
const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "implicit",
    "password",
    DEVICE_CODE_GRANT,
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

/// Parses `text` as Dex's config and checks it; problems are listed (with the line and
/// column of their field in `text`), none means valid.
pub fn check_text(text: &str, expected: &Expected<'_>) -> Vec<Problem> {
    match serde_yaml::from_str::<DexConfig>(text) {
        Ok(config) => {
            let mut problems = Problems::new("");
            problems.list = check(&config, expected);
            problems.locate_in(text).list
        }
        Err(e) => {
            let mut problem = Problem::from_yaml(&e);
            problem.message = format!("not a Dex configuration: {}", problem.message);
            vec![problem]
        }
    }
}

/// Checks a parsed configuration: Dex's rules, then ours.
pub fn check(config: &DexConfig, expected: &Expected<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, message: String| problems.push(Problem::new(field, message));
    dex_rules(config, &mut bad);
    our_rules(config, expected, &mut bad);
    problems
}

/// What Dex itself refuses, at start or at login.
fn dex_rules(config: &DexConfig, bad: &mut impl FnMut(&str, String)) {
    if config.issuer.is_empty() {
        bad("issuer", "no issuer specified".into());
    } else if !(config.issuer.starts_with("http://") || config.issuer.starts_with("https://")) {
        bad("issuer", format!("{:?} is not an http(s) URL", config.issuer));
    }
    if !STORAGE_TYPES.contains(&config.storage.kind.as_str()) {
        bad(
            "storage.type",
            format!(
                "unknown storage {:?} (expected one of {})",
                config.storage.kind,
                STORAGE_TYPES.join(", ")
            ),
        );
    }
    let storage_file = config
        .storage
        .config
        .as_ref()
        .and_then(|c| c.get("file"))
        .and_then(|f| f.as_str());
    if config.storage.kind == "sqlite3" && storage_file.is_none_or(str::is_empty) {
        bad("storage.config.file", "sqlite3 storage needs a database file".into());
    }
    let web = &config.web;
    if web.http.as_deref().is_none_or(str::is_empty) && web.https.as_deref().is_none_or(str::is_empty) {
        bad("web", "must supply a HTTP/HTTPS address to listen on".into());
    }
    if web.https.is_some() && (web.tls_cert.is_none() || web.tls_key.is_none()) {
        bad("web.https", "needs web.tlsCert and web.tlsKey".into());
    }
    if !config.enable_password_db && !config.static_passwords.is_empty() {
        bad(
            "staticPasswords",
            "cannot specify static passwords without enabling password db (enablePasswordDB: true)".into(),
        );
    }
    match config.oauth2.password_connector.as_deref() {
        Some("local") if !config.enable_password_db => bad(
            "oauth2.passwordConnector",
            "\"local\" needs enablePasswordDB: true".into(),
        ),
        Some("local") | None => {}
        Some(other) => bad(
            "oauth2.passwordConnector",
            format!("{other:?} is not a configured connector (only \"local\" is)"),
        ),
    }
    for (i, grant) in config.oauth2.grant_types.iter().enumerate() {
        if !GRANT_TYPES.contains(&grant.as_str()) {
            bad(
                &format!("oauth2.grantTypes[{i}]"),
                format!("unknown grant type {grant:?}"),
            );
        }
    }
    let mut ids = BTreeSet::new();
    for (i, client) in config.static_clients.iter().enumerate() {
        let field = |f: &str| format!("staticClients[{i}].{f}");
        if client.id.is_empty() {
            bad(&field("id"), "a client needs an id".into());
        } else if !ids.insert(client.id.as_str()) {
            bad(&field("id"), format!("client id {:?} appears twice", client.id));
        }
        if !client.public && client.secret.as_deref().is_none_or(str::is_empty) && client.secret_env.is_none() {
            bad(
                &field("secret"),
                format!("client {:?} is not public and has no secret", client.id),
            );
        }
        for (j, uri) in client.redirect_uris.iter().enumerate() {
            if let Err(why) = redirect_uri_problem(uri) {
                bad(&format!("staticClients[{i}].redirectURIs[{j}]"), why);
            }
        }
    }
    let mut emails = BTreeSet::new();
    for (i, user) in config.static_passwords.iter().enumerate() {
        let field = |f: &str| format!("staticPasswords[{i}].{f}");
        if user.email.is_empty() {
            bad(&field("email"), "a static password needs an email".into());
        } else if !emails.insert(user.email.to_lowercase()) {
            bad(&field("email"), format!("{:?} appears twice", user.email));
        }
        if user.user_id.is_empty() {
            bad(&field("userID"), "a static password needs a userID".into());
        }
        if user.username.is_empty() {
            bad(&field("username"), "a static password needs a username".into());
        }
        match bcrypt_cost(&user.hash) {
            None => bad(&field("hash"), "not a bcrypt hash ($2a$/$2b$/$2y$)".into()),
            Some(cost) if !(BCRYPT_COST..=16).contains(&cost) => bad(
                &field("hash"),
                format!("bcrypt cost {cost}; Dex accepts {BCRYPT_COST} to 16"),
            ),
            Some(_) => {}
        }
    }
}

/// What the rest of the devstack relies on.
fn our_rules(config: &DexConfig, expected: &Expected<'_>, bad: &mut impl FnMut(&str, String)) {
    if config.issuer != expected.issuer {
        bad(
            "issuer",
            format!(
                "{:?} differs from the issuer the proxy and CLI use, {:?} (it must match byte for byte)",
                config.issuer, expected.issuer
            ),
        );
    }
    if config.oauth2.password_connector.as_deref() != Some("local") {
        bad(
            "oauth2.passwordConnector",
            "must be \"local\": without it Dex refuses the password grant `devstack token` uses".into(),
        );
    }
    if let (Some(port), Some(http)) = (issuer_port(&config.issuer), config.web.http.as_deref())
        && !http.ends_with(&format!(":{port}"))
    {
        bad(
            "web.http",
            format!(
                "Dex listens on {http:?} but the issuer {:?} names port {port}",
                config.issuer
            ),
        );
    }
    for grant in ["password", "refresh_token", DEVICE_CODE_GRANT] {
        if !config.oauth2.grant_types.is_empty() && !config.oauth2.grant_types.iter().any(|g| g == grant) {
            bad("oauth2.grantTypes", format!("must allow {grant:?}"));
        }
    }
    let cli = config.static_clients.iter().position(|c| c.id == expected.cli_client);
    let proxy = config.static_clients.iter().position(|c| c.id == expected.proxy_client);
    match cli {
        None => bad(
            "staticClients",
            format!("no client {:?} for the CLI", expected.cli_client),
        ),
        Some(i) => {
            let client = &config.static_clients[i];
            if !client.public {
                bad(
                    &format!("staticClients[{i}].public"),
                    "the CLI client must be public".into(),
                );
            }
            if !client.redirect_uris.iter().any(|u| u == DEVICE_CALLBACK) {
                bad(
                    &format!("staticClients[{i}].redirectURIs"),
                    format!("the device flow needs {DEVICE_CALLBACK:?}"),
                );
            }
        }
    }
    match proxy {
        None => bad(
            "staticClients",
            format!("no client {:?} for the proxy", expected.proxy_client),
        ),
        Some(i)
            if !config.static_clients[i]
                .trusted_peers
                .iter()
                .any(|p| p == expected.cli_client) =>
        {
            bad(
                &format!("staticClients[{i}].trustedPeers"),
                format!(
                    "must include {:?}, or CLI logins cannot get tokens for the proxy's audience",
                    expected.cli_client
                ),
            )
        }
        Some(_) => {}
    }
    for want in &expected.users {
        let Some(i) = config.static_passwords.iter().position(|u| u.email == want.email) else {
            bad("staticPasswords", format!("no user {:?}", want.email));
            continue;
        };
        let user = &config.static_passwords[i];
        if !bcrypt::verify(want.password, &user.hash).unwrap_or(false) {
            bad(
                &format!("staticPasswords[{i}].hash"),
                format!("does not verify the kept password of {}", want.email),
            );
        }
        let member = |group: &str| user.groups.iter().any(|g| g == group);
        if !member(want.group) {
            bad(
                &format!("staticPasswords[{i}].groups"),
                format!("must include {:?}", want.group),
            );
        }
        if let Some(group) = want.not_in.filter(|g| member(g)) {
            bad(
                &format!("staticPasswords[{i}].groups"),
                format!(
                    "must not include {group:?}, or {} could do what {group} may",
                    want.email
                ),
            );
        }
    }
}

/// What the devstack expects of Dex for `issuer` and the kept `identity`.
pub fn expected<'a>(issuer: &'a str, identity: &'a crate::identity::Identity) -> Expected<'a> {
    use crate::settings::{ADMIN_GROUP, CLI_CLIENT_ID, PROXY_CLIENT_ID, VIEWER_GROUP};
    let developer = ExpectedUser {
        email: &identity.developer.email,
        password: &identity.developer.password,
        group: ADMIN_GROUP,
        not_in: None,
    };
    let viewer = identity.viewer().map(|v| ExpectedUser {
        email: &v.email,
        password: &v.password,
        group: VIEWER_GROUP,
        not_in: Some(ADMIN_GROUP),
    });
    Expected {
        issuer,
        cli_client: CLI_CLIENT_ID,
        proxy_client: PROXY_CLIENT_ID,
        users: std::iter::once(developer).chain(viewer).collect(),
    }
}

/// Absolute http(s) URIs with a host; plain http only on loopback; or Dex's device path.
fn redirect_uri_problem(uri: &str) -> Result<(), String> {
    if uri == DEVICE_CALLBACK {
        return Ok(());
    }
    let rest = if let Some(rest) = uri.strip_prefix("https://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!("{uri:?}: plain http is only for loopback hosts"));
        }
        rest
    } else {
        return Err(format!("{uri:?} is not an absolute http(s) URI or {DEVICE_CALLBACK:?}"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{uri:?} has no host"));
    }
    if uri.contains('#') {
        return Err(format!("{uri:?} has a fragment"));
    }
    Ok(())
}

/// The cost of a bcrypt hash, `None` if it is not one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let mut parts = hash.split('$');
    let (empty, version, cost, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !empty.is_empty() || !matches!(version, "2a" | "2b" | "2y") || rest.len() != 53 {
        return None;
    }
    cost.parse().ok()
}

/// The port an http(s) issuer URL names (or implies).
fn issuer_port(issuer: &str) -> Option<u16> {
    let (default, rest) = if let Some(rest) = issuer.strip_prefix("https://") {
        (443, rest)
    } else {
        (80, issuer.strip_prefix("http://")?)
    };
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((_, port)) => port.parse().ok(),
        None => Some(default),
    }
}
