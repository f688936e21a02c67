//! State backends for the engine's [`mxguard_engine::store::Store`] trait.
//!
//! - [`embedded`]: the default, a redb file with write-behind batching (no server to run);
//! - the in-memory [`mxguard_engine::store::MemoryStore`] for tests and benchmarks;
//! - [`redis`]: Redis or Valkey (one server, Sentinel or Cluster), state shared by several
//!   MX hosts.
//!
//! The service builds one from `[store] type = "..."` and hands it to the engine as
//! `Arc<dyn Store>`.

mod codec;
mod compact;
pub mod embedded;
mod keyed;
mod limit_map;
pub mod redis;
mod redis_cluster;
mod redis_scan;
mod redis_target;

pub use embedded::EmbeddedStore;
pub use redis::{RedisSettings, RedisStore};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
