//! `devstack logs`: one service's log.

use std::io::Write;
use std::process::ExitCode;

use devstack::Settings;
use devstack::engine::{Engine, EngineError};
use futures::StreamExt;

/// Print a service's log (stdout and stderr of its container).
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The service (see `devstack status`).
    service: String,
    /// Keep printing as it logs, until interrupted or the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
}

pub async fn run(settings: &Settings, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let stack = super::existing_stack(settings)?;
    if stack.service(&args.service).is_none() {
        let known: Vec<&str> = stack.services.iter().map(|s| s.name.as_str()).collect();
        return Err(EngineError::UnknownService {
            service: args.service,
            known: known.join(", "),
        }
        .into());
    }
    let engine = Engine::connect().await?;
    let container = stack.container_name(&args.service);
    let mut stream = std::pin::pin!(engine.logs(&container, args.tail, args.follow));
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        out.write_all(chunk?.as_bytes())?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
