//! `devstack token`: a valid token for the developer.

use std::process::ExitCode;

use anyhow::Context;
use devstack::Settings;
use devstack::identity::Identity;
use devstack::oidc::Source;

/// Print a valid ID token for dev@local.prism (audience prism-proxy): the cached one
/// while it is valid, else refreshed, else a new password login. Every token is verified
/// against Dex's keys first.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// Say on stderr where the token came from (cache, refresh, login).
    #[arg(short, long)]
    verbose: bool,
}

pub async fn run(settings: &Settings, args: TokenArgs) -> anyhow::Result<ExitCode> {
    let identity = Identity::load(&settings.state_dir)?.with_context(|| {
        format!(
            "no developer identity in {}: run `devstack up` first",
            settings.state_dir.display()
        )
    })?;
    let (token, source) = devstack::oidc::token(settings, &identity).await.with_context(|| {
        format!(
            "getting a token from {} (is Dex up? `devstack status`; `devstack up --only dex` starts it)",
            settings.issuer()
        )
    })?;
    if args.verbose {
        let how = match source {
            Source::Cache => "cached",
            Source::Refreshed => "refreshed",
            Source::LoggedIn => "new login",
        };
        eprintln!("token: {how}, expires at unix time {}", token.expires_at);
    }
    println!("{}", token.id_token);
    Ok(ExitCode::SUCCESS)
}
