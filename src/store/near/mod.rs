//! The near cache: hot entries in process memory in front of a [`RedisStore`](crate::RedisStore),
//! kept coherent with Redis by client tracking (RESP3).
//!
//! - `cache.rs`: [`NearCache`], the [`Store`](crate::store::Store) apps use, and its builder;
//! - `shared.rs`: the state its lookups and its tracking task share;
//! - `redirects.rs`: the Cluster slots read through the store while they migrate;
//! - `tracking.rs`: the task that turns tracking on, hands Redis's invalidation messages on and
//!   checks each connection with a heartbeat;
//! - `stats.rs`: [`NearCacheStats`].

mod cache;
mod redirects;
mod shared;
mod stats;
mod tracking;

pub use self::cache::{NearCache, NearCacheBuilder};
pub use self::stats::NearCacheStats;
