//! `[dns]`, `[spf]`, `[helo]` and `[dnsbl]`: the DNS-based sender checks. The raw serde
//! structs (`deny_unknown_fields`, values `Spanned`) and their validation into the daemon's
//! [`DnsSettings`] and the engine's step settings. Called by `validate.rs` with a callback that
//! records each error with its file position. A check's table being absent turns it off; a
//! present table turns it on unless `enabled = false` (docs/configuration.md, "Sender checks").
//! The `[spf]` keys are postfix-policyd-spf-python 3.0.4's knobs in snake_case.

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use ipnet::IpNet;
use mxguard_engine::checks::{CheckAction, DnsblSettings, HeloSettings, SpfSettings};
use mxguard_engine::dnsbl::{Dnsbl, DnsblSite};
use mxguard_engine::helo::{HeloChecks, default_exempt};
use mxguard_engine::spf::policyd_spf::{PolicydSpf, RejectPolicy};
use serde::Deserialize;
use toml::Spanned;

use super::defaults::system_hostname;
use super::parse_duration;
use crate::dns::{DnsSettings, parse_server};

/// `[dns]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// `IP` or `IP:port`; absent or empty: the system's resolv.conf.
    pub servers: Vec<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub cache_size: Option<Spanned<i64>>,
}

/// `[spf]` as written: policyd-spf.conf(5) knobs in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpfConfig {
    pub enabled: Option<bool>,
    pub helo_reject: Option<Spanned<String>>,
    pub mail_from_reject: Option<Spanned<String>>,
    pub permerror_reject: Option<bool>,
    pub temperror_defer: Option<bool>,
    /// Absent: policyd-spf's loopback default; `[]`: none.
    pub skip_addresses: Option<Vec<Spanned<String>>>,
    pub whitelist: Vec<Spanned<String>>,
    pub domain_whitelist: Vec<Spanned<String>>,
    pub helo_whitelist: Vec<Spanned<String>>,
    pub domain_whitelist_ptr: Vec<Spanned<String>>,
    pub reject_not_pass_domains: Vec<Spanned<String>>,
    pub reason_message: Option<Spanned<String>>,
    /// policyd-spf `TestOnly = 0` is `test_only = true` (policyd-spf's own flag is inverted).
    pub test_only: Option<bool>,
    pub hide_receiver: Option<bool>,
    pub enhanced_status_codes: Option<bool>,
    pub header: Option<bool>,
    pub time_budget: Option<Spanned<String>>,
    pub void_limit: Option<Spanned<i64>>,
    /// This host's name for the `%{r}` macro (default: the system host name).
    pub hostname: Option<Spanned<String>>,
}

/// `[helo]` as written: one action per finding.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeloConfig {
    pub enabled: Option<bool>,
    pub invalid: Option<Spanned<String>>,
    pub non_fqdn: Option<Spanned<String>>,
    pub our_name: Option<Spanned<String>>,
    pub unknown_reverse: Option<Spanned<String>>,
    pub unknown_client: Option<Spanned<String>>,
    /// Default: the system host name.
    pub our_names: Option<Vec<Spanned<String>>>,
    pub our_addresses: Vec<Spanned<String>>,
    /// Absent: loopback, private, CGNAT and link-local ranges; `[]`: none.
    pub exempt: Option<Vec<Spanned<String>>>,
    pub time_budget: Option<Spanned<String>>,
}

/// `[dnsbl]` as written: postscreen's syntax.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsblConfig {
    pub enabled: Option<bool>,
    pub sites: Vec<Spanned<String>>,
    pub threshold: Option<Spanned<i64>>,
    pub allowlist_threshold: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
}

/// The validated checks.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub dns: DnsSettings,
    pub helo: Option<HeloSettings>,
    pub dnsbl: Option<DnsblSettings>,
    pub spf: Option<SpfSettings>,
}

impl Checks {
    /// Whether any check asks DNS (the resolver is built only then).
    pub fn use_dns(&self) -> bool {
        self.spf.is_some()
            || self.dnsbl.is_some()
            || self
                .helo
                .as_ref()
                .is_some_and(|h| h.unknown_reverse.is_some() || h.unknown_client.is_some())
    }
}

type Err<'a> = &'a mut dyn FnMut(Range<usize>, String);

/// The raw tables of this module.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    pub dns: Option<&'a DnsConfig>,
    pub spf: Option<&'a SpfConfig>,
    pub helo: Option<&'a HeloConfig>,
    /// Spanned, so a missing `sites` can point at the table.
    pub dnsbl: Option<&'a Spanned<DnsblConfig>>,
}

/// Validates the four tables.
pub fn validate(raw: Raw<'_>, err: Err<'_>) -> Checks {
    Checks {
        dns: raw.dns.map(|d| dns(d, err)).unwrap_or_default(),
        spf: raw.spf.and_then(|s| spf(s, err)),
        helo: raw.helo.and_then(|h| helo(h, err)),
        dnsbl: raw.dnsbl.and_then(|d| dnsbl(d, err)),
    }
}

fn duration(err: Err<'_>, v: &Option<Spanned<String>>, key: &str, dflt: Duration) -> Duration {
    let Some(v) = v else { return dflt };
    match parse_duration(v.get_ref()) {
        Ok(d) if d.is_zero() => {
            err(v.span(), format!("{key} must be longer than 0"));
            dflt
        }
        Ok(d) => d,
        Err(e) => {
            err(v.span(), format!("{key}: {e}"));
            dflt
        }
    }
}

fn int(err: Err<'_>, v: &Option<Spanned<i64>>, key: &str, range: Range<i64>, dflt: i64) -> i64 {
    match v {
        None => dflt,
        Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            err(
                v.span(),
                format!(
                    "{key} = {} is out of range {}..={}",
                    v.get_ref(),
                    range.start,
                    range.end - 1
                ),
            );
            dflt
        }
    }
}

/// CIDRs or bare addresses (as a /32 or /128).
fn networks(err: Err<'_>, items: &[Spanned<String>], key: &str) -> Vec<IpNet> {
    let mut out = Vec::new();
    for item in items {
        let s = item.get_ref().trim();
        match s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(n) => out.push(n),
            Err(_) => err(
                item.span(),
                format!("{key}: {s:?} is not an address or CIDR network"),
            ),
        }
    }
    out
}

/// Domain names, lowercased, without trailing dot.
fn domains(err: Err<'_>, items: &[Spanned<String>], key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        let d = item
            .get_ref()
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if ok {
            out.push(d);
        } else {
            err(
                item.span(),
                format!("{key}: {:?} is not a domain name", item.get_ref()),
            );
        }
    }
    out
}

fn dns(raw: &DnsConfig, err: Err<'_>) -> DnsSettings {
    let d = DnsSettings::default();
    let mut servers = Vec::new();
    for s in &raw.servers {
        match parse_server(s.get_ref()) {
            Ok(a) => servers.push(a),
            Err(e) => err(s.span(), format!("[dns] servers: {e}")),
        }
    }
    DnsSettings {
        servers,
        timeout: duration(err, &raw.timeout, "[dns] timeout", d.timeout),
        cache_size: int(
            err,
            &raw.cache_size,
            "[dns] cache_size",
            0..10_000_001,
            d.cache_size as i64,
        ) as u64,
    }
}

fn reject_policy(err: Err<'_>, v: &Option<Spanned<String>>, key: &str, helo: bool) -> RejectPolicy {
    let Some(v) = v else {
        return RejectPolicy::Fail;
    };
    match v.get_ref().parse::<RejectPolicy>() {
        Ok(RejectPolicy::Null) if !helo => {
            err(v.span(), format!("{key}: Null applies to helo_reject only"));
            RejectPolicy::Fail
        }
        Ok(p) => p,
        Err(e) => {
            err(v.span(), format!("{key}: {e}"));
            RejectPolicy::Fail
        }
    }
}

fn spf(raw: &SpfConfig, err: Err<'_>) -> Option<SpfSettings> {
    let d = PolicydSpf::default();
    let mut p = PolicydSpf {
        helo_reject: reject_policy(err, &raw.helo_reject, "[spf] helo_reject", true),
        mail_from_reject: reject_policy(
            err,
            &raw.mail_from_reject,
            "[spf] mail_from_reject",
            false,
        ),
        permerror_reject: raw.permerror_reject.unwrap_or(d.permerror_reject),
        temperror_defer: raw.temperror_defer.unwrap_or(d.temperror_defer),
        skip_addresses: match &raw.skip_addresses {
            Some(list) => networks(err, list, "[spf] skip_addresses"),
            None => d.skip_addresses.clone(),
        },
        whitelist: networks(err, &raw.whitelist, "[spf] whitelist"),
        domain_whitelist: domains(err, &raw.domain_whitelist, "[spf] domain_whitelist"),
        helo_whitelist: domains(err, &raw.helo_whitelist, "[spf] helo_whitelist"),
        domain_whitelist_ptr: domains(err, &raw.domain_whitelist_ptr, "[spf] domain_whitelist_ptr"),
        reject_not_pass_domains: domains(
            err,
            &raw.reject_not_pass_domains,
            "[spf] reject_not_pass_domains",
        ),
        enforce: !raw.test_only.unwrap_or(false),
        hide_receiver: raw.hide_receiver.unwrap_or(d.hide_receiver),
        enhanced_status_codes: raw.enhanced_status_codes.unwrap_or(d.enhanced_status_codes),
        ..d
    };
    if let Some(m) = &raw.reason_message {
        if m.get_ref().contains(['\n', '\r']) || m.get_ref().trim().is_empty() {
            err(
                m.span(),
                "[spf] reason_message must be one non-empty line".to_owned(),
            );
        } else {
            p.reason_message = m.get_ref().clone();
        }
    }
    p.checker.void_limit = int(err, &raw.void_limit, "[spf] void_limit", 0..101, 2) as u32;
    p.checker.receiver = match &raw.hostname {
        Some(h) => h.get_ref().clone(),
        None => system_hostname(),
    };
    let budget = duration(
        err,
        &raw.time_budget,
        "[spf] time_budget",
        SpfSettings::default().budget,
    );
    (raw.enabled != Some(false)).then(|| SpfSettings {
        policyd: p,
        header: raw.header.unwrap_or(true),
        budget,
    })
}

fn action(
    err: Err<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    dflt: Option<CheckAction>,
) -> Option<CheckAction> {
    let Some(v) = v else { return dflt };
    CheckAction::parse_optional(v.get_ref()).unwrap_or_else(|e| {
        err(v.span(), format!("{key}: {e}"));
        dflt
    })
}

fn helo(raw: &HeloConfig, err: Err<'_>) -> Option<HeloSettings> {
    let d = HeloSettings::default();
    let our_names = match &raw.our_names {
        Some(list) => domains(err, list, "[helo] our_names"),
        None => vec![system_hostname()],
    };
    let mut our_addresses = Vec::new();
    for a in &raw.our_addresses {
        match a.get_ref().trim().parse::<IpAddr>() {
            Ok(ip) => our_addresses.push(ip),
            Err(_) => err(
                a.span(),
                format!(
                    "[helo] our_addresses: {:?} is not an IP address",
                    a.get_ref()
                ),
            ),
        }
    }
    let exempt = match &raw.exempt {
        Some(list) => networks(err, list, "[helo] exempt"),
        None => default_exempt(),
    };
    let s = HeloSettings {
        checks: HeloChecks {
            our_names,
            our_addresses,
            exempt,
        },
        invalid: action(err, &raw.invalid, "[helo] invalid", d.invalid),
        non_fqdn: action(err, &raw.non_fqdn, "[helo] non_fqdn", d.non_fqdn),
        our_name: action(err, &raw.our_name, "[helo] our_name", d.our_name),
        unknown_reverse: action(
            err,
            &raw.unknown_reverse,
            "[helo] unknown_reverse",
            d.unknown_reverse,
        ),
        unknown_client: action(
            err,
            &raw.unknown_client,
            "[helo] unknown_client",
            d.unknown_client,
        ),
        budget: duration(err, &raw.time_budget, "[helo] time_budget", d.budget),
    };
    (raw.enabled != Some(false)).then_some(s)
}

fn dnsbl(table: &Spanned<DnsblConfig>, err: Err<'_>) -> Option<DnsblSettings> {
    let raw = table.get_ref();
    let d = Dnsbl::default();
    let mut sites = Vec::new();
    for s in &raw.sites {
        match s.get_ref().trim().parse::<DnsblSite>() {
            Ok(site) => sites.push(site),
            Err(e) => err(s.span(), format!("[dnsbl] sites: {e}")),
        }
    }
    let enabled = raw.enabled != Some(false);
    if enabled && raw.sites.is_empty() {
        err(
            table.span(),
            "[dnsbl] sites: at least one list is needed (or enabled = false)".to_owned(),
        );
    }
    let threshold = int(
        err,
        &raw.threshold,
        "[dnsbl] threshold",
        1..1001,
        d.threshold as i64,
    );
    let allowlist_threshold = int(
        err,
        &raw.allowlist_threshold,
        "[dnsbl] allowlist_threshold",
        -1000..1,
        d.allowlist_threshold as i64,
    );
    let action = match &raw.action {
        None => CheckAction::Reject,
        Some(v) => v.get_ref().parse().unwrap_or_else(|e| {
            err(v.span(), format!("[dnsbl] action: {e}"));
            CheckAction::Reject
        }),
    };
    let s = DnsblSettings {
        dnsbl: Dnsbl {
            sites,
            threshold: threshold as i32,
            allowlist_threshold: allowlist_threshold as i32,
        },
        action,
        budget: duration(err, &raw.timeout, "[dnsbl] timeout", Duration::from_secs(3)),
    };
    enabled.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Checks, Vec<(Range<usize>, String)>) {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            dns: Option<DnsConfig>,
            spf: Option<SpfConfig>,
            helo: Option<HeloConfig>,
            dnsbl: Option<Spanned<DnsblConfig>>,
        }
        let f: File = toml::from_str(text).unwrap();
        let mut errors = Vec::new();
        let c = validate(
            Raw {
                dns: f.dns.as_ref(),
                spf: f.spf.as_ref(),
                helo: f.helo.as_ref(),
                dnsbl: f.dnsbl.as_ref(),
            },
            &mut |span, m| errors.push((span, m)),
        );
        (c, errors)
    }

    #[test]
    fn absent_tables_turn_checks_off() {
        let (c, e) = check("");
        assert!(e.is_empty());
        assert!(c.spf.is_none() && c.helo.is_none() && c.dnsbl.is_none() && !c.use_dns());
        assert_eq!(c.dns, DnsSettings::default());
    }

    #[test]
    fn every_knob_is_read() {
        let (c, e) = check(
            r#"
[dns]
servers = ["127.0.0.1:5353", "::1"]
timeout = "500ms"
[spf]
helo_reject = "No_Check"
mail_from_reject = "SPF_Not_Pass"
permerror_reject = true
temperror_defer = true
skip_addresses = []
whitelist = ["192.0.2.0/24", "2001:db8::1"]
domain_whitelist = ["Relay.Example."]
test_only = true
header = false
time_budget = "3s"
hostname = "mx.test"
[helo]
invalid = "defer"
non_fqdn = "warn"
our_name = "off"
unknown_client = "hold"
our_names = ["mx.test"]
our_addresses = ["198.51.100.25"]
exempt = []
[dnsbl]
sites = ["zen.spamhaus.org=127.0.0.[2..11]*3", "list.dnswl.org=127.0.[0..255].[1..3]*-2"]
threshold = 3
allowlist_threshold = -1
timeout = "1s"
action = "defer"
"#,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.dns.servers.len(), 2);
        assert_eq!(c.dns.timeout, Duration::from_millis(500));
        let spf = c.spf.unwrap();
        assert_eq!(spf.policyd.helo_reject, RejectPolicy::NoCheck);
        assert_eq!(spf.policyd.mail_from_reject, RejectPolicy::SpfNotPass);
        assert!(spf.policyd.permerror_reject && spf.policyd.temperror_defer);
        assert!(spf.policyd.skip_addresses.is_empty());
        assert_eq!(spf.policyd.whitelist.len(), 2);
        assert_eq!(spf.policyd.domain_whitelist, vec!["relay.example"]);
        assert!(!spf.policyd.enforce && !spf.header);
        assert_eq!(spf.budget, Duration::from_secs(3));
        assert_eq!(spf.policyd.checker.receiver, "mx.test");
        let helo = c.helo.unwrap();
        assert_eq!(helo.invalid, Some(CheckAction::Defer));
        assert_eq!(helo.non_fqdn, Some(CheckAction::Warn));
        assert_eq!(helo.our_name, None);
        assert_eq!(helo.unknown_client, Some(CheckAction::Hold));
        assert!(helo.checks.exempt.is_empty());
        let bl = c.dnsbl.unwrap();
        assert_eq!(bl.dnsbl.sites.len(), 2);
        assert_eq!((bl.dnsbl.threshold, bl.dnsbl.allowlist_threshold), (3, -1));
        assert_eq!(bl.action, CheckAction::Defer);
        assert_eq!(bl.budget, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_are_all_reported() {
        let (c, e) = check(
            r#"
[dns]
servers = ["dns.example"]
timeout = "0s"
[spf]
mail_from_reject = "Null"
helo_reject = "sometimes"
whitelist = ["192.0.2.0/33"]
reason_message = ""
[helo]
invalid = "drop"
our_addresses = ["mx"]
[dnsbl]
sites = ["bad list"]
threshold = 0
allowlist_threshold = 2
"#,
        );
        let messages: Vec<&str> = e.iter().map(|(_, m)| m.as_str()).collect();
        for needle in [
            "[dns] servers",
            "[dns] timeout must be longer than 0",
            "Null applies to helo_reject only",
            "[spf] helo_reject",
            "[spf] whitelist",
            "[spf] reason_message",
            "[helo] invalid",
            "[helo] our_addresses",
            "[dnsbl] sites",
            "[dnsbl] threshold",
            "[dnsbl] allowlist_threshold",
        ] {
            assert!(
                messages.iter().any(|m| m.contains(needle)),
                "{needle} missing from {messages:?}"
            );
        }
        assert!(
            e.iter().all(|(span, _)| span.start > 0),
            "every error has a position"
        );
        assert!(c.spf.is_some());
    }

    #[test]
    fn enabled_false_keeps_validation_but_turns_off() {
        let (c, e) =
            check("[spf]\nenabled = false\n[dnsbl]\nenabled = false\n[helo]\nenabled = false\n");
        assert!(e.is_empty(), "{e:?}");
        assert!(c.spf.is_none() && c.dnsbl.is_none() && c.helo.is_none());
        let (_, e) = check("[dnsbl]\nthreshold = 2\n");
        assert!(e.iter().any(|(_, m)| m.contains("at least one list")));
    }
}
