//! `mxguard check-config`: the daemon's own validation (`config::load`), with every error
//! printed as `file:line:column: message`. Exit 0 when valid, 2 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_OK, EXIT_USAGE, print_config_errors};
use crate::config;

#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  mxguard check-config --config /etc/mxguard/mxguard.toml
  mxguard check-config --config new.toml && systemctl reload mxguard

Runs exactly the validation `mxguard serve` and SIGHUP reload run, including reading the
whitelist files the config names. Prints every error, not just the first, one per line as
FILE:LINE:COLUMN: MESSAGE. Exit status: 0 valid, 2 invalid or unreadable.")]
pub struct CheckConfigArgs {
    /// Configuration file to check. Default: /etc/mxguard/mxguard.toml if present, else the
    /// built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: &CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let path = config::resolve_path(args.config.as_deref());
    match config::load(path.as_deref()) {
        Ok(cfg) => {
            let name = path
                .as_ref()
                .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            outln!("{name}: ok");
            outln!(
                "  policy listen: {}",
                cfg.policy
                    .listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            match &cfg.store.kind {
                config::StoreKind::Embedded(p) => outln!("  store: embedded at {}", p.display()),
                config::StoreKind::Memory => outln!("  store: memory (not durable)"),
                config::StoreKind::Redis {
                    prefix,
                    cluster: Some(c),
                    ..
                } => outln!(
                    "  store: redis cluster (seeds {}), key prefix {prefix:?}",
                    c.nodes.join(", ")
                ),
                config::StoreKind::Redis { prefix, .. } => {
                    outln!("  store: redis, key prefix {prefix:?}")
                }
            }
            outln!(
                "  greylist: {}",
                if cfg.greylist.is_some() { "on" } else { "off" }
            );
            outln!("  control socket: {}", cfg.control.socket.display());
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(errors) => {
            print_config_errors(&errors);
            Ok(ExitCode::from(EXIT_USAGE))
        }
    }
}
