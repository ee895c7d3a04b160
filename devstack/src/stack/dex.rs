//! Dex: its configuration (as a typed document, so the checker reads back exactly what
//! is written) and its service. Password logins are enabled with the `local` password
//! connector — without `oauth2.passwordConnector` Dex silently refuses the password
//! grant. Two clients: `prism-cli` (public; password, refresh and device-code grants)
//! and `prism-proxy` (confidential; trusts `prism-cli`, so a CLI login can ask for a
//! token whose audience is the proxy).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FileMount, Port, Ready, Service, Stack, StackFile, VolumeMount};
use crate::identity::Identity;
use crate::settings::{CLI_CLIENT_ID, PROXY_CLIENT_ID, Settings};
use crate::versions;

/// The redirect URI Dex's device flow sends the browser to.
pub const DEVICE_CALLBACK: &str = "/device/callback";
/// The grant type name of the device flow.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub const CONFIG_FILE: &str = "dex/config.yaml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DexConfig {
    pub issuer: String,
    pub storage: Storage,
    pub web: Web,
    #[serde(default)]
    pub oauth2: OAuth2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Expiry>,
    #[serde(default, rename = "enablePasswordDB")]
    pub enable_password_db: bool,
    #[serde(default)]
    pub static_clients: Vec<StaticClient>,
    #[serde(default)]
    pub static_passwords: Vec<StaticPassword>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Storage {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_yaml::Mapping>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Web {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_connector: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    #[serde(default)]
    pub skip_approval_screen: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Expiry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tokens: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_requests: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaticClient {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    #[serde(default, rename = "redirectURIs")]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_peers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaticPassword {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub username: String,
    #[serde(default, rename = "userID")]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Where Dex listens inside its container (the same port as on the host).
fn listen(settings: &Settings) -> String {
    format!("0.0.0.0:{}", settings.dex_port)
}

/// Dex's configuration for `settings` and the developer `identity`.
pub fn config(settings: &Settings, identity: &Identity) -> DexConfig {
    let mut storage_config = serde_yaml::Mapping::new();
    storage_config.insert("file".into(), "/var/dex/dex.db".into());
    DexConfig {
        issuer: settings.issuer(),
        storage: Storage {
            kind: "sqlite3".into(),
            config: Some(storage_config),
        },
        web: Web {
            http: Some(listen(settings)),
            ..Web::default()
        },
        oauth2: OAuth2 {
            password_connector: Some("local".into()),
            grant_types: ["authorization_code", "refresh_token", "password", DEVICE_CODE_GRANT]
                .map(String::from)
                .to_vec(),
            response_types: vec!["code".into()],
            skip_approval_screen: true,
        },
        expiry: Some(Expiry {
            id_tokens: Some("1h".into()),
            device_requests: Some("5m".into()),
        }),
        enable_password_db: true,
        static_clients: vec![
            StaticClient {
                id: CLI_CLIENT_ID.into(),
                name: "Prism command-line tools".into(),
                public: true,
                redirect_uris: vec!["http://127.0.0.1:8000/callback".into(), DEVICE_CALLBACK.into()],
                ..StaticClient::default()
            },
            StaticClient {
                id: PROXY_CLIENT_ID.into(),
                name: "Prism proxy".into(),
                secret: Some(identity.proxy_client_secret.clone()),
                redirect_uris: vec!["http://127.0.0.1:8980/callback".into()],
                trusted_peers: vec![CLI_CLIENT_ID.into()],
                ..StaticClient::default()
            },
        ],
        static_passwords: identity
            .users()
            .map(|user| StaticPassword {
                email: user.email.clone(),
                hash: user.password_hash.clone(),
                username: user.username.clone(),
                user_id: user.user_id.clone(),
                groups: user.groups.clone(),
            })
            .collect(),
    }
}

/// Adds Dex (its config file and its service) to `stack`.
pub fn add(stack: &mut Stack, settings: &Settings, identity: &Identity) {
    let text = serde_yaml::to_string(&config(settings, identity)).expect("Dex config serializes");
    stack.files.push(StackFile {
        path: PathBuf::from(CONFIG_FILE),
        contents: format!("# Dex for the Prism devstack; written by `devstack`, edits are replaced.\n{text}"),
    });
    let mut dex = Service::new("dex", "dex", versions::image("dex", versions::DEX));
    dex.command = ["dex", "serve", "/etc/dex/devstack.yaml"].map(String::from).to_vec();
    dex.ports = vec![Port::same(settings.dex_port)];
    dex.volumes = vec![VolumeMount {
        volume: "dex-data".into(),
        target: "/var/dex".into(),
    }];
    dex.files = vec![FileMount {
        file: PathBuf::from(CONFIG_FILE),
        target: "/etc/dex/devstack.yaml".into(),
    }];
    // Probed from the host: it does not depend on what the image contains, and it is
    // exactly what the login and the proxy fetch first.
    dex.ready = Ready::Http {
        port: settings.dex_port,
        path: "/dex/.well-known/openid-configuration".into(),
    };
    dex.timeout = Duration::from_secs(60);
    stack.services.push(dex);
}
