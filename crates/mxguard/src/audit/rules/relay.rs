//! Relay control (PF-OPEN-RELAY-*, PF-MYNETWORKS-*, PF-RELAY-*, PF-NO-RELAY-CONTROL,
//! PF-SASL-ANONYMOUS, PF-XCLIENT-AUTHORIZED-WIDE, PF-PERMIT-MX-BACKUP).
//!
//! Relaying is decided in two stages (postconf(5) smtpd_relay_restrictions, evaluated before
//! smtpd_recipient_restrictions): a stranger's mail to a foreign domain is relayed only when
//! neither stage rejects it. A stage rejects when a reject-class restriction comes before any
//! restriction that permits a stranger; a stage with neither simply passes.

use super::super::net::{self, NetEntry};
use super::super::postfix::{PostfixConfig, Restriction, Service};
use super::super::{Finding, Severity};
use super::{LISTS, finding};

/// Restrictions that stop a stranger relaying (smtpd_check.c's list for the fatal check).
const RELAY_BLOCKERS: [&str; 6] = [
    "reject_unauth_destination",
    "defer_unauth_destination",
    "reject",
    "defer",
    "defer_if_permit",
    "check_relay_domains",
];

/// Outcome of one stage for a stranger sending to a foreign domain.
#[derive(Debug, PartialEq)]
enum Stage {
    Blocks { access_before: Vec<Restriction> },
    Permit(String),
    MynetworksAny(String),
    FallsThrough,
}

/// Effective mynetworks of a service: the list, or the style when it is computed.
fn mynetworks_everything(pf: &PostfixConfig, svc: &Service) -> Option<String> {
    let list = pf.get(Some(svc), "mynetworks")?;
    let wide: Vec<_> = net::entries(&list)
        .into_iter()
        .filter_map(|e| match e {
            NetEntry::Net(n) if net::is_everything(&n) => Some(n),
            _ => None,
        })
        .collect();
    (!wide.is_empty()).then(|| net::show(&wide))
}

fn stage(pf: &PostfixConfig, svc: &Service, list: &[Restriction]) -> Stage {
    let mut access = Vec::new();
    for r in list {
        let n = r.name.as_str();
        if RELAY_BLOCKERS.contains(&n) {
            return Stage::Blocks {
                access_before: access,
            };
        }
        if n == "permit" {
            return Stage::Permit(r.text());
        }
        if n == "permit_mynetworks"
            && let Some(w) = mynetworks_everything(pf, svc)
        {
            return Stage::MynetworksAny(w);
        }
        if n.starts_with("check_") && n.ends_with("_access") && n != "check_recipient_access" {
            access.push(r.clone());
        }
    }
    Stage::FallsThrough
}

pub(super) fn check(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    for (svc, _) in pf.public_smtpd() {
        relay_stages(pf, &svc, out);
        let sasl = pf.sasl_on(&svc);
        if sasl {
            for p in [
                "smtpd_sasl_security_options",
                "smtpd_sasl_tls_security_options",
            ] {
                let v = pf.val(Some(&svc), p);
                if !v.to_ascii_lowercase().contains("noanonymous") {
                    out.push(
                        finding(
                            "PF-SASL-ANONYMOUS",
                            pf.loc_for(&svc, &[p]),
                            p,
                            pf.shown(Some(&svc), p),
                            format!(
                                "{p} lacks noanonymous while AUTH is enabled on {}",
                                svc.id()
                            ),
                        )
                        .snip("main.cf", format!("{p} = noanonymous")),
                    );
                }
            }
        }
        for list in LISTS {
            if pf
                .restriction_list(Some(&svc), list)
                .iter()
                .any(|r| r.name == "permit_mx_backup")
            {
                out.push(
                    finding("PF-PERMIT-MX-BACKUP", pf.loc_for(&svc, &[list]), list, pf.shown(Some(&svc), list), "permit_mx_backup accepts mail for any domain whose MX points here")
                        .snip("main.cf", format!("# remove permit_mx_backup from {list}; list backup domains in relay_domains")),
                );
            }
        }
        for p in [
            "smtpd_authorized_xclient_hosts",
            "smtpd_authorized_xforward_hosts",
        ] {
            let v = pf.val(Some(&svc), p);
            let mut crit = Vec::new();
            let mut high = Vec::new();
            for e in net::entries(&v) {
                if let NetEntry::Net(n) = e {
                    if net::is_everything(&n) {
                        crit.push(n);
                    } else if !net::is_private(&n)
                        || matches!(n, ipnet::IpNet::V4(x) if x.prefix_len() < 16)
                    {
                        high.push(n);
                    }
                }
            }
            if !crit.is_empty() || !high.is_empty() {
                let sev = if crit.is_empty() {
                    Severity::High
                } else {
                    Severity::Critical
                };
                crit.extend(high);
                out.push(
                    finding(
                        "PF-XCLIENT-AUTHORIZED-WIDE",
                        pf.loc_for(&svc, &[p]),
                        p,
                        v.clone(),
                        format!("{} may claim any client identity: {}", p, net::show(&crit)),
                    )
                    .sev(sev)
                    .snip("main.cf", format!("{p} = 127.0.0.1")),
                );
            }
        }
        reinject_exposed(pf, &svc, out);
    }
    mynetworks_checks(pf, out);
}

fn relay_stages(pf: &PostfixConfig, svc: &Service, out: &mut Vec<Finding>) {
    let relay = pf.restriction_list(Some(svc), "smtpd_relay_restrictions");
    let rcpt = pf.restriction_list(Some(svc), "smtpd_recipient_restrictions");
    let params = [
        "smtpd_relay_restrictions",
        "smtpd_recipient_restrictions",
        "mynetworks",
    ];
    let loc = pf.loc_for(svc, &params);
    let has_blocker = relay
        .iter()
        .chain(rcpt.iter())
        .any(|r| RELAY_BLOCKERS.contains(&r.name.as_str()));
    if !has_blocker {
        out.push(
            finding(
                "PF-NO-RELAY-CONTROL",
                loc,
                "smtpd_relay_restrictions",
                format!("relay: {}; recipient: {}", pf.shown(Some(svc), "smtpd_relay_restrictions"), pf.shown(Some(svc), "smtpd_recipient_restrictions")),
                format!("neither list of {} contains reject_unauth_destination, defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains: smtpd stops with a fatal error", svc.id()),
            )
            .snip("main.cf", "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"),
        );
        return;
    }
    let s1 = stage(pf, svc, &relay);
    let s2 = stage(pf, svc, &rcpt);
    let blocks = |s: &Stage| matches!(s, Stage::Blocks { .. });
    if !blocks(&s1) && !blocks(&s2) {
        let (param, how) = [
            (&s1, "smtpd_relay_restrictions"),
            (&s2, "smtpd_recipient_restrictions"),
        ]
        .into_iter()
        .find_map(|(s, p)| match s {
            Stage::Permit(t) | Stage::MynetworksAny(t) => Some((p, t.clone())),
            _ => None,
        })
        .unwrap_or(("smtpd_recipient_restrictions", String::new()));
        let any = matches!(s1, Stage::MynetworksAny(_)) || matches!(s2, Stage::MynetworksAny(_));
        let value = pf.shown(Some(svc), param);
        let f = if any {
            finding("PF-OPEN-RELAY-MYNETWORKS-ANY", loc, "mynetworks", pf.shown(Some(svc), "mynetworks"), format!("mynetworks contains {how} and permit_mynetworks comes before the relay check in {param} ({value}) on {}", svc.id()))
                .snip("main.cf", "mynetworks = 127.0.0.0/8 [::1]/128")
        } else {
            finding("PF-OPEN-RELAY-PERMIT", loc, param, value, format!("'{how}' comes before any relay check in {param}, and the other list does not reject unauthorised destinations either ({})", svc.id()))
                .snip("main.cf", "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination")
        };
        out.push(f);
        return;
    }
    // Exactly one stage blocks: an access map before its blocker can return OK and relay.
    let only = match (blocks(&s1), blocks(&s2)) {
        (true, false) => Some((&s1, "smtpd_relay_restrictions")),
        (false, true) => Some((&s2, "smtpd_recipient_restrictions")),
        _ => None,
    };
    if let Some((Stage::Blocks { access_before }, param)) = only {
        for r in access_before {
            let sev = match r.name.as_str() {
                "check_client_access"
                | "check_ccert_access"
                | "check_reverse_client_hostname_access" => Severity::Medium,
                _ => Severity::High,
            };
            out.push(
                finding("PF-RELAY-ACCESS-MAP-BEFORE-DEST", pf.loc_for(svc, &[param]), param, pf.shown(Some(svc), param), format!("'{}' comes before reject_unauth_destination: an OK in that table relays mail", r.text()))
                    .sev(sev),
            );
        }
    }
}

fn reinject_exposed(pf: &PostfixConfig, svc: &Service, out: &mut Vec<Finding>) {
    let o = &svc.overrides;
    let return_path = o.get("content_filter").is_some_and(|v| v.is_empty())
        && (o
            .get("smtpd_recipient_restrictions")
            .is_some_and(|v| v.replace(' ', "") == "permit_mynetworks,reject")
            || o.get("receive_override_options")
                .is_some_and(|v| v.contains("no_unknown_recipient_checks")));
    if !return_path || svc.port() == Some(25) {
        return;
    }
    let loopback_nets = o.get("mynetworks").is_some_and(|m| {
        let e = net::entries(m);
        !e.is_empty()
            && e.iter()
                .all(|x| matches!(x, NetEntry::Net(n) if net::is_loopback(n)))
    });
    if !loopback_nets {
        out.push(
            finding("PF-RELAY-REINJECT-EXPOSED", pf.service_location(svc), "service", svc.name.clone(), format!("{} looks like a content-filter return path (-o content_filter= ...) but is not bound to loopback and has no loopback-only -o mynetworks", svc.id()))
                .snip("master.cf", format!("127.0.0.1:{} inet n - n - - smtpd\n  -o mynetworks=127.0.0.0/8", svc.port().unwrap_or(10025))),
        );
    }
}

fn mynetworks_checks(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    let mut seen = Vec::new();
    let services = pf.public_smtpd();
    let mut targets: Vec<Option<&Service>> = vec![None];
    targets.extend(
        services
            .iter()
            .filter(|(s, _)| s.overrides.contains_key("mynetworks"))
            .map(|(s, _)| Some(s)),
    );
    for svc in targets {
        let loc = pf.location(svc, "mynetworks");
        match pf.get(svc, "mynetworks") {
            Some(list) => {
                let public: Vec<_> = net::public_nets(&list)
                    .into_iter()
                    .filter(|n| !net::is_everything(n))
                    .collect();
                if !public.is_empty() && !seen.contains(&list) {
                    seen.push(list.clone());
                    let narrow = public.iter().all(|n| match n {
                        ipnet::IpNet::V4(x) => x.prefix_len() >= 29,
                        ipnet::IpNet::V6(x) => x.prefix_len() >= 125,
                    });
                    out.push(
                        finding(
                            "PF-MYNETWORKS-PUBLIC",
                            loc,
                            "mynetworks",
                            list.clone(),
                            format!(
                                "public addresses may relay without authentication: {}",
                                net::show(&public)
                            ),
                        )
                        .sev(if narrow {
                            Severity::Medium
                        } else {
                            Severity::High
                        })
                        .snip("main.cf", "mynetworks = 127.0.0.0/8 [::1]/128"),
                    );
                }
            }
            None if svc.is_none() => {
                let style = pf.val(None, "mynetworks_style");
                let style_loc = pf.location(None, "mynetworks_style");
                let shown = pf.shown(None, "mynetworks_style");
                match style.trim() {
                    "class" => out.push(
                        finding("PF-MYNETWORKS-STYLE-CLASS", style_loc, "mynetworks_style", shown, "mynetworks is unset, so Postfix trusts the whole class A/B/C network of every interface")
                            .snip("main.cf", "mynetworks = 127.0.0.0/8 [::1]/128"),
                    ),
                    "subnet" => out.push(
                        finding("PF-MYNETWORKS-STYLE-SUBNET", style_loc, "mynetworks_style", shown, "mynetworks is unset, so Postfix trusts every host on the subnets of this machine's interfaces (in a container that is only the container network)")
                            .snip("main.cf", "mynetworks = 127.0.0.0/8 [::1]/128"),
                    ),
                    _ => {}
                }
            }
            None => {}
        }
    }
    let relay = pf.val(None, "smtpd_relay_restrictions");
    if relay.trim().is_empty() {
        let why = if pf.main.contains_key("smtpd_relay_restrictions") {
            "smtpd_relay_restrictions is set to an empty value".to_string()
        } else {
            format!(
                "compatibility_level is {} (< 1), so smtpd_relay_restrictions defaults to empty",
                pf.shown(None, "compatibility_level")
            )
        };
        out.push(
            finding("PF-RELAY-SAFETY-NET-OFF", pf.location(None, "smtpd_relay_restrictions"), "smtpd_relay_restrictions", pf.shown(None, "smtpd_relay_restrictions"), why)
                .snip("main.cf", "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"),
        );
    }
}
