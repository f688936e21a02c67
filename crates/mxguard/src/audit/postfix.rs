//! Postfix configuration model for the audit: main.cf (or `postconf -n` output), master.cf (or
//! `postconf -M` output) with per-service `-o` overrides, effective values with the built-in
//! defaults of `postfix_defaults`, `$name` expansion, and restriction-list tokens.
//!
//! Syntax follows postconf(5) "main.cf format" and master(5): a logical line starts with
//! non-whitespace, a line starting with whitespace continues it, `#` lines are comments. The
//! last definition of a parameter wins. A line without `=` in main.cf or a master.cf service
//! line with fewer than 8 fields is an error (Postfix refuses both).

use std::collections::BTreeMap;

use super::Location;
use super::error::AuditError;
use super::postfix_defaults::{Version, default_value, parse_version};

/// One main.cf parameter definition.
#[derive(Debug, Clone)]
pub struct MainParam {
    pub value: String,
    pub line: usize,
}

/// One master.cf service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Service name field (`smtp`, `submission`, `127.0.0.1:10025`).
    pub name: String,
    /// Type field (`inet`, `unix`, `pass`, `fifo`, `unix-dgram`).
    pub kind: String,
    /// Command (`smtpd`, `postscreen`, ...).
    pub command: String,
    /// Remaining command arguments other than `-o` overrides (`-v` flags etc.).
    pub args: Vec<String>,
    /// `-o name=value` overrides, last wins.
    pub overrides: BTreeMap<String, String>,
    /// Line of the service definition.
    pub line: usize,
}

/// Which kind of traffic a smtpd service receives (Postfix SASL_README, master.cf sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceClass {
    /// Port 25 from the Internet (`smtp inet smtpd` or the `smtpd pass` behind postscreen).
    Mx,
    /// Port 587 (`submission`).
    Submission,
    /// Port 465 (`smtps`/`submissions`) or any service in wrapper mode.
    Submissions,
    /// Bound to loopback, or a content-filter return path: not reachable from outside.
    Internal,
    /// Another public port.
    Other,
}

impl Service {
    /// `name/type`, as postconf(1) names services.
    pub fn id(&self) -> String {
        format!("{}/{}", self.name, self.kind)
    }

    /// Host part of an `inet` service name (`127.0.0.1` of `127.0.0.1:10025`), if any.
    pub fn host(&self) -> Option<&str> {
        let (host, _) = split_host_port(&self.name)?;
        Some(host)
    }

    /// Port of an `inet` service name, resolving the well-known names of /etc/services.
    pub fn port(&self) -> Option<u16> {
        let port = match split_host_port(&self.name) {
            Some((_, port)) => port,
            None => self.name.as_str(),
        };
        match port {
            "smtp" => Some(25),
            "submission" => Some(587),
            "smtps" | "submissions" | "urd" | "ssmtp" => Some(465),
            p => p.parse().ok(),
        }
    }

    /// Whether this runs the Postfix SMTP server.
    pub fn is_smtpd(&self) -> bool {
        self.command == "smtpd"
    }
}

/// `host:port` or `[v6]:port` -> (host, port); `None` for a bare name or port.
fn split_host_port(name: &str) -> Option<(&str, &str)> {
    if let Some(rest) = name.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        return Some((host, tail.strip_prefix(':')?));
    }
    name.rsplit_once(':')
}

/// Whether an address text is a loopback address (`127.x`, `::1`, `localhost`).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_matches(|c| c == '[' || c == ']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `-o` override of the service.
    Override,
    /// main.cf at this line.
    Main(usize),
    /// Built-in default.
    Default,
}

/// The whole Postfix configuration as read.
#[derive(Debug, Clone, Default)]
pub struct PostfixConfig {
    /// Name of the main.cf source (`/etc/postfix/main.cf` or `postconf -n`).
    pub main_source: String,
    /// Name of the master.cf source; `None` when no master.cf was given (then the stock
    /// `smtp inet n - y - - smtpd` is assumed).
    pub master_source: Option<String>,
    pub main: BTreeMap<String, MainParam>,
    pub services: Vec<Service>,
    /// `mail_version`, when known (`postconf -d mail_version` or `--postfix-version`).
    pub version: Option<Version>,
}

/// Splits a text into logical lines `(first line number, joined text)` by the main.cf and
/// master.cf rules (continuation lines start with whitespace, `#` lines are comments).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push(' ');
            last.1.push_str(trimmed);
            continue;
        }
        out.push((i + 1, trimmed.to_string()));
    }
    out
}

impl PostfixConfig {
    /// Parses main.cf text (or `postconf -n` output). `config_directory`, which `postconf -c DIR
    /// -n` adds to its output, is kept like any other parameter (nothing reads it).
    pub fn parse_main(&mut self, text: &str, source: &str) -> Result<(), AuditError> {
        self.main_source = source.to_string();
        let lines = logical_lines(text);
        for (line, logical) in &lines {
            let Some((name, value)) = logical.split_once('=') else {
                return Err(AuditError::Syntax {
                    source_name: source.to_string(),
                    line: *line,
                    message: format!("missing '=' after parameter name \"{logical}\""),
                });
            };
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(AuditError::Syntax {
                    source_name: source.to_string(),
                    line: *line,
                    message: format!("bad parameter name \"{name}\""),
                });
            }
            self.main.insert(
                name.to_string(),
                MainParam {
                    value: value.trim().to_string(),
                    line: *line,
                },
            );
        }
        // A list that ends in a separator at end of file without a newline was cut off.
        if !text.is_empty()
            && !text.ends_with('\n')
            && let Some((line, last)) = lines.last()
            && last.ends_with([',', '='])
        {
            return Err(AuditError::Truncated {
                source_name: source.to_string(),
                message: format!(
                    "line {line} ends with '{}' and no newline",
                    last.chars().last().unwrap_or(' ')
                ),
            });
        }
        Ok(())
    }

    /// Parses master.cf text (or `postconf -M` output).
    pub fn parse_master(&mut self, text: &str, source: &str) -> Result<(), AuditError> {
        self.master_source = Some(source.to_string());
        for (line, logical) in logical_lines(text) {
            let tokens = tokenize_master(&logical);
            if tokens.len() < 8 {
                return Err(AuditError::Syntax {
                    source_name: source.to_string(),
                    line,
                    message: format!(
                        "service definition has {} fields, master(5) needs at least 8: \"{logical}\"",
                        tokens.len()
                    ),
                });
            }
            let mut svc = Service {
                name: tokens[0].clone(),
                kind: tokens[1].clone(),
                command: tokens[7].clone(),
                args: Vec::new(),
                overrides: BTreeMap::new(),
                line,
            };
            let mut rest = tokens[8..].iter();
            while let Some(tok) = rest.next() {
                let opt = if tok == "-o" {
                    match rest.next() {
                        Some(next) => next.clone(),
                        None => {
                            return Err(AuditError::Syntax {
                                source_name: source.to_string(),
                                line,
                                message: "'-o' without name=value".to_string(),
                            });
                        }
                    }
                } else if let Some(attached) = tok.strip_prefix("-o").filter(|s| s.contains('=')) {
                    attached.to_string()
                } else {
                    svc.args.push(tok.clone());
                    continue;
                };
                let opt = opt
                    .trim_start_matches('{')
                    .trim_end_matches('}')
                    .trim()
                    .to_string();
                let Some((k, v)) = opt.split_once('=') else {
                    return Err(AuditError::Syntax {
                        source_name: source.to_string(),
                        line,
                        message: format!("'-o {opt}' is not name=value"),
                    });
                };
                svc.overrides
                    .insert(k.trim().to_string(), v.trim().to_string());
            }
            // A later definition of the same service replaces the earlier one.
            svc.overrides.remove("");
            self.services
                .retain(|s| !(s.name == svc.name && s.kind == svc.kind));
            self.services.push(svc);
        }
        Ok(())
    }

    /// The services to judge: the parsed master.cf, or the stock `smtp inet ... smtpd` line.
    pub fn effective_services(&self) -> Vec<Service> {
        if self.master_source.is_some() {
            return self.services.clone();
        }
        vec![Service {
            name: "smtp".into(),
            kind: "inet".into(),
            command: "smtpd".into(),
            args: Vec::new(),
            overrides: BTreeMap::new(),
            line: 0,
        }]
    }

    /// `compatibility_level` (0 when unset, as in Postfix).
    pub fn compat(&self) -> Version {
        self.main
            .get("compatibility_level")
            .and_then(|p| parse_version(&p.value))
            .unwrap_or((0, 0, 0))
    }

    /// Unexpanded effective value of `name` for a service (or main.cf when `svc` is `None`).
    pub fn raw(&self, svc: Option<&Service>, name: &str) -> Option<(String, Origin)> {
        if let Some(v) = svc.and_then(|s| s.overrides.get(name)) {
            return Some((v.clone(), Origin::Override));
        }
        if let Some(p) = self.main.get(name) {
            return Some((p.value.clone(), Origin::Main(p.line)));
        }
        default_value(name, self.compat(), self.version).map(|v| (v.to_string(), Origin::Default))
    }

    /// Whether `name` is explicitly set (override or main.cf).
    pub fn is_set(&self, svc: Option<&Service>, name: &str) -> bool {
        svc.is_some_and(|s| s.overrides.contains_key(name)) || self.main.contains_key(name)
    }

    /// Expanded effective value, or `None` when unset and the default is host-computed.
    pub fn get(&self, svc: Option<&Service>, name: &str) -> Option<String> {
        let (raw, _) = self.raw(svc, name)?;
        Some(self.expand(svc, &raw, 0))
    }

    /// Expanded effective value, empty when unknown.
    pub fn val(&self, svc: Option<&Service>, name: &str) -> String {
        self.get(svc, name).unwrap_or_default()
    }

    /// Boolean parameter (`yes`/`true`/`on`).
    pub fn flag(&self, svc: Option<&Service>, name: &str) -> bool {
        matches!(
            self.val(svc, name).trim().to_ascii_lowercase().as_str(),
            "yes" | "true" | "on" | "1"
        )
    }

    /// Integer parameter; unparsable values count as `None`.
    pub fn int(&self, svc: Option<&Service>, name: &str) -> Option<i64> {
        let v = self.val(svc, name);
        let digits: String = v
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        digits.parse().ok()
    }

    /// Expands `$name`, `${name}`, `$(name)`, `${name?text}` and `${name:text}` (postconf(5)
    /// "parameter expansion"). Unknown names expand to nothing, as in Postfix.
    pub fn expand(&self, svc: Option<&Service>, text: &str, depth: usize) -> String {
        if depth > 10 || !text.contains('$') {
            return text.to_string();
        }
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '$' || i + 1 >= chars.len() {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            let next = chars[i + 1];
            if next == '{' || next == '(' {
                let close = if next == '{' { '}' } else { ')' };
                // Find the matching bracket, allowing nesting.
                let mut level = 0;
                let mut j = i + 1;
                while j < chars.len() {
                    if chars[j] == next {
                        level += 1;
                    } else if chars[j] == close {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    j += 1;
                }
                let inner: String = chars[i + 2..j.min(chars.len())].iter().collect();
                out.push_str(&self.expand_braced(svc, &inner, depth));
                i = j + 1;
            } else if next.is_ascii_alphanumeric() || next == '_' {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                out.push_str(&self.lookup_expanded(svc, &name, depth));
                i = j;
            } else {
                out.push('$');
                if next == '$' {
                    i += 1;
                }
                i += 1;
            }
        }
        out
    }

    fn expand_braced(&self, svc: Option<&Service>, inner: &str, depth: usize) -> String {
        if let Some(pos) = inner.find(['?', ':']) {
            let (name, rest) = inner.split_at(pos);
            let value = self.lookup_expanded(svc, name.trim(), depth);
            let alt = rest.get(1..).unwrap_or("");
            let alt = alt.trim_start_matches('{').trim_end_matches('}');
            let use_alt = if rest.starts_with('?') {
                !value.trim().is_empty()
            } else {
                value.trim().is_empty()
            };
            return if use_alt {
                self.expand(svc, alt, depth + 1)
            } else if rest.starts_with('?') {
                String::new()
            } else {
                value
            };
        }
        self.lookup_expanded(svc, inner.trim(), depth)
    }

    fn lookup_expanded(&self, svc: Option<&Service>, name: &str, depth: usize) -> String {
        match self.raw(svc, name) {
            Some((raw, _)) => self.expand(svc, &raw, depth + 1),
            None => String::new(),
        }
    }

    /// Location of the effective definition of `name` for a service.
    pub fn location(&self, svc: Option<&Service>, name: &str) -> Location {
        match (svc, self.raw(svc, name).map(|(_, o)| o)) {
            (Some(s), Some(Origin::Override)) => Location {
                file: self
                    .master_source
                    .clone()
                    .unwrap_or_else(|| "master.cf".into()),
                service: Some(s.id()),
                line: (s.line > 0).then_some(s.line),
            },
            (_, Some(Origin::Main(line))) => Location {
                file: self.main_source.clone(),
                service: None,
                line: Some(line),
            },
            _ => Location {
                file: self.main_source.clone(),
                service: None,
                line: None,
            },
        }
    }

    /// Location for a per-service finding about `params`: the master.cf service when it
    /// overrides one of them, else main.cf (so identical findings of several services that
    /// inherit main.cf collapse into one).
    pub fn loc_for(&self, svc: &Service, params: &[&str]) -> Location {
        if params.iter().any(|p| svc.overrides.contains_key(*p)) {
            return self.service_location(svc);
        }
        params
            .iter()
            .find(|p| self.main.contains_key(**p))
            .map(|p| self.location(None, p))
            .unwrap_or_else(|| self.location(None, params.first().copied().unwrap_or("")))
    }

    /// Location of a master.cf service line.
    pub fn service_location(&self, svc: &Service) -> Location {
        Location {
            file: self
                .master_source
                .clone()
                .unwrap_or_else(|| "master.cf (assumed stock)".into()),
            service: Some(svc.id()),
            line: (svc.line > 0).then_some(svc.line),
        }
    }

    /// The value as shown in findings: the text, or `(default) text` when unset.
    pub fn shown(&self, svc: Option<&Service>, name: &str) -> String {
        match self.raw(svc, name) {
            Some((raw, Origin::Default)) if raw.is_empty() => "(default: empty)".to_string(),
            Some((raw, Origin::Default)) => format!("(default) {raw}"),
            Some((raw, _)) if raw.is_empty() => "(empty)".to_string(),
            Some((raw, _)) => raw,
            None => "(default, computed by Postfix)".to_string(),
        }
    }

    /// Classifies a smtpd service (see `ServiceClass`).
    pub fn class(&self, svc: &Service) -> ServiceClass {
        if svc.kind == "pass" {
            return ServiceClass::Mx;
        }
        if svc.kind != "inet" {
            return ServiceClass::Internal;
        }
        if svc.host().is_some_and(is_loopback_host) {
            return ServiceClass::Internal;
        }
        if self.flag(Some(svc), "smtpd_tls_wrappermode") {
            return ServiceClass::Submissions;
        }
        match svc.port() {
            Some(25) => ServiceClass::Mx,
            Some(587) => ServiceClass::Submission,
            Some(465) => ServiceClass::Submissions,
            _ => ServiceClass::Other,
        }
    }

    /// smtpd services reachable from outside (every class but `Internal`), and for the port-25
    /// class behind postscreen the `smtpd pass` service.
    pub fn public_smtpd(&self) -> Vec<(Service, ServiceClass)> {
        self.effective_services()
            .into_iter()
            .filter(Service::is_smtpd)
            .map(|s| {
                let c = self.class(&s);
                (s, c)
            })
            .filter(|(_, c)| *c != ServiceClass::Internal)
            .collect()
    }

    /// Whether SASL AUTH is offered on the service.
    pub fn sasl_on(&self, svc: &Service) -> bool {
        self.flag(Some(svc), "smtpd_sasl_auth_enable")
    }
}

/// Splits a master.cf logical line into fields, keeping `{ ... }` groups as one token.
fn tokenize_master(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in line.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One element of a restriction list: `reject_unauth_destination`, or
/// `check_policy_service inet:127.0.0.1:10040` with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub name: String,
    pub arg: Option<String>,
}

impl Restriction {
    /// `name arg` as written.
    pub fn text(&self) -> String {
        match &self.arg {
            Some(a) => format!("{} {a}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Whether a restriction takes one argument (postconf(5) restriction lists).
fn takes_arg(name: &str) -> bool {
    (name.starts_with("check_") && name != "check_relay_domains")
        || name.starts_with("reject_rbl_client")
        || name.starts_with("reject_rhsbl_")
        || name == "permit_dnswl_client"
        || name == "permit_rhswl_client"
}

/// Splits an expanded restriction list on commas and whitespace, keeping `{ ... }` arguments
/// together and attaching arguments to the restrictions that take them.
pub fn restrictions(list: &str) -> Vec<Restriction> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in list.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            c if (c.is_whitespace() || c == ',') && depth == 0 => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let name = w.to_ascii_lowercase();
        let arg = if takes_arg(&name) { it.next() } else { None };
        out.push(Restriction { name, arg });
    }
    out
}

impl PostfixConfig {
    /// Restriction list of a parameter for a service, with `smtpd_restriction_classes` names
    /// expanded in place (SMTPD_ACCESS_README "restriction classes").
    pub fn restriction_list(&self, svc: Option<&Service>, name: &str) -> Vec<Restriction> {
        let classes: Vec<String> = restrictions(&self.val(svc, "smtpd_restriction_classes"))
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut out = Vec::new();
        for r in restrictions(&self.val(svc, name)) {
            if classes.contains(&r.name) && r.arg.is_none() {
                out.extend(restrictions(&self.val(svc, &r.name)));
            } else {
                out.push(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_cf_continuations_and_last_wins() {
        let mut pf = PostfixConfig::default();
        pf.parse_main("# c\na = 1\nb = x,\n  y\na = 2\n", "main.cf")
            .unwrap();
        assert_eq!(pf.main["a"].value, "2");
        assert_eq!(pf.main["b"].value, "x, y");
        assert_eq!(pf.main["b"].line, 3);
    }

    #[test]
    fn main_cf_without_equals_is_an_error() {
        let mut pf = PostfixConfig::default();
        let e = pf.parse_main("a = 1\nsmtpd_rec\n", "main.cf").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn truncated_list_is_detected() {
        let mut pf = PostfixConfig::default();
        let e = pf.parse_main("a = 1\nb = x,", "main.cf").unwrap_err();
        assert!(matches!(e, AuditError::Truncated { .. }), "{e}");
    }

    #[test]
    fn master_overrides_and_classes() {
        let mut pf = PostfixConfig::default();
        pf.parse_master(
            "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd\n  -o smtpd_tls_security_level=encrypt\n  -o { smtpd_sasl_auth_enable = yes }\n127.0.0.1:10025 inet n - n - - smtpd\n",
            "master.cf",
        )
        .unwrap();
        let sub = &pf.services[1];
        assert_eq!(sub.overrides["smtpd_sasl_auth_enable"], "yes");
        assert_eq!(pf.class(sub), ServiceClass::Submission);
        assert_eq!(pf.class(&pf.services[2]), ServiceClass::Internal);
        assert_eq!(pf.class(&pf.services[0]), ServiceClass::Mx);
        assert!(pf.parse_master("smtp inet n -\n", "m").is_err());
    }

    #[test]
    fn expansion() {
        let mut pf = PostfixConfig::default();
        pf.parse_main("mynetworks = 127.0.0.0/8\nx = $mynetworks ${mynetworks} ${nothing:alt} ${mynetworks?yes}\n", "m").unwrap();
        assert_eq!(pf.val(None, "x"), "127.0.0.0/8 127.0.0.0/8 alt yes");
        assert_eq!(
            pf.val(None, "smtpd_client_event_limit_exceptions"),
            "127.0.0.0/8"
        );
    }

    #[test]
    fn restriction_tokens() {
        let r = restrictions(
            "permit_mynetworks, check_policy_service { inet:127.0.0.1:1, default_action=DUNNO }, reject_rbl_client zen.spamhaus.org reject",
        );
        let names: Vec<_> = r.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "permit_mynetworks",
                "check_policy_service",
                "reject_rbl_client",
                "reject"
            ]
        );
        assert!(r[1].arg.as_deref().unwrap().contains("default_action"));
    }
}
