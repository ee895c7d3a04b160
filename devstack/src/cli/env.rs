//! `devstack env`: what the proxy needs to use the stack.

use std::process::ExitCode;

use devstack::Settings;

/// Print the environment that points the proxy at the stack: OTLP export to the
/// collector and token checks against Dex. `eval "$(devstack env)"` applies it. Refuses
/// (exit 3, nothing printed) while Dex does not answer: the exports would turn on token
/// checks against nothing, and every proxy call would fail UNAUTHENTICATED.
#[derive(clap::Args, Debug)]
pub struct EnvArgs {
    /// Print them even though Dex does not answer (for a .env file written ahead).
    #[arg(long)]
    force: bool,
    /// `sh`: export lines for eval; `dotenv`: KEY=value lines for .env files and
    /// `docker run --env-file`. Also `-o`/`--output`, as `status` names it.
    #[arg(long, short = 'o', visible_alias = "output", value_enum, default_value = "sh")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Sh,
    Dotenv,
}

/// The variables, in order.
pub fn variables(settings: &Settings) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", settings.otlp_grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_SERVICE_NAME", "prism-proxy".into()),
        ("PRISM_OIDC_ISSUER", settings.issuer()),
        ("PRISM_OIDC_AUDIENCE", devstack::settings::PROXY_CLIENT_ID.into()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    // The backends the last `up --with` started, and the proxy config naming them all.
    vars.extend(settings.backends.iter().map(|b| (b.env_var(), b.url())));
    let proxy_config = settings
        .state_dir
        .join("config")
        .join(devstack::stack::backends::PROXY_CONFIG);
    if proxy_config.is_file() {
        vars.push(("PRISM_DEVSTACK_PROXY_CONFIG".into(), proxy_config.display().to_string()));
    }
    vars
}

pub async fn run(settings: &Settings, args: EnvArgs) -> anyhow::Result<ExitCode> {
    if !args.force
        && let Err(why) = dex_answers(settings).await
    {
        eprintln!(
            "devstack env: Dex does not answer at {} ({why}); with these exports every proxy call would fail UNAUTHENTICATED. \
             Start it with `devstack up` (or `devstack up --only dex`), or print them anyway with --force",
            settings.issuer()
        );
        return Ok(ExitCode::from(3));
    }
    for (name, value) in variables(settings) {
        match args.format {
            // Values are URLs and names without quotes or spaces; quoted anyway for sh.
            Format::Sh => println!("export {name}='{value}'"),
            Format::Dotenv => println!("{name}={value}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether Dex's discovery document answers at the stack's issuer, within 5 s.
async fn dex_answers(settings: &Settings) -> Result<(), String> {
    let client = devstack::oidc::OidcClient::new(&settings.issuer()).map_err(|e| e.to_string())?;
    match tokio::time::timeout(std::time::Duration::from_secs(5), client.discover()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 5 s".into()),
    }
}
