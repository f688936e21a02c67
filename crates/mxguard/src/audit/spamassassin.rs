//! SpamAssassin's local.cf as the audit sees it: only `trusted_networks` and
//! `internal_networks` (Mail::SpamAssassin::Conf), for SA-TRUSTED-NETWORKS-UNSET. Other lines
//! are ignored; nothing is interpreted beyond "set, with this value, at this line".

use super::error::AuditError;

/// The settings the audit reads from local.cf.
#[derive(Debug, Clone, Default)]
pub struct SpamAssassinConfig {
    pub source: String,
    /// `trusted_networks` values with their lines (the directive may repeat and accumulates).
    pub trusted_networks: Vec<(String, usize)>,
    /// `internal_networks` values with their lines.
    pub internal_networks: Vec<(String, usize)>,
}

impl SpamAssassinConfig {
    /// Parses local.cf text (`#` comments, `name value` lines).
    pub fn parse(text: &str, source: &str) -> Result<SpamAssassinConfig, AuditError> {
        let mut cfg = SpamAssassinConfig {
            source: source.to_string(),
            ..Default::default()
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let mut words = line.splitn(2, char::is_whitespace);
            let (Some(key), rest) = (words.next(), words.next()) else {
                continue;
            };
            let value = rest.unwrap_or("").trim().to_string();
            match key {
                "trusted_networks" => cfg.trusted_networks.push((value, i + 1)),
                "internal_networks" => cfg.internal_networks.push((value, i + 1)),
                _ => {}
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_networks() {
        let c = SpamAssassinConfig::parse(
            "# x\ntrusted_networks 10.0.0.0/8 # relays\nrequired_score 5\n",
            "local.cf",
        )
        .unwrap();
        assert_eq!(c.trusted_networks, vec![("10.0.0.0/8".to_string(), 2)]);
        assert!(c.internal_networks.is_empty());
    }
}
