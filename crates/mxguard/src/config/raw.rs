//! Raw configuration: the TOML file exactly as written, deserialised with serde
//! (`deny_unknown_fields` everywhere, DESIGN.md). Every value that validation may refuse is
//! `Spanned` so the error can name its line and column. Validation lives in `validate.rs`;
//! nothing here interprets values.

use serde::Deserialize;
use toml::Spanned;

/// The whole file. Every table is optional: an empty file is the embedded defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub policy: PolicyConfig,
    pub store: StoreConfig,
    pub greylist: GreylistConfig,
    pub lists: ListsConfig,
    pub control: ControlConfig,
    pub metrics: Option<MetricsConfig>,
    pub log: LogConfig,
    /// `[[limit]]` rate limits and quotas (config/limits.rs).
    pub limit: Vec<super::limits::LimitConfig>,
    /// `[account]` containment (config/limits.rs).
    pub account: Option<super::limits::AccountConfig>,
    /// `[auth_policy]` Dovecot auth-policy endpoint (config/auth_policy.rs).
    pub auth_policy: Option<super::auth_policy::AuthPolicyConfig>,
    /// `[dns]`, `[spf]`, `[helo]`, `[dnsbl]`: DNS-based sender checks (config/checks.rs).
    pub dns: Option<super::checks::DnsConfig>,
    pub spf: Option<super::checks::SpfConfig>,
    pub helo: Option<super::checks::HeloConfig>,
    pub dnsbl: Option<Spanned<super::checks::DnsblConfig>>,
    /// `[[jail]]`, `[bans]`, `[[action]]`: log jails and the ban list (config/jails.rs).
    pub jail: Vec<super::jails::JailConfig>,
    pub bans: Option<super::jails::BansConfig>,
    pub action: Vec<super::jails::ActionConfig>,
}

/// `[policy]`: the Postfix policy service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// `inet:HOST:PORT` and `unix:/path` (Postfix's own spelling).
    pub listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub default_action: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub socket_mode: Option<Spanned<String>>,
    pub max_line_length: Option<Spanned<i64>>,
    pub max_attributes: Option<Spanned<i64>>,
    pub max_request_bytes: Option<Spanned<i64>>,
}

/// `[store]`: where state lives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub expire_interval: Option<Spanned<String>>,
    /// `type = "redis"`: `redis://host:port/db`, `rediss://...`, `unix:///path`.
    pub url: Option<Spanned<String>>,
    /// `type = "redis"`: prepended to every key (default `mxguard:`).
    pub prefix: Option<Spanned<String>>,
    /// `type = "redis"`: bound on each operation (default `250ms`).
    pub timeout: Option<Spanned<String>>,
    /// `type = "redis"`: how often other hosts' ban changes are polled (default `2s`).
    pub sync_interval: Option<Spanned<String>>,
    /// `type = "redis"`: find the primary through these Sentinels (`host:port`).
    pub sentinels: Option<Spanned<Vec<Spanned<String>>>>,
    /// `type = "redis"` with `sentinels`: the monitored primary's name.
    pub master_name: Option<Spanned<String>>,
    /// `type = "redis"`: use a Redis Cluster found through these seed nodes (`host:port`).
    pub cluster: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[greylist]`: postgrey-compatible greylisting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistConfig {
    pub enabled: Option<bool>,
    pub delay: Option<Spanned<String>>,
    pub retry_window: Option<Spanned<String>>,
    pub max_age: Option<Spanned<String>>,
    pub auto_whitelist_clients: Option<Spanned<i64>>,
    pub ipv4_prefix: Option<Spanned<i64>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    pub whitelist_clients: Vec<Spanned<String>>,
    pub whitelist_recipients: Vec<Spanned<String>>,
    pub text: Option<Spanned<String>>,
    pub header: Option<bool>,
    pub hostname: Option<Spanned<String>>,
    /// Key triplets on the SPF-verified sender domain (config/checks.rs, `[spf]`).
    pub spf_domain_key: Option<bool>,
}

/// `[lists]`: static allow and deny lists, checked before everything else.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsConfig {
    pub allow: Vec<Spanned<String>>,
    pub deny: Vec<Spanned<String>>,
    pub deny_text: Option<Spanned<String>>,
}

/// `[control]`: the local admin socket used by `mxguard status` / `greylist`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    pub socket: Option<Spanned<String>>,
}

/// `[metrics]`: Prometheus endpoint; the table's absence turns it off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: Option<Spanned<String>>,
}

/// `[log]`: tracing output on stderr.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
}
