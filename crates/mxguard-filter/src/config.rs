//! Filter configuration with fail2ban's semantics (`client/configreader.py`, `filterreader.py`,
//! `helpers.substituteRecursiveTags`): a filter name is read as `NAME.conf`, `NAME.d/*.conf`,
//! `NAME.local`, `NAME.d/*.local`, each file with its `[INCLUDES] before/after` (and their `.local`
//! siblings); later files override earlier keys. Values then go through `%(name)s` interpolation
//! (pass 1, with `sec/opt`, `known/opt`, `default/opt`, `__name__`) and `<tag>` substitution
//! (pass 2, innermost tag first, unknown tags left for the regex compiler). The result is a
//! [`FilterDefinition`] of plain strings; regex compilation happens in `filter`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::FilterError;
use crate::ini::IniFile;

/// Init options (`name[k=v]` and `[Init]`), lower-cased keys.
pub type InitOptions = Vec<(String, String)>;

/// A parsed filter specification such as `postfix[mode=aggressive]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// Filter name or path, without options.
    pub name: String,
    /// Options in the order given.
    pub options: InitOptions,
}

impl FilterSpec {
    /// Parses `name[k=v, k2="v,2"][k3='x']` (fail2ban `extractOptions`).
    pub fn parse(spec: &str) -> Result<FilterSpec, FilterError> {
        let bad = |message: &str| FilterError::Spec {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        let spec_trim = spec.trim();
        let (name, mut rest) = match spec_trim.find('[') {
            Some(p) => (
                spec_trim.get(..p).unwrap_or(""),
                spec_trim.get(p..).unwrap_or(""),
            ),
            None => (spec_trim, ""),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("empty filter name"));
        }
        let mut options = Vec::new();
        while !rest.is_empty() {
            let Some(body) = rest.strip_prefix('[') else {
                return Err(bad("expected `[` after the filter name"));
            };
            let (opts, after) = split_options(body).ok_or_else(|| bad("unclosed `[`"))?;
            for (k, v) in opts {
                if k.is_empty() {
                    return Err(bad("option without a name"));
                }
                options.push((k.to_lowercase(), v));
            }
            rest = after.trim_start();
        }
        Ok(FilterSpec {
            name: name.to_string(),
            options,
        })
    }
}

/// Splits `k=v, k2="a,b"]rest` into options and the text after the closing `]`.
fn split_options(body: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    let mut key = String::new();
    let mut val = String::new();
    let mut in_val = false;
    let mut quote: Option<char> = None;
    let mut val_quoted = false;
    for (i, c) in body.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else {
                val.push(c);
            }
            continue;
        }
        match c {
            '"' | '\'' if in_val && val.trim().is_empty() && !val_quoted => {
                quote = Some(c);
                val.clear();
                val_quoted = true;
            }
            '=' if !in_val => in_val = true,
            ',' | ']' => {
                let k = key.trim().to_string();
                if !k.is_empty() || in_val {
                    let v = if val_quoted {
                        val.clone()
                    } else {
                        val.trim().to_string()
                    };
                    out.push((k, v));
                }
                key.clear();
                val.clear();
                in_val = false;
                val_quoted = false;
                if c == ']' {
                    return Some((out, body.get(i + 1..).unwrap_or("")));
                }
            }
            _ if in_val => {
                if !val_quoted {
                    val.push(c);
                }
            }
            _ => key.push(c),
        }
    }
    None
}

/// One option value with the file that set it; `history` keeps earlier values for `known/`.
#[derive(Debug, Clone, Default)]
struct OptionValues {
    history: Vec<(String, usize)>,
}

/// All sections of all files read for one filter, merged.
#[derive(Debug, Clone, Default)]
pub struct ConfigSet {
    files: Vec<PathBuf>,
    /// The filter's own first file (not an include), named in messages.
    primary: Option<PathBuf>,
    sections: HashMap<String, HashMap<String, OptionValues>>,
    order: Vec<String>,
}

impl ConfigSet {
    /// Reads filter `name` (a name inside `dir`, or a path to a `.conf`/`.local` file).
    pub fn load_filter(dir: &Path, name: &str) -> Result<ConfigSet, FilterError> {
        let mut set = ConfigSet::default();
        let as_path = Path::new(name);
        let (base_dir, stem) = if as_path.is_file() {
            let parent = as_path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let file = as_path
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or(name)
                .to_string();
            let stem = file
                .strip_suffix(".conf")
                .or_else(|| file.strip_suffix(".local"))
                .unwrap_or(&file)
                .to_string();
            if !file.ends_with(".conf") && !file.ends_with(".local") {
                // A file without the usual suffix: read just that file.
                set.primary = Some(as_path.to_path_buf());
                set.read_with_includes(as_path, 0)?;
                return Ok(set);
            }
            (parent, stem)
        } else {
            (dir.to_path_buf(), name.to_string())
        };
        let conf = base_dir.join(format!("{stem}.conf"));
        let local = base_dir.join(format!("{stem}.local"));
        let mut files: Vec<PathBuf> = Vec::new();
        let dirs = [
            base_dir.join(format!("{stem}.d")),
            base_dir.join(format!("{stem}.conf.d")),
        ];
        if conf.is_file() {
            files.push(conf);
        }
        for d in &dirs {
            files.extend(list_dir(d, "conf"));
        }
        if local.is_file() {
            files.push(local);
        }
        for d in &dirs {
            files.extend(list_dir(d, "local"));
        }
        if files.is_empty() {
            return Err(FilterError::Spec {
                spec: name.to_string(),
                message: format!("no {stem}.conf or {stem}.local in {}", base_dir.display()),
            });
        }
        set.primary = files.first().cloned();
        for f in files {
            set.read_with_includes(&f, 0)?;
        }
        Ok(set)
    }

    /// A config made of one in-memory file (no includes are followed); tests and fuzzing.
    pub fn from_text(path: &Path, text: &str) -> Result<ConfigSet, FilterError> {
        let mut set = ConfigSet::default();
        set.merge(&IniFile::parse(path, text)?);
        Ok(set)
    }

    /// Files read, in order (for `test-filter` output).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The first file read (named in error messages).
    pub fn main_file(&self) -> String {
        self.primary
            .as_ref()
            .or(self.files.first())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<filter>".into())
    }

    fn read_with_includes(&mut self, path: &Path, depth: usize) -> Result<(), FilterError> {
        if depth > 16 {
            return Err(FilterError::Syntax {
                path: path.to_path_buf(),
                line: 0,
                message: "[INCLUDES] nested too deeply (include loop?)".into(),
            });
        }
        let ini = IniFile::load(path)?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut before = Vec::new();
        let mut after = Vec::new();
        for s in ini.sections.iter().filter(|s| s.name == "INCLUDES") {
            for e in &s.entries {
                let list: Vec<String> = e.value.split_whitespace().map(String::from).collect();
                match e.key.as_str() {
                    "before" => before.extend(list),
                    "after" => after.extend(list),
                    _ => {}
                }
            }
        }
        for inc in &before {
            self.read_include(&dir, inc, depth)?;
        }
        self.merge(&ini);
        for inc in &after {
            self.read_include(&dir, inc, depth)?;
        }
        Ok(())
    }

    /// An include and its `.local` sibling; missing files are skipped like fail2ban does.
    fn read_include(&mut self, dir: &Path, inc: &str, depth: usize) -> Result<(), FilterError> {
        let p = dir.join(inc);
        if p.is_file() {
            self.read_with_includes(&p, depth + 1)?;
        }
        if let Some(stem) = inc.strip_suffix(".conf") {
            let l = dir.join(format!("{stem}.local"));
            if l.is_file() {
                self.read_with_includes(&l, depth + 1)?;
            }
        }
        Ok(())
    }

    fn merge(&mut self, ini: &IniFile) {
        let file_idx = self.files.len();
        self.files.push(ini.path.clone());
        for s in &ini.sections {
            if s.name == "INCLUDES" {
                continue;
            }
            if !self.sections.contains_key(&s.name) {
                self.order.push(s.name.clone());
            }
            let sec = self.sections.entry(s.name.clone()).or_default();
            for e in &s.entries {
                sec.entry(e.key.clone())
                    .or_default()
                    .history
                    .push((e.value.clone(), file_idx));
            }
        }
    }

    fn raw(&self, section: &str, key: &str) -> Option<&str> {
        let v = self.sections.get(section)?.get(key)?;
        v.history.last().map(|(s, _)| s.as_str())
    }

    /// Raw value of `key` in `section` with `[DEFAULT]` fallback.
    fn raw_with_default(&self, section: &str, key: &str) -> Option<(&str, String)> {
        if let Some(v) = self.raw(section, key) {
            return Some((v, section.to_string()));
        }
        self.raw("DEFAULT", key).map(|v| (v, section.to_string()))
    }

    /// The value `key` had before the latest file overrode it (`%(known/key)s`).
    fn known(&self, section: &str, key: &str) -> Option<&str> {
        if let Some(v) = self.sections.get(section).and_then(|s| s.get(key)) {
            if v.history.len() >= 2 {
                return v.history.get(v.history.len() - 2).map(|(s, _)| s.as_str());
            }
            if section != "DEFAULT" {
                return self.raw("DEFAULT", key);
            }
            return None;
        }
        self.raw("DEFAULT", key)
    }

    /// Option names of `section` (without DEFAULT).
    pub fn keys(&self, section: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .sections
            .get(section)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether a section exists.
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// Pass 1: the value of `key` in `section` with `%(name)s` interpolation; `vars` are the init
    /// options (looked up after the section and `[DEFAULT]`).
    pub fn get(
        &self,
        section: &str,
        key: &str,
        vars: &InitOptions,
    ) -> Result<Option<String>, FilterError> {
        let Some((raw, ctx)) = self.raw_with_default(section, key) else {
            return Ok(None);
        };
        let raw = raw.to_string();
        self.interpolate(&raw, &ctx, key, vars, 0).map(Some)
    }

    fn interp_err(&self, section: &str, option: &str, message: String) -> FilterError {
        FilterError::Interpolation {
            file: self.main_file(),
            section: section.to_string(),
            option: option.to_string(),
            message,
        }
    }

    fn interpolate(
        &self,
        value: &str,
        section: &str,
        key: &str,
        vars: &InitOptions,
        depth: usize,
    ) -> Result<String, FilterError> {
        if depth > 30 {
            return Err(self.interp_err(
                section,
                key,
                "%(...)s interpolation nested too deeply (self reference?)".into(),
            ));
        }
        if !value.contains('%') {
            return Ok(value.to_string());
        }
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(p) = rest.find('%') {
            out.push_str(rest.get(..p).unwrap_or(""));
            let tail = rest.get(p..).unwrap_or("");
            if let Some(after) = tail.strip_prefix("%%") {
                out.push('%');
                rest = after;
                continue;
            }
            let Some(inner) = tail.strip_prefix("%(") else {
                return Err(self.interp_err(
                    section,
                    key,
                    format!(
                        "'%' must be followed by '%' or '(' (write %% for a literal %): {value:?}"
                    ),
                ));
            };
            let Some(close) = inner.find(")s") else {
                return Err(self.interp_err(
                    section,
                    key,
                    format!("bad interpolation syntax in {value:?}"),
                ));
            };
            let name = inner.get(..close).unwrap_or("").to_lowercase();
            rest = inner.get(close + 2..).unwrap_or("");
            let resolved = self.lookup_interp(&name, section, key, vars, depth)?;
            out.push_str(&resolved);
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup_interp(
        &self,
        name: &str,
        section: &str,
        key: &str,
        vars: &InitOptions,
        depth: usize,
    ) -> Result<String, FilterError> {
        if name == "__name__" {
            return Ok(section.to_string());
        }
        let missing = || {
            self.interp_err(
                section,
                key,
                format!("%({name})s refers to an option that is not defined"),
            )
        };
        if let Some((sec, opt)) = name.split_once('/') {
            let (raw, ctx) = match sec {
                "known" => (self.known(section, opt), section.to_string()),
                "default" => (self.raw("DEFAULT", opt), "DEFAULT".to_string()),
                _ => {
                    let sec = self.section_name(sec);
                    (
                        self.raw_with_default(&sec, opt).map(|(v, _)| v),
                        sec.clone(),
                    )
                }
            };
            let raw = raw.ok_or_else(missing)?.to_string();
            return self.interpolate(&raw, &ctx, opt, vars, depth + 1);
        }
        if let Some((raw, ctx)) = self.raw_with_default(section, name) {
            let raw = raw.to_string();
            return self.interpolate(&raw, &ctx, name, vars, depth + 1);
        }
        if let Some((_, v)) = vars.iter().rev().find(|(k, _)| k == name) {
            return Ok(v.clone());
        }
        Err(missing())
    }

    /// Section names are case-sensitive in configparser, but `default` means `DEFAULT`.
    fn section_name(&self, sec: &str) -> String {
        if self.sections.contains_key(sec) {
            return sec.to_string();
        }
        self.order
            .iter()
            .find(|s| s.eq_ignore_ascii_case(sec))
            .cloned()
            .unwrap_or_else(|| sec.to_string())
    }
}

fn list_dir(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext) && p.is_file())
        .collect();
    v.sort();
    v
}

/// The options of a filter after both passes, still as strings (`FilterReader.convert()`).
#[derive(Debug, Clone, Default)]
pub struct FilterDefinition {
    /// The main filter file (for messages).
    pub file: String,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Effective init options (`[Init]` overridden by the spec's options).
    pub init: InitOptions,
    /// `prefregex`, if any.
    pub prefregex: Option<String>,
    /// `failregex` lines.
    pub failregex: Vec<String>,
    /// `ignoreregex` lines.
    pub ignoreregex: Vec<String>,
    /// `datepattern` lines (empty: default templates).
    pub datepattern: Vec<String>,
    /// `maxlines` (1 when unset).
    pub maxlines: usize,
    /// `usedns` (`warn` when unset).
    pub usedns: String,
    /// `journalmatch` lines (informational).
    pub journalmatch: Vec<String>,
    /// `logtype` in effect.
    pub logtype: String,
}

/// Keys that go through pass 2 (tag substitution), as in `FilterReader.convert`.
const TAGGED: [&str; 7] = [
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

impl FilterDefinition {
    /// Loads filter `spec` (`name[opts]` or a path) from `filter_dir` (a `filter.d`).
    pub fn load(filter_dir: &Path, spec: &FilterSpec) -> Result<FilterDefinition, FilterError> {
        let set = ConfigSet::load_filter(filter_dir, &spec.name)?;
        FilterDefinition::from_config(&set, &spec.options)
    }

    /// Resolves the options of an already loaded config with the given init options.
    pub fn from_config(
        set: &ConfigSet,
        opts: &InitOptions,
    ) -> Result<FilterDefinition, FilterError> {
        // [Init] options are defaults a jail can override.
        let mut init: InitOptions = Vec::new();
        if set.has_section("Init") {
            for k in set.keys("Init") {
                let v = set
                    .get("Init", &k, opts)
                    .ok()
                    .flatten()
                    .or_else(|| set.raw("Init", &k).map(String::from))
                    .unwrap_or_default();
                init.push((k, v));
            }
        }
        for (k, v) in opts {
            if let Some(slot) = init.iter_mut().find(|(ik, _)| ik == k) {
                slot.1 = v.clone();
            } else {
                init.push((k.clone(), v.clone()));
            }
        }
        let resolver = TagResolver { set, init: &init };
        let mut values: HashMap<&str, Option<String>> = HashMap::new();
        for key in TAGGED {
            let v = match init.iter().find(|(k, _)| k == key) {
                Some((_, v)) => Some(v.clone()),
                None => set.get("Definition", key, &init)?,
            };
            let v = match v {
                Some(v) => Some(resolver.substitute(&v, key)?),
                None => None,
            };
            values.insert(key, v);
        }
        let take = |k: &str| values.get(k).cloned().flatten();
        let lines = |v: Option<String>| -> Vec<String> {
            v.map(|v| {
                v.split('\n')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
        };
        let maxlines = match take("maxlines") {
            Some(m) if !m.trim().is_empty() => {
                m.trim()
                    .parse::<usize>()
                    .map_err(|_| FilterError::Interpolation {
                        file: set.main_file(),
                        section: "Definition".into(),
                        option: "maxlines".into(),
                        message: format!("not a number: {m:?}"),
                    })?
            }
            _ => 1,
        };
        let logtype = match init.iter().find(|(k, _)| k == "logtype") {
            Some((_, v)) => v.clone(),
            None => set
                .get("Definition", "logtype", &init)?
                .unwrap_or_else(|| "file".into()),
        };
        Ok(FilterDefinition {
            file: set.main_file(),
            files: set.files().to_vec(),
            prefregex: take("prefregex").filter(|p| !p.trim().is_empty()),
            failregex: lines(take("failregex")),
            ignoreregex: lines(take("ignoreregex")),
            datepattern: lines(take("datepattern")),
            maxlines: maxlines.max(1),
            usedns: take("usedns")
                .map(|u| u.trim().to_lowercase())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "warn".into()),
            journalmatch: lines(take("journalmatch")),
            logtype,
            init,
        })
    }
}

/// Pass 2: `<tag>` substitution (fail2ban `substituteRecursiveTags`).
struct TagResolver<'a> {
    set: &'a ConfigSet,
    init: &'a InitOptions,
}

impl TagResolver<'_> {
    fn lookup(&self, name: &str, option: &str) -> Result<Option<String>, FilterError> {
        let lname = name.to_lowercase();
        if let Some((_, v)) = self.init.iter().find(|(k, _)| *k == lname) {
            return Ok(Some(v.clone()));
        }
        if let Some((sec, opt)) = name.split_once('/') {
            let sec = self.set.section_name(sec);
            if !self.set.has_section(&sec) && sec != "known" && sec != "default" {
                return Ok(None);
            }
            let opt = opt.to_lowercase();
            return self.set.get(&sec, &opt, self.init).map_err(|e| match e {
                FilterError::Interpolation { message, .. } => FilterError::Interpolation {
                    file: self.set.main_file(),
                    section: sec.clone(),
                    option: option.to_string(),
                    message,
                },
                other => other,
            });
        }
        self.set.get("Definition", &lname, self.init)
    }

    fn substitute(&self, value: &str, option: &str) -> Result<String, FilterError> {
        let mut cur = value.to_string();
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut rounds = 0usize;
        loop {
            rounds += 1;
            if rounds > 1000 {
                return Err(self.err(option, "tag substitution does not terminate".into()));
            }
            let mut changed = false;
            let mut out = String::with_capacity(cur.len());
            let mut rest = cur.as_str();
            while let Some(lt) = rest.find('<') {
                out.push_str(rest.get(..lt).unwrap_or(""));
                let after = rest.get(lt + 1..).unwrap_or("");
                // innermost tag: name made of anything but space, `<`, `>`
                let end = after.find(['<', '>', ' ']);
                match end {
                    Some(e) if after.as_bytes().get(e) == Some(&b'>') && e > 0 => {
                        let name = after.get(..e).unwrap_or("");
                        match self.lookup(name, option)? {
                            Some(v) => {
                                let n = counts.entry(name.to_string()).or_default();
                                *n += 1;
                                if *n > 25 || v.contains(&format!("<{name}>")) {
                                    return Err(
                                        self.err(option, format!("tag <{name}> refers to itself"))
                                    );
                                }
                                out.push_str(&v);
                                changed = true;
                            }
                            None => {
                                out.push('<');
                                out.push_str(name);
                                out.push('>');
                            }
                        }
                        rest = after.get(e + 1..).unwrap_or("");
                    }
                    _ => {
                        out.push('<');
                        rest = after;
                    }
                }
            }
            out.push_str(rest);
            cur = out;
            if !changed {
                return Ok(cur);
            }
        }
    }

    fn err(&self, option: &str, message: String) -> FilterError {
        FilterError::Interpolation {
            file: self.set.main_file(),
            section: "Definition".into(),
            option: option.to_string(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let s = FilterSpec::parse("postfix[mode=aggressive]").unwrap();
        assert_eq!(s.name, "postfix");
        assert_eq!(s.options, vec![("mode".into(), "aggressive".into())]);
        let s = FilterSpec::parse(r#"sendmail-reject[mta_dname="[^,]+", b='x, y'][c=1]"#).unwrap();
        assert_eq!(
            s.options,
            vec![
                ("mta_dname".into(), "[^,]+".into()),
                ("b".into(), "x, y".into()),
                ("c".into(), "1".into())
            ]
        );
        assert!(FilterSpec::parse("x[a=1").is_err());
        assert!(FilterSpec::parse("[a=1]").is_err());
    }

    fn set_of(text: &str) -> ConfigSet {
        let mut set = ConfigSet::default();
        set.merge(&IniFile::parse(Path::new("t.conf"), text).unwrap());
        set
    }

    #[test]
    fn interpolation_and_tags() {
        let set = set_of(
            "[DEFAULT]\nd = D\n[Definition]\nmode = more\nmdre-more = ^m %(d)s\nmdre-aggressive = ^a\nfailregex = <mdre-<mode>>\n   ^x <HOST> %%\n[lt_file]\np = P\n[Init]\njournalmatch = j\n",
        );
        let def = FilterDefinition::from_config(&set, &vec![]).unwrap();
        assert_eq!(def.failregex, vec!["^m D", "^x <HOST> %"]);
        assert_eq!(def.journalmatch, vec!["j"]);
        let def = FilterDefinition::from_config(&set, &vec![("mode".into(), "aggressive".into())])
            .unwrap();
        assert_eq!(def.failregex, vec!["^a", "^x <HOST> %"]);
    }

    #[test]
    fn missing_interpolation_names_place() {
        let set = set_of("[Definition]\nfailregex = %(nope)s\n");
        let e = FilterDefinition::from_config(&set, &vec![]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("[Definition] failregex") && s.contains("nope"),
            "{s}"
        );
    }

    #[test]
    fn known_value() {
        let mut set = ConfigSet::default();
        set.merge(&IniFile::parse(Path::new("a.conf"), "[DEFAULT]\npl = A\n").unwrap());
        set.merge(
            &IniFile::parse(
                Path::new("b.conf"),
                "[Definition]\npl = %(known/pl)sB\nfailregex = ^%(pl)s\n",
            )
            .unwrap(),
        );
        let def = FilterDefinition::from_config(&set, &vec![]).unwrap();
        assert_eq!(def.failregex, vec!["^AB"]);
    }
}
