//! An in-process store: the fallback when no Redis answers, and a store for tests.

use super::{Store, StoreFuture};
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
    map: HashMap<String, (Bytes, Instant)>,
}

impl MemoryStore {
    /// Creates an empty store holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Entries {
                capacity: capacity.max(1),
                map: HashMap::new(),
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

impl Store for MemoryStore {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        let now = Instant::now();
        let mut entries = self.lock();
        let value = match entries.map.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        };
        Box::pin(std::future::ready(Ok(value)))
    }

    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.map.len() >= entries.capacity && !entries.map.contains_key(key) {
            entries.map.retain(|_, (_, expires)| *expires > now);
            while entries.map.len() >= entries.capacity {
                let Some(victim) = entries.map.keys().next().cloned() else {
                    break;
                };
                entries.map.remove(&victim);
            }
        }
        // A TTL beyond what the clock can add is as good as forever (a year).
        let expires = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        entries.map.insert(key.to_owned(), (value, expires));
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        let existed = self.lock().map.remove(key).is_some();
        Box::pin(std::future::ready(Ok(existed)))
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
}
