//! `devstack up`: start the stack, then log the developer in.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use devstack::Settings;
use devstack::engine::{Engine, PullPolicy, UpOptions};
use devstack::stack::dex;

/// Start Dex and Signoz (or only some of them), wait until each is ready, log in as the
/// developer and cache the token. Running it again changes nothing that is up to date.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Start only this part (`dex`, `signoz`) or service, with what it depends on;
    /// repeatable.
    #[arg(long, value_name = "PART")]
    only: Vec<String>,
    /// Give up (printing what failed and its last log lines) after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// When to pull images.
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullPolicy,
}

pub async fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<ExitCode> {
    let (full, identity) = super::stack(settings)?;
    let stack = full.only(&args.only)?;
    let with_dex = stack.service("dex").is_some();
    if let Some(file) = stack.files.iter().find(|f| f.path.to_str() == Some(dex::CONFIG_FILE)) {
        super::check_dex(settings, &identity, &file.contents)?;
    }
    let engine = Engine::connect().await?;
    let options = UpOptions {
        pull: args.pull,
        timeout: args.timeout,
        files_dir: settings.state_dir.join("config"),
    };
    eprintln!(
        "devstack up: {} service(s) of project {}",
        stack.services.len(),
        stack.project
    );
    let report = engine.up(&stack, &options, &super::progress).await?;
    // What was asked to be up, for `status` to judge.
    super::save_asked(settings, &args.only)?;
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
        let (_, caller) = devstack::oidc::login(settings, &identity)
            .await
            .context("logging in to Dex as the developer")?;
        eprintln!(
            "logged in as {} (subject {}, groups {}); token cached in {}",
            identity.email,
            caller.subject.unwrap_or_default(),
            caller.groups.join(","),
            devstack::oidc::token_path(&settings.state_dir).display()
        );
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
    eprintln!("next: eval \"$(devstack env)\" before starting the proxy; `devstack token` for requests");
    Ok(ExitCode::SUCCESS)
}
