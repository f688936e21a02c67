//! Dovecot configuration model for the audit: `doveconf -n` output or a raw dovecot.conf with
//! its `!include`/`!include_try` files, parsed into nested sections (`passdb`, `userdb`,
//! `service X { inet_listener Y { } }`, `protocol imap { }`, `remote NET { }`), plus the
//! Dovecot 2.3.19 defaults (`doveconf -d` on Debian 12) for settings left unset.
//!
//! Syntax (Dovecot "Configuration file syntax"): `key = value`, `kind [name] {` opens a section,
//! `}` closes it, `#` starts a comment. An unclosed or unmatched brace is an error, as it is for
//! doveconf. Secrets printed by doveconf as `# hidden, use -P to show it` are "set, value
//! unknown". This module does not evaluate `protocol`/`remote` overrides; rules look at them.

use std::path::{Path, PathBuf};

use super::Location;
use super::error::AuditError;
use super::postfix_defaults::{Version, parse_version};

/// A `key = value` line.
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub file: String,
    pub line: usize,
}

impl Setting {
    /// Whether doveconf masked the value (`# hidden, use -P to show it`).
    pub fn hidden(&self) -> bool {
        self.value.starts_with("# hidden")
    }
}

/// A section; the root section has an empty `kind`.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    pub settings: Vec<Setting>,
    pub children: Vec<Section>,
    pub file: String,
    pub line: usize,
}

impl Section {
    /// Last value of `key` directly in this section.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.key == key)
    }

    /// `kind name` as shown in findings (`service auth`, `passdb`).
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} {n}", self.kind),
            None => self.kind.clone(),
        }
    }

    /// Every section below this one (depth first), with the path of labels leading to it.
    pub fn walk(&self) -> Vec<(String, &Section)> {
        let mut out = Vec::new();
        for c in &self.children {
            out.push((c.label(), c));
            for (p, s) in c.walk() {
                out.push((format!("{} / {p}", c.label()), s));
            }
        }
        out
    }
}

/// The whole Dovecot configuration as read.
#[derive(Debug, Clone, Default)]
pub struct DovecotConfig {
    /// Name of the source (file path or `doveconf -n`).
    pub source: String,
    pub root: Section,
    /// Version from the `# 2.3.19.1 (...)` header of doveconf output or `--dovecot-version`.
    pub version: Option<Version>,
}

/// Dovecot 2.3.19.1 defaults of the settings the rules read.
pub fn default_value(key: &str) -> Option<&'static str> {
    Some(match key {
        "disable_plaintext_auth" => "yes",
        "auth_allow_cleartext" => "no",
        "ssl" => "yes",
        "ssl_min_protocol" => "TLSv1.2",
        "auth_mechanisms" => "plain",
        "listen" => "*, ::",
        "login_trusted_networks"
        | "auth_policy_server_url"
        | "auth_policy_hash_nonce"
        | "mail_privileged_group"
        | "mail_access_groups"
        | "doveadm_password"
        | "doveadm_api_key"
        | "ssl_cert" => "",
        "auth_failure_delay" => "2 secs",
        "auth_cache_size" => "0",
        "auth_cache_ttl" | "auth_cache_negative_ttl" => "1 hours",
        "mail_fsync" => "optimized",
        "doveadm_port" => "0",
        "first_valid_uid" => "500",
        "first_valid_gid" => "1",
        "auth_verbose_passwords" => "no",
        "auth_debug_passwords" | "auth_debug" | "mail_debug" | "verbose_ssl" => "no",
        "auth_username_chars" => {
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@"
        }
        "mail_max_userip_connections" => "10",
        "ssl_cipher_list" => {
            "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW@STRENGTH"
        }
        _ => return None,
    })
}

impl DovecotConfig {
    /// Parses doveconf output or a dovecot.conf. `base` is the directory for relative
    /// `!include` paths (raw files only; doveconf output has none).
    pub fn parse(
        text: &str,
        source: &str,
        base: Option<&Path>,
    ) -> Result<DovecotConfig, AuditError> {
        let mut cfg = DovecotConfig {
            source: source.to_string(),
            ..Default::default()
        };
        for line in text.lines().take(3) {
            // doveconf header: "# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf"
            if let Some(rest) = line.strip_prefix("# ")
                && rest.chars().next().is_some_and(|c| c.is_ascii_digit())
            {
                cfg.version = parse_version(rest.split_whitespace().next().unwrap_or(""));
            }
        }
        let mut stack: Vec<Section> = vec![Section {
            file: source.to_string(),
            ..Default::default()
        }];
        parse_into(text, source, base, &mut stack, 0)?;
        if stack.len() > 1 {
            let open = stack
                .last()
                .map(|s| (s.label(), s.line))
                .unwrap_or_default();
            return Err(AuditError::Truncated {
                source_name: source.to_string(),
                message: format!(
                    "section '{}' opened at line {} is never closed with '}}'",
                    open.0, open.1
                ),
            });
        }
        cfg.root = stack.pop().unwrap_or_default();
        Ok(cfg)
    }

    /// Last global value of `key`, if set.
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.root.get(key)
    }

    /// Effective global value: set value, else the 2.3 default, else empty.
    pub fn val(&self, key: &str) -> String {
        match self.setting(key) {
            Some(s) => s.value.clone(),
            None => default_value(key).unwrap_or("").to_string(),
        }
    }

    /// The value as shown in findings.
    pub fn shown(&self, key: &str) -> String {
        match self.setting(key) {
            Some(s) if s.value.is_empty() => "(empty)".to_string(),
            Some(s) => s.value.clone(),
            None => match default_value(key).unwrap_or("") {
                "" => "(default: empty)".to_string(),
                d => format!("(default) {d}"),
            },
        }
    }

    /// Boolean setting.
    pub fn flag(&self, key: &str) -> bool {
        is_yes(&self.val(key))
    }

    /// Location of a global setting (or of the file when unset).
    pub fn location(&self, key: &str) -> Location {
        match self.setting(key) {
            Some(s) => Location {
                file: s.file.clone(),
                service: None,
                line: Some(s.line),
            },
            None => Location {
                file: self.source.clone(),
                service: None,
                line: None,
            },
        }
    }

    /// Location of a section.
    pub fn section_location(&self, path: &str, sec: &Section) -> Location {
        Location {
            file: sec.file.clone(),
            service: Some(path.to_string()),
            line: Some(sec.line),
        }
    }

    /// Every section of `kind` anywhere in the tree, with its path.
    pub fn sections(&self, kind: &str) -> Vec<(String, &Section)> {
        self.root
            .walk()
            .into_iter()
            .filter(|(_, s)| s.kind == kind)
            .collect()
    }
}

/// `yes`/`y`/`true`/`1`.
pub fn is_yes(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "y" | "true" | "1"
    )
}

/// Parses a Dovecot time (`2 secs`, `1 hours`, `5 min`, `1h`, `300`) into seconds.
pub fn duration_secs(v: &str) -> Option<u64> {
    let v = v.trim();
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = v
        .get(digits.len()..)
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mult = match unit.as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "ms" | "msec" | "msecs" => return Some(n / 1000),
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86400,
        "w" | "week" | "weeks" => 604800,
        _ => return None,
    };
    Some(n * mult)
}

fn syntax(source: &str, line: usize, message: String) -> AuditError {
    AuditError::Syntax {
        source_name: source.to_string(),
        line,
        message,
    }
}

/// Removes a trailing comment (`#` after whitespace, outside quotes); a value that starts with
/// `#` (doveconf's "# hidden") is kept as is.
fn strip_comment(line: &str) -> &str {
    let mut in_quote = false;
    let mut prev_ws = true;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '#' if !in_quote && prev_ws => {
                let before = line.get(..i).unwrap_or("").trim_end();
                if before.ends_with('=') {
                    return line;
                }
                return before;
            }
            _ => {}
        }
        prev_ws = c.is_whitespace();
    }
    line
}

fn parse_into(
    text: &str,
    source: &str,
    base: Option<&Path>,
    stack: &mut Vec<Section>,
    depth: usize,
) -> Result<(), AuditError> {
    if depth > 8 {
        return Err(syntax(
            source,
            0,
            "!include nesting deeper than 8 levels".into(),
        ));
    }
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = strip_comment(raw.trim()).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("!include_try")
            .map(|r| (r, true))
            .or_else(|| line.strip_prefix("!include").map(|r| (r, false)))
        {
            let (path, optional) = rest;
            include(
                path.trim().trim_matches('"'),
                optional,
                source,
                line_no,
                base,
                stack,
                depth,
            )?;
            continue;
        }
        if line == "}" {
            if stack.len() <= 1 {
                return Err(syntax(
                    source,
                    line_no,
                    "'}' without an open section".into(),
                ));
            }
            if let Some(done) = stack.pop()
                && let Some(parent) = stack.last_mut()
            {
                parent.children.push(done);
            }
            continue;
        }
        if let Some(head) = line.strip_suffix('{') {
            let mut words = head.split_whitespace();
            let kind = words.next().unwrap_or("").to_string();
            let name: Vec<&str> = words.collect();
            if kind.is_empty() || kind.contains('=') {
                return Err(syntax(
                    source,
                    line_no,
                    format!("bad section header \"{line}\""),
                ));
            }
            stack.push(Section {
                kind,
                name: (!name.is_empty()).then(|| name.join(" ").trim_matches('"').to_string()),
                file: source.to_string(),
                line: line_no,
                ..Default::default()
            });
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(syntax(
                source,
                line_no,
                format!("expected 'key = value', section or '}}': \"{line}\""),
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(syntax(
                source,
                line_no,
                format!("bad setting name \"{key}\""),
            ));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if let Some(sec) = stack.last_mut() {
            sec.settings.push(Setting {
                key: key.to_string(),
                value: value.to_string(),
                file: source.to_string(),
                line: line_no,
            });
        }
    }
    Ok(())
}

/// Follows `!include[_try] PATH` (a `*` in the file name is a glob, as in conf.d/*.conf).
fn include(
    pattern: &str,
    optional: bool,
    source: &str,
    line: usize,
    base: Option<&Path>,
    stack: &mut Vec<Section>,
    depth: usize,
) -> Result<(), AuditError> {
    let Some(base) = base else {
        return Ok(());
    };
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let mut files = Vec::new();
    let file_name = full
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("")
        .to_string();
    if file_name.contains('*') {
        let dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
        let (pre, post) = file_name.split_once('*').unwrap_or((&file_name, ""));
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len() {
                    files.push(e.path());
                }
            }
        }
        files.sort();
    } else if full.exists() || !optional {
        files.push(full);
    }
    for f in files {
        let text = match std::fs::read(&f) {
            Ok(bytes) => super::input::text_of(&bytes, &f.display().to_string())?,
            Err(e) if optional => {
                let _ = e;
                continue;
            }
            Err(e) => {
                return Err(syntax(
                    source,
                    line,
                    format!("!include {}: {e}", f.display()),
                ));
            }
        };
        let name = f.display().to_string();
        let inc_base = f.parent().map(Path::to_path_buf);
        parse_into(
            &text,
            &name,
            inc_base.as_deref().or(Some(base)),
            stack,
            depth + 1,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sections_and_header() {
        let text = "# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf\nssl_key = # hidden, use -P to show it\npassdb {\n  driver = static\n  args = nopassword=y\n}\nservice auth {\n  inet_listener {\n    port = 12345\n  }\n}\n";
        let cfg = DovecotConfig::parse(text, "doveconf -n", None).unwrap();
        assert_eq!(cfg.version, Some((2, 3, 19)));
        assert!(cfg.setting("ssl_key").unwrap().hidden());
        let p = cfg.sections("passdb");
        assert_eq!(p[0].1.get("args").unwrap().value, "nopassword=y");
        let l = cfg.sections("inet_listener");
        assert_eq!(l[0].0, "service auth / inet_listener");
        assert_eq!(cfg.val("ssl_min_protocol"), "TLSv1.2");
    }

    #[test]
    fn unclosed_and_unmatched_braces() {
        assert!(matches!(
            DovecotConfig::parse("passdb {\n driver = pam\n", "f", None),
            Err(AuditError::Truncated { .. })
        ));
        assert!(DovecotConfig::parse("}\n", "f", None).is_err());
        assert!(DovecotConfig::parse("just words\n", "f", None).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_secs("2 secs"), Some(2));
        assert_eq!(duration_secs("1 hours"), Some(3600));
        assert_eq!(duration_secs("5min"), Some(300));
        assert_eq!(duration_secs("0"), Some(0));
    }

    #[test]
    fn comments() {
        let cfg = DovecotConfig::parse("listen = 127.0.0.1 # only local\n", "f", None).unwrap();
        assert_eq!(cfg.val("listen"), "127.0.0.1");
    }
}
