//! An in-process store: the fallback when no Redis answers, and a store for tests.

use super::{redis_index::FENCE_WINDOW, EntryWrite, Store, StoreFuture};
use crate::{invalidation::Invalidation, key::index::EntryAddress};
use bytes::Bytes;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// A bounded in-process [`Store`] with per-entry expiry.
///
/// Holds at most `capacity` entries; when full, expired entries are dropped first and then
/// arbitrary ones. Clones share the same entries.
///
/// Supports invalidation with the same guarantees as [`RedisStore`](crate::RedisStore), under
/// one lock: an invalidation visits every entry held (at most `capacity`).
///
/// ```
/// use std::time::Duration;
/// use tower_redis_cache::{MemoryStore, Store};
///
/// # tokio_test(async {
/// let store = MemoryStore::new(10_000);
/// store.set("k", "v".into(), Duration::from_secs(60)).await.unwrap();
/// assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
/// # });
/// # fn tokio_test(f: impl std::future::Future) { tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f); }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Debug)]
struct Entries {
    capacity: usize,
    map: HashMap<String, Slot>,
    /// Invalidations of the last [`FENCE_WINDOW`], to refuse the write-backs they raced.
    fences: Vec<(Invalidation, std::time::Instant)>,
}

#[derive(Debug)]
struct Slot {
    value: Bytes,
    expires: Instant,
    /// The entry's tags, encoded.
    tags: Box<[String]>,
}

impl MemoryStore {
    /// Creates an empty store holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Entries {
                capacity: capacity.max(1),
                map: HashMap::new(),
                fences: Vec::new(),
            })),
        }
    }

    /// How many entries are held (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent whatever panicked while holding the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl Entries {
    fn insert(&mut self, key: &str, value: Bytes, ttl: Duration, tags: Box<[String]>) {
        let now = Instant::now();
        if self.map.len() >= self.capacity && !self.map.contains_key(key) {
            self.map.retain(|_, slot| slot.expires > now);
            while self.map.len() >= self.capacity {
                let Some(victim) = self.map.keys().next().cloned() else {
                    break;
                };
                self.map.remove(&victim);
            }
        }
        // A TTL beyond what the clock can add is as good as forever (a year).
        let expires = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let slot = Slot {
            value,
            expires,
            tags,
        };
        self.map.insert(key.to_owned(), slot);
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        let now = Instant::now();
        let mut entries = self.lock();
        let value = match entries.map.get(key) {
            Some(slot) if slot.expires > now => Some(slot.value.clone()),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        };
        Box::pin(std::future::ready(Ok(value)))
    }

    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
        self.lock().insert(key, value, ttl, Box::default());
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        let existed = self.lock().map.remove(key).is_some();
        Box::pin(std::future::ready(Ok(existed)))
    }

    fn write(&self, write: EntryWrite) -> StoreFuture<bool> {
        let mut entries = self.lock();
        entries.fences.retain(|(_, at)| at.elapsed() < FENCE_WINDOW);
        let key = write.key();
        let stored = EntryAddress::parse(key).is_some_and(|address| {
            let raced = write.started().elapsed() >= FENCE_WINDOW
                || entries.fences.iter().any(|(invalidation, at)| {
                    *at >= write.started()
                        && address.prefix == invalidation.prefix()
                        && invalidation.covers(address.namespace, address.entity, write.tag_names())
                });
            !raced
        });
        if stored {
            let tags = write.tag_names().map(str::to_owned).collect();
            entries.insert(key.as_str(), write.value().clone(), write.ttl(), tags);
        }
        Box::pin(std::future::ready(Ok(stored)))
    }

    fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
        let now = Instant::now();
        let mut entries = self.lock();
        entries
            .fences
            .push((invalidation.clone(), std::time::Instant::now()));
        let mut gone = 0;
        entries.map.retain(|key, slot| {
            let covered = EntryAddress::parse_str(key).is_some_and(|address| {
                address.prefix == invalidation.prefix()
                    && invalidation.covers(
                        address.namespace,
                        address.entity,
                        slot.tags.iter().map(String::as_str),
                    )
            });
            // Expired entries are dropped too, but were gone already: not counted.
            if covered && slot.expires > now {
                gone += 1;
            }
            !covered
        });
        Box::pin(std::future::ready(Ok(gone as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let store = MemoryStore::new(4);
        store
            .set("k", Bytes::from_static(b"v"), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(store.get("k").await.unwrap().is_some());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(store.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn capacity_is_a_bound() {
        let store = MemoryStore::new(3);
        for i in 0..10 {
            store
                .set(&format!("k{i}"), Bytes::new(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 3);
        assert!(
            store.get("k9").await.unwrap().is_some(),
            "the newest entry is kept"
        );
        assert!(store.delete("k9").await.unwrap());
        assert!(!store.delete("k9").await.unwrap());
    }

    #[tokio::test]
    async fn invalidation_counts_and_fences() {
        use crate::{key::KeyFactory, Invalidation, Variant};
        let keys = KeyFactory::new("a", "b", "c");
        let store = MemoryStore::new(100);
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
