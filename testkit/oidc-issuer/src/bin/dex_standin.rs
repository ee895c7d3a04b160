//! `dex-standin serve CONFIG`: a STAND-IN for Dex in devstack's tests (Dex's image cannot
//! be pulled on CI machines). It reads a Dex config — `issuer`, `web.http`,
//! `staticPasswords` (bcrypt hashes, groups) and `staticClients` — and serves discovery,
//! keys and the password and refresh grants for exactly those users and clients. It is
//! packed into an image as `/bin/dex`, so `devstack up` starts it like Dex.

use oidc_test_issuer::{Client, TestIssuer, User};
use serde_yaml::Value;

fn main() {
    if let Err(e) = run() {
        eprintln!("dex-standin: {e}");
        std::process::exit(1);
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, serve, path] = args.as_slice() else {
        return Err("usage: dex-standin serve CONFIG".into());
    };
    if serve != "serve" {
        return Err(format!("unknown command {serve:?}"));
    }
    let config: Value = serde_yaml::from_str(&std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?)
        .map_err(|e| format!("{path}: {e}"))?;
    let issuer = text(&config, "issuer");
    let listen = config.get("web").map(|w| text(w, "http")).unwrap_or_default();
    let users = config
        .get("staticPasswords")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|u| User {
            username: text(u, "email"),
            password: text(u, "hash"),
            subject: text(u, "userID"),
            groups: u
                .get("groups")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(String::from))
                .collect(),
        })
        .collect();
    let clients = config
        .get("staticClients")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|c| Client {
            id: text(c, "id"),
            secret: c.get("secret").and_then(Value::as_str).map(String::from),
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("listen on {listen:?}: {e}"))?;
        println!("dex-standin: issuer {issuer} on {listen}");
        let _issuer = TestIssuer::serve(listener, issuer, users, clients);
        std::future::pending::<()>().await;
        Ok(())
    })
}
