//! What the cache reports through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): the names and labels are in the crate docs' table. Without the feature, or with
//! no recorder installed, every call here does nothing.
//!
//! Per-request figures go through handles registered once per namespace, on its first event
//! (so a recorder installed before the first request sees them all); rare ones (invalidations,
//! breaker transitions) are registered where they happen.

// Without the feature the names are only documentation.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use crate::event::Event;
#[cfg(feature = "metrics")]
use crate::event::{Bypass, Miss};
#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, Histogram, SharedString};
#[cfg(feature = "metrics")]
use std::sync::OnceLock;
use std::time::Duration;

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

/// Describes every metric to the installed recorder (the `# HELP` lines of a Prometheus
/// exporter, and units). Optional; call it after installing the recorder.
///
/// ```
/// // With any recorder installed first, e.g. metrics_exporter_prometheus's.
/// tower_redis_cache::describe_metrics();
/// ```
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HITS,
        "Requests answered from the cache (fresh, or stale while revalidating)."
    );
    describe_counter!(
        STALE,
        "Stale entries served, by window (while-revalidate, if-error)."
    );
    describe_counter!(
        MISSES,
        "Requests looked up and forwarded to the handler, by reason."
    );
    describe_counter!(
        COALESCED,
        "Misses answered with the response another request fetched."
    );
    describe_counter!(
        BYPASSES,
        "Requests on cached routes forwarded without a lookup, by reason."
    );
    describe_counter!(WRITES, "Write-backs of responses, by result.");
    describe_histogram!(LOOKUP_SECONDS, Unit::Seconds, "Cache lookup latency.");
    describe_histogram!(
        WRITE_SECONDS,
        Unit::Seconds,
        "Time write-backs waited for the store."
    );
    describe_histogram!(
        ENTRY_BYTES,
        Unit::Bytes,
        "Size of the encoded entries written."
    );
    describe_counter!(INVALIDATIONS, "Invalidations run, by scope and result.");
    describe_counter!(
        INVALIDATED_ENTRIES,
        "Entries dropped by invalidations, by scope."
    );
    describe_gauge!(BREAKERS_OPEN, "Cache layers whose circuit breaker is open.");
    describe_gauge!(WRITES_IN_FLIGHT, "Write-backs in flight.");
    describe_gauge!(
        WRITE_BYTES_IN_FLIGHT,
        Unit::Bytes,
        "Bytes held by write-backs in flight."
    );
    describe_counter!(NEAR_HITS, "Lookups answered by the near cache.");
    describe_counter!(
        NEAR_INVALIDATIONS,
        "Near-cache entries dropped on Redis tracking messages."
    );
    describe_counter!(
        NEAR_FLUSHES,
        "Times the near cache was emptied and turned off until tracking was back, by reason."
    );
}

/// The metrics of one namespace; unnamed (the layer's totals), it reports nothing.
#[derive(Debug, Default)]
pub(crate) struct NamespaceMetrics {
    #[cfg(feature = "metrics")]
    namespace: Option<SharedString>,
    #[cfg(feature = "metrics")]
    handles: OnceLock<Handles>,
}

/// A namespace's handles, registered on its first event.
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    hits: Counter,
    stale_while_revalidate: Counter,
    stale_if_error: Counter,
    misses: [Counter; Miss::ALL.len()],
    coalesced: Counter,
    bypasses: [Counter; Bypass::ALL.len()],
    stored: Counter,
    invalidated: Counter,
    failed: Counter,
    dropped: Counter,
    lookup_seconds: Histogram,
    write_seconds: Histogram,
    entry_bytes: Histogram,
}

#[cfg(feature = "metrics")]
impl Handles {
    fn register(namespace: &SharedString) -> Self {
        use metrics::{counter, histogram};
        let ns = || namespace.clone();
        let write =
            |result: &'static str| counter!(WRITES, "namespace" => ns(), "result" => result);
        Self {
            hits: counter!(HITS, "namespace" => ns()),
            stale_while_revalidate: counter!(STALE, "namespace" => ns(), "window" => "while-revalidate"),
            stale_if_error: counter!(STALE, "namespace" => ns(), "window" => "if-error"),
            misses: Miss::ALL
                .map(|miss| counter!(MISSES, "namespace" => ns(), "reason" => miss.label())),
            coalesced: counter!(COALESCED, "namespace" => ns()),
            bypasses: Bypass::ALL
                .map(|bypass| counter!(BYPASSES, "namespace" => ns(), "reason" => bypass.detail())),
            stored: write("stored"),
            invalidated: write("invalidated"),
            failed: write("failed"),
            dropped: write("dropped"),
            lookup_seconds: histogram!(LOOKUP_SECONDS, "namespace" => ns()),
            write_seconds: histogram!(WRITE_SECONDS, "namespace" => ns()),
            entry_bytes: histogram!(ENTRY_BYTES, "namespace" => ns()),
        }
    }
}

impl NamespaceMetrics {
    /// The metrics of `namespace`.
    pub(crate) fn new(namespace: &std::sync::Arc<str>) -> Self {
        #[cfg(feature = "metrics")]
        return Self {
            namespace: Some(SharedString::from(namespace.clone())),
            handles: OnceLock::new(),
        };
        #[cfg(not(feature = "metrics"))]
        {
            let _ = namespace;
            Self::default()
        }
    }

    #[cfg(feature = "metrics")]
    fn handles(&self) -> Option<&Handles> {
        let namespace = self.namespace.as_ref()?;
        Some(self.handles.get_or_init(|| Handles::register(namespace)))
    }

    /// Counts `event`.
    pub(crate) fn record(&self, event: Event) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = self.handles() {
            let counter = match event {
                Event::Hit => &handles.hits,
                Event::StaleHit => {
                    handles.stale_while_revalidate.increment(1);
                    &handles.hits
                }
                Event::StaleIfError => &handles.stale_if_error,
                Event::Miss(miss) => &handles.misses[miss as usize],
                Event::Coalesced => &handles.coalesced,
                Event::Bypass(bypass) => &handles.bypasses[bypass as usize],
                Event::Stored => &handles.stored,
                Event::WriteInvalidated => &handles.invalidated,
                Event::WriteFailed => &handles.failed,
                Event::WriteDropped => &handles.dropped,
            };
            counter.increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = event;
    }

    /// Records how long a lookup took.
    pub(crate) fn lookup_took(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = self.handles() {
            handles.lookup_seconds.record(took);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = took;
    }

    /// Records a write-back of `bytes` that waited `took` for the store.
    pub(crate) fn write_took(&self, took: Duration, bytes: usize) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = self.handles() {
            handles.write_seconds.record(took);
            handles.entry_bytes.record(bytes as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (took, bytes);
    }
}

/// Counts one invalidation of `scope` (a fixed label) that dropped `dropped` entries, or failed.
pub(crate) fn invalidation(scope: &'static str, dropped: Option<u64>) {
    #[cfg(feature = "metrics")]
    {
        use metrics::counter;
        let result = if dropped.is_some() { "ok" } else { "error" };
        counter!(INVALIDATIONS, "scope" => scope, "result" => result).increment(1);
        if let Some(dropped) = dropped {
            counter!(INVALIDATED_ENTRIES, "scope" => scope).increment(dropped);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (scope, dropped);
}

/// A layer's circuit breaker opened (`true`) or closed.
pub(crate) fn breaker_open(open: bool) {
    #[cfg(feature = "metrics")]
    {
        let gauge = metrics::gauge!(BREAKERS_OPEN);
        match open {
            true => gauge.increment(1.0),
            false => gauge.decrement(1.0),
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = open;
}

/// The gauges of the write budget, registered on its first reservation.
#[derive(Debug, Default)]
pub(crate) struct WriteGauges {
    #[cfg(feature = "metrics")]
    handles: OnceLock<(Gauge, Gauge)>,
}

impl WriteGauges {
    /// Write-backs in flight changed by `writes` (+1, -1 or 0), their bytes by `bytes`.
    pub(crate) fn add(&self, writes: i8, bytes: isize) {
        #[cfg(feature = "metrics")]
        {
            let (count, held) = self.handles.get_or_init(|| {
                (
                    metrics::gauge!(WRITES_IN_FLIGHT),
                    metrics::gauge!(WRITE_BYTES_IN_FLIGHT),
                )
            });
            if writes != 0 {
                count.increment(f64::from(writes));
            }
            if bytes != 0 {
                held.increment(bytes as f64);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (writes, bytes);
    }
}

/// The near cache's hit counter, registered on its first hit; flushes and tracking messages
/// are rare enough to be registered where they happen.
#[derive(Debug, Default)]
pub(crate) struct NearCounters {
    #[cfg(feature = "metrics")]
    hits: OnceLock<Counter>,
}

impl NearCounters {
    /// One lookup answered from process memory.
    pub(crate) fn hit(&self) {
        #[cfg(feature = "metrics")]
        self.hits
            .get_or_init(|| metrics::counter!(NEAR_HITS))
            .increment(1);
    }

    /// `entries` dropped on tracking messages.
    pub(crate) fn invalidated(&self, entries: u64) {
        #[cfg(feature = "metrics")]
        metrics::counter!(NEAR_INVALIDATIONS).increment(entries);
        #[cfg(not(feature = "metrics"))]
        let _ = entries;
    }

    /// The near cache was flushed for `reason` (a fixed label).
    pub(crate) fn flushed(&self, reason: &'static str) {
        #[cfg(feature = "metrics")]
        metrics::counter!(NEAR_FLUSHES, "reason" => reason).increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = reason;
    }
}
