//! Robustness of the audit parsers: arbitrary text in main.cf, master.cf, dovecot.conf,
//! jail.local and mxguard.toml either parses or returns an error, never panics, and whatever
//! parses can be audited and rendered (DESIGN.md: never panic on bad input).

// Tests may unwrap (helper functions outside #[test] included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mxguard::audit::dovecot::DovecotConfig;
use mxguard::audit::fail2ban::Fail2banConfig;
use mxguard::audit::mxconfig::MxguardConfig;
use mxguard::audit::postfix::PostfixConfig;
use mxguard::audit::spamassassin::SpamAssassinConfig;
use mxguard::audit::{Inputs, audit, report};
use proptest::prelude::*;

/// Lines built from configuration-like fragments, so the parsers get past their first check.
fn config_text() -> impl Strategy<Value = String> {
    let frag = prop::sample::select(vec![
        "smtpd_relay_restrictions = ",
        "permit",
        "reject_unauth_destination",
        "permit_mynetworks",
        "mynetworks = ",
        "0.0.0.0/0",
        "[::1]/128",
        "$mynetworks",
        "${x:y}",
        "${",
        "$(",
        "{",
        "}",
        ",",
        " ",
        "\n",
        "\n  ",
        "=",
        "-o",
        "smtp inet n - y - - smtpd",
        "passdb {",
        "driver = static",
        "args = nopassword=y",
        "service auth {",
        "inet_listener {",
        "port = 1",
        "#",
        "!include x",
        "[DEFAULT]",
        "enabled = true",
        "ignoreip = 1.0.0.0/1",
        "check_policy_service",
        "\u{e9}",
        "listen = \"inet:1\"",
        "[policy]",
        "smtpd_sasl_auth_enable = yes",
        "submission inet n - - - - smtpd",
    ]);
    prop::collection::vec(frag, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(main in config_text(), master in config_text(), dove in config_text(), jail in config_text(), raw in ".{0,200}") {
        let mut pf = PostfixConfig::default();
        let pf_ok = pf.parse_main(&main, "main.cf").is_ok() & pf.parse_master(&master, "master.cf").is_ok();
        let _ = PostfixConfig::default().parse_main(&raw, "raw");
        let _ = PostfixConfig::default().parse_master(&raw, "raw");
        let _ = DovecotConfig::parse(&raw, "raw", None);
        let _ = MxguardConfig::parse(&raw, "raw");
        let dc = DovecotConfig::parse(&dove, "dovecot.conf", None).ok();
        let mut f2b = Fail2banConfig::default();
        let f2b_ok = f2b.parse(&jail, "jail.local").is_ok();
        let inputs = Inputs {
            postfix: pf_ok.then_some(pf),
            dovecot: dc,
            fail2ban: f2b_ok.then_some(f2b),
            mxguard: MxguardConfig::parse(&jail, "m.toml").ok(),
            spamassassin: SpamAssassinConfig::parse(&raw, "local.cf").ok(),
        };
        let findings = audit(&inputs);
        let text = report::text(&findings, &[]);
        prop_assert!(text.ends_with('\n'));
        let json: serde_json::Value = serde_json::from_str(&report::json(&findings, &[])).unwrap();
        prop_assert_eq!(json["summary"]["total"].as_u64().unwrap() as usize, findings.len());
    }
}
