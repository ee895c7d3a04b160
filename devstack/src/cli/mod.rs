//! The command line: global settings (ports, network mode, state folder) and one file per
//! command.

mod doctor;
mod down;
mod env;
mod logs;
mod render;
mod status;
mod token;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use devstack::identity::Identity;
use devstack::stack::Stack;
use devstack::{NetworkMode, Settings, settings};

/// Signoz (OpenTelemetry traces) and Dex (OIDC logins) for local development, with a
/// developer identity provisioned and the Prism proxy wired to both.
///
/// `devstack up` starts everything through the Docker engine, creates the developer user
/// dev@local.prism (password kept in the state folder), logs in and caches a token.
/// `eval "$(devstack env)"` then points the proxy at both; `devstack token` prints a token
/// for requests. Give every command the same flags (or DEVSTACK_* variables).
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about,
    after_help = "Examples:\n  devstack doctor\n  devstack up\n  eval \"$(devstack env)\" && prism-proxy --config proxy/config/memstore.yaml\n  grpcurl -H \"authorization: Bearer $(devstack token)\" ...\n  devstack down --reset"
)]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The command line, parsed; clap's usage errors exit 2.
pub fn parse() -> Args {
    let matches = command().get_matches();
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The stack options are global (every command takes them) but listed once, in
/// `devstack --help`: repeated in each command's help they were most of it. clap copies a
/// global option into a subcommand unless the subcommand has it already, so each gets a
/// hidden copy, which parses the same.
fn command() -> clap::Command {
    let command = Args::command();
    let globals: Vec<clap::Arg> = command.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    let names: Vec<String> = globals
        .iter()
        .filter_map(|a| a.get_long())
        .map(|long| format!("--{long}"))
        .collect();
    let note = format!(
        "Every command also takes the stack options {} (or their DEVSTACK_* variables): see `devstack --help`.",
        names.join(", ")
    );
    command.mut_subcommands(|sub| {
        globals
            .iter()
            .fold(sub, |sub, arg| sub.arg(arg.clone().hide(true)))
            .after_help(note.clone())
    })
}

#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Stack options (every command takes them)")]
pub struct Global {
    /// Prefix of every container, volume and network this tool creates.
    #[arg(long, global = true, env = "DEVSTACK_PROJECT", default_value = "devstack", value_parser = project_name)]
    project: String,
    /// `bridge`: a private network, ports published on 127.0.0.1 (Docker's usual setup);
    /// `host`: the host's network (for engines without a bridge).
    #[arg(long, global = true, env = "DEVSTACK_NETWORK", value_enum, default_value = "bridge")]
    network: NetworkMode,
    /// Where the identity, the token and the rendered configs are kept
    /// [default: $XDG_STATE_HOME/prism-devstack or ~/.local/state/prism-devstack].
    #[arg(long, global = true, env = "DEVSTACK_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Dex's port; the issuer is http://127.0.0.1:<port>/dex.
    #[arg(long, global = true, env = "DEVSTACK_DEX_PORT", default_value_t = settings::DEFAULT_DEX_PORT)]
    dex_port: u16,
    /// The collector's OTLP/gRPC port.
    #[arg(long, global = true, env = "DEVSTACK_OTLP_GRPC_PORT", default_value_t = settings::DEFAULT_OTLP_GRPC_PORT)]
    otlp_grpc_port: u16,
    /// The collector's OTLP/HTTP port.
    #[arg(long, global = true, env = "DEVSTACK_OTLP_HTTP_PORT", default_value_t = settings::DEFAULT_OTLP_HTTP_PORT)]
    otlp_http_port: u16,
    /// The Signoz UI's port.
    #[arg(long, global = true, env = "DEVSTACK_UI_PORT", default_value_t = settings::DEFAULT_UI_PORT)]
    ui_port: u16,
}

/// A project name Docker and compose accept in container, volume and project names.
fn project_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} cannot name Docker containers and volumes: use lowercase letters, digits, - and _, starting with a letter or digit (e.g. my-stack)"
        ))
    }
}

impl Global {
    /// Two services on one host port would fail at `up`, and `doctor` could not tell.
    fn check_ports(&self) -> Result<(), String> {
        let ports = [
            ("--dex-port", self.dex_port),
            ("--otlp-grpc-port", self.otlp_grpc_port),
            ("--otlp-http-port", self.otlp_http_port),
            ("--ui-port", self.ui_port),
        ];
        for (i, (a, pa)) in ports.iter().enumerate() {
            if let Some((b, _)) = ports[i + 1..].iter().find(|(_, pb)| pb == pa) {
                return Err(format!("{a} {pa} is also {b}: each service needs a port of its own"));
            }
        }
        Ok(())
    }

    fn settings(&self) -> Settings {
        Settings {
            project: self.project.clone(),
            network: self.network,
            state_dir: self.state_dir.clone().unwrap_or_else(Settings::default_state_dir),
            dex_port: self.dex_port,
            otlp_grpc_port: self.otlp_grpc_port,
            otlp_http_port: self.otlp_http_port,
            ui_port: self.ui_port,
            backends: Vec::new(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Up(up::UpArgs),
    Down(down::DownArgs),
    Status(status::StatusArgs),
    Logs(logs::LogsArgs),
    Env(env::EnvArgs),
    Token(token::TokenArgs),
    Doctor(doctor::DoctorArgs),
    Render(render::RenderArgs),
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Err(e) = args.global.check_ports() {
        // A usage error, as clap's are.
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    let mut settings = args.global.settings();
    // Commands that look at what runs see the backends the last `up` started.
    settings.backends = asked(&settings)?.with;
    match args.command {
        Command::Up(a) => up::run(&settings, a).await,
        Command::Down(a) => down::run(&settings, a).await,
        Command::Status(a) => status::run(&settings, a).await,
        Command::Logs(a) => logs::run(&settings, a).await,
        Command::Env(a) => env::run(&settings, a).await,
        Command::Token(a) => token::run(&settings, a).await,
        Command::Doctor(a) => doctor::run(&settings, a).await,
        Command::Render(a) => render::run(&settings, a),
    }
}

/// The whole stack for `settings`, with the kept (or a new) developer identity.
fn stack(settings: &Settings) -> anyhow::Result<(Stack, Identity)> {
    let identity = Identity::load_or_create(&settings.state_dir)
        .with_context(|| format!("developer identity in {}", settings.state_dir.display()))?;
    Ok((devstack::stack::devstack(settings, &identity), identity))
}

/// The stack's names and ports, for commands that only look at or remove what runs: the
/// kept identity if there is one, else a throwaway (nothing is written to the state folder).
fn existing_stack(settings: &Settings) -> anyhow::Result<Stack> {
    let identity = match Identity::load(&settings.state_dir)
        .with_context(|| format!("developer identity in {}", settings.state_dir.display()))?
    {
        Some(identity) => identity,
        None => Identity::generate()?,
    };
    Ok(devstack::stack::devstack(settings, &identity))
}

/// What `up` was last asked for, kept in the state folder: the parts (`--only`), which
/// `status` judges rather than the whole stack, and the backends (`--with`), which
/// `env`, `status`, `logs` and `down` then know.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Asked {
    only: Vec<String>,
    #[serde(default)]
    with: Vec<devstack::stack::backends::Backend>,
}

fn asked_path(settings: &Settings) -> std::path::PathBuf {
    settings.state_dir.join("up.json")
}

fn save_asked(settings: &Settings, only: &[String]) -> anyhow::Result<()> {
    let asked = Asked {
        only: only.to_vec(),
        with: settings.backends.clone(),
    };
    Ok(devstack::state::write_private_json(&asked_path(settings), &asked)?)
}

/// What `up` was last asked for (`only` empty: all, or never asked).
fn asked(settings: &Settings) -> anyhow::Result<Asked> {
    Ok(devstack::state::read_json::<Asked>(&asked_path(settings))?.unwrap_or_default())
}

fn volumes_path(settings: &Settings) -> std::path::PathBuf {
    settings.state_dir.join("volumes.json")
}

/// Which image last used each of the stack's volumes.
fn volume_records(settings: &Settings) -> anyhow::Result<devstack::engine::VolumeRecords> {
    Ok(devstack::state::read_json(&volumes_path(settings))?.unwrap_or_default())
}

fn save_volume_records(settings: &Settings, records: &devstack::engine::VolumeRecords) -> anyhow::Result<()> {
    Ok(devstack::state::write_private_json(&volumes_path(settings), records)?)
}

fn forget_asked(settings: &Settings) -> anyhow::Result<()> {
    Ok(devstack::state::remove_file(&asked_path(settings))?)
}

/// Progress lines go to stderr, so stdout stays for what scripts read.
fn progress(line: &str) {
    eprintln!("{line}");
}

/// Checks Dex's config as rendered; every problem is listed.
fn check_dex(settings: &Settings, identity: &Identity, text: &str) -> anyhow::Result<()> {
    let issuer = settings.issuer();
    let problems = prism_proxy::validation::Problems {
        source: "dex.yaml".into(),
        list: devstack::dexcheck::check_text(text, &devstack::dexcheck::expected(&issuer, identity)),
    };
    problems
        .into_result()
        .map_err(|p| anyhow::anyhow!("Dex's config is not valid:\n{p}"))
}
