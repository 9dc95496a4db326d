//! An in-process store: the fallback when no Redis answers, and a store for tests.

use super::{write::FENCE_WINDOW, EntryWrite, Store, StoreFuture};
use crate::{entry::marked_stale, invalidate::Invalidation};
use bytes::Bytes;
use moka::{sync::Cache, Expiry};
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

/// The default bound of [`MemoryStore::default`]: 64 MiB.
const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What each entry costs beyond its key and value, for the byte bound.
const ENTRY_OVERHEAD: usize = 96;

/// A bounded in-process [`Store`] with per-entry expiry, on [`moka`](https://docs.rs/moka).
///
/// Bounded by bytes, not entries: keys, values and tags together stay within `max_bytes`
/// (plus a small fixed cost per entry); the least likely to be used again go first when full
/// (moka's TinyLFU). Each entry expires after its own TTL. Clones share the same entries.
///
/// Supports invalidation with the same guarantees as [`RedisStore`](crate::RedisStore): write-backs
/// and invalidations take one lock (lookups never do); an invalidation visits every entry held.
///
/// ```
/// use std::time::Duration;
/// use tower_redis_cache::{store::Store, MemoryStore};
///
/// # tokio_test(async {
/// let store = MemoryStore::with_max_bytes(64 * 1024 * 1024);
/// store.set("k", "v".into(), Duration::from_secs(60)).await.unwrap();
/// assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
/// # });
/// # fn tokio_test(f: impl std::future::Future) { tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f); }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    entries: Cache<String, Slot>,
    /// Invalidations of the last [`FENCE_WINDOW`], to refuse the write-backs they raced; its
    /// lock also orders write-backs against invalidations.
    fences: Arc<Mutex<Vec<(Invalidation, Instant)>>>,
    max_bytes: u64,
}

#[derive(Clone, Debug)]
struct Slot {
    value: Bytes,
    ttl: Duration,
    /// The entry's tags, encoded.
    tags: Arc<[String]>,
}

/// Each entry lives for its own TTL from when it was (last) written.
struct PerEntryTtl;

impl Expiry<String, Slot> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(slot.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl)
    }
}

impl MemoryStore {
    /// An empty store holding at most `max_bytes` of keys, values and tags.
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, slot: &Slot| {
                let tags: usize = slot.tags.iter().map(String::len).sum();
                let bytes = key.len() + slot.value.len() + tags + ENTRY_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self {
            entries,
            fences: Arc::default(),
            max_bytes,
        }
    }

    /// How many entries are held (after pending evictions and expiries are applied).
    pub fn len(&self) -> usize {
        self.entries.run_pending_tasks();
        usize::try_from(self.entries.entry_count()).unwrap_or(usize::MAX)
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the entries weigh now (keys, values, tags and a fixed cost per entry).
    pub fn weighted_bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    /// The value under `key`, at once (for the near cache).
    pub(super) fn peek(&self, key: &str) -> Option<Bytes> {
        self.entries.get(key).map(|slot| slot.value)
    }

    /// Removes `key` at once; whether it was there.
    pub(super) fn remove(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Drops every entry held (moka applies it lazily; nothing held before is returned after).
    pub(super) fn clear(&self) {
        self.entries.invalidate_all();
    }

    pub(super) fn insert(&self, key: &str, value: Bytes, ttl: Duration, tags: Arc<[String]>) {
        // A TTL beyond what the clock can add is as good as forever (a year).
        let ttl = ttl.min(Duration::from_secs(365 * 24 * 3600));
        self.entries
            .insert(key.to_owned(), Slot { value, ttl, tags });
    }

    /// Marks the entry under `key` stale as of now (a soft purge); whether it was there.
    fn mark_stale(&self, key: &str) -> bool {
        let Some(slot) = self.entries.get(key) else {
            return false;
        };
        if let Some(value) = marked_stale(&slot.value, SystemTime::now()) {
            self.insert(key, value, slot.ttl, slot.tags);
        }
        true
    }

    fn lock_fences(&self) -> std::sync::MutexGuard<'_, Vec<(Invalidation, Instant)>> {
        // The fences stay consistent whatever panicked while holding the lock.
        self.fences.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    /// A store of at most 64 MiB.
    fn default() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        let value = self.entries.get(key).map(|slot| slot.value);
        Box::pin(std::future::ready(Ok(value)))
    }

    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
        self.insert(key, value, ttl, Arc::default());
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        let existed = self.entries.remove(key).is_some();
        Box::pin(std::future::ready(Ok(existed)))
    }

    fn write(&self, write: EntryWrite) -> StoreFuture<bool> {
        let mut fences = self.lock_fences();
        fences.retain(|(_, at)| at.elapsed() < FENCE_WINDOW);
        let key = write.key();
        let stored = !write.outlived_fences()
            && !fences.iter().any(|(invalidation, at)| {
                *at >= write.started() && invalidation.covers(key.as_str(), write.tag_names())
            });
        if stored {
            let tags = write.tag_names().map(str::to_owned).collect();
            self.insert(key.as_str(), write.value().clone(), write.ttl(), tags);
        }
        drop(fences);
        Box::pin(std::future::ready(Ok(stored)))
    }

    fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
        let mut fences = self.lock_fences();
        fences.push((invalidation.clone(), Instant::now()));
        let covered: Vec<Arc<String>> = self
            .entries
            .iter()
            .filter(|(key, slot)| invalidation.covers(key, slot.tags.iter().map(String::as_str)))
            .map(|(key, _)| key)
            .collect();
        // Expired entries are not yielded by `iter`: only live ones are counted.
        let gone = match invalidation.is_soft() {
            true => covered.iter().filter(|key| self.mark_stale(key)).count(),
            false => covered
                .iter()
                .filter(|key| self.entries.remove(key.as_str()).is_some())
                .count(),
        };
        drop(fences);
        Box::pin(std::future::ready(Ok(gone as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let store = MemoryStore::default();
        store
            .set("short", Bytes::from_static(b"v"), Duration::from_millis(50))
            .await
            .unwrap();
        store
            .set("long", Bytes::from_static(b"v"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.get("short").await.unwrap().is_some());
        // Waiting for time to pass: the behaviour under test is an expiry.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(store.get("short").await.unwrap(), None);
        assert!(store.get("long").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_bound_is_in_bytes() {
        let store = MemoryStore::with_max_bytes(1024 * 1024);
        let body = Bytes::from(vec![0u8; 64 * 1024]);
        for i in 0..100 {
            store
                .set(&format!("k{i}"), body.clone(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(
            store.weighted_bytes() <= 1024 * 1024,
            "{}",
            store.weighted_bytes()
        );
        assert!(
            store.len() <= 16,
            "1 MiB holds at most 16 bodies of 64 KiB: {}",
            store.len()
        );
        assert!(store.len() >= 8, "{}", store.len());
        assert!(store.delete("k99").await.unwrap() || store.get("k99").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn invalidation_counts_and_fences() {
        use crate::{invalidate::Invalidation, key::KeyFactory, Variant};
        let keys = KeyFactory::new("a", "b", "c");
        let store = MemoryStore::default();
        let key =
            |ns: &str, entity: &str, v: &str| keys.key(ns, entity, &Variant::new().query("v", v));
        let ttl = Duration::from_secs(60);
        let begun_before = std::time::Instant::now();
        for (ns, entity, v) in [
            ("n", "e1", "1"),
            ("n", "e1", "2"),
            ("m", "e1", "1"),
            ("n", "e2", "1"),
        ] {
            let write = EntryWrite::new(key(ns, entity, v), Bytes::new(), ttl).tags([entity]);
            assert!(store.write(write).await.unwrap());
        }
        let gone = store
            .invalidate(&Invalidation::entity_in(&keys, "n", "e1"))
            .await;
        assert_eq!(gone.unwrap(), 2);
        // A write-back of a request that began before the invalidation is refused...
        let late = EntryWrite::new(key("n", "e1", "1"), Bytes::new(), ttl).started_at(begun_before);
        assert!(!store.write(late).await.unwrap());
        // ...one that began after it is stored, and one not covered is stored too.
        assert!(store
            .write(EntryWrite::new(key("n", "e1", "1"), Bytes::new(), ttl))
            .await
            .unwrap());
        let other =
            EntryWrite::new(key("m", "e1", "2"), Bytes::new(), ttl).started_at(begun_before);
        assert!(store.write(other).await.unwrap());
        assert_eq!(
            store
                .invalidate(&Invalidation::tag(&keys, "e2"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .invalidate(&Invalidation::namespace(&keys, "m"))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .invalidate(&Invalidation::entity(&keys, "e1"))
                .await
                .unwrap(),
            1
        );
        assert!(store.is_empty());
    }
}
