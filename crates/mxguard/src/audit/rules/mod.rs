//! The audit checks, one module per area (relay, SASL, limits, protocol hygiene, TLS,
//! postscreen/policy, Dovecot auth, Dovecot services, cross-component and fail2ban/mxguard).
//! Each check reads the parsed inputs and pushes `Finding`s; the id, default severity, title,
//! reason and standard fix come from `catalog`. Checks never fail and never print.

mod cross;
mod dovecot_auth;
mod dovecot_misc;
mod limits;
mod postscreen;
mod protocol;
mod relay;
mod sasl;
mod tls;

use super::catalog::rule_info;
use super::input::Inputs;
use super::{Finding, Location, Severity, Snippet};

/// Restriction lists of smtpd, in evaluation order (postconf(5), SMTPD_ACCESS_README).
pub(crate) const LISTS: [&str; 7] = [
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
];

/// Runs every check.
pub fn run_all(inputs: &Inputs, out: &mut Vec<Finding>) {
    if let Some(pf) = &inputs.postfix {
        relay::check(pf, out);
        sasl::check(pf, out);
        limits::check(pf, out);
        protocol::check(pf, out);
        tls::check(pf, out);
        postscreen::check(pf, out);
    }
    if let Some(dc) = &inputs.dovecot {
        dovecot_auth::check(dc, out);
        dovecot_misc::check(dc, out);
    }
    tls::check_snakeoil(inputs, out);
    cross::check(inputs, out);
}

/// Builds a finding with the catalog's severity, title, reason and fix.
pub(crate) fn finding(
    id: &'static str,
    location: Location,
    parameter: impl Into<String>,
    value: impl Into<String>,
    detail: impl Into<String>,
) -> Finding {
    // Every id used here is in the catalog (unit test `every_emitted_id_is_catalogued`); the
    // fallback only keeps a future typo from panicking.
    let (severity, title, why, fix) = match rule_info(id) {
        Some(r) => (r.severity, r.title, r.why, r.fix),
        None => (Severity::Info, "uncatalogued rule", "", ""),
    };
    Finding {
        rule: id,
        severity,
        title,
        location,
        parameter: parameter.into(),
        value: value.into(),
        detail: detail.into(),
        why,
        fix: fix.to_string(),
        snippet: Vec::new(),
    }
}

impl Finding {
    /// Overrides the severity (rules that escalate or de-escalate).
    pub(crate) fn sev(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    /// Replaces the standard fix with one naming this configuration's values.
    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }

    /// Adds a suggested configuration line.
    pub(crate) fn snip(mut self, file: &'static str, text: impl Into<String>) -> Finding {
        self.snippet.push(Snippet {
            file,
            text: text.into(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog::RULES;

    /// Every `"XX-..."` id string in the rule sources must be in the catalog, and every
    /// catalogued rule must be emitted somewhere.
    #[test]
    fn every_emitted_id_is_catalogued() {
        let sources = [
            include_str!("relay.rs"),
            include_str!("sasl.rs"),
            include_str!("limits.rs"),
            include_str!("protocol.rs"),
            include_str!("tls.rs"),
            include_str!("postscreen.rs"),
            include_str!("dovecot_auth.rs"),
            include_str!("dovecot_misc.rs"),
            include_str!("cross.rs"),
        ]
        .join("\n");
        let re = regex::Regex::new(r#""((?:PF|DV|XC|XX|F2B|MX|SA)-[A-Z0-9-]+)""#).unwrap();
        let used: std::collections::BTreeSet<&str> = re
            .captures_iter(&sources)
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        for id in &used {
            assert!(
                RULES.iter().any(|r| r.id == *id),
                "{id} used but not in the catalog"
            );
        }
        for r in RULES {
            assert!(
                used.contains(r.id),
                "{} in the catalog but never emitted",
                r.id
            );
        }
    }
}
