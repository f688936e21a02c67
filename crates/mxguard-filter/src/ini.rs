//! INI reader following Python `configparser` as fail2ban configures it (`client/configparserinc.py`):
//! `key = value` or `key: value` (split at the first delimiter), indented continuation lines joined
//! with `\n`, full-line comments with `#`/`;` (also inside multi-line values), inline comments only
//! with `;` preceded by whitespace, option names lower-cased, values stripped. It parses one file;
//! includes, `.local` overlays and interpolation live in `config`.

use std::path::{Path, PathBuf};

use crate::error::FilterError;

/// One option as written in one file.
#[derive(Debug, Clone)]
pub struct IniEntry {
    /// Lower-cased option name.
    pub key: String,
    /// Value with continuation lines joined by `\n` (blank lines kept until the end is trimmed).
    pub value: String,
}

/// One `[section]` of one file (a section may appear several times; parts are merged).
#[derive(Debug, Clone)]
pub struct IniSection {
    /// Section name, case kept (`Definition`, `INCLUDES`, `lt_file`).
    pub name: String,
    /// Options in file order.
    pub entries: Vec<IniEntry>,
}

/// A parsed file.
#[derive(Debug, Clone)]
pub struct IniFile {
    /// Where it came from (for error messages and relative includes).
    pub path: PathBuf,
    /// Sections in file order.
    pub sections: Vec<IniSection>,
}

impl IniFile {
    /// Reads and parses `path`. Invalid UTF-8 is replaced, not rejected (filters are ASCII).
    pub fn load(path: &Path) -> Result<IniFile, FilterError> {
        let bytes = std::fs::read(path).map_err(|source| FilterError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        IniFile::parse(path, &text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<IniFile, FilterError> {
        let mut sections: Vec<IniSection> = Vec::new();
        // (section index, entry index, indent of the option line) of the value being built.
        let mut current: Option<(usize, usize, usize)> = None;
        let err = |line: usize, message: String| FilterError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        };
        for (idx, raw) in text.split('\n').enumerate() {
            let lineno = idx + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = raw.trim();
            // Full-line comments are skipped even inside a multi-line value (configparser
            // checks comment prefixes on the stripped line).
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let line = strip_inline_comment(raw);
            let value = line.trim();
            let indent = line.len() - line.trim_start().len();
            if value.is_empty() {
                // Blank lines inside values are kept (empty_lines_in_values) and trimmed later.
                if let Some((s, e, _)) = current {
                    sections[s].entries[e].value.push('\n');
                }
                continue;
            }
            if let Some((s, e, cur_indent)) = current
                && indent > cur_indent
            {
                let entry = &mut sections[s].entries[e];
                entry.value.push('\n');
                entry.value.push_str(value);
                continue;
            }
            if let Some(name) = value.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                if name.is_empty() {
                    return Err(err(lineno, "empty section name".into()));
                }
                sections.push(IniSection {
                    name: name.to_string(),
                    entries: Vec::new(),
                });
                current = None;
                continue;
            }
            let Some(pos) = value.find(['=', ':']) else {
                return Err(err(
                    lineno,
                    format!("expected `key = value`, a [section] or a comment, got {value:?}"),
                ));
            };
            let key = value.get(..pos).unwrap_or("").trim().to_lowercase();
            let val = value.get(pos + 1..).unwrap_or("").trim();
            if key.is_empty() {
                return Err(err(lineno, "option without a name".into()));
            }
            let Some(s) = sections.len().checked_sub(1) else {
                return Err(err(
                    lineno,
                    format!("option {key:?} before any [section] header"),
                ));
            };
            sections[s].entries.push(IniEntry {
                key,
                value: val.to_string(),
            });
            current = Some((s, sections[s].entries.len() - 1, indent));
        }
        for section in &mut sections {
            for entry in &mut section.entries {
                let trimmed = entry.value.trim_end_matches('\n').len();
                entry.value.truncate(trimmed);
            }
        }
        Ok(IniFile {
            path: path.to_path_buf(),
            sections,
        })
    }
}

/// Cuts an inline comment: `;` preceded by whitespace (fail2ban sets `inline_comment_prefixes=";"`).
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b';' && i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return line.get(..i).unwrap_or(line);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_comments_and_inline_comments() {
        let text = "[Definition]\nfailregex = ^a\n  # comment\n            ^b ; pragma\nk: v=w\n\n[Init]\nX = 1\n";
        let f = IniFile::parse(Path::new("t.conf"), text).unwrap();
        assert_eq!(f.sections.len(), 2);
        assert_eq!(f.sections[0].entries[0].value, "^a\n^b");
        assert_eq!(f.sections[0].entries[1].key, "k");
        assert_eq!(f.sections[0].entries[1].value, "v=w");
        assert_eq!(f.sections[1].entries[0].key, "x");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = IniFile::parse(Path::new("bad.conf"), "[Definition]\nfailregex\n").unwrap_err();
        assert!(e.to_string().starts_with("bad.conf:2:"), "{e}");
        let e = IniFile::parse(Path::new("bad.conf"), "a = b\n").unwrap_err();
        assert!(e.to_string().contains("before any [section]"), "{e}");
    }
}
