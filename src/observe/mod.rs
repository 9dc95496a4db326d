//! What the cache observes of itself: the events of a request or a write-back and their reasons
//! ([`event`]), the counters behind [`CacheStats`](crate::CacheStats) ([`stats`]), the
//! `metrics` facade ([`metrics`], feature `metrics`) and the `tracing` spans ([`trace`]).

pub(crate) mod event;
pub(crate) mod metrics;
pub(crate) mod stats;
pub(crate) mod trace;
