//! `devstack status`: each service's container state.

use std::process::ExitCode;

use devstack::Settings;
use devstack::engine::{Engine, State};

/// Show each service: container state, health, host ports and image. Exits 0 when every
/// service is running (one-shots: exited 0), 3 otherwise, so scripts can wait on it. The
/// services judged are those the last `up` was asked for (`up --only dex`: Dex), or
/// `--only`'s.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Judge only this part (`dex`, `signoz`) or service, with what it depends on;
    /// repeatable. Default: what the last `up` started.
    #[arg(long, value_name = "PART")]
    only: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub async fn run(settings: &Settings, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let only = match args.only.is_empty() {
        true => super::asked(settings)?.only,
        false => args.only,
    };
    let stack = super::existing_stack(settings)?.only(&only)?;
    let engine = Engine::connect().await?;
    let statuses = engine.status(&stack).await?;
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&statuses)?),
        Format::Table => {
            println!(
                "{:<24} {:<10} {:<10} {:<12} IMAGE",
                "SERVICE", "STATE", "HEALTH", "PORTS"
            );
            for s in &statuses {
                let state = match (&s.state, s.exit_code) {
                    (State::Exited, Some(code)) => format!("exited({code})"),
                    (state, _) => format!("{state:?}").to_lowercase(),
                };
                let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
                println!(
                    "{:<24} {:<10} {:<10} {:<12} {}",
                    s.service,
                    state,
                    s.health.as_deref().unwrap_or("-"),
                    if ports.is_empty() { "-".into() } else { ports.join(",") },
                    s.image
                );
            }
        }
    }
    let all_up = statuses
        .iter()
        .all(|s| s.state == State::Running || (s.state == State::Exited && s.exit_code == Some(0)));
    Ok(if all_up { ExitCode::SUCCESS } else { ExitCode::from(3) })
}
