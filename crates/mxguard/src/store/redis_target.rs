//! Where the Redis store sends its commands: one fixed server (`[store] url`), or the
//! primary that Redis Sentinel names (`[store] sentinels`, `master_name`).
//!
//! With Sentinel the primary is looked up at start and again whenever an operation fails
//! (a failover shows up as refused connections, timeouts, or `READONLY` from a demoted
//! primary): the first Sentinel that answers says where the primary is now, and when that
//! changed the store switches to a new connection to it. One lookup runs at a time, in the
//! background; operations meanwhile fail open as in any outage. The `url`'s user, password
//! and database apply to the primary; its host is not used.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwapOption;
use mxguard_engine::store::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};

use super::redis::unavailable;

/// Redis Sentinel settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    /// Sentinel addresses: `host:port` or `redis://[:password@]host:port`.
    pub sentinels: Vec<String>,
    /// The monitored primary's name (`sentinel monitor <name> ...`).
    pub master_name: String,
}

/// The connection target (see module docs).
pub(crate) enum Target {
    Fixed(ConnectionManager),
    Sentinel(Arc<SentinelTarget>),
}

pub(crate) struct SentinelTarget {
    client: tokio::sync::Mutex<SentinelClient>,
    config: ConnectionManagerConfig,
    timeout: std::time::Duration,
    master_name: String,
    /// The primary's address and the connection to it.
    current: ArcSwapOption<(String, ConnectionManager)>,
    looking: AtomicBool,
    /// Where the primary in use is shown (status).
    health: Arc<super::redis::RedisHealth>,
}

/// A Sentinel entry as a URL (`host:port` gets `redis://`).
pub fn sentinel_url(s: &str) -> String {
    if s.contains("://") {
        s.to_string()
    } else {
        format!("redis://{s}")
    }
}

impl Target {
    pub(crate) fn new(
        url: &str,
        sentinel: Option<&SentinelSettings>,
        config: ConnectionManagerConfig,
        timeout: std::time::Duration,
        health: Arc<super::redis::RedisHealth>,
    ) -> Result<Target, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| unavailable(format!("url {url:?}: {e}")))?;
        let Some(s) = sentinel else {
            let conn =
                ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
            return Ok(Target::Fixed(conn));
        };
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(client.get_connection_info().redis_settings().clone());
        let urls: Vec<String> = s.sentinels.iter().map(|u| sentinel_url(u)).collect();
        let sc = SentinelClient::build(
            urls,
            s.master_name.clone(),
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(|e| unavailable(format!("sentinels {:?}: {e}", s.sentinels)))?;
        let t = Arc::new(SentinelTarget {
            client: tokio::sync::Mutex::new(sc),
            config,
            timeout,
            master_name: s.master_name.clone(),
            current: ArcSwapOption::empty(),
            looking: AtomicBool::new(false),
            health,
        });
        // Look the primary up now when there is a runtime (the daemon); else at first use.
        if tokio::runtime::Handle::try_current().is_ok() {
            t.clone().look_up();
        }
        Ok(Target::Sentinel(t))
    }

    /// The connection to use now; `Err` while Sentinel has not named a primary yet.
    pub(crate) fn current(&self) -> Result<ConnectionManager, StoreError> {
        match self {
            Target::Fixed(c) => Ok(c.clone()),
            Target::Sentinel(t) => match t.current.load_full() {
                Some(cur) => Ok(cur.1.clone()),
                None => {
                    t.clone().look_up();
                    Err(unavailable(format!(
                        "sentinel has not named a primary for {:?} yet",
                        t.master_name
                    )))
                }
            },
        }
    }

    /// An operation failed: with Sentinel, ask again where the primary is.
    pub(crate) fn failed(&self) {
        if let Target::Sentinel(t) = self {
            t.clone().look_up();
        }
    }
}

impl SentinelTarget {
    /// Starts a background lookup of the primary unless one is running.
    fn look_up(self: Arc<Self>) {
        if self.looking.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            let found = {
                let mut sc = self.client.lock().await;
                tokio::time::timeout(self.timeout * 4, sc.async_get_client()).await
            };
            match found {
                Ok(Ok(client)) => {
                    let addr = client.get_connection_info().addr().to_string();
                    let known = self.current.load().as_ref().map(|c| c.0.clone());
                    if known.as_deref() != Some(addr.as_str()) {
                        match ConnectionManager::new_lazy_with_config(client, self.config.clone()) {
                            Ok(conn) => {
                                tracing::info!(
                                    master = self.master_name,
                                    primary = addr,
                                    previous = known.as_deref().unwrap_or("none"),
                                    "redis sentinel: using this primary"
                                );
                                *self
                                    .health
                                    .primary
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                                    Some(addr.clone());
                                self.current.store(Some(Arc::new((addr, conn))));
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "redis sentinel: cannot connect to the primary")
                            }
                        }
                    }
                }
                Ok(Err(e)) => tracing::debug!(error = %e, master = self.master_name,
                    "redis sentinel: no primary named (retrying on the next failure)"),
                Err(_) => tracing::debug!(
                    master = self.master_name,
                    "redis sentinel: lookup timed out"
                ),
            }
            self.looking.store(false, Ordering::Release);
        });
    }
}
