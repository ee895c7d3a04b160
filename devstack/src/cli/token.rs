//! `devstack token`: a valid token for the developer, the viewer, or whoever signs in
//! with a device code.

use std::process::ExitCode;

use anyhow::Context;
use devstack::Settings;
use devstack::identity::{Identity, Who};
use devstack::oidc::{DeviceCode, Login, OidcError, Source};

/// Print a valid ID token (audience prism-proxy) for dev@local.prism, in prism:admin, or
/// with `--user viewer` for viewer@local.prism, in prism:viewer only: the cached one while
/// it is valid, else refreshed, else a new password login. `--device` signs in through
/// the browser instead (the device-code flow): it prints a page and a code on stderr and
/// waits. Every token is verified against Dex's keys first.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// Whose token (the password login).
    #[arg(long, value_enum, default_value_t = Who::Dev, conflicts_with = "device")]
    user: Who,
    /// Sign in in a browser with a device code (RFC 8628) instead of the kept password;
    /// the token is for whoever signs in there.
    #[arg(long)]
    device: bool,
    /// Say on stderr where the token came from (cache, refresh, login).
    #[arg(short, long)]
    verbose: bool,
}

/// What a person needs to sign in: where, and the code.
fn show(code: &DeviceCode) {
    eprintln!("To sign in, open {}", code.verification_uri);
    eprintln!("and enter the code {}", code.user_code);
    if let Some(complete) = &code.verification_uri_complete {
        eprintln!("(the code is filled in at {complete} )");
    }
    eprintln!(
        "waiting up to {} s, checking every {} s ...",
        code.expires_in, code.interval
    );
}

pub async fn run(settings: &Settings, args: TokenArgs) -> anyhow::Result<ExitCode> {
    let identity = Identity::load(&settings.state_dir)?.with_context(|| {
        format!(
            "no developer identity in {}: run `devstack up` first",
            settings.state_dir.display()
        )
    })?;
    let login = if args.device {
        Login::Device
    } else {
        Login::Password(args.user)
    };
    let (token, source) = match devstack::oidc::token(settings, &identity, login, show).await {
        Ok(got) => got,
        // Unreachable: most likely Dex is not running.
        Err(e @ OidcError::Http { .. }) => Err(e).with_context(|| {
            format!(
                "getting a token from {} (is Dex up? `devstack status`; `devstack up --only dex` starts it)",
                settings.issuer()
            )
        })?,
        Err(e) => Err(e).with_context(|| format!("getting a token from {}", settings.issuer()))?,
    };
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
