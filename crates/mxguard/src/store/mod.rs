//! State backends for the engine's [`mxguard_engine::store::Store`] trait.
//!
//! - [`embedded`]: the default, a redb file with write-behind batching (no server to run);
//! - the in-memory [`mxguard_engine::store::MemoryStore`] for tests and benchmarks;
//! - `redis` (shared state across MX hosts) comes later behind the same trait.
//!
//! The service builds one from `[store] type = "..."` and hands it to the engine as
//! `Arc<dyn Store>`.

mod codec;
mod compact;
pub mod embedded;
mod keyed;

pub use embedded::EmbeddedStore;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
