//! Redis Cluster as the Redis store's target (`[store] cluster = [...]`): the redis crate's
//! async cluster client, which learns the slot map from the seed nodes, sends each command
//! to the primary that owns its key's hash slot, follows `MOVED`/`ASK` redirections and
//! reconnects by itself. What it cannot do for us is listings: `SCAN` walks one node's keys,
//! so [`primaries`] reads `CLUSTER SLOTS` and the store scans every primary by address
//! (`store::redis_scan`).
//!
//! Key layout (see docs/configuration.md): every key stays `<prefix><kind>:<key>` and so
//! spreads over the slots, except the ban keys and the ban version counter, which carry the
//! hash tag `{ban}` (`<prefix>{ban}:<cidr>`, `<prefix>{ban}-version`): a ban write and its
//! version bump are one `MULTI` transaction, and Redis Cluster runs a transaction only when
//! all its keys hash to one slot. Batch reads that span slots (`read_many`'s `MGET`) are split
//! per slot by the client and sent to the nodes concurrently, so they still cost one round
//! trip of latency.
//!
//! The connection is made at first use (it needs the tokio runtime) and in the background:
//! the daemon starts while the cluster is down, and operations fail open until it answers.
//! Called from `store::redis_target::Target`.

use std::sync::OnceLock;
use std::time::Duration;

use mxguard_engine::store::StoreError;
use redis::Value;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;

use super::redis::unavailable;
use super::redis_target::node_url;

/// Redis Cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Seed nodes: `host:port` or `redis://[:password@]host:port`; the others are learnt
    /// from them.
    pub nodes: Vec<String>,
}

/// The hash tag of the ban keys and the ban version counter on a cluster (see module docs).
pub const BAN_KIND: &str = "{ban}";

/// The cluster client and its one shared (multiplexed) connection.
pub(crate) struct ClusterTarget {
    client: ClusterClient,
    config: ClusterConfig,
    conn: OnceLock<ClusterConnection>,
}

impl ClusterTarget {
    /// A target for the seeds in `s`; `url` gives the user and password of every node.
    pub(crate) fn new(
        url: &str,
        s: &ClusterSettings,
        timeout: Duration,
    ) -> Result<ClusterTarget, StoreError> {
        let info = redis::Client::open(url)
            .map_err(|e| unavailable(format!("url {url:?}: {e}")))?
            .get_connection_info()
            .redis_settings()
            .clone();
        let seeds: Vec<String> = s.nodes.iter().map(|n| node_url(n)).collect();
        let mut b = ClusterClientBuilder::new(seeds)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // Redirections during a resharding are retries too; a down node is left to the
            // operation's own time budget (`RedisStore::op`), so the backoff stays short.
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(100);
        if let Some(u) = info.username() {
            b = b.username(u);
        }
        if let Some(p) = info.password() {
            b = b.password(p);
        }
        let client = b
            .build()
            .map_err(|e| unavailable(format!("cluster {:?}: {e}", s.nodes)))?;
        Ok(ClusterTarget {
            client,
            config: ClusterConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout),
            conn: OnceLock::new(),
        })
    }

    /// The connection (made now in the background if this is the first use).
    pub(crate) fn connection(&self) -> ClusterConnection {
        self.conn
            .get_or_init(|| {
                self.client
                    .get_pending_async_connection_with_config(self.config.clone())
            })
            .clone()
    }
}

/// The primaries (`host`, `port`) in a `CLUSTER SLOTS` reply, sorted and without repeats.
/// Each entry is `[start, end, [host, port, id, ...], replicas...]`; the first address is
/// the slot range's primary.
pub(crate) fn primaries(reply: &Value) -> Result<Vec<(String, u16)>, StoreError> {
    let bad = || StoreError::Corrupt(format!("unexpected CLUSTER SLOTS reply: {reply:?}"));
    let Value::Array(ranges) = reply else {
        return Err(bad());
    };
    let mut out = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(bad());
        };
        let Some(Value::Array(primary)) = fields.get(2) else {
            return Err(bad());
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad()),
        };
        let port = match primary.get(1) {
            Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        out.push((host, port));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn primaries_come_from_the_first_address_of_each_slot_range() {
        let range = |start, end, port, replica: Option<i64>| {
            let mut v = vec![
                Value::Int(start),
                Value::Int(end),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(port), bulk("id")]),
            ];
            if let Some(r) = replica {
                v.push(Value::Array(vec![
                    bulk("127.0.0.1"),
                    Value::Int(r),
                    bulk("id2"),
                ]));
            }
            Value::Array(v)
        };
        let reply = Value::Array(vec![
            range(0, 5460, 7001, Some(7101)),
            range(5461, 10922, 7000, None),
            range(10923, 16000, 7002, None),
            range(16001, 16383, 7000, None),
        ]);
        assert_eq!(
            primaries(&reply).unwrap(),
            [
                ("127.0.0.1".to_string(), 7000),
                ("127.0.0.1".to_string(), 7001),
                ("127.0.0.1".to_string(), 7002)
            ]
        );
        assert!(primaries(&Value::Int(1)).is_err());
        assert!(primaries(&Value::Array(vec![Value::Array(vec![Value::Int(0)])])).is_err());
    }
}
