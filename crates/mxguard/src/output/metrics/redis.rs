//! `mxguard_store_redis_*`: the Redis store's health ([`RedisHealth`], counted by
//! `store::redis`), copied into the registry at each scrape. Registered by
//! [`super::Metrics::with_redis`] only when Redis is the store.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::catch_up;
use crate::store::redis::RedisHealth;

/// The Redis store's health, copied from its counters at each scrape.
#[derive(Debug)]
pub(super) struct RedisMetrics {
    health: Arc<RedisHealth>,
    up: Gauge,
    operations: Counter,
    errors: Counter,
    outages: Counter,
    conflicts: Counter,
}

impl RedisMetrics {
    pub(super) fn register(registry: &mut Registry, health: Arc<RedisHealth>) -> Self {
        let m = RedisMetrics {
            health,
            up: Gauge::default(),
            operations: Counter::default(),
            errors: Counter::default(),
            outages: Counter::default(),
            conflicts: Counter::default(),
        };
        registry.register(
            "store_redis_up",
            "1 while the Redis store answers, 0 during an outage (checks fail open)",
            m.up.clone(),
        );
        registry.register(
            "store_redis_operations",
            "Operations sent to Redis, each one round trip (command, script or pipeline)",
            m.operations.clone(),
        );
        registry.register(
            "store_redis_errors",
            "Redis operations that failed or timed out",
            m.errors.clone(),
        );
        registry.register(
            "store_redis_outages",
            "Times the Redis store went from answering to failing",
            m.outages.clone(),
        );
        registry.register(
            "store_redis_conflicts",
            "Updates computed again because another host wrote the same key first",
            m.conflicts.clone(),
        );
        m
    }

    pub(super) fn sync(&self) {
        self.up.set(i64::from(!self.health.is_down()));
        catch_up(
            &self.operations,
            self.health.operations.load(Ordering::Relaxed),
        );
        catch_up(&self.errors, self.health.errors.load(Ordering::Relaxed));
        catch_up(&self.outages, self.health.outages.load(Ordering::Relaxed));
        catch_up(
            &self.conflicts,
            self.health.conflicts.load(Ordering::Relaxed),
        );
    }
}
