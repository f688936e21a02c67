//! Errors of the filter crate: every error names the place it comes from (file, line, section,
//! option or regex) so that an administrator can fix the filter file without reading code.
//! Log-line problems are never errors: the pipeline counts them as skips instead.

use std::path::PathBuf;

/// Anything that can go wrong while loading or compiling a fail2ban filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An INI syntax error (Python configparser rules).
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `%(name)s` interpolation or `<tag>` substitution failed.
    #[error("{file}: [{section}] {option}: {message}")]
    Interpolation {
        /// File that defined the option (the filter's main file when unknown).
        file: String,
        /// Section being read.
        section: String,
        /// Option being read.
        option: String,
        /// What is wrong.
        message: String,
    },
    /// A regex (failregex, ignoreregex, prefregex) could not be translated or compiled.
    #[error("{file}: [Definition] {option}: {message}\n  regex: {regex}")]
    Regex {
        /// The filter file.
        file: String,
        /// `failregex[3]`, `prefregex`, ...
        option: String,
        /// The regex after tag substitution.
        regex: String,
        /// What is wrong.
        message: String,
    },
    /// A date pattern could not be compiled.
    #[error("{file}: [Definition] datepattern: {message} (pattern {pattern:?})")]
    DatePattern {
        /// The filter file.
        file: String,
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// A filter specification `name[opt=value, ...]` is malformed or names no filter.
    #[error("filter {spec:?}: {message}")]
    Spec {
        /// The specification as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
}
