//! Configuration: the shipped examples load, errors carry file:line:column and are all
//! reported, whitelist file errors name their file and line, and `mxguard check-config`
//! (the real binary) prints them and exits 2.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mxguard::config::{self, ListenAddr, StoreKind};
use mxguard_proto::ReplyAction;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn errors_of(text: &str) -> Vec<String> {
    match config::parse("t.toml", text, None) {
        Ok(_) => panic!("config should be invalid:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn full_example_loads_with_its_documented_values() {
    let cfg = config::load(Some(&examples().join("mxguard.toml"))).unwrap();
    assert_eq!(
        cfg.policy.listen,
        vec![
            ListenAddr::Inet("127.0.0.1:10040".into()),
            ListenAddr::Unix("/run/mxguard/policy.sock".into())
        ]
    );
    assert_eq!(cfg.policy.default_action, ReplyAction::Dunno);
    assert_eq!(
        cfg.store.kind,
        StoreKind::Embedded("/var/lib/mxguard".into())
    );
    let gl = cfg.greylist.as_ref().unwrap();
    assert_eq!(gl.delay, Duration::from_secs(300));
    assert_eq!(gl.retry_window, Duration::from_secs(2 * 86_400));
    assert_eq!(gl.max_age, Duration::from_secs(35 * 86_400));
    assert_eq!(gl.auto_whitelist_clients, 5);
    assert_eq!((gl.ipv4_prefix, gl.ipv6_prefix), (24, 64));
    // The example shows the built-in defaults.
    let def = config::load(None).unwrap();
    let dgl = def.greylist.as_ref().unwrap();
    assert_eq!(gl.greylist_text, dgl.greylist_text);
    assert_eq!(
        (gl.delay, gl.auto_whitelist_clients, gl.header),
        (dgl.delay, dgl.auto_whitelist_clients, dgl.header)
    );
    assert_eq!(cfg.policy.limits, def.policy.limits);
    assert_eq!(cfg.policy.max_connections, def.policy.max_connections);
    assert_eq!(cfg.policy.idle_timeout, def.policy.idle_timeout);
    assert_eq!(
        cfg.control.socket,
        PathBuf::from("/run/mxguard/control.sock")
    );
    assert_eq!(cfg.metrics.unwrap().listen.port(), 9420);
}

#[test]
fn minimal_example_and_defaults_agree() {
    let min = config::load(Some(&examples().join("minimal.toml"))).unwrap();
    let def = config::load(None).unwrap();
    assert_eq!(min.policy.listen, def.policy.listen);
    assert_eq!(
        def.policy.listen,
        vec![ListenAddr::Inet("127.0.0.1:10040".into())]
    );
    assert!(def.greylist.is_some());
    assert!(def.metrics.is_none());
    assert!(matches!(def.store.kind, StoreKind::Embedded(_)));
}

#[test]
fn postfix_snippet_points_at_the_default_listener() {
    let text = std::fs::read_to_string(examples().join("postfix-main.cf")).unwrap();
    let def = config::load(None).unwrap();
    let ListenAddr::Inet(addr) = &def.policy.listen[0] else {
        panic!()
    };
    let service = format!("check_policy_service {{ inet:{addr}, default_action=DUNNO }}");
    assert!(
        text.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains(&service)),
        "postfix-main.cf must use {service}"
    );
}

#[test]
fn all_value_errors_are_reported_with_line_and_column() {
    let text = "[policy]\nlisten = [\"inet:127.0.0.1:10040\", \"tcp:1.2.3.4:5\"]\n\
default_action = \"ACCEPT\"\n\n[greylist]\ndelay = \"300\"\n  max_age = \"5 days\"\nipv4_prefix = 40\n\
[lists]\ndeny = [\"sender:a b\", \"nonsense\"]\n";
    let errs = errors_of(text);
    assert_eq!(errs.len(), 7, "{errs:#?}");
    assert!(
        errs[0].starts_with("t.toml:2:35: [policy] listen: \"tcp:1.2.3.4:5\""),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("t.toml:3:18: [policy] default_action"),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with("t.toml:6:9: [greylist] delay") && errs[2].contains("missing unit"),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].starts_with("t.toml:7:13: [greylist] max_age"),
        "{}",
        errs[3]
    );
    assert!(
        errs[4].starts_with("t.toml:8:15: [greylist] ipv4_prefix = 40 is out of range 0..=32"),
        "{}",
        errs[4]
    );
    assert!(
        errs[5].starts_with("t.toml:10:9: [lists] deny"),
        "{}",
        errs[5]
    );
    assert!(
        errs[6].starts_with("t.toml:10:23: [lists] deny"),
        "{}",
        errs[6]
    );
}

#[test]
fn unknown_keys_and_syntax_errors_have_positions() {
    let errs = errors_of("[greylist]\ndelay = \"5m\"\ndelya = \"5m\"\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("t.toml:3:1: unknown field `delya`"),
        "{}",
        errs[0]
    );
    let errs = errors_of("[policy]\nlisten = [\"inet:127.0.0.1:1\"\n");
    assert!(
        errs[0].starts_with("t.toml:2:") || errs[0].starts_with("t.toml:3:"),
        "{}",
        errs[0]
    );
    let errs = errors_of("[store]\ntype = \"redis\"\n");
    assert!(
        errs[0].starts_with("t.toml:2:8: [store] type"),
        "{}",
        errs[0]
    );
    let errs = errors_of("[greylist]\ndelay = \"10m\"\nretry_window = \"5m\"\n");
    assert!(
        errs[0].starts_with("t.toml:3:16: [greylist] retry_window must be longer"),
        "{}",
        errs[0]
    );
}

#[test]
fn whitelist_file_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clients"),
        "# ok\n192.0.2.1\n/unclosed(regex/\n",
    )
    .unwrap();
    let cfg = dir.path().join("m.toml");
    std::fs::write(
        &cfg,
        "[greylist]\nwhitelist_clients = [\"clients\", \"missing_file\"]\n",
    )
    .unwrap();
    let errs: Vec<String> = config::load(Some(&cfg))
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let wl = dir.path().join("clients").display().to_string();
    assert!(
        errs.iter().any(|e| e.starts_with(&format!("{wl}:3:"))),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("m.toml:2:33: [greylist] whitelist_clients: cannot read")),
        "{errs:#?}"
    );
}

#[allow(clippy::unwrap_used)] // test helper
fn mxguard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_config_binary_exit_codes_and_output() {
    let ok = mxguard(&[
        "check-config",
        "--config",
        examples().join("mxguard.toml").to_str().unwrap(),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(": ok"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[greylist]\ndelay = \"5\"\nmax_age = \"x\"\n").unwrap();
    let out = mxguard(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let b = bad.display();
    assert!(err.contains(&format!("{b}:2:9: [greylist] delay")), "{err}");
    assert!(
        err.contains(&format!("{b}:3:11: [greylist] max_age")),
        "{err}"
    );
    assert!(err.contains("2 configuration errors"), "{err}");

    let missing = mxguard(&["check-config", "--config", "/nonexistent/mxguard.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read config file"));
    // serve refuses the bad file the same way, before binding anything.
    let serve = mxguard(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(serve.status.code(), Some(2));
}

#[test]
fn cli_usage_help_and_client_errors() {
    assert_eq!(mxguard(&["--help"]).status.code(), Some(0));
    let help = mxguard(&["serve", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--config") && text.contains("check_policy_service"),
        "{text}"
    );
    let gl = mxguard(&["greylist", "remove", "--help"]);
    assert!(String::from_utf8_lossy(&gl.stdout).contains("TARGET"));
    assert_eq!(mxguard(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        mxguard(&["greylist", "whitelist", "not-an-ip"])
            .status
            .code(),
        Some(2)
    );
    // No daemon behind the socket: failure (1), with a message naming the socket.
    let out = mxguard(&["status", "--socket", "/nonexistent/control.sock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/control.sock"));
}

#[test]
fn listen_address_forms() {
    let cfg = config::parse(
        "t.toml",
        "[policy]\nlisten = [\"inet:[::1]:10040\", \"inet:localhost:10041\", \"unix:/run/x/p.sock\"]\n",
        None,
    )
    .unwrap();
    assert_eq!(
        cfg.policy.listen,
        vec![
            ListenAddr::Inet("[::1]:10040".into()),
            ListenAddr::Inet("localhost:10041".into()),
            ListenAddr::Unix("/run/x/p.sock".into()),
        ]
    );
    let errs = errors_of(
        "[policy]\nlisten = [\"inet:::1:10040\", \"inet:host\", \"unix:\", \"inet:h:99999\"]\n",
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
    let long = format!("[control]\nsocket = \"/{}\"\n", "x".repeat(120));
    assert!(errors_of(&long)[0].contains("longer than 107 bytes"));
    assert!(errors_of("[policy]\nlisten = []\n")[0].contains("at least one address"));
}

/// The two-MX example is valid and says what docs/configuration.md says (Redis store, ban
/// sync). Its jail reads Debian's /etc/fail2ban/filter.d; the test points it at the fail2ban
/// corpus instead (the only change).
#[test]
fn cluster_redis_example_loads() {
    let filters =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/fail2ban/config");
    let text = std::fs::read_to_string(examples().join("cluster-redis.toml"))
        .unwrap()
        .replace(
            "filter = \"postfix[mode=auth]\"\n",
            &format!(
                "filter = \"postfix[mode=auth]\"\nfilter_dir = \"{}\"\n",
                filters.display()
            ),
        );
    let cfg = config::parse("cluster-redis.toml", &text, None).unwrap_or_else(|e| panic!("{e}"));
    match &cfg.store.kind {
        config::StoreKind::Redis {
            prefix, timeout, ..
        } => {
            assert_eq!(prefix, "example-org:");
            assert_eq!(*timeout, std::time::Duration::from_millis(250));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cfg.store.sync_interval, std::time::Duration::from_secs(2));
    assert_eq!(cfg.jails.jails.len(), 2);
}

#[test]
fn a_too_short_ban_sync_interval_is_refused_with_its_place() {
    let e = errors_of(
        "[store]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nsync_interval = \"10ms\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("t.toml:4:") && e[0].contains("sync_interval must be at least 100ms"),
        "{e:?}"
    );
}

#[test]
fn cluster_settings_load_and_their_conflicts_are_errors_with_their_place() {
    let cfg = config::parse(
        "t.toml",
        "[store]\ntype = \"redis\"\ncluster = [\"127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match cfg.store.kind {
        config::StoreKind::Redis {
            cluster: Some(c),
            sentinel: None,
            ..
        } => assert_eq!(c.nodes, ["127.0.0.1:7000", "redis://127.0.0.1:7001"]),
        other => panic!("{other:?}"),
    }
    let one = |text: &str, line: &str, what: &str| {
        let e = errors_of(&format!("[store]\ntype = \"redis\"\n{text}"));
        assert!(
            e.iter().any(|e| e.contains(line) && e.contains(what)),
            "{what}: {e:?}"
        );
    };
    one(
        "cluster = [\"127.0.0.1:7000\"]\nsentinels = [\"127.0.0.1:26379\"]\nmaster_name = \"mx\"\n",
        "t.toml:4:",
        "sentinels cannot be used with cluster",
    );
    one("cluster = []\n", "t.toml:3:", "cluster is empty");
    one(
        "cluster = [\"127.0.0.1:7000\", \"unix:///run/redis.sock\"]\n",
        "t.toml:3:",
        "is not a TCP node",
    );
    one(
        "cluster = [\"127.0.0.1:7000\"]\nurl = \"redis://:pw@127.0.0.1/2\"\n",
        "t.toml:4:",
        "only database 0",
    );
    one(
        "cluster = [\"127.0.0.1:7000\"]\nprefix = \"{mx}:\"\n",
        "t.toml:4:",
        "must not contain { or }",
    );
}

#[test]
fn sentinel_settings_load_and_half_of_them_is_an_error() {
    let cfg = config::parse(
        "t.toml",
        "[store]\ntype = \"redis\"\nsentinels = [\"10.0.0.1:26379\", \"redis://:pw@10.0.0.2:26379\"]\nmaster_name = \"mx\"\n",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match cfg.store.kind {
        config::StoreKind::Redis {
            sentinel: Some(s), ..
        } => {
            assert_eq!(s.master_name, "mx");
            assert_eq!(s.sentinels.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    let e = errors_of("[store]\ntype = \"redis\"\nsentinels = [\"10.0.0.1:26379\"]\n");
    assert!(
        e.iter()
            .any(|e| e.contains("t.toml:3:") && e.contains("needs master_name")),
        "{e:?}"
    );
    let e = errors_of("[store]\ntype = \"redis\"\n");
    assert!(e.iter().any(|e| e.contains("needs url")), "{e:?}");
}
