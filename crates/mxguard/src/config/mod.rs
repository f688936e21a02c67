//! Configuration: one TOML file (`/etc/mxguard/mxguard.toml`, `--config`) turned into a
//! validated [`Config`], or every error found, each with file, line and column.
//!
//! Two layers (DESIGN.md): `raw` holds the serde structs (`XxxConfig`, `deny_unknown_fields`,
//! values `Spanned` for error positions); `validate` checks them all, collecting errors rather
//! than stopping at the first, reads the whitelist files they name, and builds the validated
//! types (same names without the suffix) and the engine's `PolicySettings`. `serve`,
//! SIGHUP reload and `check-config` all call [`load`], so they agree by construction. Without a
//! file, [`load`] validates an empty document: every key has a documented default
//! (docs/configuration.md).

pub mod auth_policy;
pub mod checks;
mod defaults;
mod duration;
pub mod jails;
pub mod limits;
pub mod raw;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mxguard_engine::greylist::GreylistSettings;
use mxguard_engine::lists::StaticLists;
use mxguard_engine::policy::PolicySettings;
use mxguard_proto::{Limits, ReplyAction};

pub use defaults::{default_control_socket, default_state_dir};
pub use duration::parse_duration;

/// Where `mxguard` looks when `--config` is not given and this file exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mxguard/mxguard.toml";

/// One problem in the configuration, at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file, or a whitelist file it names.
    pub file: String,
    /// 1-based; 0 when the error concerns the whole file (e.g. unreadable).
    pub line: usize,
    /// 1-based, in characters; 0 with `line == 0`.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every error found in one configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A policy listener address, in Postfix's `check_policy_service` spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `inet:HOST:PORT`; kept as `HOST:PORT` (IPv6 in brackets) and resolved at bind time.
    Inet(String),
    /// `unix:/path`.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Inet(a) => write!(f, "inet:{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Validated `[policy]`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub listen: Vec<ListenAddr>,
    /// The answer to malformed requests and the fail-open answer when the store fails.
    pub default_action: ReplyAction,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    /// Permission bits of unix policy sockets.
    pub socket_mode: u32,
    pub limits: Limits,
}

/// The state backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// Crash-safe local database in this directory.
    Embedded(PathBuf),
    /// In memory only: lost on restart (tests, throw-away setups).
    Memory,
    /// Redis or Valkey, shared by several hosts.
    Redis {
        url: String,
        prefix: String,
        timeout: Duration,
        /// `sentinels` + `master_name`: the primary comes from Redis Sentinel.
        sentinel: Option<crate::store::redis::SentinelSettings>,
        /// `cluster`: a Redis Cluster, found through these seed nodes.
        cluster: Option<crate::store::redis::ClusterSettings>,
    },
}

/// Validated `[store]`.
#[derive(Debug, Clone)]
pub struct Store {
    pub kind: StoreKind,
    /// How often expired greylist entries are removed.
    pub expire_interval: Duration,
    /// How often a shared store's ban list is checked for other hosts' changes.
    pub sync_interval: Duration,
}

/// Validated `[control]`.
#[derive(Debug, Clone)]
pub struct Control {
    pub socket: PathBuf,
}

/// Validated `[metrics]`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub listen: SocketAddr,
}

/// Validated `[log]`.
#[derive(Debug, Clone)]
pub struct Log {
    /// A tracing filter directive (`info`, `mxguard=debug`, ...).
    pub level: String,
    pub json: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    pub policy: Policy,
    pub store: Store,
    /// `None` when `[greylist] enabled = false`.
    pub greylist: Option<GreylistSettings>,
    pub lists: StaticLists,
    /// `[[limit]]` and `[account]`.
    pub limits: limits::Limits,
    pub control: Control,
    pub metrics: Option<Metrics>,
    pub log: Log,
    /// `[auth_policy]`; `None` when the table is absent (endpoint off).
    pub auth_policy: Option<auth_policy::AuthPolicy>,
    /// `[dns]`, `[spf]`, `[helo]`, `[dnsbl]`.
    pub checks: checks::Checks,
    /// `[[jail]]`, `[bans]`, `[[action]]`.
    pub jails: jails::Jails,
}

impl Config {
    /// The engine's settings for this configuration.
    pub fn policy_settings(&self) -> PolicySettings {
        PolicySettings {
            lists: self.lists.clone(),
            greylist: self.greylist.clone(),
            limits: self.limits.limits.clone(),
            containment: self.limits.containment.clone(),
            helo: self.checks.helo.clone(),
            dnsbl: self.checks.dnsbl.clone(),
            spf: self.checks.spf.clone(),
            ban_reject_text: self
                .jails
                .bans
                .policy_check
                .then(|| self.jails.bans.reject_text.clone()),
        }
    }
}

/// The config file to use: `explicit` if given, else [`DEFAULT_CONFIG_PATH`] if it exists,
/// else none (embedded defaults).
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let p = Path::new(DEFAULT_CONFIG_PATH);
            p.is_file().then(|| p.to_path_buf())
        }
    }
}

/// Reads and validates `path`, or the embedded defaults when `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    match path {
        None => parse("<defaults>", "", None),
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    file: name.clone(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read config file: {e}"),
                }])
            })?;
            let mut cfg = parse(&name, &text, p.parent())?;
            cfg.source = Some(p.to_path_buf());
            Ok(cfg)
        }
    }
}

/// Validates config `text` named `file`. Relative paths inside it are taken relative to
/// `base_dir` (the config file's directory), or to the working directory when `None`.
pub fn parse(file: &str, text: &str, base_dir: Option<&Path>) -> Result<Config, ConfigErrors> {
    validate::validate(file, text, base_dir)
}
