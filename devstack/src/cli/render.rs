//! `devstack render`: the stack as files, without starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use devstack::Settings;
use devstack::stack::{backends, dex, render};

/// Write every config (Dex, the collector, ClickHouse, `proxy.yaml` for the proxy) and an
/// equivalent compose file to a folder, and check Dex's config. Nothing is started.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The folder to write into (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Include these data servers, as `up --with` (`redis`, `postgres`, `nats`,
    /// `clickhouse`, each optionally `:PORT`).
    #[arg(long, value_name = "BACKEND[:PORT]", value_delimiter = ',', value_parser = devstack::stack::backends::Backend::parse)]
    with: Vec<devstack::stack::backends::Backend>,
}

pub fn run(settings: &Settings, args: RenderArgs) -> anyhow::Result<ExitCode> {
    let settings = &Settings {
        backends: args.with.clone(),
        ..settings.clone()
    };
    if args.out.exists() && !args.out.is_dir() {
        anyhow::bail!(
            "--out {}: a file is there; give a folder (it is created if needed)",
            args.out.display()
        );
    }
    let (mut stack, identity) = super::stack(settings)?;
    backends::add_proxy_config(&mut stack, settings);
    let written =
        render::render(&stack, &args.out).with_context(|| format!("rendering into {}", args.out.display()))?;
    // The check reads back what was written, not what was meant to be.
    let dex_file = args.out.join(dex::CONFIG_FILE);
    let text = std::fs::read_to_string(&dex_file).with_context(|| format!("reading {}", dex_file.display()))?;
    super::check_dex(settings, &identity, &text)?;
    for path in &written {
        println!("{}", path.display());
    }
    eprintln!(
        "Dex config checked: no problems; start it with `docker compose -f {}/compose.yaml up`",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
