//! Looking a key up in the store, bounded by the lookup timeout (`store/guard/deadline.rs`), and
//! what the answer means: a fresh entry for this very request, a stale one to serve, or a miss
//! and why.

use crate::{
    entry::Entry,
    hit::{CacheStatus, Fwd},
    key::{CacheKey, Identity},
    negotiate::coding::coding_accepted,
    observe::{
        event::{Event, Miss},
        stats::CacheCounters,
        trace,
    },
    runtime::Runtime,
    store::{
        guard::{breaker::Admission, deadline::Expiry},
        StoreError, StoreErrorKind, StoreFuture,
    },
};
use bytes::Bytes;
use http::HeaderMap;
use std::{
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

/// One store lookup, failed as a timeout at its deadline. The deadline and the clock are
/// started only if the store does not answer at once: an in-process hit reads no clock here.
pub(crate) struct Lookup {
    found: StoreFuture<Option<Bytes>>,
    expiry: Option<Arc<Expiry>>,
    /// When the store first did not answer at once.
    started: Option<Instant>,
    /// From then to the store's answer or the timeout, once either came (zero for a store
    /// that answered at once).
    took: Duration,
    /// `cache.lookup`, entered while the store is polled.
    span: tracing::Span,
}

impl Lookup {
    /// Starts looking `key` up, on a route of `namespace`.
    pub(crate) fn start(runtime: &Runtime, namespace: &str, key: &CacheKey) -> Self {
        let span = trace::lookup(namespace, key.as_str());
        let found = span.in_scope(|| runtime.store.lookup(key.as_str()));
        Self {
            found,
            expiry: None,
            started: None,
            took: Duration::ZERO,
            span,
        }
    }

    /// Counts what the lookup came to (`event`) in `runtime`'s and `namespace`'s counters,
    /// with the time it took.
    pub(crate) fn report(&self, runtime: &Runtime, namespace: &CacheCounters, event: Event) {
        runtime.counters.count(namespace, event);
        namespace.metrics.lookup_took(self.took);
        trace::outcome(&self.span, event.label());
    }

    /// Polls the store, then the deadline (from `runtime`).
    pub(crate) fn poll_lookup(
        &mut self,
        cx: &mut Context<'_>,
        runtime: &Runtime,
    ) -> Poll<Result<Option<Bytes>, StoreError>> {
        let polled = self.span.in_scope(|| self.found.as_mut().poll(cx));
        if let Poll::Ready(found) = polled {
            self.took = self
                .started
                .map_or(Duration::ZERO, |started| started.elapsed());
            return Poll::Ready(found);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let expiry = self.expiry.get_or_insert_with(|| runtime.deadlines.start());
        if expiry.poll_expired(cx) {
            self.took = started.elapsed();
            return Poll::Ready(Err(StoreError::new(
                StoreErrorKind::Timeout,
                "lookup timed out",
            )));
        }
        Poll::Pending
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        if let Some(expiry) = &self.expiry {
            expiry.finish();
        }
    }
}

/// What a lookup found for one request.
pub(crate) enum Resolution {
    /// An entry that answers this request.
    Fresh(Entry),
    /// An entry past its TTL but within the route's stale-while-revalidate window: served at
    /// once, and refreshed in the background.
    Stale(Entry),
    /// Nothing usable: forward, with this `Cache-Status`; a stale entry within the route's
    /// stale-if-error window is kept to serve if the inner service fails.
    Miss(CacheStatus, Option<Entry>),
}

/// Reports the lookup's outcome to the breaker, and decides whether `found` answers the
/// request with `identity` at `now`; the event is for [`Lookup::report`].
pub(crate) fn resolve(
    found: Result<Option<Bytes>, StoreError>,
    now: SystemTime,
    runtime: &Runtime,
    admission: Admission,
    identity: &Identity,
    coding_check: Option<&HeaderMap>,
) -> (Resolution, Event) {
    match &found {
        // One cluster node down: the others answer, the store as a whole is up; that node's
        // own breaker (in the store) skips it.
        Err(error) if error.is_node_scoped() => {}
        Err(error) if error.is_outage() => runtime.breaker.on_failure(admission),
        // The store answered (perhaps with an error about this one key, such as a wrong-type
        // value that the write-back will overwrite): it is up.
        _ => runtime.breaker.on_success(),
    }
    let miss =
        |status: CacheStatus, reason: Miss| (Resolution::Miss(status, None), Event::Miss(reason));
    let bytes = match found {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return miss(CacheStatus::forward(Fwd::UriMiss), Miss::Absent),
        Err(error) => {
            tracing::debug!(%error, "cache lookup failed; treated as a miss");
            let status = CacheStatus::forward(Fwd::Miss).with_detail(error.detail());
            return miss(status, Miss::LookupError);
        }
    };
    let entry = match Entry::decode(bytes) {
        Ok(entry) => entry,
        Err(error) => {
            tracing::debug!(%error, "unreadable cache entry; overwriting");
            let status = CacheStatus::forward(Fwd::Miss).with_detail("bad-entry");
            return miss(status, Miss::BadEntry);
        }
    };
    if entry.identity[..] != identity[..]
        || coding_check.is_some_and(|request| !coding_accepted(&entry, request))
    {
        return miss(CacheStatus::forward(Fwd::VaryMiss), Miss::Variant);
    }
    let age = entry.age(now);
    if age < entry.ttl {
        return (Resolution::Fresh(entry), Event::Hit);
    }
    // Past its TTL: Redis keeps it only for its stale windows.
    let stale_for = age - entry.ttl;
    if stale_for < entry.stale_while_revalidate {
        return (Resolution::Stale(entry), Event::StaleHit);
    }
    let keep = stale_for < entry.stale_if_error;
    let resolution = Resolution::Miss(CacheStatus::forward(Fwd::Stale), keep.then_some(entry));
    (resolution, Event::Miss(Miss::Expired))
}
