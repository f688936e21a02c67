//! Dovecot authentication (DV-PASSDB-*, DV-PLAINTEXT-AUTH-ALLOWED, DV-SSL-DISABLED,
//! DV-AUTH-MECH-*, DV-LOGIN-TRUSTED-NETWORKS-WIDE, DV-AUTH-POLICY-*, DV-AUTH-FAILURE-DELAY-LOW,
//! DV-AUTH-PENALTY-DISABLED, DV-AUTH-CACHE-*, DV-AUTH-VERBOSE-PASSWORDS, DV-AUTH-DEBUG,
//! DV-AUTH-USERNAME-CHARS-EMPTY, DV-MASTER-USER-ENABLED). Dovecot 2.3 names, with the 2.4
//! equivalents where they differ (`auth_allow_cleartext`, `passdb static { fields { } }`).

use super::super::dovecot::{DovecotConfig, Section, duration_secs, is_yes};
use super::super::net::{self, NetEntry};
use super::super::{Finding, Severity};
use super::finding;

/// `ssl = no` globally.
pub(crate) fn ssl_off(dc: &DovecotConfig) -> bool {
    dc.val("ssl").trim().eq_ignore_ascii_case("no")
}

/// Whether Dovecot listens only on loopback (`listen = 127.0.0.1, ::1`).
pub(crate) fn loopback_only(dc: &DovecotConfig) -> bool {
    let l = dc.val("listen");
    let parts: Vec<&str> = l.split([',', ' ']).filter(|s| !s.is_empty()).collect();
    !parts.is_empty()
        && parts
            .iter()
            .all(|p| super::super::postfix::is_loopback_host(p))
}

/// Whether plaintext authentication is allowed globally (2.3 or 2.4 name).
fn plaintext_allowed(dc: &DovecotConfig) -> bool {
    dc.setting("disable_plaintext_auth")
        .is_some_and(|s| !is_yes(&s.value))
        || dc
            .setting("auth_allow_cleartext")
            .is_some_and(|s| is_yes(&s.value))
}

/// Key/value pairs of a 2.3 `args` string (`proxy=y host=x nopassword=y`; bare words = yes).
fn args_map(args: &str) -> Vec<(String, String)> {
    args.split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.to_string()),
            None => (w.to_ascii_lowercase(), "yes".to_string()),
        })
        .collect()
}

/// Every field a passdb sets: 2.3 `args`, `default_fields`, `override_fields`, 2.4
/// `fields { }` and `passdb_fields`.
fn passdb_fields(p: &Section) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["args", "default_fields", "override_fields", "passdb_fields"] {
        if let Some(s) = p.get(key) {
            out.extend(args_map(&s.value));
        }
    }
    for c in p.children.iter().filter(|c| c.kind == "fields") {
        out.extend(
            c.settings
                .iter()
                .map(|s| (s.key.to_ascii_lowercase(), s.value.clone())),
        );
    }
    out
}

fn driver(p: &Section) -> String {
    p.get("driver")
        .map(|s| s.value.clone())
        .or_else(|| p.name.clone())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

pub(super) fn check(dc: &DovecotConfig, out: &mut Vec<Finding>) {
    passdbs(dc, out);
    let listen_public = !loopback_only(dc);
    let plaintext = plaintext_allowed(dc);
    let ssl_required = dc.val("ssl").trim().eq_ignore_ascii_case("required");
    if plaintext && listen_public && !ssl_required {
        let key = if dc.setting("auth_allow_cleartext").is_some() {
            "auth_allow_cleartext"
        } else {
            "disable_plaintext_auth"
        };
        let proxy = !dc.val("login_trusted_networks").trim().is_empty();
        out.push(
            finding("DV-PLAINTEXT-AUTH-ALLOWED", dc.location(key), key, dc.shown(key), format!("passwords may be sent over unencrypted IMAP/POP3 connections{}", if proxy { " (login_trusted_networks is set: if a TLS-terminating proxy is the only way in, verify and lower this)" } else { "" }))
                .snip("dovecot.conf", if key == "auth_allow_cleartext" { "auth_allow_cleartext = no" } else { "disable_plaintext_auth = yes" }),
        );
    }
    if ssl_off(dc) && listen_public {
        out.push(
            finding(
                "DV-SSL-DISABLED",
                dc.location("ssl"),
                "ssl",
                dc.shown("ssl"),
                "TLS is off on listeners reachable from the network",
            )
            .snip("dovecot.conf", "ssl = required"),
        );
    }
    let mechs = dc.val("auth_mechanisms").to_ascii_lowercase();
    let mech_list: Vec<&str> = mechs.split_whitespace().collect();
    if mech_list.iter().any(|m| *m == "plain" || *m == "login")
        && listen_public
        && (ssl_off(dc) || plaintext)
        && !ssl_required
    {
        out.push(
            finding(
                "DV-AUTH-MECH-PLAIN-NO-TLS",
                dc.location("auth_mechanisms"),
                "auth_mechanisms",
                dc.shown("auth_mechanisms"),
                format!(
                    "PLAIN/LOGIN usable without TLS ({})",
                    if ssl_off(dc) {
                        "ssl = no"
                    } else {
                        "plaintext auth allowed"
                    }
                ),
            )
            .snip(
                "dovecot.conf",
                "ssl = required\ndisable_plaintext_auth = yes",
            ),
        );
    }
    let weak: Vec<&str> = mech_list
        .iter()
        .copied()
        .filter(|m| {
            [
                "cram-md5",
                "digest-md5",
                "apop",
                "ntlm",
                "rpa",
                "otp",
                "skey",
                "anonymous",
            ]
            .contains(m)
        })
        .collect();
    if !weak.is_empty() {
        out.push(
            finding(
                "DV-AUTH-MECH-WEAK",
                dc.location("auth_mechanisms"),
                "auth_mechanisms",
                dc.shown("auth_mechanisms"),
                format!("weak mechanisms enabled: {}", weak.join(" ")),
            )
            .sev(if weak.contains(&"anonymous") {
                Severity::High
            } else {
                Severity::Medium
            })
            .snip("dovecot.conf", "auth_mechanisms = plain login"),
        );
    }
    let trusted = dc.val("login_trusted_networks");
    let mut wide = Vec::new();
    let mut everything = false;
    for e in net::entries(&trusted) {
        if let NetEntry::Net(n) = e {
            if net::is_everything(&n) {
                everything = true;
                wide.push(n);
            } else if !net::is_private(&n)
                || matches!(n, ipnet::IpNet::V4(x) if x.prefix_len() < 16)
            {
                wide.push(n);
            }
        }
    }
    if !wide.is_empty() {
        out.push(
            finding(
                "DV-LOGIN-TRUSTED-NETWORKS-WIDE",
                dc.location("login_trusted_networks"),
                "login_trusted_networks",
                trusted.clone(),
                format!(
                    "clients from {} may forge their IP and count as secured",
                    net::show(&wide)
                ),
            )
            .sev(if everything {
                Severity::Critical
            } else {
                Severity::High
            })
            .snip("dovecot.conf", "login_trusted_networks = 127.0.0.1"),
        );
    }
    let url = dc.val("auth_policy_server_url");
    if url.trim().is_empty() {
        out.push(finding("DV-AUTH-POLICY-NOT-SET", dc.location("auth_policy_server_url"), "auth_policy_server_url", dc.shown("auth_policy_server_url"), "no authentication policy server: brute force against IMAP/POP3/SMTP AUTH is slowed only by auth_failure_delay").snip("dovecot.conf", "auth_policy_server_url = http://127.0.0.1:10041/\nauth_policy_hash_nonce = <openssl rand -hex 32>").snip("mxguard.toml", "# enable the Dovecot auth policy endpoint (see docs/configuration.md)"));
    } else if dc.val("auth_policy_hash_nonce").trim().is_empty() {
        out.push(finding("DV-AUTH-POLICY-NONCE-MISSING", dc.location("auth_policy_server_url"), "auth_policy_hash_nonce", dc.shown("auth_policy_hash_nonce"), "auth_policy_server_url is set without auth_policy_hash_nonce: Dovecot refuses to start").snip("dovecot.conf", "auth_policy_hash_nonce = <openssl rand -hex 32>"));
    }
    if duration_secs(&dc.val("auth_failure_delay")).is_some_and(|d| d < 2) {
        out.push(
            finding(
                "DV-AUTH-FAILURE-DELAY-LOW",
                dc.location("auth_failure_delay"),
                "auth_failure_delay",
                dc.shown("auth_failure_delay"),
                "failed logins are answered in under 2 seconds",
            )
            .snip("dovecot.conf", "auth_failure_delay = 2 secs"),
        );
    }
    for (path, l) in dc.sections("unix_listener") {
        if l.name
            .as_deref()
            .is_some_and(|n| n.ends_with("anvil-auth-penalty"))
            && l.get("mode")
                .is_some_and(|m| m.value.trim_start_matches('0').is_empty())
        {
            out.push(finding("DV-AUTH-PENALTY-DISABLED", dc.section_location(&path, l), "mode", "0", "the anvil-auth-penalty socket is disabled (mode = 0): no per-IP slowdown after failures (fine only behind a proxy that limits logins)"));
        }
    }
    auth_cache(dc, out);
    let vp = dc.val("auth_verbose_passwords").to_ascii_lowercase();
    if matches!(vp.trim(), "plain" | "yes") {
        out.push(
            finding(
                "DV-AUTH-VERBOSE-PASSWORDS",
                dc.location("auth_verbose_passwords"),
                "auth_verbose_passwords",
                vp.clone(),
                "failed passwords are logged in clear text",
            )
            .snip("dovecot.conf", "auth_verbose_passwords = no"),
        );
    }
    if dc.flag("auth_debug_passwords") {
        out.push(
            finding(
                "DV-AUTH-VERBOSE-PASSWORDS",
                dc.location("auth_debug_passwords"),
                "auth_debug_passwords",
                "yes",
                "passwords are written to the debug log",
            )
            .snip("dovecot.conf", "auth_debug_passwords = no"),
        );
    }
    for key in ["auth_debug", "mail_debug", "verbose_ssl"] {
        if dc.flag(key) {
            out.push(
                finding(
                    "DV-AUTH-DEBUG",
                    dc.location(key),
                    key,
                    "yes",
                    format!("{key} is on"),
                )
                .snip("dovecot.conf", format!("{key} = no")),
            );
        }
    }
    if dc
        .setting("auth_username_chars")
        .is_some_and(|s| s.value.trim().is_empty())
    {
        out.push(
            finding(
                "DV-AUTH-USERNAME-CHARS-EMPTY",
                dc.location("auth_username_chars"),
                "auth_username_chars",
                "(empty)",
                "any character is accepted in user names passed to the passdb",
            )
            .snip(
                "dovecot.conf",
                "# delete the empty auth_username_chars line",
            ),
        );
    }
}

fn passdbs(dc: &DovecotConfig, out: &mut Vec<Finding>) {
    for (path, p) in dc.sections("passdb") {
        let fields = passdb_fields(p);
        let get = |k: &str| {
            fields
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let proxied = get("proxy").is_some_and(|v| is_yes(&v) || v.is_empty())
            && get("host").is_some_and(|h| !h.is_empty());
        let allow_nets_private = get("allow_nets").is_some_and(|n| {
            let e = net::entries(&n);
            !e.is_empty()
                && e.iter()
                    .all(|x| matches!(x, NetEntry::Net(n) if net::is_private(n)))
        });
        let nopassword = get("nopassword").is_some_and(|v| is_yes(&v) || v.is_empty())
            || (driver(p) == "static" && get("password").is_some_and(|v| v.is_empty()));
        let loc = dc.section_location(&path, p);
        let shown = p.get("args").map(|a| a.value.clone()).unwrap_or_else(|| {
            fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        });
        if nopassword && !proxied && !allow_nets_private {
            out.push(
                finding("DV-PASSDB-STATIC-NOPASSWORD", loc.clone(), format!("passdb {{ driver = {} }}", driver(p)), shown.clone(), "this passdb accepts any password for any user that reaches it, over every protocol (IMAP, POP3, SMTP AUTH)")
                    .snip("dovecot.conf", "# delete this passdb block, or limit it to a proxy:\npassdb {\n  driver = static\n  args = proxy=y host=<backend> nopassword=y allow_nets=<proxy address>\n}"),
            );
        } else if driver(p) == "static"
            && get("password").is_some_and(|v| !v.is_empty())
            && !proxied
        {
            out.push(finding(
                "DV-PASSDB-STATIC-SHARED-PASSWORD",
                loc.clone(),
                "passdb { driver = static }",
                shown.clone(),
                "one literal password is valid for every user name",
            ));
        }
        if p.get("master").is_some_and(|m| is_yes(&m.value)) {
            out.push(finding(
                "DV-MASTER-USER-ENABLED",
                loc,
                "master",
                "yes",
                format!(
                    "{} is a master-user passdb: its users can log in as anyone",
                    p.label()
                ),
            ));
        }
    }
}

fn auth_cache(dc: &DovecotConfig, out: &mut Vec<Finding>) {
    let db_driver = dc
        .sections("passdb")
        .iter()
        .map(|(_, p)| driver(p))
        .find(|d| ["sql", "ldap", "lua", "dict"].contains(&d.as_str()));
    if dc
        .val("auth_cache_size")
        .trim()
        .trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 'B', 'b'])
        .trim()
        == "0"
        && let Some(d) = db_driver
    {
        out.push(
            finding(
                "DV-AUTH-CACHE-DISABLED",
                dc.location("auth_cache_size"),
                "auth_cache_size",
                dc.shown("auth_cache_size"),
                format!("every login, including brute force, queries the {d} passdb"),
            )
            .snip(
                "dovecot.conf",
                "auth_cache_size = 10M\nauth_cache_ttl = 5 mins\nauth_cache_negative_ttl = 1 mins",
            ),
        );
    }
    for key in ["auth_cache_ttl", "auth_cache_negative_ttl"] {
        if dc.setting(key).is_some() && duration_secs(&dc.val(key)).is_some_and(|d| d > 3600) {
            out.push(
                finding(
                    "DV-AUTH-CACHE-TTL-LONG",
                    dc.location(key),
                    key,
                    dc.shown(key),
                    "cached credentials outlive a password change by more than an hour",
                )
                .snip("dovecot.conf", format!("{key} = 1 hour")),
            );
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

    #[test]
    fn dovecot_24_static_passdb_fields() {
        let v24 = "dovecot_config_version = 2.4.0\npassdb static {\n  fields {\n    nopassword = yes\n  }\n}\n";
        assert!(ids(v24).contains(&"DV-PASSDB-STATIC-NOPASSWORD"));
        let proxied = "passdb static {\n  fields {\n    proxy = yes\n    host = 10.0.0.2\n    nopassword = yes\n  }\n}\n";
        assert!(!ids(proxied).contains(&"DV-PASSDB-STATIC-NOPASSWORD"));
        let allow = "passdb {\n  driver = static\n  args = nopassword=y allow_nets=10.0.0.0/8\n}\n";
        assert!(!ids(allow).contains(&"DV-PASSDB-STATIC-NOPASSWORD"));
        let any_driver = "passdb {\n  driver = sql\n  override_fields = nopassword\n}\n";
        assert!(ids(any_driver).contains(&"DV-PASSDB-STATIC-NOPASSWORD"));
    }

    #[test]
    fn dovecot_24_cleartext_name() {
        assert!(ids("auth_allow_cleartext = yes\n").contains(&"DV-PLAINTEXT-AUTH-ALLOWED"));
        assert!(!ids("auth_allow_cleartext = no\n").contains(&"DV-PLAINTEXT-AUTH-ALLOWED"));
        assert!(
            !ids("auth_allow_cleartext = yes\nlisten = 127.0.0.1, ::1\n")
                .contains(&"DV-PLAINTEXT-AUTH-ALLOWED")
        );
    }
}
