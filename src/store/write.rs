//! [`EntryWrite`]: a write-back as the store receives it.

use crate::key::{encoded, CacheKey};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// How long an invalidation's fence lives: a write-back of a request older than this is never
/// stored (it might have raced a fence that has expired). Every store of the invalidation
/// protocol keeps its fences this long.
pub(crate) const FENCE_WINDOW: Duration = Duration::from_secs(600);

/// An encoded entry to store, with what invalidation needs: its tags, and when the request
/// that produced it began, so that a store can refuse it when an invalidation ran since.
///
/// Stores implement [`Store::write`](super::Store::write) with it; the cache makes one per
/// write-back.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tower_redis_cache::{store::EntryWrite, KeyFactory, Variant};
///
/// let key = KeyFactory::new("monps", "prod", "v1").key("pred", "m_1", &Variant::new());
/// let write = EntryWrite::new(key, "entry".into(), Duration::from_secs(60))
///     .tags(["team:7", "league"])
///     .started_at(Instant::now());
/// assert_eq!(write.tag_names().collect::<Vec<_>>(), ["team%3A7", "league"]);
/// ```
#[derive(Clone, Debug)]
pub struct EntryWrite {
    key: CacheKey,
    value: Bytes,
    ttl: Duration,
    tags: Vec<String>,
    started: Instant,
}

impl EntryWrite {
    /// A write of `value` under `key` for `ttl`, with no tags, for a request that began now.
    pub fn new(key: CacheKey, value: Bytes, ttl: Duration) -> Self {
        Self {
            key,
            value,
            ttl,
            tags: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Tags the entry: [`Invalidator::tag`](crate::Invalidator::tag) drops it with any of
    /// them. Tags are encoded as key fields are.
    pub fn tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.tags = tags.into_iter().map(|t| encoded(t.as_ref())).collect();
        self
    }

    /// Tags already encoded.
    pub(crate) fn encoded_tags(mut self, tags: Vec<String>) -> Self {
        self.tags = tags;
        self
    }

    /// When the request that produced the entry began (before its lookup).
    pub fn started_at(mut self, started: Instant) -> Self {
        self.started = started;
        self
    }

    /// The entry's key.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// The encoded entry.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// How long the entry lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The entry's tags, encoded.
    pub fn tag_names(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(String::as_str)
    }

    /// When the request that produced the entry began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether the request began longer ago than an invalidation's fence lives: such a write
    /// is never stored, as it might have raced a fence that has expired.
    pub(crate) fn outlived_fences(&self) -> bool {
        self.started.elapsed() >= FENCE_WINDOW
    }
}
