//! Looking a key up in the store, bounded by the lookup timeout (`deadline.rs`), and what the
//! answer means: a fresh entry for this very request, or a miss and why.

use crate::{
    breaker::Admission,
    deadline::Expiry,
    entry::Entry,
    key::CacheKey,
    keying::Identity,
    runtime::Runtime,
    stats::Counters,
    status::{CacheStatus, Fwd},
    store::{StoreError, StoreErrorKind, StoreFuture},
};
use bytes::Bytes;
use std::{
    sync::Arc,
    task::{Context, Poll},
    time::SystemTime,
};

/// One store lookup, failed as a timeout at its deadline. The deadline is started only if the
/// store does not answer at once.
pub(crate) struct Lookup {
    found: StoreFuture<Option<Bytes>>,
    expiry: Option<Arc<Expiry>>,
}

impl Lookup {
    pub(crate) fn start(runtime: &Runtime, key: &CacheKey) -> Self {
        Self {
            found: runtime.store.lookup(key.as_str()),
            expiry: None,
        }
    }

    /// Polls the store, then the deadline (from `runtime`).
    pub(crate) fn poll_lookup(
        &mut self,
        cx: &mut Context<'_>,
        runtime: &Runtime,
    ) -> Poll<Result<Option<Bytes>, StoreError>> {
        if let Poll::Ready(found) = self.found.as_mut().poll(cx) {
            return Poll::Ready(found);
        }
        let expiry = self.expiry.get_or_insert_with(|| runtime.deadlines.start());
        if expiry.poll_expired(cx) {
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

/// Reports the lookup's outcome to the breaker and the counters, and decides whether `found`
/// answers the request with `identity` at `now`.
pub(crate) fn resolve(
    found: Result<Option<Bytes>, StoreError>,
    now: SystemTime,
    runtime: &Runtime,
    namespace: &Counters,
    admission: Admission,
    key: &CacheKey,
    identity: &Identity,
) -> Resolution {
    let counters = &runtime.counters;
    match &found {
        // One cluster node down: the others answer, the store as a whole is up; that node's
        // own breaker (in the store) skips it.
        Err(error) if error.is_node_scoped() => {}
        Err(error) if error.is_outage() => runtime.breaker.on_failure(admission),
        // The store answered (perhaps with an error about this one key, such as a wrong-type
        // value that the write-back will overwrite): it is up.
        _ => runtime.breaker.on_success(),
    }
    let miss = |status: CacheStatus| {
        counters.count(namespace, |c| &c.misses);
        Resolution::Miss(status, None)
    };
    let bytes = match found {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return miss(CacheStatus::forward(Fwd::UriMiss)),
        Err(error) => {
            counters.count(namespace, |c| &c.lookup_errors);
            tracing::debug!(%key, %error, "cache lookup failed; treated as a miss");
            return miss(CacheStatus::forward(Fwd::Miss).with_detail(error.detail()));
        }
    };
    let entry = match Entry::decode(bytes) {
        Ok(entry) => entry,
        Err(error) => {
            counters.count(namespace, |c| &c.bad_entries);
            tracing::debug!(%key, %error, "unreadable cache entry; overwriting");
            return miss(CacheStatus::forward(Fwd::Miss).with_detail("bad-entry"));
        }
    };
    if entry.identity[..] != identity[..] {
        return miss(CacheStatus::forward(Fwd::VaryMiss));
    }
    let age = entry.age(now);
    if age < entry.ttl {
        counters.count(namespace, |c| &c.hits);
        return Resolution::Fresh(entry);
    }
    // Past its TTL: Redis keeps it only for its stale windows.
    let stale_for = age - entry.ttl;
    if stale_for < entry.stale_while_revalidate {
        counters.count(namespace, |c| &c.hits);
        counters.count(namespace, |c| &c.stale);
        return Resolution::Stale(entry);
    }
    counters.count(namespace, |c| &c.misses);
    let keep = stale_for < entry.stale_if_error;
    Resolution::Miss(CacheStatus::forward(Fwd::Stale), keep.then_some(entry))
}
