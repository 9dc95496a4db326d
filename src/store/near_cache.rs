//! The near cache: hot entries in process memory in front of a [`RedisStore`], kept coherent
//! with Redis by client tracking (RESP3).
//!
//! Coherence rests on three rules:
//! - an entry is filled only from a read on the tracking connection, which makes Redis report
//!   every later change of the key on that same connection;
//! - a read fills only if no tracking message for its key (and no flush) was handled since the
//!   read began, so a message that overtakes the read's own reply is not lost;
//! - entries are served only while tracking is on and a heartbeat sent at most `max_silence`
//!   ago came back; Redis answered it after every message it had sent before, so what is
//!   served reflects every change Redis made up to then. On any doubt the near cache is
//!   flushed, and it stays off until tracking is on again.

use super::{
    memory::MemoryStore,
    redis::{fail_fast, map_error},
    tracking, EntryWrite, Lease, RedisStore, Store, StoreError, StoreFuture,
};
use crate::{invalidation::Invalidation, metrics::NearCounters};
use bytes::Bytes;
use fred::{
    clients::Client,
    interfaces::{ClientInterface, KeysInterface},
    types::config::Server,
};
use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot};

/// The default bound of a near cache: 64 MiB.
const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// How many tracking messages may wait to be handled before some are lost (and the near
/// cache is flushed for it).
const EVENT_CAPACITY: usize = 16 * 1024;

/// A [`Store`] that keeps hot entries in process memory in front of a [`RedisStore`], coherent
/// with Redis through client tracking.
///
/// A lookup the near cache holds is answered without a round trip; any other goes to Redis on
/// a tracking connection of the near cache's own (RESP3, `CLIENT TRACKING ON`, on every
/// primary of a Cluster), and the entry is kept for at most its remaining Redis TTL. When any
/// client overwrites, deletes, expires, evicts or invalidates a key, Redis tells every
/// tracking connection that read it, and each near cache drops it (the invalidation lag in
/// BENCHMARKS.md: a few microseconds after the writer's acknowledgement at the median, p99
/// under 1.3 ms, on loopback). Writes, invalidations and leases go
/// to Redis unchanged; an invalidation through this store returns only after the near cache
/// has dropped what it covered.
///
/// It never serves in silence what Redis may have changed: on a disconnect, a reconnect, a
/// topology change, a lost tracking message, a heartbeat unanswered for
/// [`max_silence`](NearCacheBuilder::max_silence), or a flushed Redis (the heartbeat checks a
/// canary key of its own, `tower-redis-cache:near-canary:…`, one per primary), it empties
/// itself and passes every lookup to Redis until tracking is back. With Redis unreachable it serves nothing at
/// all once `max_silence` has passed.
///
/// It is chosen per layer: a route that must always read Redis gets a layer on the
/// [`RedisStore`] itself; both layers share the same entries in Redis.
///
/// ```no_run
/// use tower_redis_cache::{NearCache, RedisStore};
///
/// # async fn run() -> Result<(), tower_redis_cache::StoreError> {
/// let redis = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let store = NearCache::builder(redis).max_bytes(32 * 1024 * 1024).build()?;
/// // ... CacheLayer::builder(store.clone(), keys) ...
/// println!("{:?}", store.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NearCache {
    shared: Arc<Shared>,
    redis: RedisStore,
    barriers: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

/// Builder for [`NearCache`].
#[derive(Clone, Debug)]
pub struct NearCacheBuilder {
    redis: RedisStore,
    max_bytes: u64,
    heartbeat: Duration,
    max_silence: Duration,
}

/// What a [`NearCache`] did since it was built.
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

/// Why the near cache was flushed: the `reason` label of its flush counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flush {
    /// The tracking connection failed.
    Disconnect,
    /// The tracking connection was replaced; the new one does not track.
    Reconnect,
    /// The cluster's topology changed: slots may be served by connections that do not track.
    Topology,
    /// Tracking messages were lost (too many waited to be handled).
    Missed,
    /// No heartbeat came back within `max_silence`.
    Silence,
    /// A canary key is gone: Redis was flushed (or restarted empty).
    Emptied,
}

impl Flush {
    fn label(self) -> &'static str {
        match self {
            Self::Disconnect => "disconnect",
            Self::Reconnect => "reconnect",
            Self::Topology => "topology",
            Self::Missed => "missed-message",
            Self::Silence => "silence",
            Self::Emptied => "emptied",
        }
    }
}

/// The state the lookups and the tracking task share.
pub(super) struct Shared {
    entries: MemoryStore,
    pub(super) client: Client,
    /// Tracking is on (and the entries may be served).
    tracking: AtomicBool,
    /// When the newest heartbeat that came back was sent, in ms since `clock`.
    confirmed: AtomicU64,
    clock: Instant,
    max_silence: Duration,
    pub(super) heartbeat: Duration,
    /// Changes of keys (tracking messages, flushes) are numbered; a read fills only if none for
    /// its key came after the read began. Guarded by `pending`.
    changes: AtomicU64,
    pending: Mutex<Pending>,
    counters: Counters,
    metrics: NearCounters,
}

#[derive(Default)]
struct Pending {
    /// Keys read now: how many reads, and the number of the newest change of the key.
    reads: HashMap<String, (u32, u64)>,
    /// The number of the newest flush.
    flushed: u64,
    /// The connections tracking was turned on for.
    tracked: HashMap<Server, i64>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    passed: AtomicU64,
    fills: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

impl NearCache {
    /// Starts building a near cache in front of `redis`.
    pub fn builder(redis: RedisStore) -> NearCacheBuilder {
        NearCacheBuilder {
            redis,
            max_bytes: DEFAULT_MAX_BYTES,
            heartbeat: Duration::from_millis(100),
            max_silence: Duration::from_millis(300),
        }
    }

    /// What the near cache did since it was built.
    pub fn stats(&self) -> NearCacheStats {
        let c = &self.shared.counters;
        NearCacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            passed: c.passed.load(Ordering::Relaxed),
            fills: c.fills.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            entries: self.shared.entries.len() as u64,
            bytes: self.shared.entries.weighted_bytes(),
            tracking: self.shared.serving(),
        }
    }

    /// Whether the near cache holds `key` and would serve it now.
    pub fn holds(&self, key: &str) -> bool {
        self.shared.serving() && self.shared.entries.peek(key).is_some()
    }

    /// The Redis store behind the near cache.
    pub fn redis(&self) -> &RedisStore {
        &self.redis
    }

    /// Waits until the near cache has handled every tracking message Redis sent before now
    /// (one heartbeat on every tracking connection), or has been flushed.
    fn barrier(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let (tx, rx) = oneshot::channel();
        let sent = shared.is_tracking() && self.barriers.send(tx).is_ok();
        async move {
            if !sent {
                return;
            }
            // The task answers after at most two heartbeats (one in flight, then one sent for
            // this barrier), each bounded by `max_silence`; if even that is exceeded, the near
            // cache cannot be trusted: flush it (the task then turns tracking on again).
            if tokio::time::timeout(shared.max_silence * 3, rx)
                .await
                .is_err()
            {
                shared.flush(Flush::Silence);
            }
        }
    }
}

impl NearCacheBuilder {
    /// The most bytes the entries may weigh (default 64 MiB); the least likely to be used
    /// again go first.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How often each tracking connection is checked (default 100 ms): a `PEXPIRE` of its
    /// canary key, which also finds a flushed Redis.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// How long the near cache goes on serving without a heartbeat coming back (default
    /// 300 ms, at least twice the heartbeat): the most it may lag behind Redis when the
    /// tracking connection goes silent without closing.
    pub fn max_silence(mut self, silence: Duration) -> Self {
        self.max_silence = silence;
        self
    }

    /// Builds the near cache and starts its tracking connection in the background; it serves
    /// once tracking is on. Must be called within a Tokio runtime.
    pub fn build(self) -> Result<NearCache, StoreError> {
        super::require_runtime("NearCacheBuilder::build")?;
        let client = self.redis.tracking_client(EVENT_CAPACITY)?;
        let shared = Arc::new(Shared {
            entries: MemoryStore::with_max_bytes(self.max_bytes),
            client,
            tracking: AtomicBool::new(false),
            confirmed: AtomicU64::new(0),
            clock: Instant::now(),
            max_silence: self.max_silence.max(self.heartbeat * 2),
            heartbeat: self.heartbeat,
            changes: AtomicU64::new(0),
            pending: Mutex::default(),
            counters: Counters::default(),
            metrics: NearCounters::default(),
        });
        let (barriers, requests) = mpsc::unbounded_channel();
        tokio::spawn(tracking::run(Arc::downgrade(&shared), requests));
        Ok(NearCache {
            shared,
            redis: self.redis,
            barriers,
        })
    }
}

impl Shared {
    /// Whether tracking is on (entries are served while heartbeats also come back).
    pub(super) fn is_tracking(&self) -> bool {
        self.tracking.load(Ordering::Acquire)
    }

    /// Whether entries may be served now.
    fn serving(&self) -> bool {
        self.tracking.load(Ordering::Acquire)
            && self.millis() <= self.confirmed.load(Ordering::Acquire) + ms(self.max_silence)
    }

    pub(super) fn max_silence(&self) -> Duration {
        self.max_silence
    }

    fn millis(&self) -> u64 {
        ms(self.clock.elapsed())
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tracking is on for the connections `tracked`, as of a command sent at `sent`.
    pub(super) fn resume(&self, tracked: HashMap<Server, i64>, sent: Instant) {
        let mut pending = self.lock();
        pending.tracked = tracked;
        self.confirmed
            .store(ms(sent.duration_since(self.clock)), Ordering::Release);
        self.tracking.store(true, Ordering::Release);
        drop(pending);
        tracing::info!("near cache: client tracking is on; serving from process memory");
    }

    /// A heartbeat sent at `sent` came back after every message sent before it was handled.
    pub(super) fn confirm(&self, sent: Instant) {
        self.confirmed
            .store(ms(sent.duration_since(self.clock)), Ordering::Release);
    }

    /// The connections tracking was turned on for.
    pub(super) fn tracked(&self) -> HashMap<Server, i64> {
        self.lock().tracked.clone()
    }

    /// Empties the near cache and turns it off until tracking is back.
    pub(super) fn flush(&self, reason: Flush) {
        let mut pending = self.lock();
        let was_on = self.tracking.swap(false, Ordering::AcqRel);
        pending.flushed = self.changes.fetch_add(1, Ordering::Relaxed) + 1;
        pending.tracked.clear();
        self.entries.clear();
        drop(pending);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.metrics.flushed(reason.label());
        if was_on {
            tracing::warn!(
                reason = reason.label(),
                "near cache flushed: passing lookups to Redis until client tracking is back"
            );
        }
    }

    /// Redis reported a change of `keys` (or this process changed them).
    pub(super) fn invalidated<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        let mut pending = self.lock();
        let mut dropped = 0;
        for key in keys {
            let Ok(key) = std::str::from_utf8(key) else {
                continue;
            };
            if let Some((_, changed)) = pending.reads.get_mut(key) {
                *changed = self.changes.fetch_add(1, Ordering::Relaxed) + 1;
            }
            dropped += u64::from(self.entries.remove(key));
        }
        drop(pending);
        if dropped > 0 {
            self.counters
                .invalidations
                .fetch_add(dropped, Ordering::Relaxed);
            self.metrics.invalidated(dropped);
        }
    }

    /// Registers a read of `key` that is about to be sent on the tracking connection.
    fn begin_read(self: &Arc<Self>, key: &str) -> PendingRead {
        let mut pending = self.lock();
        let began = self.changes.load(Ordering::Relaxed);
        pending.reads.entry(key.to_owned()).or_default().0 += 1;
        PendingRead {
            shared: self.clone(),
            key: key.to_owned(),
            began,
            done: false,
        }
    }
}

/// A read on the tracking connection; it unregisters itself when dropped.
struct PendingRead {
    shared: Arc<Shared>,
    key: String,
    /// The number of the newest change when the read began.
    began: u64,
    done: bool,
}

impl PendingRead {
    /// Ends the read and keeps `value` for `ttl`, unless its key changed (or the near cache was
    /// flushed, or its connection replaced) since the read began.
    fn fill(mut self, value: Bytes, ttl: Duration) {
        let shared = self.shared.clone();
        let mut pending = shared.lock();
        let changed = self.finish(&mut pending);
        let current = pending.tracked == shared.client.connection_ids();
        if changed <= self.began
            && pending.flushed <= self.began
            && current
            && !ttl.is_zero()
            && shared.tracking.load(Ordering::Acquire)
        {
            shared.entries.insert(&self.key, value, ttl, Arc::default());
            shared.counters.fills.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Unregisters the read; the number of the newest change of its key.
    fn finish(&mut self, pending: &mut Pending) -> u64 {
        self.done = true;
        let Some((reads, changed)) = pending.reads.get_mut(&self.key) else {
            return u64::MAX;
        };
        let changed = *changed;
        *reads -= 1;
        if *reads == 0 {
            pending.reads.remove(&self.key);
        }
        changed
    }
}

impl Drop for PendingRead {
    fn drop(&mut self) {
        if !self.done {
            let shared = self.shared.clone();
            let mut pending = shared.lock();
            self.finish(&mut pending);
        }
    }
}

impl Store for NearCache {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        self.redis.get(key)
    }

    fn lookup(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        let shared = &self.shared;
        if !shared.serving() {
            shared.counters.passed.fetch_add(1, Ordering::Relaxed);
            return self.redis.lookup(key);
        }
        if let Some(value) = shared.entries.peek(key) {
            shared.counters.hits.fetch_add(1, Ordering::Relaxed);
            shared.metrics.hit();
            return Box::pin(std::future::ready(Ok(Some(value))));
        }
        shared.counters.misses.fetch_add(1, Ordering::Relaxed);
        let read = shared.begin_read(key);
        // The cache bounds its lookups itself (zero: no command timeout of fred's).
        let client = shared.client.clone();
        let redis = self.redis.clone();
        let key = key.to_owned();
        Box::pin(async move {
            let options = fail_fast(Some(Duration::ZERO));
            let client = fred::interfaces::ClientLike::with_options(&client, &options);
            let sent = Instant::now();
            // Both reads go out on the same connection, GET first; both are tracked.
            let (value, ttl) = futures_util::future::join(
                client.get::<Option<Bytes>, _>(key.as_str()),
                client.pttl::<i64, _>(key.as_str()),
            )
            .await;
            match value {
                Ok(value) => {
                    if let (Some(value), Ok(ttl)) = (&value, ttl) {
                        // Kept no longer than Redis keeps it, counted from before the read.
                        let left = u64::try_from(ttl).map(Duration::from_millis);
                        if let Ok(left) = left {
                            read.fill(value.clone(), left.saturating_sub(sent.elapsed()));
                        }
                    }
                    Ok(value)
                }
                // The tracking connection failed: the store's own connections may still answer.
                Err(error) => {
                    drop(read);
                    tracing::debug!(error = %map_error(&error), "near cache read failed");
                    redis.lookup(&key).await
                }
            }
        })
    }

    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
        self.then_forget(key, self.redis.set(key, value, ttl))
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        self.then_forget(key, self.redis.delete(key))
    }

    fn write(&self, write: EntryWrite) -> StoreFuture<bool> {
        let key = write.key().as_str().to_owned();
        self.then_forget(&key, self.redis.write(write))
    }

    fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
        let invalidate = self.redis.invalidate(invalidation);
        let this = self.clone();
        Box::pin(async move {
            let gone = invalidate.await;
            // Redis sent the tracking messages for what it dropped before it answered: once a
            // heartbeat sent now comes back, they have been handled.
            this.barrier().await;
            gone
        })
    }

    fn lease(&self, key: &str, ttl: Duration) -> StoreFuture<Lease> {
        self.redis.lease(key, ttl)
    }

    fn release(&self, key: &str, token: &str, stored: bool, ttl: Duration) -> StoreFuture<()> {
        self.redis.release(key, token, stored, ttl)
    }
}

impl NearCache {
    /// Runs `change` of `key` on Redis, then drops the key here at once (the tracking message
    /// for this process's own change would follow).
    fn then_forget<T: Send + 'static>(&self, key: &str, change: StoreFuture<T>) -> StoreFuture<T> {
        let (shared, key) = (self.shared.clone(), key.to_owned());
        Box::pin(async move {
            let result = change.await;
            shared.invalidated([key.as_bytes()]);
            result
        })
    }
}

impl fmt::Debug for NearCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearCache")
            .field("redis", &self.redis)
            .field("max_silence", &self.shared.max_silence)
            .field("tracking", &self.shared.serving())
            .finish()
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
