//! docs/reference.md cannot drift from the config structs, in either direction, and
//! docs/migrate.md names only keys that exist.
//!
//! How the accepted keys are enumerated: a recording serde `Deserializer` drives
//! `raw::FileConfig::deserialize` itself. serde-derived structs hand their complete field list
//! (renames applied, e.g. `type`) to `deserialize_struct`; the recorder answers every field
//! with a sample value and descends into it, so every table and key the parser accepts is
//! seen, whatever struct it lives in, with no list to keep by hand. `toml::Spanned<T>` is
//! itself a struct with a private name (`$__serde_spanned_private_Spanned`) and three private
//! fields; the recorder sees through it (answers start/end, descends into the value at the
//! same path). `Option`, `Vec` and maps are passed through and give the key its TOML type
//! (`string`, `integer`, `float`, `boolean`, `array of ...`, `table`). A new field of a kind
//! the recorder cannot sample makes the walk fail loudly rather than skip it.
//!
//! Checks: (a) every recorded key is a row of reference.md under its table heading, with the
//! recorded TOML type; (b) every row is a recorded key, and its example value, written as
//! `key = EXAMPLE` in its table (plus the few keys a table needs to be valid at all), passes
//! the daemon's full validation (`config::parse`, what `check-config` runs); (c) a default
//! written as one TOML value is the built-in one (the validated config is the same with
//! `key = DEFAULT` as without the key). migrate.md's `table.key` names must be recorded keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mxguard::config;

#[path = "config_reference/schema.rs"]
mod schema;
use schema::schema;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// One documented key.
#[derive(Debug)]
struct Row {
    line: usize,
    ty: String,
    /// The default cell when it is exactly one `TOML value`.
    default: Option<String>,
    example: String,
}

/// reference.md: table headings (`## `[name]`` / `## `[[name]]``, name -> array) and rows
/// `| `key` | type | default | allowed | example | meaning |` under them.
fn reference() -> (BTreeMap<String, bool>, BTreeMap<String, Row>) {
    let text = std::fs::read_to_string(docs().join("reference.md")).unwrap();
    let mut tables = BTreeMap::new();
    let mut rows = BTreeMap::new();
    let mut current: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(h) = line.strip_prefix("## ") {
            current = None;
            if let Some(name) = h
                .strip_prefix("`[[")
                .and_then(|r| r.split_once("]]`"))
                .map(|(a, _)| a)
            {
                assert!(
                    tables.insert(name.to_string(), true).is_none(),
                    "line {n}: {name} twice"
                );
                current = Some(name.to_string());
            } else if let Some(name) = h
                .strip_prefix("`[")
                .and_then(|r| r.split_once("]`"))
                .map(|(a, _)| a)
            {
                assert!(
                    tables.insert(name.to_string(), false).is_none(),
                    "line {n}: {name} twice"
                );
                current = Some(name.to_string());
            }
            continue;
        }
        let Some(table) = &current else { continue };
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 8, "reference.md:{n}: expected 6 cells: {line}");
        let key = cells[1].trim_matches('`');
        let example = cells[5];
        assert!(
            example.len() >= 2 && example.starts_with('`') && example.ends_with('`'),
            "reference.md:{n}: the example of `{key}` must be one `TOML value`: {example}"
        );
        let full = format!("{table}.{key}");
        let one_value = |c: &str| {
            let v = c.strip_prefix('`')?.strip_suffix('`')?;
            let is_value = toml::from_str::<toml::Table>(&format!("v = {v}")).is_ok();
            (!v.contains('`') && is_value).then(|| v.to_string())
        };
        let row = Row {
            line: n,
            ty: cells[2].to_string(),
            default: one_value(cells[3]),
            example: example
                .strip_prefix('`')
                .and_then(|e| e.strip_suffix('`'))
                .unwrap_or_default()
                .to_string(),
        };
        assert!(
            rows.insert(full.clone(), row).is_none(),
            "reference.md:{n}: {full} twice"
        );
    }
    (tables, rows)
}

/// The TOML type a documented type names: durations, rates, paths, actions, addresses and
/// networks are strings.
fn toml_type(doc: &str) -> String {
    let base = |t: &str| -> String {
        match t {
            "string" | "strings" | "duration" | "durations" | "rate" | "rates" | "path"
            | "paths" | "action" | "address" | "addresses" | "network" | "networks" => {
                "string".into()
            }
            "integer" | "integers" => "integer".into(),
            "float" | "floats" => "float".into(),
            other => other.into(),
        }
    };
    match doc.strip_prefix("array of ") {
        Some(t) => format!("array of {}", base(t)),
        None => base(doc),
    }
}

#[test]
fn every_accepted_key_is_documented_with_its_type() {
    let s = schema();
    // Sanity: the walk sees through Spanned, renames, nesting, arrays of tables and maps.
    assert_eq!(s.keys.get("store.type").map(String::as_str), Some("string"));
    assert_eq!(
        s.keys.get("policy.listen").map(String::as_str),
        Some("array of string")
    );
    assert_eq!(
        s.keys
            .get("jail.bantime_increment.factor")
            .map(String::as_str),
        Some("float")
    );
    assert_eq!(
        s.keys.get("limit.overrides").map(String::as_str),
        Some("table")
    );
    assert_eq!(s.tables.get("jail"), Some(&true));
    assert_eq!(s.tables.get("dnsbl"), Some(&false));
    assert!(s.keys.len() > 150, "{}", s.keys.len());

    let (tables, rows) = reference();
    let top: BTreeMap<&String, &bool> = s.tables.iter().filter(|(k, _)| !k.contains('.')).collect();
    let doc_tables: BTreeMap<&String, &bool> = tables.iter().collect();
    assert_eq!(
        top, doc_tables,
        "reference.md's table headings (name, [[array]]) vs the parser's"
    );
    let mut missing = Vec::new();
    for (key, ty) in &s.keys {
        match rows.get(key) {
            None => missing.push(key.clone()),
            Some(row) => assert_eq!(
                toml_type(&row.ty),
                *ty,
                "reference.md:{}: {key} is documented as `{}`, the parser takes {ty}",
                row.line,
                row.ty
            ),
        }
    }
    assert!(
        missing.is_empty(),
        "keys the parser accepts but reference.md does not document: {missing:#?}"
    );
}

fn corpus_filters() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/fail2ban/config")
}

/// The keys a table needs before any other key of it validates (a `[[jail]]` needs a name,
/// a filter and a log; Redis keys need `type = "redis"`), as `key = value` lines.
fn context(table: &str, key: &str) -> Vec<(String, String)> {
    let filters = format!("{:?}", corpus_filters().display().to_string());
    let lines: Vec<(&str, String)> = match table {
        "jail" => vec![
            ("name", "\"sshd-like\"".into()),
            ("filter", "\"postfix\"".into()),
            ("filter_dir", filters),
            ("logpath", "[\"/var/log/mail.log\"]".into()),
        ],
        "action" => vec![("name", "\"fw\"".into()), ("type", "\"nftables\"".into())],
        "limit" => vec![
            ("name", "\"per-user\"".into()),
            ("key", "[\"sasl_username\"]".into()),
            ("count", "\"messages\"".into()),
            ("rate", "[\"100/1h\"]".into()),
        ],
        "dnsbl" => vec![("sites", "[\"zen.spamhaus.org*2\"]".into())],
        "store" if !matches!(key, "path" | "expire_interval" | "type") => vec![
            ("type", "\"redis\"".into()),
            ("url", "\"redis://127.0.0.1:6379\"".into()),
        ],
        _ => vec![],
    };
    let mut out: Vec<(String, String)> = lines
        .into_iter()
        .filter(|(k, _)| *k != key)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    // Per-key needs.
    match (table, key) {
        ("store", "master_name") => out.push(("sentinels".into(), "[\"127.0.0.1:26379\"]".into())),
        ("store", "sentinels") => out.push(("master_name".into(), "\"mymaster\"".into())),
        ("action", "ban" | "unban") => {
            out.retain(|(k, _)| k != "type");
            out.push(("type".into(), "\"command\"".into()));
            if key == "unban" {
                out.push(("ban".into(), "[\"/bin/true\", \"<ip>\"]".into()));
            }
        }
        ("action", "set4" | "set6") => {
            out.retain(|(k, _)| k != "type");
            out.push(("type".into(), "\"ipset\"".into()));
        }
        ("jail", "journalmatch") => out.retain(|(k, _)| k != "logpath"),
        ("jail", "filter_dir") => {
            // The example names the system directory; the filter is then given as a path.
            out.retain(|(k, _)| k != "filter");
            let f = corpus_filters().join("filter.d/postfix.conf");
            out.push(("filter".into(), format!("{:?}", f.display().to_string())));
        }
        ("limit", "ipv4_prefix" | "ipv6_prefix") => {
            out.retain(|(k, _)| k != "key");
            out.push(("key".into(), "[\"client_prefix\"]".into()));
        }
        _ => {}
    }
    out
}

/// Keys whose example names files that validation reads (relative to the config's directory).
const FILE_KEYS: [&str; 4] = [
    "greylist.whitelist_clients",
    "greylist.whitelist_recipients",
    "limit.overrides_file",
    "account.sender_login_map",
];

/// `[table]` (or `[[table]]`) with the keys `key` needs, then `key = value` when given.
fn snippet(tables: &BTreeMap<String, bool>, full: &str, value: Option<&str>) -> String {
    let (table, key) = full.split_once('.').unwrap();
    // Keys naming actions: define the action the example names.
    let mut text = if key == "action" && matches!(table, "jail" | "bans") {
        "[[action]]\nname = \"nftables\"\ntype = \"nftables\"\n\n".to_string()
    } else {
        String::new()
    };
    if tables[table] {
        text.push_str(&format!("[[{table}]]\n"));
    } else {
        text.push_str(&format!("[{table}]\n"));
    }
    for (k, v) in context(table, key) {
        text.push_str(&format!("{k} = {v}\n"));
    }
    if let Some(v) = value {
        text.push_str(&format!("{key} = {v}\n"));
    }
    text
}

#[test]
fn every_documented_key_is_accepted_with_its_example() {
    let s = schema();
    let (tables, rows) = reference();
    let mut unknown = Vec::new();
    let mut refused = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    for (full, row) in &rows {
        if !s.keys.contains_key(full) {
            unknown.push(format!("reference.md:{}: {full}", row.line));
            continue;
        }
        let text = snippet(&tables, full, Some(&row.example));
        // Keys naming files the validation reads: create them (empty) beside the config.
        if FILE_KEYS.contains(&full.as_str()) {
            let v: toml::Value = toml::from_str(&format!("v = {}", row.example)).unwrap();
            let names = match &v["v"] {
                toml::Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect(),
                other => vec![other.as_str().unwrap().to_string()],
            };
            for n in names {
                std::fs::write(dir.path().join(n), "").unwrap();
            }
        }
        if let Err(e) = config::parse("reference.toml", &text, Some(dir.path())) {
            refused.push(format!("reference.md:{}: {full}:\n{text}{e}\n", row.line));
        }
    }
    assert!(
        unknown.is_empty(),
        "documented keys the parser does not accept: {unknown:#?}"
    );
    assert!(
        refused.is_empty(),
        "examples the validation refuses:\n{}",
        refused.join("\n")
    );
}

/// A documented default written as one TOML value is the built-in default: the validated
/// configuration with `key = DEFAULT` is the one without the key.
#[test]
fn documented_defaults_are_the_built_in_ones() {
    let (tables, rows) = reference();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (full, row) in &rows {
        let Some(default) = &row.default else {
            continue;
        };
        // A nested key's default is compared within its table (`bantime_increment = {}`).
        let parent = full
            .rsplit_once('.')
            .map(|(p, _)| p)
            .filter(|p| p.contains('.'));
        // The validated config's Debug text, as a sorted list of its words: maps inside it
        // (HashMap) print in a random order, every value still shows as a word.
        let parse = |t: &str| match config::parse("reference.toml", t, None) {
            Ok(c) => {
                let text = format!("{c:?}");
                let mut words: Vec<&str> = text
                    .split(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '.'))
                    .filter(|w| !w.is_empty())
                    .collect();
                words.sort_unstable();
                words.join(" ")
            }
            Err(e) => format!("error: {e}"),
        };
        // The default state directory and control socket depend on what is writable on this
        // machine: pin them, except in the table under test.
        let pin = |mut text: String| {
            let dir = std::env::temp_dir().join("mxguard-reference");
            let (table, key) = full.split_once('.').unwrap();
            match table {
                "store" if key != "path" => {
                    text = text.replacen(
                        "[store]\n",
                        &format!("[store]\npath = {:?}\n", dir.display().to_string()),
                        1,
                    )
                }
                "store" => {}
                _ => text.insert_str(
                    0,
                    &format!("[store]\npath = {:?}\n\n", dir.display().to_string()),
                ),
            }
            if table != "control" {
                let sock = dir.join("control.sock").display().to_string();
                text.insert_str(0, &format!("[control]\nsocket = {sock:?}\n\n"));
            }
            text
        };
        let with = parse(&pin(snippet(&tables, full, Some(default))));
        let mut without = pin(snippet(&tables, full, None));
        if let Some(p) = parent {
            let (_, inner) = p.split_once('.').unwrap();
            without.push_str(&format!("{inner} = {{}}\n"));
        }
        let without = parse(&without);
        checked += 1;
        if with != without || with.starts_with("error") {
            wrong.push(format!(
                "reference.md:{}: {full} = {default}: {}",
                row.line,
                if with.starts_with("error") {
                    &with
                } else {
                    "differs from leaving it out"
                }
            ));
        }
    }
    assert!(checked > 100, "only {checked} defaults checked");
    assert!(
        wrong.is_empty(),
        "documented defaults that are not the built-in ones: {wrong:#?}"
    );
}

/// `table.key` names in backticks whose first part is a config table.
fn named_keys(text: &str, tables: &BTreeSet<String>) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (j, part) in line.split('`').enumerate() {
            if j % 2 == 0 {
                continue;
            }
            let Some((first, _)) = part.split_once('.') else {
                continue;
            };
            let ok = part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
            if ok && tables.contains(first) {
                out.push((i + 1, part.to_string()));
            }
        }
    }
    out
}

#[test]
fn keys_named_in_the_migration_guide_exist() {
    let s = schema();
    let top: BTreeSet<String> = s
        .tables
        .keys()
        .filter(|k| !k.contains('.'))
        .cloned()
        .collect();
    let text = std::fs::read_to_string(docs().join("migrate.md")).unwrap();
    let named = named_keys(&text, &top);
    assert!(
        named.len() > 40,
        "migrate.md names only {} keys",
        named.len()
    );
    let bad: Vec<String> = named
        .iter()
        .filter(|(_, k)| !s.keys.contains_key(k) && !s.tables.contains_key(k))
        .map(|(n, k)| format!("migrate.md:{n}: {k}"))
        .collect();
    assert!(
        bad.is_empty(),
        "migrate.md names keys mxguard does not have: {bad:#?}"
    );
}

/// The Postfix snippets (checked in a real Postfix by scripts/it/snippets.sh) ask the default
/// listener at RCPT, DATA and END-OF-MESSAGE, and on the submission ports before
/// `permit_sasl_authenticated`; the docs name both files.
#[test]
fn postfix_snippets_ask_mxguard_where_the_docs_say() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let def = config::load(None).unwrap();
    let config::ListenAddr::Inet(addr) = &def.policy.listen[0] else {
        panic!("default listener is not inet")
    };
    let policy = format!("check_policy_service {{ inet:{addr}, default_action=DUNNO }}");
    // main.cf: `name =` then indented continuation lines, `#` comments ignored.
    let main = std::fs::read_to_string(examples.join("postfix-main.cf")).unwrap();
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut current = None;
    for line in main.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if let Some((name, value)) = line.split_once('=').filter(|_| !line.starts_with(' ')) {
            let name = name.trim().to_string();
            params.insert(name.clone(), value.trim().to_string());
            current = Some(name);
        } else if let (Some(c), true) = (&current, line.starts_with(' ')) {
            let v = params.get_mut(c).unwrap();
            v.push(' ');
            v.push_str(line.trim());
        }
    }
    for stage in [
        "smtpd_recipient_restrictions",
        "smtpd_data_restrictions",
        "smtpd_end_of_data_restrictions",
    ] {
        let v = params.get(stage).map(String::as_str).unwrap_or("");
        assert!(v.contains(&policy), "postfix-main.cf {stage} = {v}");
    }
    let master = std::fs::read_to_string(examples.join("postfix-master.cf")).unwrap();
    let overrides: Vec<&str> = master
        .lines()
        .filter(|l| l.contains("-o { smtpd_recipient_restrictions ="))
        .collect();
    assert_eq!(overrides.len(), 2, "submission and submissions");
    for o in overrides {
        let (before, after) = o.split_once(&policy).expect("asks mxguard");
        assert!(!before.contains("permit_sasl_authenticated"), "{o}");
        assert!(after.contains("permit_sasl_authenticated, reject }"), "{o}");
    }
    let ops = std::fs::read_to_string(docs().join("operations.md")).unwrap();
    assert!(ops.contains("examples/postfix-main.cf") && ops.contains("examples/postfix-master.cf"));
}
