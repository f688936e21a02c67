//! Where the Redis store sends its commands: one fixed server (`[store] url`), the
//! primary that Redis Sentinel names (`[store] sentinels`, `master_name`), or a Redis
//! Cluster (`[store] cluster`, `store::redis_cluster`). [`Conn`] is the connection an
//! operation gets: one type for all three, so the store's operations are written once.
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
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};

use super::redis::unavailable;
use super::redis_cluster::{ClusterSettings, ClusterTarget};

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
    /// Boxed: the cluster client's settings are large, the other variants are handles.
    Cluster(Box<ClusterTarget>),
}

/// A connection of the current target: a command sent on it goes to the server, the
/// primary, or (cluster) the primary of the command's hash slot.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Which node a listing step reads: the only one, or one cluster primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Only,
    Primary(String, u16),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Sends `cmd` to `node` (a cluster primary by its address; else the one server).
    pub(crate) async fn query_on(
        &mut self,
        cmd: redis::Cmd,
        node: &Node,
    ) -> redis::RedisResult<redis::Value> {
        match (self, node) {
            (Conn::Cluster(c), Node::Primary(host, port)) => {
                let to = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                c.route_command(cmd, RoutingInfo::SingleNode(to)).await
            }
            (c, _) => cmd.query_async(c).await,
        }
    }

    /// The cluster's slot map as one node sees it (`CLUSTER SLOTS`); `Nil` for one server.
    pub(crate) async fn cluster_slots(&mut self) -> redis::RedisResult<redis::Value> {
        match self {
            Conn::Cluster(c) => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("SLOTS");
                c.route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                    .await
            }
            Conn::Single(_) => Ok(redis::Value::Nil),
        }
    }
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

/// A Sentinel or cluster node entry as a URL (`host:port` gets `redis://`).
pub fn node_url(s: &str) -> String {
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
        cluster: Option<&ClusterSettings>,
        config: ConnectionManagerConfig,
        timeout: std::time::Duration,
        health: Arc<super::redis::RedisHealth>,
    ) -> Result<Target, StoreError> {
        if let Some(c) = cluster {
            return Ok(Target::Cluster(Box::new(ClusterTarget::new(
                url, c, timeout,
            )?)));
        }
        let client =
            redis::Client::open(url).map_err(|e| unavailable(format!("url {url:?}: {e}")))?;
        let Some(s) = sentinel else {
            let conn =
                ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
            return Ok(Target::Fixed(conn));
        };
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(client.get_connection_info().redis_settings().clone());
        let urls: Vec<String> = s.sentinels.iter().map(|u| node_url(u)).collect();
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
    pub(crate) fn current(&self) -> Result<Conn, StoreError> {
        match self {
            Target::Fixed(c) => Ok(Conn::Single(c.clone())),
            Target::Cluster(t) => Ok(Conn::Cluster(t.connection())),
            Target::Sentinel(t) => match t.current.load_full() {
                Some(cur) => Ok(Conn::Single(cur.1.clone())),
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

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// An operation failed: with Sentinel, ask again where the primary is (the cluster
    /// client refreshes its slot map by itself).
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
