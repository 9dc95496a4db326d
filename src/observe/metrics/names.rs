//! The names of the metrics the cache reports (the crate docs' table lists them with their
//! labels). Without the feature `metrics` they are only documentation.

#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

/// Requests answered from the store (fresh, or stale while revalidating).
pub(crate) const HITS: &str = "tower_redis_cache_hits_total";
/// Stale entries served, by window.
pub(crate) const STALE: &str = "tower_redis_cache_stale_total";
/// Requests looked up (or skipped by the breaker) and forwarded, by reason.
pub(crate) const MISSES: &str = "tower_redis_cache_misses_total";
/// Misses answered with the response another request for the key fetched.
pub(crate) const COALESCED: &str = "tower_redis_cache_coalesced_total";
/// Requests on a cached route forwarded without a lookup, by reason.
pub(crate) const BYPASSES: &str = "tower_redis_cache_bypasses_total";
/// Write-backs, by result.
pub(crate) const WRITES: &str = "tower_redis_cache_writes_total";
/// Time from a lookup's start to the store's answer (or the timeout).
pub(crate) const LOOKUP_SECONDS: &str = "tower_redis_cache_lookup_duration_seconds";
/// Time a write-back waited for the store.
pub(crate) const WRITE_SECONDS: &str = "tower_redis_cache_write_duration_seconds";
/// The size of each encoded entry sent to the store.
pub(crate) const ENTRY_BYTES: &str = "tower_redis_cache_entry_bytes";
/// Invalidations run, by scope and result.
pub(crate) const INVALIDATIONS: &str = "tower_redis_cache_invalidations_total";
/// Entries dropped by invalidations, by scope.
pub(crate) const INVALIDATED_ENTRIES: &str = "tower_redis_cache_invalidated_entries_total";
/// Layers whose circuit breaker is open now.
pub(crate) const BREAKERS_OPEN: &str = "tower_redis_cache_breakers_open";
/// Write-backs in flight now.
pub(crate) const WRITES_IN_FLIGHT: &str = "tower_redis_cache_writes_in_flight";
/// Bytes held by the write-backs in flight now.
pub(crate) const WRITE_BYTES_IN_FLIGHT: &str = "tower_redis_cache_write_bytes_in_flight";

/// Lookups the near cache answered from process memory.
pub(crate) const NEAR_HITS: &str = "tower_redis_cache_near_hits_total";
/// Entries the near cache dropped on a tracking message from Redis.
pub(crate) const NEAR_INVALIDATIONS: &str = "tower_redis_cache_near_invalidations_total";
/// Times the near cache was emptied and turned off until tracking was back, by reason.
pub(crate) const NEAR_FLUSHES: &str = "tower_redis_cache_near_flushes_total";
