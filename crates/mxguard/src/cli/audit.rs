//! `mxguard audit`: command-line front of the `crate::audit` module.

use std::process::ExitCode;

/// Arguments of `mxguard audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {}

/// Runs the audit.
pub fn run(_args: &AuditArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("audit is not implemented yet")
}
