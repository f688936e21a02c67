//! postscreen, DNS blocklists, policy services and milters (PF-POSTSCREEN-*, PF-DNSBL-DEAD-LIST,
//! PF-RBL-ON-SUBMISSION, PF-POLICY-*, PF-MILTER-DEFAULT-ACCEPT). POSTSCREEN_README, postconf(5)
//! postscreen_dnsbl_sites syntax `site[=filter][*weight]`, SMTPD_POLICY_README.

use super::super::postfix::{PostfixConfig, ServiceClass};
use super::super::{Finding, Severity};
use super::{LISTS, finding};

/// Retired DNS blocklists: (domain suffix, severity). AHBL and NJABL answered "listed" for
/// everything after shutting down.
const DEAD: [(&str, Severity); 6] = [
    ("sorbs.net", Severity::Medium),
    ("ahbl.org", Severity::High),
    ("njabl.org", Severity::High),
    ("cbl.abuseat.org", Severity::Medium),
    ("spamcannibal.org", Severity::Medium),
    ("dsbl.org", Severity::Medium),
];

fn dead(site: &str) -> Option<Severity> {
    let host = site
        .split(['=', '*'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    DEAD.iter()
        .find(|(d, _)| host == *d || host.ends_with(&format!(".{d}")))
        .map(|(_, s)| *s)
}

/// Weight of a `site[=filter][*weight]` entry (default 1).
fn weight(site: &str) -> i64 {
    site.rsplit_once('*')
        .and_then(|(_, w)| w.trim().parse().ok())
        .unwrap_or(1)
}

pub(super) fn check(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    let services = pf.effective_services();
    let postscreen = services
        .iter()
        .find(|s| s.command == "postscreen" && s.kind == "inet");
    let sites_raw = pf.val(None, "postscreen_dnsbl_sites");
    let sites: Vec<&str> = sites_raw
        .split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(ps) = postscreen {
        let action = pf
            .val(None, "postscreen_dnsbl_action")
            .trim()
            .to_ascii_lowercase();
        let threshold = pf.int(None, "postscreen_dnsbl_threshold").unwrap_or(1);
        let sum: i64 = sites.iter().map(|s| weight(s)).filter(|w| *w > 0).sum();
        if action != "ignore" && sum < threshold {
            let detail = if sites.is_empty() {
                format!(
                    "postscreen_dnsbl_action = {action} but postscreen_dnsbl_sites is empty (may be generated at start-up)"
                )
            } else {
                format!(
                    "positive weights add up to {sum}, below postscreen_dnsbl_threshold = {threshold}"
                )
            };
            out.push(finding("PF-POSTSCREEN-DNSBL-THRESHOLD-UNREACHABLE", pf.location(None, "postscreen_dnsbl_threshold"), "postscreen_dnsbl_threshold", pf.shown(None, "postscreen_dnsbl_threshold"), detail).snip("main.cf", "postscreen_dnsbl_sites = zen.spamhaus.org*3 bl.mailspike.net\npostscreen_dnsbl_threshold = 3"));
        }
        if action == "ignore"
            && pf
                .val(None, "postscreen_greet_action")
                .trim()
                .eq_ignore_ascii_case("ignore")
        {
            out.push(
                finding(
                    "PF-POSTSCREEN-ENFORCE-NONE",
                    pf.location(None, "postscreen_dnsbl_action"),
                    "postscreen_dnsbl_action",
                    pf.shown(None, "postscreen_dnsbl_action"),
                    "postscreen runs but every action is 'ignore'",
                )
                .snip(
                    "main.cf",
                    "postscreen_greet_action = enforce\npostscreen_dnsbl_action = enforce",
                ),
            );
        }
        let has = |cmd: &str, kind: Option<&str>| {
            services
                .iter()
                .any(|s| s.command == cmd && kind.is_none_or(|k| s.kind == k))
        };
        let mut missing = Vec::new();
        if !has("smtpd", Some("pass")) {
            missing.push("smtpd pass - - y - - smtpd");
        }
        if !sites.is_empty() && !has("dnsblog", None) {
            missing.push("dnsblog unix - - y - 0 dnsblog");
        }
        let ps_tls = pf.val(None, "postscreen_tls_security_level");
        let tls = if ps_tls.trim().is_empty() {
            pf.val(None, "smtpd_tls_security_level")
        } else {
            ps_tls
        };
        if !matches!(tls.trim(), "" | "none") && !has("tlsproxy", None) {
            missing.push("tlsproxy unix - - y - 0 tlsproxy");
        }
        if !missing.is_empty() {
            out.push(
                finding(
                    "PF-POSTSCREEN-NO-PASS-SERVICE",
                    pf.service_location(ps),
                    "master.cf",
                    missing.join("; "),
                    format!(
                        "{} runs postscreen but master.cf lacks: {}",
                        ps.id(),
                        missing.join("; ")
                    ),
                )
                .snip("master.cf", missing.join("\n")),
            );
        }
    } else if let Some((name, p)) = pf.main.iter().find(|(k, _)| k.starts_with("postscreen_")) {
        out.push(finding(
            "PF-POSTSCREEN-NOT-ENABLED",
            pf.location(None, name),
            name.clone(),
            p.value.clone(),
            "postscreen_* parameters are set but master.cf does not run postscreen on smtp/inet",
        ));
    }
    // Dead lists anywhere.
    let mut seen = Vec::new();
    for s in &sites {
        if let Some(sev) = dead(s) {
            seen.push(s.to_string());
            out.push(
                finding(
                    "PF-DNSBL-DEAD-LIST",
                    pf.location(None, "postscreen_dnsbl_sites"),
                    "postscreen_dnsbl_sites",
                    s.to_string(),
                    format!("{s} is a retired blocklist"),
                )
                .sev(sev),
            );
        }
    }
    let mut targets = vec![None];
    targets.extend(services.iter().filter(|s| s.is_smtpd()).map(Some));
    for svc in targets {
        for list in LISTS {
            if svc.is_some_and(|s| !s.overrides.contains_key(list)) {
                continue;
            }
            for r in pf.restriction_list(svc, list) {
                if (r.name.starts_with("reject_rbl") || r.name.starts_with("reject_rhsbl"))
                    && let Some(arg) = &r.arg
                    && let Some(sev) = dead(arg)
                    && !seen.contains(arg)
                {
                    seen.push(arg.clone());
                    out.push(
                        finding(
                            "PF-DNSBL-DEAD-LIST",
                            pf.location(svc, list),
                            list,
                            r.text(),
                            format!("{arg} is a retired blocklist"),
                        )
                        .sev(sev),
                    );
                }
            }
        }
    }
    policy_checks(pf, out);
}

fn policy_checks(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    let mut reported = Vec::new();
    for (svc, class) in pf.public_smtpd() {
        let s = Some(&svc);
        let sasl = pf.sasl_on(&svc);
        for list in LISTS {
            let items = pf.restriction_list(s, list);
            let mut permit_seen: Option<String> = None;
            for r in &items {
                if r.name.starts_with("permit")
                    && r.name != "permit_auth_destination"
                    && permit_seen.is_none()
                {
                    permit_seen = Some(r.name.clone());
                }
                if sasl
                    && matches!(class, ServiceClass::Submission | ServiceClass::Submissions)
                    && permit_seen.is_none()
                    && (r.name.starts_with("reject_rbl") || r.name.starts_with("reject_rhsbl"))
                {
                    out.push(finding("PF-RBL-ON-SUBMISSION", pf.loc_for(&svc, &[list]), list, pf.shown(s, list), format!("'{}' runs before permit_sasl_authenticated on {}", r.text(), svc.id())).snip("master.cf", format!("{} inet n - y - - smtpd\n  -o smtpd_client_restrictions=permit_sasl_authenticated,reject", svc.name)));
                }
                if (r.name == "reject_unknown_client_hostname" || r.name == "reject_unknown_reverse_client_hostname")
                    && permit_seen.is_none()
                    && items.iter().any(|x| x.name == "permit_mynetworks")
                    && pf.get(s, "mynetworks").is_some_and(|m| {
                        super::super::net::entries(&m).iter().any(|e| matches!(e, super::super::net::NetEntry::Net(n) if super::super::net::is_private(n) && !super::super::net::is_loopback(n)))
                    })
                {
                    let key = (list.to_string(), r.name.clone(), pf.loc_for(&svc, &[list]));
                    if !reported.contains(&key) {
                        reported.push(key);
                        out.push(
                            finding("PF-RDNS-BEFORE-MYNETWORKS", pf.loc_for(&svc, &[list]), list, pf.shown(s, list), format!("'{}' comes before permit_mynetworks while mynetworks lists private networks", r.name))
                                .snip("main.cf", format!("{list} = permit_mynetworks, permit_sasl_authenticated, {}", r.name)),
                        );
                    }
                }
                if r.name != "check_policy_service" {
                    continue;
                }
                let arg = r.arg.clone().unwrap_or_default();
                let key = (list.to_string(), arg.clone(), pf.loc_for(&svc, &[list]));
                if reported.contains(&key) {
                    continue;
                }
                reported.push(key);
                let greylist_or_spf = arg.contains(":10023")
                    || arg.contains("spf")
                    || arg.contains("postgrey")
                    || arg.contains("grey");
                if let Some(p) = &permit_seen {
                    out.push(finding(
                        "PF-POLICY-AFTER-PERMIT",
                        pf.loc_for(&svc, &[list]),
                        list,
                        r.text(),
                        format!(
                            "clients matched by {p} never reach '{}'{}",
                            r.text(),
                            if greylist_or_spf {
                                " (fine for greylisting/SPF)"
                            } else {
                                ""
                            }
                        ),
                    ));
                    continue;
                }
                let inline = arg
                    .split_once("default_action=")
                    .map(|(_, a)| a.trim_end_matches('}').trim().to_string());
                let action =
                    inline.unwrap_or_else(|| pf.val(s, "smtpd_policy_service_default_action"));
                let upper = action.trim().to_ascii_uppercase();
                if upper.starts_with("DUNNO")
                    || upper.starts_with("OK")
                    || upper.starts_with("PERMIT")
                {
                    out.push(finding("PF-POLICY-DEFAULT-ACTION-FAILOPEN", pf.loc_for(&svc, &[list, "smtpd_policy_service_default_action"]), "smtpd_policy_service_default_action", action.clone(), format!("'{}' is evaluated for authenticated clients but answers {action} when unreachable", r.text())).sev(if greylist_or_spf { Severity::Low } else { Severity::Medium }));
                }
            }
        }
    }
    if pf
        .val(None, "milter_default_action")
        .trim()
        .eq_ignore_ascii_case("accept")
        && !pf.val(None, "smtpd_milters").trim().is_empty()
    {
        out.push(finding(
            "PF-MILTER-DEFAULT-ACCEPT",
            pf.location(None, "milter_default_action"),
            "milter_default_action",
            "accept",
            "mail is accepted unfiltered while a milter is down",
        ));
    }
}
