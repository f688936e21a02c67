//! Dovecot TLS versions and ciphers, listeners and sockets, privileges and durability
//! (DV-SSL-MIN-PROTOCOL-WEAK, DV-SSL-CIPHERS-WEAK, DV-LISTEN-ALL, DV-INTERNAL-LISTENER-EXPOSED,
//! DV-DOVEADM-PASSWORD-WEAK, DV-AUTH-MASTER-SOCKET-OPEN, DV-FIRST-VALID-UID-ZERO,
//! DV-MAIL-PRIVILEGED-GROUP-DANGEROUS, DV-MAIL-FSYNC-NEVER, DV-MAX-USERIP-HIGH,
//! DV-LOGIN-SERVICE-COUNT-ZERO).

use super::super::dovecot::DovecotConfig;
use super::super::{Finding, Severity};
use super::dovecot_auth::loopback_only;
use super::finding;

const INTERNAL: [&str; 10] = [
    "auth",
    "auth-worker",
    "doveadm",
    "quota-status",
    "lmtp",
    "dict",
    "stats",
    "replicator",
    "director",
    "aggregator",
];

fn wildcard(addr: &str) -> bool {
    addr.split([',', ' '])
        .filter(|a| !a.is_empty())
        .any(|a| matches!(a, "*" | "0.0.0.0" | "::" | "[::]"))
}

pub(super) fn check(dc: &DovecotConfig, out: &mut Vec<Finding>) {
    match dc
        .setting("ssl_min_protocol")
        .map(|s| s.value.trim().to_string())
    {
        Some(v) if matches!(v.as_str(), "SSLv3" | "TLSv1" | "TLSv1.1") => {
            out.push(
                finding(
                    "DV-SSL-MIN-PROTOCOL-WEAK",
                    dc.location("ssl_min_protocol"),
                    "ssl_min_protocol",
                    v.clone(),
                    format!("clients may negotiate {v}"),
                )
                .sev(if v == "SSLv3" {
                    Severity::High
                } else {
                    Severity::Medium
                })
                .snip("dovecot.conf", "ssl_min_protocol = TLSv1.2"),
            );
        }
        None if dc.version.is_some_and(|v| v < (2, 3, 15)) => {
            out.push(
                finding(
                    "DV-SSL-MIN-PROTOCOL-WEAK",
                    dc.location("ssl_min_protocol"),
                    "ssl_min_protocol",
                    "(default) TLSv1",
                    "before Dovecot 2.3.15 the default minimum is TLSv1",
                )
                .snip("dovecot.conf", "ssl_min_protocol = TLSv1.2"),
            );
        }
        _ => {}
    }
    if let Some(p) = dc.setting("ssl_protocols")
        && p.value.contains("SSLv3")
        && !p.value.contains("!SSLv3")
    {
        out.push(
            finding(
                "DV-SSL-MIN-PROTOCOL-WEAK",
                dc.location("ssl_protocols"),
                "ssl_protocols",
                p.value.clone(),
                "legacy ssl_protocols allows SSLv3",
            )
            .sev(Severity::High)
            .snip("dovecot.conf", "ssl_min_protocol = TLSv1.2"),
        );
    }
    if let Some(c) = dc.setting("ssl_cipher_list") {
        let toks: Vec<&str> = c
            .value
            .split([':', ',', ' '])
            .filter(|t| !t.is_empty())
            .collect();
        let excluded = |name: &str| {
            toks.iter().any(|t| {
                (t.starts_with('!') || t.starts_with('-'))
                    && t.get(1..).is_some_and(|r| r.eq_ignore_ascii_case(name))
            })
        };
        let bad: Vec<&str> = [
            "RC4",
            "3DES",
            "DES-CBC3-SHA",
            "EXPORT",
            "EXP",
            "NULL",
            "aNULL",
            "eNULL",
        ]
        .into_iter()
        .filter(|b| {
            toks.iter().any(|t| {
                !t.starts_with(['!', '-'])
                    && t.to_ascii_uppercase().contains(&b.to_ascii_uppercase())
            }) && !excluded(b)
        })
        .collect();
        let bare_all = toks.iter().any(|t| t.eq_ignore_ascii_case("ALL"))
            && !toks.iter().any(|t| t.starts_with('!'));
        if !bad.is_empty() || bare_all {
            out.push(
                finding(
                    "DV-SSL-CIPHERS-WEAK",
                    dc.location("ssl_cipher_list"),
                    "ssl_cipher_list",
                    c.value.clone(),
                    if bad.is_empty() {
                        "ALL without exclusions enables every cipher OpenSSL has".to_string()
                    } else {
                        format!("weak ciphers enabled: {}", bad.join(" "))
                    },
                )
                .snip(
                    "dovecot.conf",
                    "# delete ssl_cipher_list to use the default",
                ),
            );
        }
    }
    let listen = dc.val("listen");
    if wildcard(&listen) {
        out.push(finding("DV-LISTEN-ALL", dc.location("listen"), "listen", dc.shown("listen"), "Dovecot listens on every interface; bind to loopback if it only serves local webmail and Postfix SASL"));
    }
    for (path, svc) in dc.sections("service") {
        let name = svc.name.clone().unwrap_or_default();
        for l in svc.children.iter().filter(|c| c.kind == "inet_listener") {
            let addr = l.get("address").map(|a| a.value.clone());
            let exposed = match &addr {
                Some(a) => wildcard(a),
                None => !loopback_only(dc),
            };
            // A listener without a port (or port 0) opens no socket: the stock
            // 10-director.conf has `service director { inet_listener { #port = } }`.
            let listening = l
                .get("port")
                .is_some_and(|p| p.value.trim().parse::<u16>().is_ok_and(|n| n > 0));
            if INTERNAL.contains(&name.as_str()) && exposed && listening {
                out.push(finding("DV-INTERNAL-LISTENER-EXPOSED", dc.section_location(&format!("{path} / {}", l.label()), l), "address", addr.clone().unwrap_or_else(|| format!("(inherits listen = {listen})")), format!("the internal '{name}' service has a TCP listener (port {}) on non-loopback addresses", l.get("port").map(|p| p.value.as_str()).unwrap_or("?"))).snip("dovecot.conf", format!("service {name} {{\n  inet_listener {} {{\n    address = 127.0.0.1\n  }}\n}}", l.name.clone().unwrap_or_default())));
            }
        }
        for l in svc.children.iter().filter(|c| c.kind == "unix_listener") {
            let lname = l.name.clone().unwrap_or_default();
            let mode = l
                .get("mode")
                .map(|m| m.value.trim().to_string())
                .unwrap_or_default();
            let open = (lname.ends_with("auth-master")
                && matches!(mode.as_str(), "0666" | "0777" | "666" | "777"))
                || (lname.ends_with("auth-userdb") && matches!(mode.as_str(), "0777" | "777"));
            if name == "auth" && open {
                out.push(finding("DV-AUTH-MASTER-SOCKET-OPEN", dc.section_location(&format!("{path} / {}", l.label()), l), "mode", mode.clone(), format!("{lname} is accessible to every local user")).snip("dovecot.conf", format!("service auth {{\n  unix_listener {lname} {{\n    mode = 0600\n    user = vmail\n  }}\n}}")));
            }
        }
        if name.ends_with("-login")
            && svc
                .get("service_count")
                .is_some_and(|c| c.value.trim() == "0")
        {
            out.push(finding(
                "DV-LOGIN-SERVICE-COUNT-ZERO",
                dc.section_location(&path, svc),
                "service_count",
                "0",
                format!("{name} runs in high-performance mode"),
            ));
        }
    }
    let doveadm_tcp = dc.val("doveadm_port").trim() != "0"
        || dc.sections("service").iter().any(|(_, s)| {
            s.name.as_deref() == Some("doveadm")
                && s.children.iter().any(|c| c.kind == "inet_listener")
        });
    if doveadm_tcp {
        for key in ["doveadm_password", "doveadm_api_key"] {
            match dc.setting(key) {
                Some(s) if s.hidden() => {}
                Some(s) => {
                    let weak = s.value.len() < 16
                        || ["secret", "password", "changeme", "doveadm"]
                            .iter()
                            .any(|w| s.value.eq_ignore_ascii_case(w));
                    if weak {
                        out.push(finding("DV-DOVEADM-PASSWORD-WEAK", dc.location(key), key, "(weak, not shown)", format!("{key} is shorter than 16 characters or a dictionary word while doveadm listens on TCP")).snip("dovecot.conf", format!("{key} = <openssl rand -hex 32>")));
                    }
                }
                None if key == "doveadm_password" => {
                    out.push(finding("DV-DOVEADM-PASSWORD-WEAK", dc.location(key), key, "(unset)", "doveadm listens on TCP but doveadm_password is unset (TCP doveadm then fails; it may be generated at start-up)").sev(Severity::Info));
                }
                None => {}
            }
        }
    }
    for key in ["first_valid_uid", "first_valid_gid"] {
        if dc.setting(key).is_some_and(|s| s.value.trim() == "0") {
            out.push(
                finding(
                    "DV-FIRST-VALID-UID-ZERO",
                    dc.location(key),
                    key,
                    "0",
                    "mail processes may run as root (uid/gid 0)",
                )
                .snip("dovecot.conf", format!("{key} = 500")),
            );
        }
    }
    for key in ["mail_privileged_group", "mail_access_groups"] {
        let v = dc.val(key);
        let bad: Vec<&str> = v
            .split([',', ' '])
            .filter(|g| ["root", "wheel", "adm", "sudo", "shadow", "disk"].contains(g))
            .collect();
        if !bad.is_empty() {
            out.push(
                finding(
                    "DV-MAIL-PRIVILEGED-GROUP-DANGEROUS",
                    dc.location(key),
                    key,
                    v.clone(),
                    format!(
                        "mail processes get the privileged group(s) {}",
                        bad.join(", ")
                    ),
                )
                .snip("dovecot.conf", format!("{key} = mail")),
            );
        }
    }
    if dc.val("mail_fsync").trim() == "never" {
        let per_proto = dc
            .sections("protocol")
            .iter()
            .filter(|(_, p)| {
                p.get("mail_fsync")
                    .is_some_and(|f| f.value.trim() != "never")
            })
            .map(|(_, p)| p.label())
            .collect::<Vec<_>>();
        out.push(
            finding(
                "DV-MAIL-FSYNC-NEVER",
                dc.location("mail_fsync"),
                "mail_fsync",
                "never",
                if per_proto.is_empty() {
                    "no fsync at all: delivered mail can be lost on a crash".to_string()
                } else {
                    format!(
                        "fsync is off globally (re-enabled only in: {})",
                        per_proto.join(", ")
                    )
                },
            )
            .snip("dovecot.conf", "mail_fsync = optimized"),
        );
    }
    let mut userip = vec![(
        dc.location("mail_max_userip_connections"),
        dc.val("mail_max_userip_connections"),
    )];
    for (path, p) in dc.sections("protocol") {
        if let Some(s) = p.get("mail_max_userip_connections") {
            userip.push((dc.section_location(&path, p), s.value.clone()));
        }
    }
    for (loc, v) in userip {
        if v.trim().parse::<u64>().is_ok_and(|n| n > 100) {
            out.push(finding(
                "DV-MAX-USERIP-HIGH",
                loc,
                "mail_max_userip_connections",
                v.clone(),
                format!("{v} connections per user and IP"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        let dc = DovecotConfig::parse(text, "t", None).unwrap();
        let mut out = Vec::new();
        check(&dc, &mut out);
        out.into_iter().map(|f| f.rule).collect()
    }

    /// Found by scripts/it/audit_real.sh on the stock Debian 10-director.conf, whose
    /// `service director { inet_listener { #port = } }` opens no socket.
    #[test]
    fn regression_portless_director_listener_is_not_exposed() {
        assert!(
            !ids("service director {\n  inet_listener {\n  }\n}\n")
                .contains(&"DV-INTERNAL-LISTENER-EXPOSED")
        );
        assert!(
            !ids("service doveadm {\n  inet_listener {\n    port = 0\n  }\n}\n")
                .contains(&"DV-INTERNAL-LISTENER-EXPOSED")
        );
        assert!(
            ids("service doveadm {\n  inet_listener {\n    port = 2425\n  }\n}\n")
                .contains(&"DV-INTERNAL-LISTENER-EXPOSED")
        );
    }

    #[test]
    fn mail_group_is_not_dangerous() {
        assert!(
            !ids("mail_privileged_group = mail\n").contains(&"DV-MAIL-PRIVILEGED-GROUP-DANGEROUS")
        );
        assert!(
            ids("mail_access_groups = shadow\n").contains(&"DV-MAIL-PRIVILEGED-GROUP-DANGEROUS")
        );
    }
}
