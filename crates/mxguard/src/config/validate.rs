//! Validation of the raw configuration: every value checked, every error collected with its
//! position, whitelist files read and parsed, defaults applied (docs/configuration.md).
//! Called only through `config::parse`/`config::load`.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mxguard_engine::greylist::{ClientWhitelist, GreylistSettings, RecipientWhitelist};
use mxguard_engine::lists::{ListEntry, StaticLists};
use mxguard_proto::{Limits, ReplyAction};
use toml::Spanned;

use super::defaults::{
    DEFAULT_POLICY_LISTEN, default_control_socket, default_state_dir, system_hostname,
};
use super::raw::{FileConfig, GreylistConfig, ListsConfig, PolicyConfig, StoreConfig};
use super::{
    Config, ConfigError, ConfigErrors, Control, ListenAddr, Log, Metrics, Policy, Store, StoreKind,
    parse_duration,
};

/// Linux `sun_path` holds 108 bytes including the terminating NUL.
const MAX_UNIX_PATH: usize = 107;

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    base: Option<&'a Path>,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    fn err_at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn err<T>(&mut self, v: &Spanned<T>, message: impl Into<String>) {
        self.err_at(v.span(), message);
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        match self.base {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.err(v, format!("{key}: {e}"));
                default
            }
        }
    }

    fn int(&mut self, v: &Option<Spanned<i64>>, key: &str, range: Range<i64>, default: i64) -> i64 {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if range.contains(&n) {
            n
        } else {
            self.err(
                v,
                format!(
                    "{key} = {n} is out of range {}..={}",
                    range.start,
                    range.end - 1
                ),
            );
            default
        }
    }
}

pub(super) fn validate(
    file: &str,
    text: &str,
    base: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx {
        file,
        text,
        base,
        errors: Vec::new(),
    };
    let raw: FileConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            // serde stops at the first structural error (syntax, unknown key, wrong type);
            // value errors below are all collected.
            let span = e.span().unwrap_or(0..0);
            ctx.err_at(span, e.message().trim().to_owned());
            return Err(ConfigErrors(ctx.errors));
        }
    };

    let policy = policy(&mut ctx, &raw.policy);
    let store = store(&mut ctx, &raw);
    let greylist = greylist(&mut ctx, &raw.greylist);
    let lists = lists(&mut ctx, &raw.lists);
    let limits = super::limits::validate(&raw.limit, raw.account.as_ref(), base, &mut |span, m| {
        ctx.err_at(span, m)
    });
    let auth_policy =
        super::auth_policy::validate(raw.auth_policy.as_ref(), &mut |span, m| ctx.err_at(span, m));
    let checks = super::checks::validate(
        super::checks::Raw {
            dns: raw.dns.as_ref(),
            spf: raw.spf.as_ref(),
            helo: raw.helo.as_ref(),
            dnsbl: raw.dnsbl.as_ref(),
        },
        &mut |span, m| ctx.err_at(span, m),
    );
    let control = Control {
        socket: match &raw.control.socket {
            Some(s) => {
                let p = ctx.path(s.get_ref());
                unix_path_ok(&mut ctx, s, &p);
                p
            }
            None => default_control_socket(base),
        },
    };
    let state_dir = match &store.kind {
        StoreKind::Embedded(dir) => Some(dir.clone()),
        StoreKind::Memory | StoreKind::Redis { .. } => None,
    };
    let jails = super::jails::validate(
        &raw.jail,
        raw.bans.as_ref(),
        &raw.action,
        base,
        state_dir.as_deref(),
        &mut |span, m| ctx.err_at(span, m),
    );
    let metrics = raw.metrics.as_ref().map(|m| {
        let listen = match &m.listen {
            Some(l) => l.get_ref().parse::<SocketAddr>().unwrap_or_else(|_| {
                ctx.err(
                    l,
                    format!("[metrics] listen: {:?} is not IP:PORT", l.get_ref()),
                );
                default_metrics_listen()
            }),
            None => default_metrics_listen(),
        };
        Metrics { listen }
    });
    let log = Log {
        level: match &raw.log.level {
            Some(l) => {
                if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                    ctx.err(l, format!("[log] level: invalid filter {:?}", l.get_ref()));
                }
                l.get_ref().clone()
            }
            None => "info".to_owned(),
        },
        json: match &raw.log.format {
            None => false,
            Some(f) => match f.get_ref().as_str() {
                "text" => false,
                "json" => true,
                other => {
                    ctx.err(
                        f,
                        format!("[log] format: {other:?} is not \"text\" or \"json\""),
                    );
                    false
                }
            },
        },
    };

    if !ctx.errors.is_empty() {
        ctx.errors
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(ConfigErrors(ctx.errors));
    }
    Ok(Config {
        source: None,
        policy,
        store,
        greylist,
        lists,
        limits,
        control,
        metrics,
        log,
        jails,
        auth_policy,
        checks,
    })
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9420))
}

fn unix_path_ok(ctx: &mut Ctx<'_>, at: &Spanned<String>, p: &Path) {
    if p.as_os_str().len() > MAX_UNIX_PATH {
        ctx.err(
            at,
            format!(
                "unix socket path {} is longer than {MAX_UNIX_PATH} bytes",
                p.display()
            ),
        );
    }
}

fn policy(ctx: &mut Ctx<'_>, raw: &PolicyConfig) -> Policy {
    let mut listen = Vec::new();
    match &raw.listen {
        None => listen.push(ListenAddr::Inet(
            DEFAULT_POLICY_LISTEN.trim_start_matches("inet:").to_owned(),
        )),
        Some(list) => {
            if list.get_ref().is_empty() {
                ctx.err(list, "[policy] listen: at least one address is needed");
            }
            for item in list.get_ref() {
                if let Some(a) = listen_addr(ctx, item) {
                    listen.push(a);
                }
            }
        }
    }
    let default_action = match &raw.default_action {
        None => ReplyAction::Dunno,
        Some(a) => ReplyAction::parse(a.get_ref()).unwrap_or_else(|| {
            ctx.err(
                a,
                format!(
                    "[policy] default_action: {:?} is not an access(5) action \
                     (DUNNO, OK, DEFER_IF_PERMIT text, DEFER text, REJECT text, 4xx/5xx text)",
                    a.get_ref()
                ),
            );
            ReplyAction::Dunno
        }),
    };
    let socket_mode = match &raw.socket_mode {
        None => 0o666,
        Some(m) => match u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8) {
            Ok(v) if v <= 0o777 => v,
            _ => {
                ctx.err(
                    m,
                    format!(
                        "[policy] socket_mode: {:?} is not an octal mode like \"0660\"",
                        m.get_ref()
                    ),
                );
                0o666
            }
        },
    };
    let d = Limits::default();
    Policy {
        listen,
        default_action,
        max_connections: ctx.int(
            &raw.max_connections,
            "[policy] max_connections",
            1..1_000_001,
            1000,
        ) as usize,
        idle_timeout: ctx.duration(
            &raw.idle_timeout,
            "[policy] idle_timeout",
            Duration::from_secs(600),
        ),
        drain_timeout: ctx.duration(
            &raw.drain_timeout,
            "[policy] drain_timeout",
            Duration::from_secs(10),
        ),
        socket_mode,
        limits: Limits {
            max_line: ctx.int(
                &raw.max_line_length,
                "[policy] max_line_length",
                256..16_777_217,
                d.max_line as i64,
            ) as usize,
            max_attributes: ctx.int(
                &raw.max_attributes,
                "[policy] max_attributes",
                32..100_001,
                d.max_attributes as i64,
            ) as usize,
            max_request_bytes: ctx.int(
                &raw.max_request_bytes,
                "[policy] max_request_bytes",
                1024..67_108_865,
                d.max_request_bytes as i64,
            ) as usize,
            max_discard_bytes: d.max_discard_bytes,
        },
    }
}

fn listen_addr(ctx: &mut Ctx<'_>, item: &Spanned<String>) -> Option<ListenAddr> {
    let s = item.get_ref();
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            ctx.err(item, "[policy] listen: unix: needs a socket path");
            return None;
        }
        let p = ctx.path(path);
        unix_path_ok(ctx, item, &p);
        return Some(ListenAddr::Unix(p));
    }
    let Some(hp) = s.strip_prefix("inet:") else {
        ctx.err(item, format!("[policy] listen: {s:?} must start with inet: or unix: (e.g. \"inet:127.0.0.1:10040\")"));
        return None;
    };
    let ok = hp.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && port.parse::<u16>().is_ok()
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
    });
    if !ok {
        ctx.err(
            item,
            format!("[policy] listen: {s:?} is not inet:HOST:PORT (IPv6 as inet:[::1]:10040)"),
        );
        return None;
    }
    Some(ListenAddr::Inet(hp.to_owned()))
}

fn store(ctx: &mut Ctx<'_>, raw: &FileConfig) -> Store {
    let r = &raw.store;
    let kind = match r.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
        None | Some((_, "embedded")) => StoreKind::Embedded(match &r.path {
            Some(p) => ctx.path(p.get_ref()),
            None => default_state_dir(ctx.base),
        }),
        Some((_, "memory")) => StoreKind::Memory,
        Some((k, "redis")) => {
            let sentinel = sentinel(ctx, r);
            let cluster = cluster(ctx, r);
            let url = match &r.url {
                Some(u) if redis::Client::open(u.get_ref().as_str()).is_ok() => u.get_ref().clone(),
                Some(u) => {
                    ctx.err(
                        u,
                        format!(
                            "[store] url: {:?} is not a redis://, rediss:// or unix:// URL",
                            u.get_ref()
                        ),
                    );
                    String::new()
                }
                // With Sentinel or a cluster, url only carries credentials (and the database).
                None if sentinel.is_some() || cluster.is_some() => "redis://127.0.0.1/0".into(),
                None => {
                    ctx.err(
                        k,
                        "[store] type = \"redis\" needs url (e.g. \"redis://127.0.0.1:6379/0\"), sentinels and master_name, or cluster",
                    );
                    String::new()
                }
            };
            if cluster.is_some() {
                cluster_url_and_prefix(ctx, r, &url);
            }
            StoreKind::Redis {
                url,
                prefix: r
                    .prefix
                    .as_ref()
                    .map_or("mxguard:".into(), |p| p.get_ref().clone()),
                timeout: ctx.duration(&r.timeout, "[store] timeout", Duration::from_millis(250)),
                sentinel,
                cluster,
            }
        }
        Some((k, other)) => {
            ctx.err(
                k,
                format!("[store] type: {other:?} is not \"embedded\", \"memory\" or \"redis\""),
            );
            StoreKind::Memory
        }
    };
    Store {
        kind,
        expire_interval: ctx.duration(
            &r.expire_interval,
            "[store] expire_interval",
            Duration::from_secs(3600),
        ),
        sync_interval: {
            let d = ctx.duration(
                &r.sync_interval,
                "[store] sync_interval",
                Duration::from_secs(2),
            );
            if let (Some(v), true) = (&r.sync_interval, d < Duration::from_millis(100)) {
                ctx.err(v, "[store] sync_interval must be at least 100ms");
            }
            d
        },
    }
}

/// `[store] cluster`: a non-empty list of seed nodes, not together with `sentinels`.
fn cluster(ctx: &mut Ctx<'_>, r: &StoreConfig) -> Option<crate::store::redis::ClusterSettings> {
    let c = r.cluster.as_ref()?;
    if let Some(s) = &r.sentinels {
        ctx.err(
            s,
            "[store] sentinels cannot be used with cluster (a Redis Cluster fails over by itself)",
        );
    }
    if c.get_ref().is_empty() {
        ctx.err(
            c,
            "[store] cluster is empty (list one or more seed nodes, host:port)",
        );
    }
    let mut nodes = Vec::new();
    for e in c.get_ref() {
        match crate::store::redis::node_url(e.get_ref()).parse::<redis::ConnectionInfo>() {
            Ok(i) if matches!(i.addr(), redis::ConnectionAddr::Tcp(..)) => {
                nodes.push(e.get_ref().clone());
            }
            Ok(_) => ctx.err(
                e,
                format!(
                    "[store] cluster: {:?} is not a TCP node (host:port or redis://host:port)",
                    e.get_ref()
                ),
            ),
            Err(err) => ctx.err(
                e,
                format!(
                    "[store] cluster: {:?} is not host:port or a redis:// URL: {err}",
                    e.get_ref()
                ),
            ),
        }
    }
    Some(crate::store::redis::ClusterSettings { nodes })
}

/// With `cluster`: `url` may give only user and password (a cluster has database 0 only),
/// and the prefix must not hold a hash tag (it would pull every key into one slot).
fn cluster_url_and_prefix(ctx: &mut Ctx<'_>, r: &StoreConfig, url: &str) {
    if let (Some(u), Ok(info)) = (&r.url, url.parse::<redis::ConnectionInfo>())
        && info.redis_settings().db() != 0
    {
        ctx.err(
            u,
            "[store] url: a Redis Cluster has only database 0 (with cluster, url gives user and password)",
        );
    }
    if let Some(p) = &r.prefix
        && p.get_ref().contains(['{', '}'])
    {
        ctx.err(
            p,
            "[store] prefix must not contain { or } with cluster (mxguard sets its own hash tags)",
        );
    }
}

/// `[store] sentinels` and `master_name`: both or neither.
fn sentinel(ctx: &mut Ctx<'_>, r: &StoreConfig) -> Option<crate::store::redis::SentinelSettings> {
    match (&r.sentinels, &r.master_name) {
        (None, None) => None,
        (Some(s), Some(m)) => {
            let mut list = Vec::new();
            for e in s.get_ref() {
                match crate::store::redis::node_url(e.get_ref()).parse::<redis::ConnectionInfo>() {
                    Ok(_) => list.push(e.get_ref().clone()),
                    Err(err) => ctx.err(
                        e,
                        format!(
                            "[store] sentinels: {:?} is not host:port or a redis:// URL: {err}",
                            e.get_ref()
                        ),
                    ),
                }
            }
            if s.get_ref().is_empty() {
                ctx.err(s, "[store] sentinels is empty");
            }
            if m.get_ref().is_empty() {
                ctx.err(m, "[store] master_name is empty");
            }
            Some(crate::store::redis::SentinelSettings {
                sentinels: list,
                master_name: m.get_ref().clone(),
            })
        }
        (Some(s), None) => {
            ctx.err(
                s,
                "[store] sentinels needs master_name (the name in `sentinel monitor`)",
            );
            None
        }
        (None, Some(m)) => {
            ctx.err(m, "[store] master_name needs sentinels");
            None
        }
    }
}

fn greylist(ctx: &mut Ctx<'_>, raw: &GreylistConfig) -> Option<GreylistSettings> {
    let d = GreylistSettings::default();
    let delay = ctx.duration(&raw.delay, "[greylist] delay", d.delay);
    let retry_window = ctx.duration(&raw.retry_window, "[greylist] retry_window", d.retry_window);
    let max_age = ctx.duration(&raw.max_age, "[greylist] max_age", d.max_age);
    if let (Some(rw), true) = (&raw.retry_window, retry_window <= delay) {
        ctx.err(rw, "[greylist] retry_window must be longer than delay");
    }
    if let (Some(ma), true) = (&raw.max_age, max_age < retry_window) {
        ctx.err(ma, "[greylist] max_age must be at least retry_window");
    }
    let awl = ctx.int(
        &raw.auto_whitelist_clients,
        "[greylist] auto_whitelist_clients",
        0..1_000_001,
        5,
    ) as u32;
    let v4 = ctx.int(&raw.ipv4_prefix, "[greylist] ipv4_prefix", 0..33, 24) as u8;
    let v6 = ctx.int(&raw.ipv6_prefix, "[greylist] ipv6_prefix", 0..129, 64) as u8;
    let mut clients = ClientWhitelist::default();
    for f in &raw.whitelist_clients {
        if let Some(text) = read_list_file(ctx, f, "whitelist_clients") {
            let name = ctx.path(f.get_ref()).display().to_string();
            match ClientWhitelist::parse(&name, &text) {
                Ok(w) => clients.merge(w),
                Err(e) => whitelist_error(ctx, f, e),
            }
        }
    }
    let mut recipients = RecipientWhitelist::default();
    for f in &raw.whitelist_recipients {
        if let Some(text) = read_list_file(ctx, f, "whitelist_recipients") {
            let name = ctx.path(f.get_ref()).display().to_string();
            match RecipientWhitelist::parse(&name, &text) {
                Ok(w) => recipients.merge(w),
                Err(e) => whitelist_error(ctx, f, e),
            }
        }
    }
    let text = match &raw.text {
        Some(t) if t.get_ref().contains(['\n', '\r']) => {
            ctx.err(t, "[greylist] text must be one line");
            d.greylist_text.clone()
        }
        Some(t) => t.get_ref().clone(),
        None => d.greylist_text.clone(),
    };
    let hostname = match &raw.hostname {
        Some(h) => h.get_ref().clone(),
        None => system_hostname(),
    };
    if raw.enabled == Some(false) {
        return None;
    }
    Some(GreylistSettings {
        delay,
        retry_window,
        max_age,
        auto_whitelist_clients: awl,
        ipv4_prefix: v4,
        ipv6_prefix: v6,
        whitelist_clients: clients,
        whitelist_recipients: recipients,
        greylist_text: text,
        header: raw.header.unwrap_or(true),
        hostname,
        spf_domain_key: raw.spf_domain_key.unwrap_or(true),
    })
}

fn read_list_file(ctx: &mut Ctx<'_>, f: &Spanned<String>, key: &str) -> Option<String> {
    let p = ctx.path(f.get_ref());
    match std::fs::read(&p) {
        // postgrey's files are Latin-1 or ASCII in practice; keep going on stray bytes.
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            ctx.err(
                f,
                format!("[greylist] {key}: cannot read {}: {e}", p.display()),
            );
            None
        }
    }
}

fn whitelist_error(
    ctx: &mut Ctx<'_>,
    f: &Spanned<String>,
    e: mxguard_engine::greylist::WhitelistError,
) {
    let (line, column) = ctx.position(f.span().start);
    ctx.errors.push(ConfigError {
        file: e.source_name.clone(),
        line: e.line,
        column: 1,
        // One error per output line: regex errors come with a multi-line caret diagram.
        message: format!(
            "{} (file listed at {}:{line}:{column})",
            e.message.split_whitespace().collect::<Vec<_>>().join(" "),
            ctx.file
        ),
    });
}

fn lists(ctx: &mut Ctx<'_>, raw: &ListsConfig) -> StaticLists {
    let parse = |ctx: &mut Ctx<'_>, items: &[Spanned<String>], key: &str| {
        let mut out = Vec::new();
        for item in items {
            match ListEntry::parse(item.get_ref()) {
                Ok(e) => out.push(e),
                Err(e) => ctx.err(item, format!("[lists] {key}: {:?}: {}", e.entry, e.message)),
            }
        }
        out
    };
    let allow = parse(ctx, &raw.allow, "allow");
    let deny = parse(ctx, &raw.deny, "deny");
    let deny_text = raw
        .deny_text
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_default();
    StaticLists::new(allow, deny, deny_text)
}
