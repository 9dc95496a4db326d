//! Writing a forwarded response back to the store: recorded as it streams to the client,
//! bounded by the write budget, stored off the response path.

use crate::{
    coalesce::{
        flight::{Flight, Outcome},
        lease::MissLease,
    },
    entry::{header_len, max_encoded_len, Entry},
    hit::{derived_etag, is_entity_tag},
    key::{CacheKey, Identity},
    observe::{event::Event, stats::CacheCounters, trace},
    policy::{Freshness, Policy},
    rules::response::{connection_tokens, content_length, header_is_stored},
    runtime::Runtime,
    store::{guard::budget::Reservation, EntryWrite, StoreError, StoreErrorKind},
};
use bytes::{Bytes, BytesMut};
use http::{header, response, HeaderMap};
use http_body::SizeHint;
use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

/// The longest a write-back may hold its share of the budget, whatever the store.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and for how long a miss's response is to be stored, decided before the inner call.
pub(crate) struct WritePlan {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) key: CacheKey,
    pub(crate) identity: Identity,
    /// The entry's TTL and stale windows (the route's, or its response's `Cache-Control`).
    pub(crate) freshness: Freshness,
    pub(crate) max_body: usize,
    /// When the plan was made, just before the inner service is called: an invalidation
    /// since then (or possibly since then) wins.
    pub(crate) started: Instant,
    /// The response's tags, encoded; set once the response head is known.
    pub(crate) tags: Vec<String>,
    /// When this miss leads a coalesced flight: where its entry is published. Dropped
    /// unpublished (nothing stored), it sends the waiters to the inner service.
    pub(crate) flight: Option<Flight>,
    /// The cross-instance miss lease this miss holds, released when the write-back ends.
    pub(crate) lease: Option<MissLease>,
    /// Whether the entry records how long the inner service took (refresh-ahead).
    pub(crate) records_compute: bool,
    /// The counters of the route's namespace.
    pub(crate) stats: Arc<CacheCounters>,
}

/// A response being recorded as it streams to the client. Holds its share of the write budget
/// from the response head until the store call ends; dropped before the body is complete (a
/// stream error, trailers, an oversized body, the client gone, the budget exhausted), it
/// stores nothing.
///
/// The share covers the most the write-back holds at once: the stored head and the recorded
/// body, and while the entry is encoded, the encoded entry too (about twice the body); then
/// only the encoded entry until the store answers. A body of known size is budgeted in full
/// before recording starts, so `Cache-Status: …; stored` is only announced when it fits.
pub(crate) struct WriteBack {
    plan: WritePlan,
    status: http::StatusCode,
    headers: HeaderMap,
    head_len: usize,
    chunks: Vec<Bytes>,
    len: usize,
    /// The `Content-Length` the response declared, if any: a body that ends short of it is
    /// truncated and must not be stored as complete.
    declared_len: Option<u64>,
    reservation: Reservation,
}

impl WritePlan {
    /// The plan for a miss of `key` on a route with `policy`, made just before the inner
    /// service is called (so the handler reads its data after `started`); its tags and
    /// freshness are settled once the response head is known.
    pub(crate) fn new(
        runtime: &Arc<Runtime>,
        policy: &Policy,
        key: CacheKey,
        identity: Identity,
        flight: Option<Flight>,
        lease: Option<MissLease>,
    ) -> Self {
        Self {
            runtime: runtime.clone(),
            key,
            identity,
            freshness: policy.freshness(),
            max_body: policy.max_response_body,
            started: Instant::now(),
            tags: Vec::new(),
            flight,
            lease,
            records_compute: policy.refresh_ahead.is_some(),
            stats: policy.stats.clone(),
        }
    }

    /// Starts recording a response with head `parts` and a body of `size` (exact, when known),
    /// if the write budget has room and the store is not known to be down.
    pub(crate) fn start(self, parts: &response::Parts, size: SizeHint) -> Option<WriteBack> {
        let hop = connection_tokens(&parts.headers);
        let headers: HeaderMap = parts
            .headers
            .iter()
            .filter(|(name, _)| header_is_stored(name, &hop))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let head_len = head_len(&headers);
        let declared_len = content_length(&parts.headers);
        let known = declared_len.or(size.exact()).map(saturating_usize);
        // A body known to be over the limit is not storable: no `; stored`, no budget.
        if known.is_some_and(|len| len > self.max_body) {
            return None;
        }
        let needed = match known {
            Some(body) => peak(head_len, self.identity.len(), body),
            None => head_len,
        };
        let reservation = match self.runtime.breaker.is_open() {
            true => None,
            false => self.runtime.writes.reserve(needed),
        };
        let Some(reservation) = reservation else {
            self.runtime
                .counters
                .count(&self.stats, Event::WriteDropped);
            return None;
        };
        Some(WriteBack {
            plan: self,
            status: parts.status,
            headers,
            head_len,
            chunks: Vec::new(),
            len: 0,
            declared_len,
            reservation,
        })
    }
}

impl WriteBack {
    /// Records one data frame; `false` once the body is over the limit or the budget has no
    /// room for it (stop recording).
    pub(crate) fn push(&mut self, data: &Bytes) -> bool {
        self.len += data.len();
        if self.len > self.plan.max_body {
            return false;
        }
        if !self.cover(self.head_len + self.len) {
            return false;
        }
        if !data.is_empty() {
            self.chunks.push(data.clone());
        }
        true
    }

    /// Grows the reservation to at least `bytes`; `false` (counted as dropped) if it cannot.
    fn cover(&mut self, bytes: usize) -> bool {
        let held = self.reservation.bytes();
        if bytes <= held || self.reservation.grow(bytes - held) {
            return true;
        }
        let plan = &self.plan;
        plan.runtime
            .counters
            .count(&plan.stats, Event::WriteDropped);
        false
    }

    /// The body is complete: encode the entry and store it in the background.
    pub(crate) fn finish(mut self) {
        if self
            .declared_len
            .is_some_and(|declared| declared != self.len as u64)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.cover(peak(self.head_len, self.plan.identity.len(), self.len)) {
            return;
        }
        let Self {
            mut plan,
            status,
            mut headers,
            chunks,
            len,
            mut reservation,
            ..
        } = self;
        let body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut body = BytesMut::with_capacity(len);
                chunks.iter().for_each(|c| body.extend_from_slice(c));
                body.freeze()
            }
        };
        // Everything from here runs in the background, off the response path: the ETag, the
        // encoding and its compression, the store.
        let span = trace::store(&plan.stats.namespace, plan.key.as_str());
        // From just before the inner call to the body's end.
        let compute = match plan.records_compute {
            true => plan.started.elapsed().max(Duration::from_millis(1)),
            false => Duration::ZERO,
        };
        let task = async move {
            // Hits carry an ETag: the handler's when it is a valid entity-tag, else one derived
            // from the body (an invalid one is never replayed).
            if !headers.get(header::ETAG).is_some_and(is_entity_tag)
                || headers.get_all(header::ETAG).iter().count() > 1
            {
                headers.remove(header::ETAG);
                headers.insert(header::ETAG, derived_etag(&body));
            }
            let entry = Entry::new(status, headers, body)
                .with_stored_at(SystemTime::now())
                .with_ttl(plan.freshness.ttl)
                .with_stale(
                    plan.freshness.stale_while_revalidate,
                    plan.freshness.stale_if_error,
                )
                .with_compute_time(compute)
                .with_identity(Bytes::copy_from_slice(&plan.identity));
            let encoded = entry.encode_with(plan.runtime.compression);
            let bytes = encoded.len();
            tracing::Span::current().record("bytes", bytes);
            // Waiters get the entry once the store has accepted it: a write-back refused
            // because an invalidation raced it must not be served to them either. While it
            // waits, the entry's body is held besides the encoded entry.
            let shared = match plan.flight {
                Some(_) => Some(Arc::new(entry)),
                None => {
                    drop(entry);
                    None
                }
            };
            let held = bytes + shared.as_ref().map_or(0, |entry| entry.body().len());
            reservation.shrink(reservation.bytes().saturating_sub(held));
            let runtime = plan.runtime;
            let stats = plan.stats;
            let storing = Instant::now();
            let write = EntryWrite::new(plan.key, encoded, plan.freshness.retention())
                .started_at(plan.started)
                .encoded_tags(plan.tags);
            let mut flight = plan.flight;
            if let Some(flight) = &flight {
                flight.seal();
            }
            let mut write = runtime.store.write(write);
            let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
            let mut done = None;
            if flight.is_some() {
                // Waiters wait for the store at most a lookup timeout, as a lookup would: then
                // they forward on their own (the flight ends unpublished).
                match tokio::time::timeout(runtime.deadlines.timeout(), &mut write).await {
                    Ok(result) => done = Some(result),
                    Err(_) => flight = None,
                }
            }
            let result = match done {
                Some(result) => result,
                // A store that never answers must not hold its share of the budget forever.
                None => match tokio::time::timeout_at(deadline, write).await {
                    Ok(result) => result,
                    Err(_) => Err(StoreError::new(
                        StoreErrorKind::Timeout,
                        "write-back timed out",
                    )),
                },
            };
            stats.metrics.write_took(storing.elapsed(), bytes);
            drop(reservation);
            if let (Ok(true), Some(lease)) = (&result, plan.lease.as_mut()) {
                lease.stored();
            }
            drop(plan.lease);
            if let (Ok(true), Some(flight), Some(entry)) = (&result, &flight, shared) {
                flight.publish(Outcome::Entry(entry));
            }
            let event = match result {
                Ok(true) => Event::Stored,
                Ok(false) => Event::WriteInvalidated,
                Err(error) => {
                    tracing::debug!(%error, "cache write-back failed");
                    Event::WriteFailed
                }
            };
            runtime.counters.count(&stats, event);
            trace::outcome(&tracing::Span::current(), event.label());
        };
        runtime.spawn(tracing::Instrument::instrument(task, span));
    }
}

/// The most a write-back holds at once: head and body recorded, plus their encoded entry.
fn peak(head_len: usize, identity_len: usize, body_len: usize) -> usize {
    let recorded = head_len.saturating_add(body_len);
    recorded.saturating_add(max_encoded_len(head_len, identity_len, body_len))
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// What a response head's stored headers take, as the entry encodes them.
fn head_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| header_len(name, value))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};

    #[test]
    fn the_budget_covers_the_recorded_response_and_its_encoded_entry() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let identity = [7u8; 32];
        for body in [Bytes::new(), Bytes::from(vec![b'x'; 100_000])] {
            let entry = Entry::new(StatusCode::OK, headers.clone(), body.clone())
                .with_identity(Bytes::copy_from_slice(&identity));
            let encoded = entry.encode().len();
            let recorded = head_len(&headers) + body.len();
            let budget = peak(head_len(&headers), identity.len(), body.len());
            assert!(
                budget >= recorded + encoded,
                "{budget} < {recorded} + {encoded}"
            );
            // Not more than the encoding's optional fields over (the body encoding's byte and
            // the compute time's four).
            assert!(
                budget <= recorded + encoded + 5,
                "{budget} > {recorded} + {encoded} + 5"
            );
        }
    }
}
