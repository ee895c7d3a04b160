//! `devstack env`: what the proxy needs to use the stack.

use std::process::ExitCode;

use devstack::Settings;

/// Print the environment that points the proxy at the stack: OTLP export to the
/// collector and token checks against Dex. `eval "$(devstack env)"` applies it.
#[derive(clap::Args, Debug)]
pub struct EnvArgs {
    /// `sh`: export lines for eval; `dotenv`: KEY=value lines for .env files and
    /// `docker run --env-file`.
    #[arg(long, value_enum, default_value = "sh")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Sh,
    Dotenv,
}

/// The variables, in order.
pub fn variables(settings: &Settings) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", settings.otlp_grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_SERVICE_NAME", "prism-proxy".into()),
        ("PRISM_OIDC_ISSUER", settings.issuer()),
        ("PRISM_OIDC_AUDIENCE", devstack::settings::PROXY_CLIENT_ID.into()),
    ]
}

pub fn run(settings: &Settings, args: EnvArgs) -> anyhow::Result<ExitCode> {
    for (name, value) in variables(settings) {
        match args.format {
            // Values are URLs and names without quotes or spaces; quoted anyway for sh.
            Format::Sh => println!("export {name}='{value}'"),
            Format::Dotenv => println!("{name}={value}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
