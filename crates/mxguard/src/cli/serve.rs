//! `mxguard serve`: loads and validates the configuration (exactly as `check-config` does),
//! sets up logging, and runs the daemon until SIGTERM/SIGINT (`service::serve`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_OK, EXIT_USAGE, print_config_errors, runtime};
use crate::config;

#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  mxguard serve                                  embedded defaults (see below)
  mxguard serve --config /etc/mxguard/mxguard.toml

Without --config, /etc/mxguard/mxguard.toml is used if it exists, otherwise the embedded
defaults: policy service on inet:127.0.0.1:10040, greylisting on (delay 5m), state in
/var/lib/mxguard when writable, else ./mxguard-state.

Postfix (main.cf):
  smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination,
      check_policy_service { inet:127.0.0.1:10040, default_action=DUNNO }

Signals: SIGHUP reloads the configuration (a file that fails validation is refused and the
running configuration kept; errors are logged); SIGTERM/SIGINT stop accepting, finish
requests in progress (up to [policy] drain_timeout) and flush the store.")]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: /etc/mxguard/mxguard.toml if present, else the
    /// built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let path = config::resolve_path(args.config.as_deref());
    let cfg = match config::load(path.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            print_config_errors(&errors);
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    super::init_logging(&cfg.log);
    match &path {
        Some(p) => tracing::info!(config = %p.display(), "starting mxguard"),
        None => tracing::info!("starting mxguard on built-in defaults (no config file)"),
    }
    runtime()?.block_on(crate::service::serve(cfg))?;
    Ok(ExitCode::from(EXIT_OK))
}
