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
    shared::{Flush, Shared},
    stats::NearCacheStats,
    tracking,
};
use crate::{
    config_error::ConfigError,
    invalidate::Invalidation,
    store::{
        redis::{error::store_error, routing::fail_fast},
        EntryWrite, Lease, Store, StoreFuture,
    },
    RedisStore,
};
use bytes::Bytes;
use fred::interfaces::KeysInterface;
use std::{
    fmt,
    sync::{atomic::Ordering, Arc},
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
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
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
        self.shared.stats()
    }

    /// Whether the near cache holds `key` and would serve it now.
    pub fn holds(&self, key: &str) -> bool {
        self.shared.serving() && self.shared.cached(key).is_some()
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
            if tokio::time::timeout(shared.max_silence() * 3, rx)
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
    pub fn build(self) -> Result<NearCache, ConfigError> {
        ConfigError::require_runtime("NearCacheBuilder::build")?;
        let client = self
            .redis
            .tracking_client(EVENT_CAPACITY)
            .map_err(|e| ConfigError::new("no tracking client").caused_by(e))?;
        let max_silence = self.max_silence.max(self.heartbeat * 2);
        let shared = Arc::new(Shared::new(
            client,
            self.max_bytes,
            self.heartbeat,
            max_silence,
        ));
        let (barriers, requests) = mpsc::unbounded_channel();
        tokio::spawn(tracking::run(Arc::downgrade(&shared), requests));
        Ok(NearCache {
            shared,
            redis: self.redis,
            barriers,
        })
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
        if let Some(value) = shared.cached(key) {
            shared.counters.hits.fetch_add(1, Ordering::Relaxed);
            shared.metrics.hit();
            return Box::pin(std::future::ready(Ok(Some(value))));
        }
        // A slot migrating: read through the store, which follows `ASK` (see `redirects.rs`).
        if shared.redirects.recent(key) {
            shared.counters.passed.fetch_add(1, Ordering::Relaxed);
            return self.redis.lookup(key);
        }
        shared.counters.misses.fetch_add(1, Ordering::Relaxed);
        let read = shared.begin_read(key);
        // The cache bounds its lookups itself (zero: no command timeout of fred's).
        let client = shared.client.clone();
        let (near, redis) = (shared.clone(), self.redis.clone());
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
                // The tracking connection failed, or the key's slot is migrating: the store's
                // own connections may still answer (and follow `ASK`).
                Err(error) => {
                    drop(read);
                    if *error.kind() == fred::error::ErrorKind::Routing {
                        near.redirects.note(&key);
                        near.flush(Flush::Redirected);
                    }
                    tracing::debug!(error = %store_error(error), "near cache read failed");
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
            .field("max_silence", &self.shared.max_silence())
            .field("tracking", &self.shared.serving())
            .finish()
    }
}
