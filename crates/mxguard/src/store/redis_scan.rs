//! Listings and counts of the Redis store (`greylist list`, `ban list`, status counts, the
//! expiry pass): `SCAN` over a kind's keys, then their values in `MGET` chunks.
//!
//! `SCAN` walks the keys of the node it is sent to, so on a Redis Cluster it runs on every
//! primary by address, from the slot map one node reports (`CLUSTER SLOTS`, read anew for
//! each listing so a resharding or a failover is seen); a key met twice while a slot
//! migrates is listed once. A primary that does not answer fails the whole listing
//! (`StoreError::Unavailable`) rather than return a partial one. Called by the `Store`
//! methods in `store::redis`.

use mxguard_engine::store::StoreError;

use super::redis::{RedisStore, SCAN_COUNT};
use super::redis_cluster::primaries;
use super::redis_target::Node;

impl RedisStore {
    /// The nodes to scan: the one server, or every cluster primary (also shown in status).
    async fn scan_nodes(&self) -> Result<Vec<Node>, StoreError> {
        if !self.target.is_cluster() {
            return Ok(vec![Node::Only]);
        }
        let reply = self
            .op(|mut c| async move { c.cluster_slots().await })
            .await?;
        let nodes = primaries(&reply)?;
        *self
            .health
            .cluster_primaries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        Ok(nodes
            .into_iter()
            .map(|(h, p)| Node::Primary(h, p))
            .collect())
    }

    /// Every key of `kind` (without the prefix and kind), at most `limit`.
    pub(super) async fn scan(&self, kind: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}*", self.key(kind, ""));
        let strip = pattern.len() - 1;
        let mut out = Vec::new();
        'nodes: for node in self.scan_nodes().await? {
            let mut cursor: u64 = 0;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let node = node.clone();
                let reply = self
                    .op(move |mut c| async move { c.query_on(cmd, &node).await })
                    .await?;
                let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)
                    .map_err(|e| StoreError::Corrupt(format!("unexpected SCAN reply: {e}")))?;
                out.extend(
                    keys.into_iter()
                        .filter_map(|k| k.get(strip..).map(str::to_owned)),
                );
                if out.len() >= limit {
                    break 'nodes;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        out.sort();
        out.dedup();
        out.truncate(limit);
        Ok(out)
    }

    /// `(key, value)` of every key of `kind` (values read with MGET in chunks).
    pub(super) async fn list(
        &self,
        kind: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let keys = self.scan(kind, limit).await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SCAN_COUNT) {
            let full: Vec<String> = chunk.iter().map(|k| self.key(kind, k)).collect();
            let values = self.mget(full).await?;
            out.extend(
                chunk
                    .iter()
                    .zip(values)
                    .filter_map(|(k, v)| v.map(|v| (k.clone(), v))),
            );
        }
        Ok(out)
    }

    pub(super) async fn count(&self, kind: &str) -> Result<u64, StoreError> {
        Ok(self.scan(kind, usize::MAX).await?.len() as u64)
    }
}
