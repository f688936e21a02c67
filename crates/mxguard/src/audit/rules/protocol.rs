//! SMTP protocol hygiene on the port-25 service (HELO, pipelining, VRFY, banner, strict
//! envelopes), backscatter, delayed rejects, SMTP smuggling (CVE-2023-51764), size limits,
//! legacy compatibility, soft bounce and debugging (postconf(5), BACKSCATTER_README,
//! www.postfix.org/smtp-smuggling.html).

use super::super::net;
use super::super::postfix::{PostfixConfig, ServiceClass};
use super::super::postfix_defaults::Version;
use super::super::{Finding, Severity};
use super::{LISTS, finding};

/// Whether any restriction list of the service uses `name`.
fn uses(pf: &PostfixConfig, svc: &super::super::postfix::Service, names: &[&str]) -> bool {
    LISTS.iter().any(|l| {
        pf.restriction_list(Some(svc), l)
            .iter()
            .any(|r| names.contains(&r.name.as_str()))
    })
}

/// First patch level of each 3.x branch with `smtpd_forbid_bare_newline` (yes/no), and with
/// `normalize` (postconf(5), smtp-smuggling.html).
fn smuggling_param_since(v: Version) -> Option<(Version, Version)> {
    match (v.0, v.1) {
        (3, 5) => Some(((3, 5, 23), (3, 5, 24))),
        (3, 6) => Some(((3, 6, 13), (3, 6, 14))),
        (3, 7) => Some(((3, 7, 9), (3, 7, 10))),
        (3, 8) => Some(((3, 8, 4), (3, 8, 5))),
        _ => None,
    }
}

fn show_version(v: Version) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

pub(super) fn check(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    let mut smuggling_done = false;
    for (svc, class) in pf.public_smtpd() {
        let s = Some(&svc);
        if class == ServiceClass::Mx {
            if !pf.flag(s, "smtpd_helo_required") {
                out.push(
                    finding(
                        "PF-HELO-NOT-REQUIRED",
                        pf.loc_for(&svc, &["smtpd_helo_required"]),
                        "smtpd_helo_required",
                        pf.shown(s, "smtpd_helo_required"),
                        "clients may skip HELO/EHLO, which also skips the HELO restrictions",
                    )
                    .snip("main.cf", "smtpd_helo_required = yes"),
                );
            }
            if !uses(
                pf,
                &svc,
                &[
                    "reject_invalid_helo_hostname",
                    "reject_non_fqdn_helo_hostname",
                ],
            ) {
                out.push(finding("PF-HELO-NO-CHECKS", pf.loc_for(&svc, &["smtpd_helo_restrictions"]), "smtpd_helo_restrictions", pf.shown(s, "smtpd_helo_restrictions"), "no list uses reject_invalid_helo_hostname or reject_non_fqdn_helo_hostname").snip("main.cf", "smtpd_helo_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname"));
            }
            if uses(pf, &svc, &["reject_unknown_helo_hostname"]) {
                out.push(finding("PF-HELO-UNKNOWN-HOSTNAME", pf.loc_for(&svc, &["smtpd_helo_restrictions", "smtpd_recipient_restrictions"]), "smtpd_helo_restrictions", pf.shown(s, "smtpd_helo_restrictions"), "reject_unknown_helo_hostname is used: servers whose HELO name has no DNS record are rejected"));
            }
            if !uses(pf, &svc, &["reject_unauth_pipelining"])
                && !pf.flag(s, "smtpd_forbid_unauth_pipelining")
            {
                out.push(
                    finding(
                        "PF-UNAUTH-PIPELINING-ALLOWED",
                        pf.loc_for(
                            &svc,
                            &["smtpd_data_restrictions", "smtpd_forbid_unauth_pipelining"],
                        ),
                        "smtpd_data_restrictions",
                        pf.shown(s, "smtpd_data_restrictions"),
                        "no reject_unauth_pipelining and smtpd_forbid_unauth_pipelining is not yes",
                    )
                    .snip(
                        "main.cf",
                        "smtpd_data_restrictions = reject_unauth_pipelining",
                    ),
                );
            }
            if !pf.flag(s, "disable_vrfy_command") {
                out.push(
                    finding(
                        "PF-VRFY-ENABLED",
                        pf.loc_for(&svc, &["disable_vrfy_command"]),
                        "disable_vrfy_command",
                        pf.shown(s, "disable_vrfy_command"),
                        "the VRFY command answers which addresses exist",
                    )
                    .snip("main.cf", "disable_vrfy_command = yes"),
                );
            }
            if !pf.flag(s, "smtpd_reject_unlisted_recipient") {
                out.push(
                    finding(
                        "PF-BACKSCATTER-NO-RECIPIENT-VALIDATION",
                        pf.loc_for(&svc, &["smtpd_reject_unlisted_recipient"]),
                        "smtpd_reject_unlisted_recipient",
                        pf.shown(s, "smtpd_reject_unlisted_recipient"),
                        format!("{} accepts mail for unknown recipients", svc.id()),
                    )
                    .snip("main.cf", "smtpd_reject_unlisted_recipient = yes"),
                );
            }
        }
        if !pf.flag(s, "smtpd_delay_reject") {
            let lists: Vec<_> = ["smtpd_client_restrictions", "smtpd_helo_restrictions"]
                .iter()
                .flat_map(|l| pf.restriction_list(s, l))
                .collect();
            if !lists.is_empty() {
                let sasl = lists.iter().any(|r| r.name == "permit_sasl_authenticated");
                out.push(
                    finding(
                        "PF-DELAY-REJECT-OFF",
                        pf.loc_for(&svc, &["smtpd_delay_reject"]),
                        "smtpd_delay_reject",
                        pf.shown(s, "smtpd_delay_reject"),
                        format!(
                            "client/HELO restrictions of {} run before AUTH{}",
                            svc.id(),
                            if sasl {
                                "; their permit_sasl_authenticated never matches"
                            } else {
                                ""
                            }
                        ),
                    )
                    .sev(if sasl {
                        Severity::Medium
                    } else {
                        Severity::Low
                    })
                    .snip("main.cf", "smtpd_delay_reject = yes"),
                );
            }
        }
        let fbn = pf
            .val(s, "smtpd_forbid_bare_newline")
            .trim()
            .to_ascii_lowercase();
        if !smuggling_done && !matches!(fbn.as_str(), "yes" | "normalize" | "reject") {
            smuggling_done = true;
            let workaround = uses(pf, &svc, &["reject_unauth_pipelining"])
                && pf
                    .val(s, "smtpd_discard_ehlo_keywords")
                    .to_ascii_lowercase()
                    .contains("chunking");
            let version_note = match pf.version {
                Some(v) if v >= (3, 9, 0) => String::new(),
                Some(v) => match smuggling_param_since(v) {
                    Some((since, _)) if v < since => format!(" Postfix {} predates the fix: upgrade to {} or later first.", show_version(v), show_version((v.0, v.1, since.2 + 1))),
                    Some((_, norm)) if v < norm => format!(" Postfix {} knows only yes/no: set yes, or upgrade to {} for normalize.", show_version(v), show_version(norm)),
                    Some(_) => format!(" Postfix {} supports normalize.", show_version(v)),
                    None => format!(" Postfix {} has no smtpd_forbid_bare_newline: upgrade to a fixed release (3.7.10+, 3.8.5+, 3.9+).", show_version(v)),
                },
                None => " (Postfix version unknown: unless it is 3.9 or later, where normalize is the default.)".to_string(),
            };
            out.push(
                finding("PF-SMTP-SMUGGLING", pf.loc_for(&svc, &["smtpd_forbid_bare_newline"]), "smtpd_forbid_bare_newline", pf.shown(s, "smtpd_forbid_bare_newline"), format!("bare <LF> line endings are accepted (CVE-2023-51764).{version_note}{}", if workaround { " The reject_unauth_pipelining + discard CHUNKING workaround is present." } else { "" }))
                    .sev(if workaround { Severity::Medium } else { Severity::High })
                    .snip("main.cf", "smtpd_forbid_bare_newline = normalize\nsmtpd_forbid_bare_newline_exclusions = $mynetworks"),
            );
        }
        if matches!(fbn.as_str(), "yes" | "normalize" | "reject")
            && let Some(exc) = pf.get(s, "smtpd_forbid_bare_newline_exclusions")
        {
            let public = net::public_nets(&exc);
            if !public.is_empty() {
                out.push(
                    finding(
                        "PF-SMUGGLING-EXCLUSIONS-WIDE",
                        pf.loc_for(
                            &svc,
                            &["smtpd_forbid_bare_newline_exclusions", "mynetworks"],
                        ),
                        "smtpd_forbid_bare_newline_exclusions",
                        exc.clone(),
                        format!(
                            "SMTP smuggling protection is off for {}",
                            net::show(&public)
                        ),
                    )
                    .snip(
                        "main.cf",
                        "smtpd_forbid_bare_newline_exclusions = 127.0.0.0/8 [::1]/128",
                    ),
                );
            }
        }
    }
    main_checks(pf, out);
}

fn main_checks(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    if !pf.flag(None, "strict_rfc821_envelopes") {
        out.push(finding(
            "PF-STRICT-RFC821-OFF",
            pf.location(None, "strict_rfc821_envelopes"),
            "strict_rfc821_envelopes",
            pf.shown(None, "strict_rfc821_envelopes"),
            "MAIL FROM/RCPT TO without <> brackets are accepted",
        ));
    }
    let banner = pf
        .raw(None, "smtpd_banner")
        .map(|(b, _)| b)
        .unwrap_or_default();
    let version_re = regex::Regex::new(r"\$\{?\(?mail_version|\b\d+\.\d+(\.\d+)?\b").ok();
    if version_re.is_some_and(|re| re.is_match(&banner)) {
        out.push(
            finding(
                "PF-BANNER-VERSION",
                pf.location(None, "smtpd_banner"),
                "smtpd_banner",
                banner.clone(),
                "the SMTP greeting shows a version number",
            )
            .snip("main.cf", "smtpd_banner = $myhostname ESMTP"),
        );
    }
    let first = banner.split_whitespace().next().unwrap_or("");
    let host_first = ["$myhostname", "${myhostname}", "$(myhostname)"].contains(&first)
        || (first.contains('.') && !first.starts_with('$'));
    if !host_first {
        out.push(
            finding(
                "PF-BANNER-NO-HOSTNAME",
                pf.location(None, "smtpd_banner"),
                "smtpd_banner",
                banner.clone(),
                "the greeting does not start with the server's host name",
            )
            .snip("main.cf", "smtpd_banner = $myhostname ESMTP"),
        );
    }
    if let Some(p) = pf.main.get("local_recipient_maps")
        && p.value.trim().is_empty()
        && !pf.val(None, "mydestination").trim().is_empty()
    {
        out.push(finding("PF-BACKSCATTER-NO-RECIPIENT-VALIDATION", pf.location(None, "local_recipient_maps"), "local_recipient_maps", "(empty)", "local_recipient_maps is explicitly empty while mydestination lists domains: mail for any local name is accepted and bounced later").snip("main.cf", "# delete the empty 'local_recipient_maps =' line (default: proxy:unix:passwd.byname $alias_maps)"));
    }
    if let Some(p) = pf.main.get("relay_domains")
        && !p.value.trim().is_empty()
        && p.value.trim() != "$mydestination"
        && pf.val(None, "relay_recipient_maps").trim().is_empty()
    {
        out.push(finding("PF-BACKSCATTER-NO-RECIPIENT-VALIDATION", pf.location(None, "relay_domains"), "relay_recipient_maps", "(empty)", format!("relay_domains = {} without relay_recipient_maps: every recipient in those domains is accepted", p.value)).snip("main.cf", "relay_recipient_maps = hash:/etc/postfix/relay_recipients"));
    }
    let msg = pf.int(None, "message_size_limit").unwrap_or(10_240_000);
    if msg == 0 || msg > 104_857_600 {
        out.push(
            finding(
                "PF-MESSAGE-SIZE-UNLIMITED",
                pf.location(None, "message_size_limit"),
                "message_size_limit",
                pf.shown(None, "message_size_limit"),
                if msg == 0 {
                    "messages of any size are accepted".to_string()
                } else {
                    format!("messages up to {msg} bytes (> 100 MiB) are accepted")
                },
            )
            .sev(if msg == 0 {
                Severity::Medium
            } else {
                Severity::Low
            })
            .snip("main.cf", "message_size_limit = 52428800"),
        );
    }
    let mbox = pf.int(None, "mailbox_size_limit").unwrap_or(51_200_000);
    if mbox != 0 && msg != 0 && mbox < msg {
        out.push(finding("PF-MAILBOX-LT-MESSAGE-SIZE", pf.location(None, "mailbox_size_limit"), "mailbox_size_limit", pf.shown(None, "mailbox_size_limit"), format!("mailbox_size_limit ({mbox}) < message_size_limit ({msg}): local delivery refuses to run")).snip("main.cf", "mailbox_size_limit = 0"));
    }
    if pf.compat() < (2, 0, 0) {
        out.push(
            finding(
                "PF-COMPAT-LEVEL-LEGACY",
                pf.location(None, "compatibility_level"),
                "compatibility_level",
                pf.shown(None, "compatibility_level"),
                "legacy defaults apply (relay safety net, mynetworks_style, relay_domains)",
            )
            .snip("main.cf", "compatibility_level = 3.6"),
        );
    }
    if pf.flag(None, "soft_bounce") {
        out.push(
            finding(
                "PF-SOFT-BOUNCE",
                pf.location(None, "soft_bounce"),
                "soft_bounce",
                pf.shown(None, "soft_bounce"),
                "permanent errors are turned into temporary ones",
            )
            .snip("main.cf", "soft_bounce = no"),
        );
    }
    if !pf.val(None, "debug_peer_list").trim().is_empty() {
        out.push(finding(
            "PF-DEBUG-PEER",
            pf.location(None, "debug_peer_list"),
            "debug_peer_list",
            pf.shown(None, "debug_peer_list"),
            "verbose logging for the listed peers",
        ));
    }
    for svc in pf.effective_services() {
        if svc.args.iter().any(|a| a == "-v" || a == "-vv") {
            out.push(finding(
                "PF-DEBUG-PEER",
                pf.service_location(&svc),
                "master.cf -v",
                svc.args.join(" "),
                format!("{} runs with -v (verbose logging)", svc.id()),
            ));
        }
    }
}
