//! `devstack up`: start the stack, then log the developer in.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use devstack::Settings;
use devstack::engine::{Engine, PullPolicy, UpOptions};
use devstack::identity::Who;
use devstack::oidc::Login;
use devstack::stack::{backends, dex};

/// Start Dex and Signoz (or only some of them), wait until each is ready, log in as the
/// developer and the viewer and cache their tokens. Running it again changes nothing that is up to date.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Start only this part (`dex`, `signoz`) or service, with what it depends on;
    /// repeatable.
    #[arg(long, value_name = "PART")]
    only: Vec<String>,
    /// Give up (printing what failed and its last log lines) when the services are not
    /// all ready this long after the images are present.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// When to pull images.
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullPolicy,
    /// Give up pulling images after this long (a first `up` pulls about 1.5 GB).
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pull_timeout: Duration,
    /// Also start these data servers (`redis`, `postgres`, `nats`, `clickhouse`, each
    /// optionally `:PORT`), comma-separated or repeated; `proxy.yaml` in the state folder
    /// then has a namespace for each.
    #[arg(long, value_name = "BACKEND[:PORT]", value_delimiter = ',', value_parser = devstack::stack::backends::Backend::parse)]
    with: Vec<devstack::stack::backends::Backend>,
    /// Start even though a volume holds data of an older pinned version (after following
    /// upstream's upgrade notes); without it `up` stops and says which volume.
    #[arg(long)]
    upgrade: bool,
}

pub async fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<ExitCode> {
    let settings = &Settings {
        backends: args.with.clone(),
        ..settings.clone()
    };
    let (full, identity) = super::stack(settings)?;
    let mut only = args.only.clone();
    if !only.is_empty() && !settings.backends.is_empty() {
        only.push("backends".into());
    }
    let mut stack = full.only(&only)?;
    backends::add_proxy_config(&mut stack, settings);
    let with_dex = stack.service("dex").is_some();
    if let Some(file) = stack.files.iter().find(|f| f.path.to_str() == Some(dex::CONFIG_FILE)) {
        super::check_dex(settings, &identity, &file.contents)?;
    }
    let engine = Engine::connect().await?;
    let options = UpOptions {
        pull: args.pull,
        pull_timeout: args.pull_timeout,
        timeout: args.timeout,
        volumes: super::volume_records(settings)?,
        upgrade: args.upgrade,
        files_dir: settings.state_dir.join("config"),
    };
    eprintln!(
        "devstack up: {} service(s) of project {}",
        stack.services.len(),
        stack.project
    );
    let report = engine.up(&stack, &options, &super::progress).await?;
    super::save_volume_records(settings, &report.volumes)?;
    // What was asked to be up, for `status` to judge.
    super::save_asked(settings, &only)?;
    let changed = report
        .services
        .iter()
        .filter(|(_, a, _)| *a != devstack::engine::up::Action::Unchanged)
        .count();
    eprintln!(
        "all {} service(s) ready ({changed} created or replaced)",
        report.services.len()
    );

    if with_dex {
        for who in [Who::Dev, Who::Viewer] {
            let Some(user) = identity.user(who) else { continue };
            let (_, caller) = devstack::oidc::login(settings, &identity, who)
                .await
                .with_context(|| format!("logging in to Dex as {}", user.email))?;
            eprintln!(
                "logged in as {} (subject {}, groups {}); token cached in {}",
                user.email,
                caller.subject.unwrap_or_default(),
                caller.groups.join(","),
                devstack::oidc::token_path(&settings.state_dir, Login::Password(who)).display()
            );
        }
        eprintln!("  issuer:   {}", settings.issuer());
        eprintln!(
            "  password: in {}",
            devstack::identity::Identity::path(&settings.state_dir).display()
        );
    }
    if stack.service("otel-collector").is_some() {
        eprintln!(
            "  OTLP:     {} (gRPC), {} (HTTP)",
            settings.otlp_grpc_endpoint(),
            settings.otlp_http_endpoint()
        );
    }
    if stack.service("signoz").is_some() {
        eprintln!("  Signoz:   {}", settings.ui_url());
    }
    for backend in &settings.backends {
        eprintln!("  {:<9} {}", format!("{}:", backend.kind.name()), backend.url());
    }
    eprintln!(
        "  proxy:    prism-proxy --config {}",
        settings.state_dir.join("config").join(backends::PROXY_CONFIG).display()
    );
    eprintln!("next: eval \"$(devstack env)\" before starting the proxy; `devstack token` for requests");
    Ok(ExitCode::SUCCESS)
}
