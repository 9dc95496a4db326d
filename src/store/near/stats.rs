//! What a near cache did: [`NearCacheStats`], and the counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a [`NearCache`](crate::NearCache) did since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Lookups answered from process memory.
    pub hits: u64,
    /// Lookups read from Redis while tracking was on.
    pub misses: u64,
    /// Lookups passed to Redis because tracking was off.
    pub passed: u64,
    /// Entries filled from Redis.
    pub fills: u64,
    /// Entries dropped on tracking messages (or by this process's own writes).
    pub invalidations: u64,
    /// Times the near cache was emptied and turned off.
    pub flushes: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes the entries weigh now (keys, values and a fixed cost per entry).
    pub bytes: u64,
    /// Whether tracking is on and the near cache serves.
    pub tracking: bool,
}

/// The counters behind [`NearCacheStats`].
#[derive(Default)]
pub(super) struct NearCounters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) passed: AtomicU64,
    pub(super) fills: AtomicU64,
    pub(super) invalidations: AtomicU64,
    pub(super) flushes: AtomicU64,
}

impl NearCounters {
    /// The counters, with what the near cache holds now.
    pub(super) fn snapshot(&self, entries: u64, bytes: u64, tracking: bool) -> NearCacheStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        NearCacheStats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            passed: load(&self.passed),
            fills: load(&self.fills),
            invalidations: load(&self.invalidations),
            flushes: load(&self.flushes),
            entries,
            bytes,
            tracking,
        }
    }
}
