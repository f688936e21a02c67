//! Errors of the audit inputs: unreadable, binary, truncated or malformed configuration, or a
//! `postconf`/`doveconf` command that is missing or failed. Rules never fail; only reading does.
//! The CLI maps every `AuditError` to exit code 2.

use std::path::PathBuf;

/// Why an input could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The data contains NUL bytes or is not UTF-8 text.
    #[error("{source_name}: binary data (byte offset {offset}); expected a text configuration")]
    Binary { source_name: String, offset: usize },
    /// A syntax error that Postfix or Dovecot itself would refuse.
    #[error("{source_name}, line {line}: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        message: String,
    },
    /// The input ends in the middle of a statement.
    #[error("{source_name}: input looks truncated: {message}")]
    Truncated {
        source_name: String,
        message: String,
    },
    /// A `postconf`/`doveconf` binary is not installed.
    #[error(
        "command `{command}` not found ({hint}); pass the configuration as files instead (see `mxguard audit --help`)"
    )]
    CommandMissing { command: String, hint: &'static str },
    /// A command ran but failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    /// Inconsistent or missing command-line inputs.
    #[error("{0}")]
    Usage(String),
}
