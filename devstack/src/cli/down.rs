//! `devstack down`: remove the stack's containers (and with `--reset`, its data).

use std::process::ExitCode;

use devstack::Settings;
use devstack::engine::Engine;

/// Stop and remove the stack's containers and network. Data volumes are kept unless
/// `--reset` is given.
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    /// Also remove the volumes (Dex's database, Signoz's traces) and the cached token.
    #[arg(long)]
    reset: bool,
}

pub async fn run(settings: &Settings, args: DownArgs) -> anyhow::Result<ExitCode> {
    let stack = super::existing_stack(settings)?;
    let engine = Engine::connect().await?;
    let removed = engine.down(&stack, args.reset).await?;
    super::forget_asked(settings)?;
    if args.reset {
        for cache in devstack::oidc::token_paths(&settings.state_dir) {
            devstack::state::remove_file(&cache)?;
        }
    }
    if removed.is_empty() {
        eprintln!("nothing to remove: project {} is not up", stack.project);
    } else {
        eprintln!("removed {}", removed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
