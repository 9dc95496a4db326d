//! [`Entry`]: what one stored response holds, and its clock arithmetic.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::time::{Duration, SystemTime};

/// One stored response: status, headers, body, when it was stored and for how long, and the
/// identity of the request it answers.
///
/// Fields are private so that what an entry holds can grow (stale windows, validators, tags)
/// with a new encoding version; entries of an older version are misses, never errors.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use bytes::Bytes;
/// use http::{HeaderMap, StatusCode};
/// use tower_redis_cache::store::Entry;
///
/// let entry = Entry::new(StatusCode::OK, HeaderMap::new(), Bytes::from_static(b"{}"))
///     .with_stored_at(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
///     .with_ttl(Duration::from_secs(60))
///     .with_identity(Bytes::from_static(b"digest of the request"));
/// let decoded = Entry::decode(entry.encode()).unwrap();
/// assert_eq!(decoded, entry);
/// assert_eq!(decoded.body(), &b"{}"[..]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) stored_at: SystemTime,
    pub(crate) ttl: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    /// How long the inner service took to make the response (zero: not recorded).
    pub(crate) compute: Duration,
    pub(crate) identity: Bytes,
}

impl Entry {
    /// An entry for a response, stored now, with a TTL of zero and an empty identity; set them
    /// with [`with_ttl`](Self::with_ttl), [`with_stored_at`](Self::with_stored_at) and
    /// [`with_identity`](Self::with_identity).
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
            stored_at: SystemTime::now(),
            ttl: Duration::ZERO,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            compute: Duration::ZERO,
            identity: Bytes::new(),
        }
    }

    /// How long past its TTL the entry may be served while it is refreshed, and served instead
    /// of an error (RFC 5861; millisecond precision, at most about 49 days, once encoded).
    pub fn with_stale(mut self, while_revalidate: Duration, if_error: Duration) -> Self {
        self.stale_while_revalidate = while_revalidate;
        self.stale_if_error = if_error;
        self
    }

    /// Records how long the inner service took to make the response (refresh-ahead weighs
    /// early refreshes by it); zero records nothing.
    pub fn with_compute_time(mut self, took: Duration) -> Self {
        self.compute = took;
        self
    }

    /// How long the inner service took to make the response (zero when not recorded).
    pub fn compute_time(&self) -> Duration {
        self.compute
    }

    /// How long past its TTL the entry may be served while it is refreshed.
    pub fn stale_while_revalidate(&self) -> Duration {
        self.stale_while_revalidate
    }

    /// How long past its TTL the entry may be served instead of an error.
    pub fn stale_if_error(&self) -> Duration {
        self.stale_if_error
    }

    /// When the entry was stored (millisecond precision once encoded).
    pub fn with_stored_at(mut self, stored_at: SystemTime) -> Self {
        self.stored_at = stored_at;
        self
    }

    /// How long the entry lives from when it was stored.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The digest of the exact request inputs the entry answers; a lookup whose identity
    /// differs is a miss.
    pub fn with_identity(mut self, identity: Bytes) -> Self {
        self.identity = identity;
        self
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers, without hop-by-hop headers and `Set-Cookie`.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The response body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// When the entry was stored.
    pub fn stored_at(&self) -> SystemTime {
        self.stored_at
    }

    /// How long the entry lives from when it was stored.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The digest of the request inputs the entry answers.
    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    /// The status, headers and body, to answer a request with.
    pub(crate) fn into_response_parts(self) -> (StatusCode, HeaderMap, Bytes) {
        (self.status, self.headers, self.body)
    }

    /// How long ago the entry was stored (zero if the clock went backwards).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.stored_at).unwrap_or_default()
    }

    /// How long the entry has left to live.
    pub fn remaining_ttl(&self, now: SystemTime) -> Duration {
        self.ttl.saturating_sub(self.age(now))
    }

    /// Whole seconds of freshness left at `now`; negative once stale (by how long).
    pub(crate) fn freshness(&self, now: SystemTime) -> i64 {
        let (ttl, age) = (self.ttl.as_secs_f64(), self.age(now).as_secs_f64());
        let left = ttl - age;
        if left >= 0.0 {
            left as i64
        } else {
            -((-left).ceil() as i64)
        }
    }
}
