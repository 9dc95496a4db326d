//! Counters of what the cache did, shared by every route of one [`CacheLayer`](crate::CacheLayer).

use super::{
    event::{Event, Miss},
    metrics::NamespaceMetrics,
};
use std::sync::{
    atomic::{AtomicU64, Ordering::Relaxed},
    Arc,
};

/// A snapshot of the cache's counters since the layer was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from the store.
    pub hits: u64,
    /// Hits on stale entries (stale-while-revalidate or stale-if-error; each also a hit).
    pub stale: u64,
    /// Misses answered with the response another request for the key fetched (coalesced;
    /// each also counted as a miss).
    pub coalesced: u64,
    /// Requests looked up and forwarded: no entry, another variant's entry, or a store failure.
    pub misses: u64,
    /// Requests on a cached route forwarded without a lookup (credentials, unkeyed input, size).
    pub bypasses: u64,
    /// Lookups that failed or timed out (each also counted as a miss).
    pub lookup_errors: u64,
    /// Lookups skipped because the circuit breaker was open (each also a miss).
    pub circuit_open: u64,
    /// Entries found unreadable (foreign, corrupt, other version); each also a miss.
    pub bad_entries: u64,
    /// Entries written to the store.
    pub writes: u64,
    /// Write-backs that failed or timed out.
    pub write_errors: u64,
    /// Write-backs refused because an invalidation covering them ran since their request
    /// began (their response may predate the change the invalidation announced).
    pub writes_invalidated: u64,
    /// Storable responses not written: the write budget (in-flight writes or bytes) was
    /// exhausted, or the circuit breaker was open.
    pub writes_dropped: u64,
    /// Varying responses not written because their key had as many variants as the route's
    /// [`Policy::max_variants`](crate::Policy::max_variants) allows.
    pub variants_refused: u64,
    /// Write-backs in flight now: recording a body or waiting for the store.
    pub writes_in_flight: u64,
    /// Bytes the write-backs in flight hold now (recorded bodies and encoded entries).
    pub write_bytes_in_flight: u64,
}

/// The counters behind [`CacheStats`], of a layer (its totals) or of one namespace, with the
/// namespace's metrics.
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypasses: AtomicU64,
    pub(crate) lookup_errors: AtomicU64,
    pub(crate) circuit_open: AtomicU64,
    pub(crate) bad_entries: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) writes_invalidated: AtomicU64,
    pub(crate) writes_dropped: AtomicU64,
    pub(crate) variants_refused: AtomicU64,
    /// The namespace counted (empty for a layer's totals).
    pub(crate) namespace: Arc<str>,
    /// What is reported through the `metrics` facade (a namespace's; nothing for totals).
    pub(crate) metrics: NamespaceMetrics,
}

impl CacheCounters {
    /// The counters of `namespace`, reported under its name.
    pub(crate) fn for_namespace(namespace: &str) -> Self {
        let namespace = Arc::<str>::from(namespace);
        Self {
            metrics: NamespaceMetrics::new(&namespace),
            namespace,
            ..Self::default()
        }
    }

    /// Counts `event` in the layer's counters (`self`) and in its route's namespace's, and
    /// reports it through the namespace's metrics.
    pub(crate) fn count(&self, namespace: &CacheCounters, event: Event) {
        self.bump(event);
        namespace.bump(event);
        namespace.metrics.record(event);
    }

    fn bump(&self, event: Event) {
        let add = |counter: &AtomicU64| {
            counter.fetch_add(1, Relaxed);
        };
        match event {
            Event::Hit => add(&self.hits),
            Event::StaleHit => {
                add(&self.hits);
                add(&self.stale);
            }
            Event::StaleIfError => add(&self.stale),
            Event::Miss(miss) => {
                add(&self.misses);
                match miss {
                    Miss::LookupError => add(&self.lookup_errors),
                    Miss::CircuitOpen => add(&self.circuit_open),
                    Miss::BadEntry => add(&self.bad_entries),
                    Miss::Absent | Miss::Variant | Miss::Expired => {}
                }
            }
            Event::Coalesced => add(&self.coalesced),
            Event::Bypass(_) => add(&self.bypasses),
            Event::Stored => add(&self.writes),
            Event::WriteInvalidated => add(&self.writes_invalidated),
            Event::WriteFailed => add(&self.write_errors),
            Event::WriteDropped => add(&self.writes_dropped),
            Event::VariantRefused => add(&self.variants_refused),
        }
    }

    /// The counters, with the write budget's current use.
    pub(crate) fn snapshot(
        &self,
        writes_in_flight: usize,
        write_bytes_in_flight: usize,
    ) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            stale: self.stale.load(Relaxed),
            misses: self.misses.load(Relaxed),
            bypasses: self.bypasses.load(Relaxed),
            lookup_errors: self.lookup_errors.load(Relaxed),
            circuit_open: self.circuit_open.load(Relaxed),
            bad_entries: self.bad_entries.load(Relaxed),
            writes: self.writes.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            writes_invalidated: self.writes_invalidated.load(Relaxed),
            writes_dropped: self.writes_dropped.load(Relaxed),
            variants_refused: self.variants_refused.load(Relaxed),
            writes_in_flight: writes_in_flight as u64,
            write_bytes_in_flight: write_bytes_in_flight as u64,
        }
    }
}
