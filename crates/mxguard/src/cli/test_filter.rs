//! `mxguard test-filter FILTER LOGFILE`: fail2ban-regex's job on mxguard's filter engine.

use std::process::ExitCode;

/// Arguments of `mxguard test-filter`.
#[derive(Debug, clap::Args)]
pub struct TestFilterArgs {}

/// Runs the filter test.
pub fn run(_args: &TestFilterArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("test-filter is not implemented yet")
}
