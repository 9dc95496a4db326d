//! The metrics, reported through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`; `disabled.rs` has the same items doing nothing).
//!
//! Per-request figures go through handles registered once per namespace, on its first event
//! (so a recorder installed before the first request sees them all); rare ones (invalidations,
//! breaker transitions) are registered where they happen.

use super::names::*;
use crate::observe::event::{Bypass, Event, Miss};
use metrics::{Counter, Gauge, Histogram, SharedString};
use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

/// Describes every metric to the installed recorder (the `# HELP` lines of a Prometheus
/// exporter, and units). Optional; call it after installing the recorder.
///
/// ```
/// // With any recorder installed first, e.g. metrics_exporter_prometheus's.
/// tower_redis_cache::describe_metrics();
/// ```
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
    namespace: Option<SharedString>,
    handles: OnceLock<Handles>,
}

/// A namespace's handles, registered on its first event.
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
    too_many_variants: Counter,
    lookup_seconds: Histogram,
    write_seconds: Histogram,
    entry_bytes: Histogram,
}

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
            too_many_variants: write("too-many-variants"),
            lookup_seconds: histogram!(LOOKUP_SECONDS, "namespace" => ns()),
            write_seconds: histogram!(WRITE_SECONDS, "namespace" => ns()),
            entry_bytes: histogram!(ENTRY_BYTES, "namespace" => ns()),
        }
    }
}

impl NamespaceMetrics {
    /// The metrics of `namespace`.
    pub(crate) fn new(namespace: &Arc<str>) -> Self {
        Self {
            namespace: Some(SharedString::from(namespace.clone())),
            handles: OnceLock::new(),
        }
    }

    fn handles(&self) -> Option<&Handles> {
        let namespace = self.namespace.as_ref()?;
        Some(self.handles.get_or_init(|| Handles::register(namespace)))
    }

    /// Counts `event`.
    pub(crate) fn record(&self, event: Event) {
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
                Event::VariantRefused => &handles.too_many_variants,
            };
            counter.increment(1);
        }
    }

    /// Records how long a lookup took.
    pub(crate) fn lookup_took(&self, took: Duration) {
        if let Some(handles) = self.handles() {
            handles.lookup_seconds.record(took);
        }
    }

    /// Records a write-back of `bytes` that waited `took` for the store.
    pub(crate) fn write_took(&self, took: Duration, bytes: usize) {
        if let Some(handles) = self.handles() {
            handles.write_seconds.record(took);
            handles.entry_bytes.record(bytes as f64);
        }
    }
}

/// Counts one invalidation of `scope` (a fixed label) that dropped `dropped` entries, or failed.
pub(crate) fn invalidation(scope: &'static str, dropped: Option<u64>) {
    use metrics::counter;
    let result = if dropped.is_some() { "ok" } else { "error" };
    counter!(INVALIDATIONS, "scope" => scope, "result" => result).increment(1);
    if let Some(dropped) = dropped {
        counter!(INVALIDATED_ENTRIES, "scope" => scope).increment(dropped);
    }
}

/// A layer's circuit breaker opened (`true`) or closed.
pub(crate) fn breaker_open(open: bool) {
    let gauge = metrics::gauge!(BREAKERS_OPEN);
    match open {
        true => gauge.increment(1.0),
        false => gauge.decrement(1.0),
    }
}

/// The gauges of the write budget, registered on its first reservation.
#[derive(Debug, Default)]
pub(crate) struct WriteGauges {
    handles: OnceLock<(Gauge, Gauge)>,
}

impl WriteGauges {
    /// Write-backs in flight changed by `writes` (+1, -1 or 0), their bytes by `bytes`.
    pub(crate) fn add(&self, writes: i8, bytes: isize) {
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
}

/// The near cache's hit counter, registered on its first hit; flushes and tracking messages
/// are rare enough to be registered where they happen.
#[derive(Debug, Default)]
pub(crate) struct NearMetrics {
    hits: OnceLock<Counter>,
}

impl NearMetrics {
    /// One lookup answered from process memory.
    pub(crate) fn hit(&self) {
        self.hits
            .get_or_init(|| metrics::counter!(NEAR_HITS))
            .increment(1);
    }

    /// `entries` dropped on tracking messages.
    pub(crate) fn invalidated(&self, entries: u64) {
        metrics::counter!(NEAR_INVALIDATIONS).increment(entries);
    }

    /// The near cache was flushed for `reason` (a fixed label).
    pub(crate) fn flushed(&self, reason: &'static str) {
        metrics::counter!(NEAR_FLUSHES, "reason" => reason).increment(1);
    }
}
