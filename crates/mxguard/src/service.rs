//! The daemon: builds the store, engine, listeners and background jobs from a [`Config`],
//! runs them as services, reloads on SIGHUP and drains on SIGTERM/SIGINT.
//!
//! Every service is `async fn run(.., shutdown)`; [`Daemon::start`] binds everything first
//! (so a bad address fails start-up, not later) and then spawns them. What connections read
//! per request lives in [`Live`] behind an `ArcSwap`: a reload parses and validates the whole
//! file, builds a new `Live`, and swaps it in one store; a reload that fails validation keeps
//! the running one and logs every error. Listeners, the store, the control socket and the
//! metrics endpoint are bound once: changing them needs a restart (logged on reload).
//!
//! Tests start a [`Daemon`] in-process with a fake clock and a memory store through
//! [`StartOptions`]; `mxguard serve` calls [`serve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use mxguard_engine::policy::Policy as Engine;
use mxguard_engine::store::{MemoryStore, Store};
use mxguard_engine::{Clock, SystemClock, UnixTime};
use mxguard_proto::{Limits, ReplyAction};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{self, Config, ConfigErrors, StoreKind};
use crate::dns::{ResolverSlot, TokioTimer};
use crate::input::postfix_policy::{self, Listener, PolicyContext};
use crate::output::metrics::{self, Metrics, ReloadLabels};
use crate::store::EmbeddedStore;

/// What each policy request reads; swapped whole on reload.
#[derive(Debug)]
pub struct Live {
    pub engine: Engine,
    pub default_action: ReplyAction,
    pub limits: Limits,
    pub idle_timeout: Duration,
}

/// The swappable [`Live`] shared by every connection.
pub type LiveHandle = Arc<ArcSwap<Live>>;

/// The outcome of the last reload, for `mxguard status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub at: u64,
    pub ok: bool,
    pub errors: Vec<String>,
}

/// State shared by the services and the control socket.
#[derive(Debug)]
pub struct Shared {
    pub live: LiveHandle,
    pub config: ArcSwap<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub started: UnixTime,
    /// Where reloads read from; `None` runs on embedded defaults (reload re-validates them).
    pub config_path: Option<PathBuf>,
    pub last_reload: Mutex<Option<ReloadReport>>,
    /// The embedded store's handle when it is the backend (it runs its own expiry).
    pub embedded: Option<Arc<EmbeddedStore>>,
    /// The Redis store's health counters when it is the backend (status).
    pub redis: Option<Arc<crate::store::redis::RedisHealth>>,
    /// The DNS resolver of the sender checks (`[dns]`).
    pub dns: ResolverSlot,
    /// The ban list's manager (jails, `mxguard ban`, restore, expiry).
    pub bans: Arc<crate::jails::BanManager>,
    /// The log jails, when `[[jail]]`s are configured.
    pub jails: Option<Arc<crate::jails::JailService>>,
    /// The bound listeners, set once they are (for `mxguard status`).
    pub listeners: std::sync::OnceLock<crate::cli::status::Listeners>,
}

/// The policy engine for `cfg`, with the DNS resolver when a check needs one and tokio's
/// timer for the checks' time budgets.
fn build_engine(
    cfg: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    dns: &ResolverSlot,
    metrics: &Metrics,
) -> Engine {
    let engine = Engine::new(cfg.policy_settings(), store, clock)
        .with_timer(Arc::new(TokioTimer))
        .with_observer(Arc::new(metrics.checks.clone()));
    if cfg.checks.use_dns() {
        let resolver =
            metrics::dns::InstrumentedResolver::new(dns.get(&cfg.checks.dns), metrics.dns.clone());
        engine.with_resolver(Arc::new(resolver))
    } else {
        engine
    }
}

impl Shared {
    fn live_for(&self, cfg: &Config) -> Live {
        Live {
            engine: build_engine(
                cfg,
                self.store.clone(),
                self.clock.clone(),
                &self.dns,
                &self.metrics,
            ),
            default_action: cfg.policy.default_action.clone(),
            limits: cfg.policy.limits,
            idle_timeout: cfg.policy.idle_timeout,
        }
    }

    /// Tells the embedded store the greylist times it expires entries with.
    fn apply_expiry(&self, cfg: &Config) {
        if let (Some(e), Some(gl)) = (&self.embedded, &cfg.greylist) {
            e.set_expiry(gl.times());
        }
    }

    /// Re-reads and validates the config file, then swaps it in; on error the running
    /// configuration stays and every error is logged and returned.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let now = self.clock.now().0;
        match config::load(self.config_path.as_deref()) {
            Ok(new) => {
                let old = self.config.load();
                warn_restart_only(&old, &new);
                self.apply_expiry(&new);
                self.bans
                    .set_routes(crate::jails::actions::routes(&new.jails));
                self.live.store(Arc::new(self.live_for(&new)));
                self.config.store(Arc::new(new));
                self.metrics
                    .reloads
                    .get_or_create(&ReloadLabels { result: "ok" })
                    .inc();
                tracing::info!("configuration reloaded");
                self.set_report(ReloadReport {
                    at: now,
                    ok: true,
                    errors: Vec::new(),
                });
                Ok(())
            }
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(error = %e, "reload refused; keeping the running configuration");
                }
                self.metrics
                    .reloads
                    .get_or_create(&ReloadLabels { result: "failed" })
                    .inc();
                self.set_report(ReloadReport {
                    at: now,
                    ok: false,
                    errors: errors.0.iter().map(ToString::to_string).collect(),
                });
                Err(errors)
            }
        }
    }

    fn set_report(&self, r: ReloadReport) {
        let mut slot = self.last_reload.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(r);
    }
}

fn warn_restart_only(old: &Config, new: &Config) {
    if old.policy.listen != new.policy.listen {
        tracing::warn!("[policy] listen changed: takes effect after a restart");
    }
    if old.store.kind != new.store.kind {
        tracing::warn!("[store] changed: takes effect after a restart");
    }
    if old.control.socket != new.control.socket {
        tracing::warn!("[control] socket changed: takes effect after a restart");
    }
    if old.metrics.as_ref().map(|m| m.listen) != new.metrics.as_ref().map(|m| m.listen) {
        tracing::warn!("[metrics] changed: takes effect after a restart");
    }
    if old.jails.actions != new.jails.actions {
        tracing::warn!("[[action]] changed: takes effect after a restart");
    }
    let jail_names = |c: &Config| -> Vec<String> {
        c.jails
            .jails
            .iter()
            .map(|j| j.settings.name.clone())
            .collect()
    };
    if jail_names(old) != jail_names(new) {
        tracing::warn!("[[jail]] changed: takes effect after a restart");
    }
    if old.policy.max_connections != new.policy.max_connections {
        tracing::warn!("[policy] max_connections changed: takes effect after a restart");
    }
}

/// Overrides for tests and embedding.
#[derive(Debug, Default)]
pub struct StartOptions {
    /// The file reloads read (normally the file `config` came from).
    pub config_path: Option<PathBuf>,
    /// Time source; the system clock when `None`.
    pub clock: Option<Arc<dyn Clock>>,
    /// A ready store; otherwise opened from `[store]`.
    pub store: Option<Arc<dyn Store>>,
    /// A fixed DNS resolver for the sender checks; otherwise hickory built from `[dns]`.
    pub resolver: Option<Arc<dyn mxguard_engine::dns::Resolver>>,
    /// Ready ban actions; otherwise built from `[[action]]`.
    pub actions: Option<crate::output::firewall::ActionRegistry>,
}

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    pub shared: Arc<Shared>,
    /// Bound TCP policy addresses, in `[policy] listen` order (unix listeners omitted).
    pub policy_addrs: Vec<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    /// The bound Dovecot auth-policy address, when `[auth_policy]` is configured.
    pub auth_policy_addr: Option<SocketAddr>,
    pub control_socket: PathBuf,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// The opened store: the trait object the engine uses, plus the embedded store's own handle
/// (for its expiry settings), when that is the backend.
#[derive(Debug, Clone)]
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub embedded: Option<Arc<EmbeddedStore>>,
    pub redis: Option<Arc<crate::store::redis::RedisHealth>>,
}

/// Opens the store `[store]` names. `[store] path` is a directory (created if missing).
pub async fn open_store(cfg: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<OpenedStore> {
    match &cfg.store.kind {
        StoreKind::Memory => Ok(OpenedStore {
            store: Arc::new(MemoryStore::new()),
            embedded: None,
            redis: None,
        }),
        StoreKind::Redis {
            url,
            prefix,
            timeout,
            sentinel,
            cluster,
        } => {
            let store = crate::store::RedisStore::new(crate::store::RedisSettings {
                url: url.clone(),
                prefix: prefix.clone(),
                timeout: *timeout,
                ban_retention: cfg.jails.bans.retention,
                sentinel: sentinel.clone(),
                cluster: cluster.clone(),
            })?;
            tracing::info!(prefix, "redis store configured (connects on first use)");
            Ok(OpenedStore {
                redis: Some(store.health().clone()),
                store: Arc::new(store),
                embedded: None,
            })
        }
        StoreKind::Embedded(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&path).with_context(|| {
                    format!("cannot create the store directory {}", path.display())
                })?;
                EmbeddedStore::open(&path, clock)
                    .with_context(|| format!("cannot open the store in {}", path.display()))
            })
            .await??;
            tracing::info!(file = %store.path().display(), "embedded store opened");
            let store = Arc::new(store);
            Ok(OpenedStore {
                store: store.clone(),
                embedded: Some(store),
                redis: None,
            })
        }
    }
}

impl Daemon {
    /// Binds every listener and spawns every service.
    pub async fn start(cfg: Config, opts: StartOptions) -> anyhow::Result<Daemon> {
        let clock: Arc<dyn Clock> = opts.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let opened = match opts.store {
            Some(store) => OpenedStore {
                store,
                embedded: None,
                redis: None,
            },
            None => open_store(&cfg, clock.clone()).await?,
        };
        let metrics = Arc::new(Metrics::with_redis(opened.redis.clone()));
        // Every store operation is timed (mxguard_store_operation_*).
        let store: Arc<dyn Store> = Arc::new(metrics::store::InstrumentedStore::new(
            opened.store.clone(),
            metrics.store.clone(),
        ));
        metrics.state.watch(store.clone());
        let config_path = opts.config_path.or_else(|| cfg.source.clone());
        let dns = ResolverSlot::new(opts.resolver);
        let actions = match opts.actions {
            Some(a) => a,
            None => crate::jails::actions::build(&cfg.jails.actions)?,
        };
        let bans = Arc::new(crate::jails::BanManager::new(
            store.clone(),
            clock.clone(),
            actions,
            crate::jails::actions::routes(&cfg.jails),
            metrics.jails.clone(),
        ));
        // Bans that hold (issue 5): the firewall is set up and every active ban restored
        // before anything else runs.
        bans.setup().await;
        if let Err(e) = bans.restore().await {
            tracing::error!(error = %e, "cannot restore bans from the store");
        }
        let jails = if cfg.jails.jails.is_empty() {
            None
        } else {
            let opts = mxguard_filter::FilterOptions {
                timezone: jiff::tz::TimeZone::system(),
                check_all: false,
            };
            let runner = crate::jails::JailRunner::new(&cfg.jails.jails, &opts)?;
            Some(Arc::new(crate::jails::JailService {
                runner: Arc::new(tokio::sync::Mutex::new(runner)),
                bans: bans.clone(),
            }))
        };
        let shared = Arc::new(Shared {
            live: Arc::new(ArcSwap::from_pointee(Live {
                engine: build_engine(&cfg, store.clone(), clock.clone(), &dns, &metrics),
                default_action: cfg.policy.default_action.clone(),
                limits: cfg.policy.limits,
                idle_timeout: cfg.policy.idle_timeout,
            })),
            config: ArcSwap::from_pointee(cfg.clone()),
            store,
            started: clock.now(),
            clock,
            metrics: metrics.clone(),
            config_path,
            last_reload: Mutex::new(None),
            embedded: opened.embedded,
            redis: opened.redis,
            dns,
            bans,
            jails,
            listeners: std::sync::OnceLock::new(),
        });
        if let Some(e) = &shared.embedded {
            e.set_ban_retention(cfg.jails.bans.retention.as_secs());
        }
        shared.apply_expiry(&cfg);

        // Bind everything before spawning anything: a bad address fails start-up.
        let mut listeners = Vec::new();
        for addr in &cfg.policy.listen {
            listeners.push(Listener::bind(addr, cfg.policy.socket_mode).await?);
        }
        let policy_addrs: Vec<SocketAddr> =
            listeners.iter().filter_map(Listener::local_addr).collect();
        let control = crate::control::bind(&cfg.control.socket).await?;
        let metrics_listener = match &cfg.metrics {
            Some(m) => Some(metrics::bind(m.listen).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let auth_listener = match &cfg.auth_policy {
            Some(a) => Some(crate::input::dovecot_auth::bind(a.listen).await?),
            None => None,
        };
        let auth_policy_addr = auth_listener.as_ref().and_then(|l| l.local_addr().ok());
        let _ = shared.listeners.set(crate::cli::status::Listeners::new(
            &cfg,
            &policy_addrs,
            auth_policy_addr,
            metrics_addr,
        ));

        let (shutdown, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let ctx = PolicyContext {
            live: shared.live.clone(),
            metrics: metrics.clone(),
            connections: Arc::new(Semaphore::new(cfg.policy.max_connections)),
            drain_timeout: cfg.policy.drain_timeout,
        };
        for l in listeners {
            tasks.spawn(postfix_policy::run(l, ctx.clone(), rx.clone()));
        }
        tasks.spawn(crate::control::run(control, shared.clone(), rx.clone()));
        if let Some(l) = metrics_listener {
            tasks.spawn(metrics::serve(l, metrics.clone(), rx.clone()));
        }
        tasks.spawn(expire_job(shared.clone(), rx.clone()));
        tasks.spawn(crate::jails::expiry_job(shared.bans.clone(), rx.clone()));
        tasks.spawn(crate::jails::sync_job(
            shared.bans.clone(),
            cfg.store.sync_interval,
            rx.clone(),
        ));
        if let Some(svc) = &shared.jails {
            // ignoreip names and ignoreself before the first line is read.
            crate::jails::ignore::refresh(svc).await;
            tasks.spawn(crate::jails::ignore::run(svc.clone(), rx.clone()));
            let watches = svc.runner.lock().await.watches();
            let tail = crate::input::logtail::LogTail::new(crate::jails::tail_settings(
                &cfg.jails, watches,
            ))?;
            let journal =
                crate::input::journal::settings_for(&cfg.jails, shared.clock.now().0 as i64)
                    .map(crate::input::journal::JournalTail::new);
            tasks.spawn(crate::jails::run(
                svc.clone(),
                tail,
                journal,
                cfg.jails.bans.poll_interval,
                shared.clock.clone(),
                rx.clone(),
            ));
        }
        if let (Some(l), Some(st)) = (
            auth_listener,
            crate::input::dovecot_auth::AuthState::new(shared.clone()),
        ) {
            tasks.spawn(crate::input::dovecot_auth::run(l, st, rx.clone()));
        }
        Ok(Daemon {
            shared,
            policy_addrs,
            metrics_addr,
            auth_policy_addr,
            control_socket: cfg.control.socket.clone(),
            shutdown,
            tasks,
        })
    }

    /// Asks every service to stop (they drain; see module docs).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A handle that can trigger shutdown from elsewhere.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Waits for every service to end, then flushes the store. The first service error is
    /// returned (and also stops the others).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        while let Some(r) = self.tasks.join_next().await {
            let r = r.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = r {
                tracing::error!(error = %format!("{e:#}"), "service failed; shutting down");
                let _ = self.shutdown.send(true);
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.shared.store.flush().await {
            tracing::error!(error = %e, "final store flush failed");
        }
        let _ = std::fs::remove_file(&self.control_socket);
        for addr in &self.shared.config.load().policy.listen {
            if let crate::config::ListenAddr::Unix(p) = addr {
                let _ = std::fs::remove_file(p);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Removes expired greylist entries every `[store] expire_interval` (postgrey's
/// maintenance), off the request path. The embedded store expires on its own thread.
async fn expire_job(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if shared.embedded.is_some() {
        return Ok(());
    }
    loop {
        let every = shared.config.load().store.expire_interval;
        tokio::select! {
            _ = crate::input::postfix_policy::stopped(&mut shutdown) => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
        let Some(gl) = shared.config.load().greylist.as_ref().map(|g| g.times()) else {
            continue;
        };
        match shared.store.expire(shared.clock.now(), gl).await {
            Ok(stats) => tracing::debug!(
                triplets = stats.triplets_removed,
                clients = stats.clients_removed,
                "expired greylist entries"
            ),
            Err(e) => {
                shared.metrics.store_errors.inc();
                tracing::warn!(error = %e, "greylist expiry failed");
            }
        }
    }
}

/// `mxguard serve`: start, then handle signals until SIGTERM/SIGINT.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    raise_fd_limit();
    let daemon = Daemon::start(cfg, StartOptions::default()).await?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    // systemd (Type=notify): ready once every listener is bound, watchdog pings from here on.
    let notify = crate::output::systemd::Notifier::from_env();
    notify.ready(&ready_status(&daemon));
    let watchdog = tokio::spawn(notify.clone().watchdog());
    let shared = daemon.shared.clone();
    let stop = daemon.shutdown_handle();
    let signals = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = hup.recv() => {
                    notify.reloading();
                    let ok = shared.reload().is_ok();
                    notify.ready(if ok { "configuration reloaded" } else { "reload refused, running configuration kept" });
                }
            }
        }
        notify.stopping();
        let _ = stop.send(true);
    });
    let r = daemon.wait().await;
    signals.abort();
    watchdog.abort();
    tracing::info!("stopped");
    r
}

/// The `STATUS=` line sent with `READY=1`: the bound policy addresses.
fn ready_status(daemon: &Daemon) -> String {
    let addrs: Vec<String> = daemon
        .policy_addrs
        .iter()
        .map(ToString::to_string)
        .collect();
    format!("serving policy on {}", addrs.join(", "))
}

/// Raises the soft open-files limit to the hard one: each policy connection is a descriptor,
/// and the usual soft default (1024) is about `max_connections`' default, while the hard
/// limit (systemd: 524288) is far above it.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let from = lim.current;
        lim.current = lim.maximum;
        match setrlimit(Resource::Nofile, lim) {
            Ok(()) => tracing::debug!(?from, to = ?lim.current, "raised RLIMIT_NOFILE"),
            Err(e) => tracing::debug!(error = %e, "cannot raise RLIMIT_NOFILE"),
        }
    }
}
