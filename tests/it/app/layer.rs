//! The cache every app test builds: its key factory and prefix, a store on the test's
//! deployment, and the layer with a lookup timeout a loaded machine never trips.

use crate::servers::Redis;
use std::time::Duration;
use tower_redis_cache::{CacheLayer, CacheLayerBuilder, KeyFactory, RedisStore};

/// The key prefix of every test's deployment, and a pattern matching all its keys.
pub const PREFIX: &str = "monps:test:v1:";
pub const ALL_KEYS: &str = "monps:test:v1:*";
/// The name the cache reports in `Cache-Status`.
pub const NAME: &str = "tower-redis-cache";

/// The key factory of every test: `monps:test:v1:…`.
pub fn key_factory() -> KeyFactory {
    KeyFactory::new("monps", "test", "v1")
}

/// Whether `key` is an entry's, not an index's, lease's or fence's (`{prefix}#…`).
pub fn is_entry_key(key: &str) -> bool {
    !key.splitn(4, ':')
        .nth(3)
        .is_some_and(|rest| rest.starts_with('#'))
}

impl Redis {
    /// The entry keys matching `pattern`, sorted: without the invalidation indexes, leases
    /// and fences (`{prefix}#…`).
    pub fn entry_keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = self.keys(pattern);
        keys.retain(|key| is_entry_key(key));
        keys
    }
}

/// A store connected to `redis` (waits for the first connection).
pub async fn connect(redis: &Redis) -> RedisStore {
    RedisStore::connect(&redis.url())
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", redis.url()))
}

/// A cache on `redis` with a lookup timeout generous enough that a loaded test machine never
/// turns a hit into a timeout miss.
pub async fn cache(redis: &Redis) -> CacheLayer {
    cache_builder(redis).await.build().unwrap()
}

/// The builder of [`cache`], for tests that change more settings.
pub async fn cache_builder(redis: &Redis) -> CacheLayerBuilder {
    CacheLayer::builder(connect(redis).await, key_factory()).lookup_timeout(Duration::from_secs(2))
}

/// Like [`cache`] with a single write permit, which
/// [`assert_nothing_stored`](super::assert_nothing_stored) relies on.
pub async fn cache_one_write(redis: &Redis) -> CacheLayer {
    cache_builder(redis)
        .await
        .max_pending_writes(1)
        .build()
        .unwrap()
}
