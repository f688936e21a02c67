//! fail2ban jail configuration for the audit: jail.conf, jail.local and jail.d/*.conf|*.local
//! merged in fail2ban's order (later files override keys of the same section, `[DEFAULT]`
//! supplies missing keys). Only what the F2B-* rules need: which jails are enabled, their
//! filter, and `ignoreip`. `%(var)s` interpolation is not evaluated here.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::AuditError;

/// Merged jail sections: section name -> key -> (value, file, line).
#[derive(Debug, Clone, Default)]
pub struct Fail2banConfig {
    /// Files read, in order.
    pub sources: Vec<String>,
    pub sections: BTreeMap<String, BTreeMap<String, (String, String, usize)>>,
}

impl Fail2banConfig {
    /// Reads `jail.conf`, `jail.d/*.conf`, `jail.local`, `jail.d/*.local` from a directory
    /// (fail2ban's jail.conf(5) order); at least one must exist.
    pub fn read_dir(dir: &Path) -> Result<Fail2banConfig, AuditError> {
        let mut files = vec![dir.join("jail.conf")];
        let mut d_conf = Vec::new();
        let mut d_local = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("jail.d")) {
            for e in rd.flatten() {
                let p = e.path();
                match p.extension().and_then(|x| x.to_str()) {
                    Some("conf") => d_conf.push(p),
                    Some("local") => d_local.push(p),
                    _ => {}
                }
            }
        }
        d_conf.sort();
        d_local.sort();
        files.extend(d_conf);
        files.push(dir.join("jail.local"));
        files.extend(d_local);
        let mut cfg = Fail2banConfig::default();
        for f in files.into_iter().filter(|f| f.is_file()) {
            let bytes = std::fs::read(&f).map_err(|source| AuditError::Read {
                path: f.clone(),
                source,
            })?;
            let name = f.display().to_string();
            let text = super::input::text_of(&bytes, &name)?;
            cfg.parse(&text, &name)?;
        }
        if cfg.sources.is_empty() {
            return Err(AuditError::Usage(format!(
                "{}: no jail.conf, jail.local or jail.d/*.conf|*.local found",
                dir.display()
            )));
        }
        Ok(cfg)
    }

    /// Merges one INI text (`[section]`, `key = value`, indented continuation lines, `#`/`;`
    /// comments).
    pub fn parse(&mut self, text: &str, source: &str) -> Result<(), AuditError> {
        self.sources.push(source.to_string());
        let mut section: Option<String> = None;
        let mut last_key: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if raw.starts_with([' ', '\t'])
                && let (Some(sec), Some(key)) = (&section, &last_key)
                && let Some(entry) = self.sections.get_mut(sec).and_then(|s| s.get_mut(key))
            {
                entry.0.push(' ');
                entry.0.push_str(line);
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let Some(name) = name.strip_suffix(']') else {
                    return Err(AuditError::Syntax {
                        source_name: source.to_string(),
                        line: i + 1,
                        message: format!("unterminated section header \"{line}\""),
                    });
                };
                section = Some(name.trim().to_string());
                self.sections.entry(name.trim().to_string()).or_default();
                last_key = None;
                continue;
            }
            let Some((k, v)) = line.split_once(['=', ':']) else {
                return Err(AuditError::Syntax {
                    source_name: source.to_string(),
                    line: i + 1,
                    message: format!("expected 'key = value': \"{line}\""),
                });
            };
            let Some(sec) = &section else {
                return Err(AuditError::Syntax {
                    source_name: source.to_string(),
                    line: i + 1,
                    message: "setting before any [section]".into(),
                });
            };
            // Inline comments after ';' or '#' preceded by whitespace (python configparser).
            let v = v
                .split(" ;")
                .next()
                .unwrap_or("")
                .split(" #")
                .next()
                .unwrap_or("")
                .trim();
            let k = k.trim().to_string();
            self.sections
                .entry(sec.clone())
                .or_default()
                .insert(k.clone(), (v.to_string(), source.to_string(), i + 1));
            last_key = Some(k);
        }
        Ok(())
    }

    /// Effective value of `key` in a jail (falling back to `[DEFAULT]`).
    pub fn get(&self, jail: &str, key: &str) -> Option<&(String, String, usize)> {
        self.sections
            .get(jail)
            .and_then(|s| s.get(key))
            .or_else(|| self.sections.get("DEFAULT").and_then(|s| s.get(key)))
    }

    /// Names of enabled jails with their filter (`filter` key or the jail name).
    pub fn enabled_jails(&self) -> Vec<(String, String)> {
        self.sections
            .keys()
            .filter(|j| *j != "DEFAULT" && *j != "INCLUDES")
            .filter(|j| {
                self.get(j, "enabled")
                    .is_some_and(|(v, _, _)| super::dovecot::is_yes(v))
            })
            .map(|j| {
                let filter = self
                    .get(j, "filter")
                    .map(|(v, _, _)| v.clone())
                    .unwrap_or_else(|| j.clone());
                let filter = if filter.contains("%(__name__)s") {
                    j.clone()
                } else {
                    filter
                };
                (j.clone(), filter)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_default() {
        let mut c = Fail2banConfig::default();
        c.parse("[DEFAULT]\nignoreip = 127.0.0.1\nenabled = false\n[dovecot]\nenabled = true ; on\n[postfix-sasl]\nfilter = postfix[mode=auth]\n", "jail.local").unwrap();
        let jails = c.enabled_jails();
        assert_eq!(jails, vec![("dovecot".to_string(), "dovecot".to_string())]);
        assert_eq!(c.get("dovecot", "ignoreip").unwrap().0, "127.0.0.1");
        assert!(c.parse("[x\n", "f").is_err());
    }
}
