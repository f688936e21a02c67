//! Checks across components: Postfix SASL/LMTP sockets against Dovecot listeners
//! (XC-*), fail2ban jails (F2B-*) and mxguard's own wiring (MX-*). Each runs only when the
//! inputs it compares were given.

use super::super::dovecot::DovecotConfig;
use super::super::input::Inputs;
use super::super::mxconfig::port_of;
use super::super::net::{self, NetEntry};
use super::super::postfix::PostfixConfig;
use super::super::{Finding, Location};
use super::{LISTS, finding};

/// Absolute path of a Postfix socket name relative to queue_directory (`private/auth`).
fn spool_path(pf: &PostfixConfig, p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!(
            "{}/{}",
            pf.val(None, "queue_directory").trim_end_matches('/'),
            p
        )
    }
}

/// Absolute paths of a Dovecot service's unix listeners. Relative names live in base_dir
/// (default /run/dovecot, also reached as /var/run/dovecot); the built-in listeners that
/// `doveconf -n` does not print (auth-client, auth-userdb, auth-master, lmtp) are included.
fn unix_listeners(dc: &DovecotConfig, service: &str) -> Vec<String> {
    let bases: Vec<String> = match dc.setting("base_dir") {
        Some(s) => vec![s.value.trim_end_matches('/').to_string()],
        None => vec!["/run/dovecot".into(), "/var/run/dovecot".into()],
    };
    let builtin: &[&str] = match service {
        "auth" => &["auth-client", "auth-userdb", "auth-master", "auth-login"],
        "lmtp" => &["lmtp"],
        _ => &[],
    };
    let mut names: Vec<String> = builtin.iter().map(|s| s.to_string()).collect();
    names.extend(
        dc.sections("service")
            .into_iter()
            .filter(|(_, s)| s.name.as_deref() == Some(service))
            .flat_map(|(_, s)| {
                s.children
                    .iter()
                    .filter(|c| c.kind == "unix_listener")
                    .filter_map(|c| c.name.clone())
                    .collect::<Vec<_>>()
            }),
    );
    let mut out = Vec::new();
    for n in names {
        if n.starts_with('/') {
            out.push(n);
        } else {
            out.extend(bases.iter().map(|b| format!("{b}/{n}")));
        }
    }
    out
}

fn inet_ports(dc: &DovecotConfig, service: &str) -> Vec<u16> {
    dc.sections("service")
        .into_iter()
        .filter(|(_, s)| s.name.as_deref() == Some(service))
        .flat_map(|(_, s)| {
            s.children
                .iter()
                .filter(|c| c.kind == "inet_listener")
                .filter_map(|c| c.get("port").and_then(|p| p.value.trim().parse().ok()))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(super) fn check(inputs: &Inputs, out: &mut Vec<Finding>) {
    if let (Some(pf), Some(dc)) = (&inputs.postfix, &inputs.dovecot) {
        sockets(pf, dc, out);
    }
    if let Some(f2b) = &inputs.fail2ban {
        let jails = f2b.enabled_jails();
        let has = |prefixes: &[&str]| {
            jails
                .iter()
                .any(|(_, f)| prefixes.iter().any(|p| f.starts_with(p)))
        };
        let loc = Location {
            file: f2b.sources.last().cloned().unwrap_or_default(),
            service: None,
            line: None,
        };
        if let Some(pf) = &inputs.postfix
            && pf.public_smtpd().iter().any(|(s, _)| pf.sasl_on(s))
            && !has(&[
                "postfix-sasl",
                "postfix[mode=auth",
                "postfix[mode=aggressive",
            ])
        {
            out.push(
                finding(
                    "F2B-NO-POSTFIX-SASL-JAIL",
                    loc.clone(),
                    "[postfix-sasl]",
                    "(not enabled)",
                    "Postfix offers AUTH but no enabled jail bans SASL brute-forcers",
                )
                .snip(
                    "jail.local",
                    "[postfix-sasl]\nenabled = true\nfilter = postfix[mode=auth]",
                ),
            );
        }
        if let Some(dc) = &inputs.dovecot
            && !has(&["dovecot"])
            && dc.val("auth_policy_server_url").trim().is_empty()
        {
            out.push(
                finding(
                    "F2B-NO-DOVECOT-JAIL",
                    loc.clone(),
                    "[dovecot]",
                    "(not enabled)",
                    "Dovecot has neither a fail2ban jail nor an auth policy server",
                )
                .snip("jail.local", "[dovecot]\nenabled = true"),
            );
        }
        if has(&["postfix", "dovecot", "sieve"]) && !has(&["recidive"]) {
            out.push(
                finding(
                    "F2B-NO-RECIDIVE",
                    loc.clone(),
                    "[recidive]",
                    "(not enabled)",
                    "mail jails are enabled but repeat offenders are not banned longer",
                )
                .snip(
                    "jail.local",
                    "[recidive]\nenabled = true\nbantime = 1w\nfindtime = 1d",
                ),
            );
        }
        for (jail, keys) in &f2b.sections {
            if let Some((v, file, line)) = keys.get("ignoreip") {
                let wide: Vec<_> = net::entries(v)
                    .into_iter()
                    .filter_map(|e| match e {
                        NetEntry::Net(n) if net::is_everything(&n) => Some(n),
                        NetEntry::Net(n @ ipnet::IpNet::V4(x))
                            if !net::is_private(&n) && x.prefix_len() < 24 =>
                        {
                            Some(n)
                        }
                        NetEntry::Net(n @ ipnet::IpNet::V6(x))
                            if !net::is_private(&n) && x.prefix_len() < 48 =>
                        {
                            Some(n)
                        }
                        _ => None,
                    })
                    .collect();
                if !wide.is_empty() {
                    out.push(
                        finding(
                            "F2B-IGNOREIP-WIDE",
                            Location {
                                file: file.clone(),
                                service: Some(format!("jail {jail}")),
                                line: Some(*line),
                            },
                            "ignoreip",
                            v.clone(),
                            format!("never banned: {}", net::show(&wide)),
                        )
                        .snip("jail.local", "ignoreip = 127.0.0.1/8 ::1"),
                    );
                }
            }
        }
    }
    if let (Some(sa), Some(pf)) = (&inputs.spamassassin, &inputs.postfix)
        && sa.trusted_networks.is_empty()
        && sa.internal_networks.is_empty()
        && let Some(m) = pf.get(None, "mynetworks")
    {
        let private: Vec<_> = net::entries(&m)
            .into_iter()
            .filter_map(|e| match e {
                NetEntry::Net(n) if net::is_private(&n) && !net::is_loopback(&n) => Some(n),
                _ => None,
            })
            .collect();
        if !private.is_empty() {
            out.push(
                finding("SA-TRUSTED-NETWORKS-UNSET", Location { file: sa.source.clone(), service: None, line: None }, "trusted_networks", "(unset)", format!("Postfix trusts the private networks {} but SpamAssassin has no trusted_networks/internal_networks: their hops get RDNS_NONE and DNSBL hits", net::show(&private)))
                    .snip("local.cf", format!("trusted_networks {}\ninternal_networks {}", net::show(&private), net::show(&private))),
            );
        }
    }
    if let Some(mx) = &inputs.mxguard {
        let loc = Location {
            file: mx.source.clone(),
            service: None,
            line: None,
        };
        if let Some(pf) = &inputs.postfix
            && !mx.policy_listen.is_empty()
        {
            let mut targets: Vec<Option<&super::super::postfix::Service>> = vec![None];
            let services = pf.effective_services();
            targets.extend(services.iter().map(Some));
            let wired = targets.iter().any(|svc| {
                LISTS.iter().any(|l| {
                    pf.restriction_list(*svc, l).iter().any(|r| {
                        r.name == "check_policy_service"
                            && r.arg.as_deref().is_some_and(|a| {
                                mx.policy_listen.iter().any(|p| {
                                    port_of(p).is_some_and(|port| {
                                        port_of(
                                            a.trim_matches(['{', '}', ' '])
                                                .split(',')
                                                .next()
                                                .unwrap_or(""),
                                        ) == Some(port)
                                    }) || (p.starts_with("unix:")
                                        && a.contains(p.trim_start_matches("unix:")))
                                })
                            })
                    })
                })
            });
            if !wired {
                out.push(finding("MX-POLICY-NOT-WIRED", loc.clone(), "policy listen", mx.policy_listen.join(" "), "no check_policy_service in main.cf/master.cf points at mxguard's policy listener").snip("main.cf", format!("smtpd_recipient_restrictions = check_policy_service {}, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination", mx.policy_listen.first().map(|l| if l.starts_with("inet:") || l.starts_with("unix:") { l.clone() } else { format!("inet:{l}") }).unwrap_or_default())));
            }
        }
        if let Some(pf) = &inputs.postfix
            && !mx.sasl_limits
            && pf.public_smtpd().iter().any(|(s, _)| pf.sasl_on(s))
        {
            out.push(
                finding("MX-NO-ACCOUNT-LIMIT", loc.clone(), "[[limit]]", "(none keyed on sasl_username)", "Postfix accepts SMTP AUTH but mxguard.toml has no limit keyed on sasl_username: a stolen account is only limited per IP")
                    .snip("mxguard.toml", "[[limit]]\nname = \"per-account\"\nkey = [\"sasl_username\"]\ncount = \"recipients\"\nrate = [\"100/1h\", \"500/1d\"]"),
            );
        }
        if let Some(dc) = &inputs.dovecot
            && !mx.auth_listen.is_empty()
        {
            let url = dc.val("auth_policy_server_url");
            let wired =
                port_of(&url).is_some_and(|p| mx.auth_listen.iter().any(|l| port_of(l) == Some(p)));
            if !wired {
                out.push(finding("MX-AUTH-POLICY-NOT-WIRED", loc, "auth_policy_server_url", dc.shown("auth_policy_server_url"), format!("Dovecot's auth_policy_server_url does not point at mxguard's endpoint ({})", mx.auth_listen.join(" "))).snip("dovecot.conf", format!("auth_policy_server_url = http://{}/\nauth_policy_hash_nonce = <openssl rand -hex 32>", mx.auth_listen.first().map(|l| l.trim_start_matches("http://").trim_end_matches('/').to_string()).unwrap_or_default())));
            }
        }
    }
}

fn sockets(pf: &PostfixConfig, dc: &DovecotConfig, out: &mut Vec<Finding>) {
    let mut checked = Vec::new();
    for (svc, _) in pf.public_smtpd() {
        let s = Some(&svc);
        if !pf.sasl_on(&svc)
            || !pf
                .val(s, "smtpd_sasl_type")
                .trim()
                .eq_ignore_ascii_case("dovecot")
        {
            continue;
        }
        let path = pf.val(s, "smtpd_sasl_path");
        if checked.contains(&path) {
            continue;
        }
        checked.push(path.clone());
        let ok = if let Some(rest) = path.strip_prefix("inet:") {
            let port = rest.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            port.is_some_and(|p| inet_ports(dc, "auth").contains(&p))
        } else {
            let want = spool_path(pf, &path);
            unix_listeners(dc, "auth").contains(&want)
        };
        if !ok {
            out.push(finding("XC-SASL-SOCKET-MISMATCH", pf.loc_for(&svc, &["smtpd_sasl_path"]), "smtpd_sasl_path", path.clone(), format!("no Dovecot 'service auth' listener matches {}", if path.starts_with("inet:") { path.clone() } else { spool_path(pf, &path) })).fix(format!(
                        "point smtpd_sasl_path at Dovecot's auth listener, or add: service auth {{ unix_listener {} {{ mode = 0660 user = postfix group = postfix }} }}",
                        spool_path(pf, if path.starts_with("inet:") { "private/auth" } else { &path })
                    ))
                    .snip("dovecot.conf", format!("service auth {{\n  unix_listener {} {{\n    mode = 0660\n    user = postfix\n    group = postfix\n  }}\n}}", spool_path(pf, if path.starts_with("inet:") { "private/auth" } else { &path }))));
        }
    }
    for key in ["virtual_transport", "mailbox_transport"] {
        let v = pf.val(None, key);
        if let Some(p) = v.trim().strip_prefix("lmtp:unix:") {
            let want = spool_path(pf, p);
            if !unix_listeners(dc, "lmtp").contains(&want) {
                out.push(finding("XC-LMTP-SOCKET-MISMATCH", pf.location(None, key), key, v.clone(), format!("no Dovecot 'service lmtp' unix_listener at {want}")).fix(format!("add to dovecot.conf: service lmtp {{ unix_listener {want} {{ mode = 0600 user = postfix group = postfix }} }}"))
                    .snip("dovecot.conf", format!("service lmtp {{\n  unix_listener {want} {{\n    mode = 0600\n    user = postfix\n    group = postfix\n  }}\n}}")));
            }
        }
    }
}
