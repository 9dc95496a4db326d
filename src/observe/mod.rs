//! What the cache observes of itself: the events of a request or a write-back and their reasons
//! ([`event`]), the counters behind [`CacheStats`](crate::CacheStats) ([`stats`]), the
//! `metrics` facade ([`metrics`], feature `metrics`), the `tracing` spans ([`trace`]) and the
//! sketch of the entities that take the most hits ([`hot_keys`]).

pub(crate) mod event;
pub(crate) mod hot_keys;
pub(crate) mod metrics;
pub(crate) mod stats;
pub(crate) mod trace;
