//! SMTP AUTH and sender identity (PF-SASL-PLAINTEXT-NO-TLS, PF-SASL-ON-PORT25,
//! PF-SUBMISSION-TLS-NOT-REQUIRED, PF-SENDER-SPOOF-AUTHENTICATED, PF-SENDER-LOGIN-MAPS-MISSING,
//! PF-SASL-AUTH-HEADER, PF-BROKEN-SASL-CLIENTS), judged per master.cf service with its `-o`
//! overrides (SASL_README, postconf(5)).

use super::super::Finding;
use super::super::postfix::{PostfixConfig, ServiceClass};
use super::{LISTS, finding};

const MISMATCH: [&str; 3] = [
    "reject_sender_login_mismatch",
    "reject_authenticated_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
];

pub(super) fn check(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    for (svc, class) in pf.public_smtpd() {
        let s = Some(&svc);
        let sasl = pf.sasl_on(&svc);
        let level = pf
            .val(s, "smtpd_tls_security_level")
            .trim()
            .to_ascii_lowercase();
        let encrypt = level == "encrypt" || pf.flag(s, "smtpd_enforce_tls");
        let wrapper = pf.flag(s, "smtpd_tls_wrappermode");
        if sasl && !wrapper && !encrypt && !pf.flag(s, "smtpd_tls_auth_only") {
            let opts = pf.val(s, "smtpd_sasl_security_options");
            if !opts.contains("noplaintext") {
                out.push(
                    finding(
                        "PF-SASL-PLAINTEXT-NO-TLS",
                        pf.loc_for(&svc, &["smtpd_tls_auth_only", "smtpd_sasl_auth_enable", "smtpd_tls_security_level"]),
                        "smtpd_tls_auth_only",
                        pf.shown(s, "smtpd_tls_auth_only"),
                        format!("AUTH is enabled on {} with smtpd_tls_security_level = '{level}' and smtpd_tls_auth_only = no: passwords can be sent before STARTTLS", svc.id()),
                    )
                    .snip("main.cf", "smtpd_tls_auth_only = yes"),
                );
            }
        }
        if sasl && class == ServiceClass::Mx {
            out.push(
                finding(
                    "PF-SASL-ON-PORT25",
                    pf.loc_for(&svc, &["smtpd_sasl_auth_enable"]),
                    "smtpd_sasl_auth_enable",
                    pf.shown(s, "smtpd_sasl_auth_enable"),
                    format!("AUTH is offered on the port-25 service {}", svc.id()),
                )
                .snip("main.cf", "smtpd_sasl_auth_enable = no")
                .snip(
                    "master.cf",
                    "submission inet n - y - - smtpd\n  -o smtpd_sasl_auth_enable=yes",
                ),
            );
        }
        if class == ServiceClass::Submission
            && !encrypt
            && !wrapper
            && !pf.flag(s, "smtpd_tls_auth_only")
        {
            out.push(
                finding(
                    "PF-SUBMISSION-TLS-NOT-REQUIRED",
                    pf.service_location(&svc),
                    "smtpd_tls_security_level",
                    pf.shown(s, "smtpd_tls_security_level"),
                    format!("{} accepts mail submission without TLS", svc.id()),
                )
                .snip(
                    "master.cf",
                    format!(
                        "{} inet n - y - - smtpd\n  -o smtpd_tls_security_level=encrypt",
                        svc.name
                    ),
                ),
            );
        }
        if !sasl {
            continue;
        }
        // A mismatch check counts only when it precedes every permit in its list: after
        // permit_sasl_authenticated it never runs for logged-in clients.
        let mut protected = false;
        let mut uses_mismatch = false;
        for list in LISTS {
            for r in pf.restriction_list(s, list) {
                if MISMATCH.contains(&r.name.as_str()) {
                    uses_mismatch = true;
                    protected = true;
                    break;
                }
                if r.name.starts_with("permit") {
                    break;
                }
            }
            if pf
                .restriction_list(s, list)
                .iter()
                .any(|r| MISMATCH.contains(&r.name.as_str()))
            {
                uses_mismatch = true;
            }
        }
        if !protected {
            let policy = LISTS.iter().any(|l| {
                pf.restriction_list(s, l)
                    .iter()
                    .any(|r| r.name == "check_policy_service")
            });
            let extra = if policy {
                " (unless one of your policy services enforces sender ownership)"
            } else {
                ""
            };
            out.push(
                finding(
                    "PF-SENDER-SPOOF-AUTHENTICATED",
                    pf.loc_for(&svc, &["smtpd_sender_restrictions", "smtpd_recipient_restrictions", "smtpd_relay_restrictions", "smtpd_client_restrictions"]),
                    "smtpd_sender_restrictions",
                    pf.shown(s, "smtpd_sender_restrictions"),
                    format!("no reject_sender_login_mismatch before permit_sasl_authenticated on a service with AUTH ({}): any account can send as any address{extra}", svc.id()),
                )
                .snip("main.cf", "smtpd_sender_login_maps = hash:/etc/postfix/sender_login\nsmtpd_sender_restrictions = reject_sender_login_mismatch, permit_sasl_authenticated"),
            );
        }
        if uses_mismatch && pf.val(s, "smtpd_sender_login_maps").trim().is_empty() {
            out.push(
                finding("PF-SENDER-LOGIN-MAPS-MISSING", pf.loc_for(&svc, &["smtpd_sender_login_maps"]), "smtpd_sender_login_maps", pf.shown(s, "smtpd_sender_login_maps"), format!("a *_sender_login_mismatch restriction is used on {} but smtpd_sender_login_maps is empty (may be set at runtime by a container entrypoint)", svc.id()))
                    .snip("main.cf", "smtpd_sender_login_maps = hash:/etc/postfix/sender_login"),
            );
        }
        if pf.flag(s, "smtpd_sasl_authenticated_header") {
            out.push(finding(
                "PF-SASL-AUTH-HEADER",
                pf.loc_for(&svc, &["smtpd_sasl_authenticated_header"]),
                "smtpd_sasl_authenticated_header",
                pf.shown(s, "smtpd_sasl_authenticated_header"),
                "login names appear in Received: headers",
            ));
        }
    }
    if pf.flag(None, "broken_sasl_auth_clients") {
        out.push(
            finding(
                "PF-BROKEN-SASL-CLIENTS",
                pf.location(None, "broken_sasl_auth_clients"),
                "broken_sasl_auth_clients",
                pf.shown(None, "broken_sasl_auth_clients"),
                "compatibility mode for Outlook Express 4 era clients is on",
            )
            .snip("main.cf", "broken_sasl_auth_clients = no"),
        );
    }
}
