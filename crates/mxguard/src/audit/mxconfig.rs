//! mxguard's own configuration as the audit sees it: a generic TOML walk (not the daemon's
//! validated config type, which `mxguard check-config` checks) that finds the Postfix policy
//! listener, the Dovecot auth-policy listener and whether any rate limit keys on the SASL
//! user. The MX-* rules compare these with what Postfix and Dovecot actually point to.
//!
//! Heuristics, documented in docs/audit.md: a `listen` string under a table whose path contains
//! `policy` or `postfix` is the policy listener; one under `dovecot` or `auth` is the auth
//! endpoint; a table whose path contains `limit`/`rate`/`quota` and mentions `sasl` is a
//! per-account limit.

use super::error::AuditError;

/// What the audit knows about an mxguard config file.
#[derive(Debug, Clone, Default)]
pub struct MxguardConfig {
    pub source: String,
    /// Postfix policy listener (`inet:127.0.0.1:10040`, `127.0.0.1:10040`, `unix:/run/...`).
    pub policy_listen: Vec<String>,
    /// Dovecot auth policy HTTP listener.
    pub auth_listen: Vec<String>,
    /// Whether some limit is keyed on `sasl_username`.
    pub sasl_limits: bool,
}

impl MxguardConfig {
    /// Parses mxguard.toml text.
    pub fn parse(text: &str, source: &str) -> Result<MxguardConfig, AuditError> {
        let value: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text.get(..s.start).unwrap_or("").lines().count().max(1))
                .unwrap_or(0);
            AuditError::Syntax {
                source_name: source.to_string(),
                line,
                message: e.message().to_string(),
            }
        })?;
        let mut cfg = MxguardConfig {
            source: source.to_string(),
            ..Default::default()
        };
        let has_policy = value.contains_key("policy");
        walk(&toml::Value::Table(value), "", &mut cfg);
        // `[policy]` without `listen` listens on Postfix's customary policy port
        // (config::validate DEFAULT_POLICY_LISTEN).
        if has_policy && cfg.policy_listen.is_empty() {
            cfg.policy_listen.push("inet:127.0.0.1:10040".to_string());
        }
        Ok(cfg)
    }
}

fn walk(v: &toml::Value, path: &str, cfg: &mut MxguardConfig) {
    match v {
        toml::Value::Table(t) => {
            for (k, child) in t {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(child, &p, cfg);
            }
        }
        toml::Value::Array(a) => {
            for child in a {
                walk(child, path, cfg);
            }
        }
        toml::Value::String(s) => {
            let lower = path.to_ascii_lowercase();
            let key = lower.rsplit('.').next().unwrap_or("");
            if key.contains("listen") || key == "address" || key == "bind" {
                if lower.contains("dovecot") || lower.contains("auth") {
                    cfg.auth_listen.push(s.clone());
                } else if lower.contains("policy") || lower.contains("postfix") {
                    cfg.policy_listen.push(s.clone());
                }
            }
            if (lower.contains("limit") || lower.contains("rate") || lower.contains("quota"))
                && (s.contains("sasl") || lower.contains("sasl"))
            {
                cfg.sasl_limits = true;
            }
        }
        _ => {
            let lower = path.to_ascii_lowercase();
            if (lower.contains("limit") || lower.contains("rate")) && lower.contains("sasl") {
                cfg.sasl_limits = true;
            }
        }
    }
}

/// Port of a listener text (`inet:127.0.0.1:10040`, `[::1]:10041`, `http://127.0.0.1:10041/`).
pub fn port_of(listen: &str) -> Option<u16> {
    let t = listen.trim().trim_end_matches('/');
    let t = t
        .split('/')
        .find(|p| p.contains(':') && !p.ends_with(':'))
        .unwrap_or(t);
    t.rsplit(':')
        .next()?
        .trim_end_matches('}')
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listeners_and_limits() {
        let c = MxguardConfig::parse(
            "[postfix_policy]\nlisten = \"inet:127.0.0.1:10040\"\n[dovecot_auth]\nlisten = \"127.0.0.1:10041\"\n[[limits]]\nkey = \"sasl_username\"\nrate = \"200/1d\"\n",
            "m.toml",
        )
        .unwrap();
        assert_eq!(c.policy_listen, ["inet:127.0.0.1:10040"]);
        assert_eq!(c.auth_listen, ["127.0.0.1:10041"]);
        assert!(c.sasl_limits);
        assert_eq!(port_of("inet:127.0.0.1:10040"), Some(10040));
        assert_eq!(port_of("http://127.0.0.1:10041/"), Some(10041));
        assert!(MxguardConfig::parse("[x\n", "m").is_err());
    }
}
