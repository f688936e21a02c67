//! Rate limits, anvil and error handling (PF-NO-CLIENT-RATE-LIMITS, PF-SASL-NO-OUTBOUND-LIMIT,
//! PF-CONN-COUNT-UNLIMITED, PF-AUTH-RATE-LIMIT-UNSET, PF-EVENT-LIMIT-EXCEPTIONS-WIDE,
//! PF-ERROR-LIMITS-LAX, PF-RECIPIENT-LIMIT-HIGH, PF-ANVIL-TIME-UNIT-CHANGED).
//!
//! anvil(8) limits are per client IP; per-account limits need a policy service evaluated for
//! authenticated clients, i.e. placed before `permit_sasl_authenticated` (seed 001 incident).

use super::super::net;
use super::super::postfix::{PostfixConfig, Service, ServiceClass};
use super::super::{Finding, Severity};
use super::{LISTS, finding};

const RATES: [&str; 3] = [
    "smtpd_client_connection_rate_limit",
    "smtpd_client_message_rate_limit",
    "smtpd_client_recipient_rate_limit",
];

/// Whether a per-account limit can act on authenticated clients of this service: a policy
/// service or check_sasl_access before the first permit of a list, or anywhere before a permit
/// in the DATA / END-OF-DATA lists.
fn account_limit(pf: &PostfixConfig, svc: &Service) -> bool {
    LISTS.iter().any(|list| {
        for r in pf.restriction_list(Some(svc), list) {
            if r.name == "check_policy_service" || r.name == "check_sasl_access" {
                return true;
            }
            if r.name.starts_with("permit") {
                return false;
            }
        }
        false
    })
}

/// rspamd milter (its ratelimit module can limit accounts): ports 11332/9900 or a host name.
fn rspamd_milter(pf: &PostfixConfig, svc: &Service) -> bool {
    let m = pf.val(Some(svc), "smtpd_milters");
    m.contains(":11332") || m.contains(":9900") || m.contains("rspamd")
}

fn secs(v: &str) -> Option<u64> {
    let v = v.trim();
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    Some(match v.get(digits.len()..).unwrap_or("").trim() {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        "w" => n * 604800,
        _ => return None,
    })
}

pub(super) fn check(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    for (svc, class) in pf.public_smtpd() {
        let s = Some(&svc);
        let sasl = pf.sasl_on(&svc);
        if (class == ServiceClass::Mx || sasl) && RATES.iter().all(|r| pf.int(s, r) == Some(0)) {
            out.push(
                finding("PF-NO-CLIENT-RATE-LIMITS", pf.loc_for(&svc, &RATES), "smtpd_client_message_rate_limit", pf.shown(s, "smtpd_client_message_rate_limit"), "connection, message and recipient rate limits per client are all 0 (unlimited)")
                    .snip("main.cf", "anvil_rate_time_unit = 60s\nsmtpd_client_connection_rate_limit = 30\nsmtpd_client_message_rate_limit = 100\nsmtpd_client_recipient_rate_limit = 200"),
            );
        }
        if sasl && !account_limit(pf, &svc) {
            let per_ip = pf.int(s, "smtpd_client_message_rate_limit").unwrap_or(0) > 0
                || pf.int(s, "smtpd_client_recipient_rate_limit").unwrap_or(0) > 0;
            let (sev, note) = if rspamd_milter(pf, &svc) {
                (
                    Severity::Medium,
                    " An rspamd milter is configured: verify that its ratelimit module limits authenticated users (seed 003 ran rspamd and was still abused).",
                )
            } else if per_ip {
                (
                    Severity::Medium,
                    " Only per-IP anvil limits exist; a stolen account used from many IPs is not limited.",
                )
            } else {
                (Severity::High, "")
            };
            out.push(
                finding("PF-SASL-NO-OUTBOUND-LIMIT", pf.loc_for(&svc, &["smtpd_recipient_restrictions", "smtpd_relay_restrictions", "smtpd_end_of_data_restrictions"]), "smtpd_recipient_restrictions", pf.shown(s, "smtpd_recipient_restrictions"), format!("{} accepts AUTH but no policy service or check_sasl_access runs before permit_sasl_authenticated: nothing limits how much one account sends.{note}", svc.id()))
                    .sev(sev)
                    .snip("main.cf", "smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:10040")
                    .snip("mxguard.toml", "[[limit]]\nname = \"per-account\"\nkey = [\"sasl_username\"]\ncount = \"recipients\"\nrate = [\"100/1h\", \"500/1d\"]"),
            );
        }
        if pf.int(s, "smtpd_client_connection_count_limit") == Some(0) {
            out.push(
                finding(
                    "PF-CONN-COUNT-UNLIMITED",
                    pf.loc_for(&svc, &["smtpd_client_connection_count_limit"]),
                    "smtpd_client_connection_count_limit",
                    pf.shown(s, "smtpd_client_connection_count_limit"),
                    format!(
                        "one client may open any number of simultaneous connections to {}",
                        svc.id()
                    ),
                )
                .snip("main.cf", "smtpd_client_connection_count_limit = 10"),
            );
        }
        if sasl && pf.int(s, "smtpd_client_auth_rate_limit") == Some(0) {
            out.push(
                finding(
                    "PF-AUTH-RATE-LIMIT-UNSET",
                    pf.loc_for(&svc, &["smtpd_client_auth_rate_limit"]),
                    "smtpd_client_auth_rate_limit",
                    pf.shown(s, "smtpd_client_auth_rate_limit"),
                    format!("AUTH attempts per client are unlimited on {}", svc.id()),
                )
                .snip(
                    "master.cf",
                    format!(
                        "{} inet n - y - - smtpd\n  -o smtpd_client_auth_rate_limit=10",
                        svc.name
                    ),
                ),
            );
        }
        if let Some(exc) = pf.get(s, "smtpd_client_event_limit_exceptions") {
            let public = net::public_nets(&exc);
            if !public.is_empty() {
                out.push(finding(
                    "PF-EVENT-LIMIT-EXCEPTIONS-WIDE",
                    pf.loc_for(&svc, &["smtpd_client_event_limit_exceptions", "mynetworks"]),
                    "smtpd_client_event_limit_exceptions",
                    exc.clone(),
                    format!(
                        "these public networks bypass every anvil limit: {}",
                        net::show(&public)
                    ),
                ));
            }
        }
        if class == ServiceClass::Mx {
            let sleep = secs(&pf.val(s, "smtpd_error_sleep_time"));
            let soft = pf.int(s, "smtpd_soft_error_limit").unwrap_or(10);
            let hard = pf.int(s, "smtpd_hard_error_limit").unwrap_or(20);
            let mut bad = Vec::new();
            if sleep == Some(0) {
                bad.push("smtpd_error_sleep_time = 0".to_string());
            }
            if soft > 10 {
                bad.push(format!("smtpd_soft_error_limit = {soft}"));
            }
            if hard > 20 {
                bad.push(format!("smtpd_hard_error_limit = {hard}"));
            }
            if !bad.is_empty() {
                let params = [
                    "smtpd_error_sleep_time",
                    "smtpd_soft_error_limit",
                    "smtpd_hard_error_limit",
                ];
                out.push(
                    finding("PF-ERROR-LIMITS-LAX", pf.loc_for(&svc, &params), "smtpd_hard_error_limit", bad.join(", "), format!("misbehaving clients are not slowed down or disconnected early: {}", bad.join(", ")))
                        .snip("main.cf", "smtpd_error_sleep_time = 1s\nsmtpd_soft_error_limit = 10\nsmtpd_hard_error_limit = 20"),
                );
            }
        }
    }
    let rl = pf.int(None, "smtpd_recipient_limit").unwrap_or(1000);
    if rl == 0 || rl > 1000 {
        out.push(
            finding(
                "PF-RECIPIENT-LIMIT-HIGH",
                pf.location(None, "smtpd_recipient_limit"),
                "smtpd_recipient_limit",
                pf.shown(None, "smtpd_recipient_limit"),
                format!(
                    "up to {} recipients per message",
                    if rl == 0 {
                        "unlimited".to_string()
                    } else {
                        rl.to_string()
                    }
                ),
            )
            .snip("main.cf", "smtpd_recipient_limit = 1000"),
        );
    }
    if pf.main.contains_key("anvil_rate_time_unit")
        && secs(&pf.val(None, "anvil_rate_time_unit")) != Some(60)
    {
        out.push(finding(
            "PF-ANVIL-TIME-UNIT-CHANGED",
            pf.location(None, "anvil_rate_time_unit"),
            "anvil_rate_time_unit",
            pf.shown(None, "anvil_rate_time_unit"),
            "every smtpd_client_*_rate_limit counts per this unit, not per minute",
        ));
    }
}
