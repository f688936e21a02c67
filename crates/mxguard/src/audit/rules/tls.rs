//! Postfix server TLS (PF-TLS-*) and self-signed default certificates in Postfix and Dovecot
//! (XX-TLS-SNAKEOIL-CERT). Protocol grammar of postconf(5) smtpd_tls_protocols: `>=TLSv1.2`,
//! `<=`, exclusions `!SSLv3`, or an inclusion list, separated by commas, colons or spaces.

use super::super::input::Inputs;
use super::super::postfix::{PostfixConfig, ServiceClass};
use super::super::{Finding, Location, Severity};
use super::finding;

const PROTOCOLS: [&str; 6] = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/// Protocol versions a Postfix protocol specification allows.
pub(crate) fn allowed_protocols(spec: &str) -> Vec<&'static str> {
    let idx = |name: &str| {
        PROTOCOLS
            .iter()
            .position(|p| p.eq_ignore_ascii_case(name.trim()))
    };
    let mut allowed: Vec<bool> = vec![true; PROTOCOLS.len()];
    let mut inclusions = Vec::new();
    for tok in spec
        .split([',', ':', ' ', '\t'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if let Some(v) = tok.strip_prefix(">=").and_then(idx) {
            allowed.iter_mut().take(v).for_each(|a| *a = false);
        } else if let Some(v) = tok.strip_prefix("<=").and_then(idx) {
            allowed.iter_mut().skip(v + 1).for_each(|a| *a = false);
        } else if let Some(v) = tok.strip_prefix('!').and_then(idx) {
            allowed[v] = false;
        } else if let Some(v) = idx(tok) {
            inclusions.push(v);
        }
    }
    if !inclusions.is_empty() {
        for (i, a) in allowed.iter_mut().enumerate() {
            *a = *a && inclusions.contains(&i);
        }
    }
    PROTOCOLS
        .iter()
        .zip(allowed)
        .filter(|(_, a)| *a)
        .map(|(p, _)| *p)
        .collect()
}

pub(super) fn check(pf: &PostfixConfig, out: &mut Vec<Finding>) {
    let mut mandatory_used = false;
    let mut tls_used = false;
    for (svc, class) in pf.public_smtpd() {
        let s = Some(&svc);
        let level = pf
            .val(s, "smtpd_tls_security_level")
            .trim()
            .to_ascii_lowercase();
        let wrapper = pf.flag(s, "smtpd_tls_wrappermode");
        let legacy = pf.flag(s, "smtpd_use_tls") || pf.flag(s, "smtpd_enforce_tls");
        let offered = wrapper || legacy || matches!(level.as_str(), "may" | "encrypt");
        if !offered && matches!(class, ServiceClass::Mx | ServiceClass::Submission) {
            out.push(
                finding(
                    "PF-TLS-NOT-OFFERED",
                    pf.loc_for(&svc, &["smtpd_tls_security_level"]),
                    "smtpd_tls_security_level",
                    pf.shown(s, "smtpd_tls_security_level"),
                    format!("{} does not offer STARTTLS", svc.id()),
                )
                .snip("main.cf", "smtpd_tls_security_level = may"),
            );
        }
        if offered {
            tls_used = true;
            let certs = [
                "smtpd_tls_chain_files",
                "smtpd_tls_cert_file",
                "smtpd_tls_eccert_file",
            ];
            if certs.iter().all(|c| pf.val(s, c).trim().is_empty()) {
                out.push(finding("PF-TLS-NO-CERT", pf.loc_for(&svc, &certs), "smtpd_tls_cert_file", pf.shown(s, "smtpd_tls_cert_file"), format!("{} has TLS enabled but no certificate is configured", svc.id())).snip("main.cf", "smtpd_tls_chain_files = /etc/ssl/private/mail.key /etc/ssl/certs/mail.fullchain.pem"));
            }
        }
        if wrapper || level == "encrypt" || pf.flag(s, "smtpd_enforce_tls") {
            mandatory_used = true;
            let spec = pf.val(s, "smtpd_tls_mandatory_protocols");
            let allowed = allowed_protocols(&spec);
            let weak: Vec<&str> = allowed
                .iter()
                .copied()
                .filter(|p| !p.starts_with("TLSv1.2") && !p.starts_with("TLSv1.3"))
                .collect();
            if !weak.is_empty() {
                let sev = if weak.iter().any(|p| p.starts_with("SSL")) {
                    Severity::High
                } else {
                    Severity::Medium
                };
                out.push(
                    finding(
                        "PF-TLS-MANDATORY-PROTOCOLS-WEAK",
                        pf.loc_for(&svc, &["smtpd_tls_mandatory_protocols"]),
                        "smtpd_tls_mandatory_protocols",
                        pf.shown(s, "smtpd_tls_mandatory_protocols"),
                        format!(
                            "mandatory TLS on {} still allows {}",
                            svc.id(),
                            weak.join(", ")
                        ),
                    )
                    .sev(sev)
                    .snip("main.cf", "smtpd_tls_mandatory_protocols = >=TLSv1.2"),
                );
            }
            let grade = pf
                .val(s, "smtpd_tls_mandatory_ciphers")
                .trim()
                .to_ascii_lowercase();
            if matches!(grade.as_str(), "export" | "low" | "null") {
                out.push(
                    finding(
                        "PF-TLS-CIPHERS-WEAK",
                        pf.loc_for(&svc, &["smtpd_tls_mandatory_ciphers"]),
                        "smtpd_tls_mandatory_ciphers",
                        grade.clone(),
                        format!(
                            "mandatory TLS on {} uses the '{grade}' cipher grade",
                            svc.id()
                        ),
                    )
                    .snip("main.cf", "smtpd_tls_mandatory_ciphers = high"),
                );
            }
        }
        if svc.port() == Some(587) && wrapper {
            out.push(
                finding(
                    "PF-TLS-WRAPPERMODE-PORT",
                    pf.service_location(&svc),
                    "smtpd_tls_wrappermode",
                    "yes",
                    format!(
                        "{} is port 587 (STARTTLS) but runs in wrapper mode",
                        svc.id()
                    ),
                )
                .snip(
                    "master.cf",
                    "# remove -o smtpd_tls_wrappermode=yes from the submission (587) service",
                ),
            );
        }
        if matches!(svc.name.as_str(), "smtps" | "submissions" | "465") && !wrapper {
            out.push(
                finding(
                    "PF-TLS-WRAPPERMODE-PORT",
                    pf.service_location(&svc),
                    "smtpd_tls_wrappermode",
                    pf.shown(s, "smtpd_tls_wrappermode"),
                    format!(
                        "{} is port 465 (implicit TLS) but not in wrapper mode",
                        svc.id()
                    ),
                )
                .snip(
                    "master.cf",
                    format!(
                        "{} inet n - y - - smtpd\n  -o smtpd_tls_wrappermode=yes",
                        svc.name
                    ),
                ),
            );
        }
    }
    let _ = mandatory_used;
    if tls_used {
        let spec = pf.val(None, "smtpd_tls_protocols");
        let ssl: Vec<&str> = allowed_protocols(&spec)
            .into_iter()
            .filter(|p| p.starts_with("SSL"))
            .collect();
        if !ssl.is_empty() {
            out.push(
                finding(
                    "PF-TLS-PROTOCOLS-SSLV3",
                    pf.location(None, "smtpd_tls_protocols"),
                    "smtpd_tls_protocols",
                    pf.shown(None, "smtpd_tls_protocols"),
                    format!("opportunistic TLS allows {}", ssl.join(", ")),
                )
                .snip("main.cf", "smtpd_tls_protocols = >=TLSv1"),
            );
        }
        let grade = pf
            .val(None, "smtpd_tls_ciphers")
            .trim()
            .to_ascii_lowercase();
        if matches!(grade.as_str(), "export" | "low" | "null") {
            out.push(
                finding(
                    "PF-TLS-CIPHERS-WEAK",
                    pf.location(None, "smtpd_tls_ciphers"),
                    "smtpd_tls_ciphers",
                    grade.clone(),
                    format!("opportunistic TLS uses the '{grade}' cipher grade"),
                )
                .sev(Severity::Low)
                .snip("main.cf", "smtpd_tls_ciphers = medium"),
            );
        }
    }
    for p in [
        "smtpd_use_tls",
        "smtpd_enforce_tls",
        "smtpd_tls_dh512_param_file",
        "smtp_use_tls",
    ] {
        if pf.main.contains_key(p) {
            out.push(finding(
                "PF-TLS-OBSOLETE-PARAMS",
                pf.location(None, p),
                p,
                pf.shown(None, p),
                format!("{p} is obsolete"),
            ));
        }
    }
}

/// Whether a certificate path is a distribution's self-signed default.
fn snakeoil(path: &str) -> bool {
    path.contains("snakeoil")
        || path.contains("/etc/dovecot/private/dovecot.pem")
        || path.contains("/etc/pki/dovecot/certs/dovecot.pem")
}

pub(super) fn check_snakeoil(inputs: &Inputs, out: &mut Vec<Finding>) {
    if let Some(pf) = &inputs.postfix {
        let services = pf.public_smtpd();
        for p in ["smtpd_tls_chain_files", "smtpd_tls_cert_file"] {
            let v = pf.val(None, p);
            if snakeoil(&v) {
                let submission = services.iter().any(|(s, c)| {
                    matches!(c, ServiceClass::Submission | ServiceClass::Submissions)
                        && !s.overrides.contains_key(p)
                });
                out.push(finding("XX-TLS-SNAKEOIL-CERT", pf.location(None, p), p, v.clone(), if submission { "mail clients on submission get a self-signed certificate" } else { "port 25 uses a self-signed certificate (opportunistic TLS does not authenticate, so this is hygiene)" }).sev(if submission { Severity::Medium } else { Severity::Low }).snip("main.cf", "smtpd_tls_chain_files = /etc/letsencrypt/live/mail.example.org/privkey.pem /etc/letsencrypt/live/mail.example.org/fullchain.pem"));
            }
        }
    }
    if let Some(dc) = &inputs.dovecot {
        for key in ["ssl_cert", "ssl_server_cert_file"] {
            if let Some(s) = dc.setting(key)
                && snakeoil(&s.value)
                && !super::dovecot_auth::ssl_off(dc)
            {
                out.push(finding("XX-TLS-SNAKEOIL-CERT", Location { file: s.file.clone(), service: None, line: Some(s.line) }, key, s.value.clone(), "IMAP/POP3 clients get the self-signed certificate generated at install time").sev(Severity::Medium).snip("dovecot.conf", "ssl_cert = </etc/letsencrypt/live/mail.example.org/fullchain.pem\nssl_key = </etc/letsencrypt/live/mail.example.org/privkey.pem"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_specs() {
        assert_eq!(
            allowed_protocols(">=TLSv1"),
            ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
        );
        assert_eq!(allowed_protocols(">=TLSv1.2"), ["TLSv1.2", "TLSv1.3"]);
        assert_eq!(
            allowed_protocols("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"),
            ["TLSv1.2", "TLSv1.3"]
        );
        assert_eq!(
            allowed_protocols("!SSLv2"),
            ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
        );
        assert_eq!(allowed_protocols("TLSv1.2 TLSv1.3"), ["TLSv1.2", "TLSv1.3"]);
    }
}
