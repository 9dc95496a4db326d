//! [`CacheLayer`]: the builder users touch.

use crate::{
    breaker::CircuitBreaker,
    key::KeyFactory,
    policy::Policy,
    service::Cache,
    stats::{CacheStats, Counters},
    status::is_token,
    store::Store,
};
use std::{sync::Arc, time::Duration};
use tokio::sync::Semaphore;
use tower_layer::Layer;

/// Layer that applies [`Cache`], which serves responses from a [`Store`] (usually Redis) and
/// stores the inner service's responses in it.
///
/// One layer holds the store, the [`KeyFactory`] and the settings every route shares (lookup
/// timeout, in-flight write limit, counters); [`policy`](Self::policy) gives a copy of it the
/// [`Policy`] of one route. Clones are cheap and share the store, the write limit and the counters.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use tower_redis_cache::{CacheLayer, Entity, KeyFactory, MemoryStore, Policy};
///
/// let cache = CacheLayer::new(MemoryStore::new(10_000), KeyFactory::new("monps", "prod", "v1"));
/// let app: Router = Router::new()
///     .route(
///         "/matches/{id}/markets",
///         get(|| async { "markets" }).route_layer(cache.policy(
///             Policy::new("markets").ttl(Duration::from_secs(30)).entity(Entity::path_segment(1).prefix("m_")),
///         )),
///     )
///     .route("/health", get(|| async { "ok" }).route_layer(cache.policy(Policy::new("health"))));
/// ```
#[derive(Clone, Debug)]
pub struct CacheLayer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: Arc<Policy>,
}

/// What every route of one layer shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: KeyFactory,
    pub(crate) name: String,
    pub(crate) lookup_timeout: Duration,
    pub(crate) max_pending_writes: usize,
    pub(crate) writes: Arc<Semaphore>,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl CacheLayer {
    /// Creates a layer caching in `store`, with keys from `keys` and the default [`Policy`]
    /// (namespace `default`). Defaults: lookup timeout 50 ms, 1024 write-backs in flight,
    /// circuit breaker opening after 5 consecutive lookup failures for 1 s, cache name
    /// `tower-redis-cache` in `Cache-Status`.
    pub fn new(store: impl Store, keys: KeyFactory) -> Self {
        Self::from_shared_store(Arc::new(store), keys)
    }

    /// Like [`new`](Self::new), for a store already behind an `Arc` (chosen at run time).
    pub fn from_shared_store(store: Arc<dyn Store>, keys: KeyFactory) -> Self {
        let lookup_timeout = Duration::from_millis(50);
        let (breaker_threshold, breaker_cooldown) = (5, Duration::from_secs(1));
        Self {
            shared: Arc::new(Shared {
                store,
                keys,
                name: "tower-redis-cache".to_owned(),
                lookup_timeout,
                max_pending_writes: 1024,
                writes: Arc::new(Semaphore::new(1024)),
                breaker_threshold,
                breaker_cooldown,
                breaker: CircuitBreaker::new(
                    breaker_threshold,
                    breaker_cooldown,
                    lookup_timeout.saturating_mul(2),
                ),
                counters: Counters::default(),
            }),
            policy: Arc::new(Policy::new("default")),
        }
    }

    /// A copy of this layer that applies `policy`; it shares the store, limits and counters.
    pub fn policy(&self, policy: Policy) -> Self {
        Self {
            shared: self.shared.clone(),
            policy: Arc::new(policy),
        }
    }

    /// The longest a request waits for a lookup before it is treated as a miss (default 50 ms).
    ///
    /// Settings apply to the layer and the copies made from it afterwards; set them first.
    pub fn lookup_timeout(self, timeout: Duration) -> Self {
        self.map_shared(|s| s.lookup_timeout = timeout)
    }

    /// How many write-backs may be in flight at once (default 1024); a storable response
    /// beyond that is passed on but not stored, so a slow store never holds unbounded memory.
    pub fn max_pending_writes(self, writes: usize) -> Self {
        self.map_shared(|s| {
            s.max_pending_writes = writes.min(Semaphore::MAX_PERMITS);
        })
    }

    /// Opens the circuit breaker after `failures` consecutive failed or timed-out lookups:
    /// for `cooldown`, requests skip the store entirely (no round trip, no write-back, answered
    /// by the inner service with `Cache-Status: …; fwd=miss; detail=circuit-open`), then one
    /// request at a time probes it until one succeeds. Default: 5 failures, 1 s.
    pub fn circuit_breaker(self, failures: u32, cooldown: Duration) -> Self {
        self.map_shared(|s| {
            s.breaker_threshold = failures;
            s.breaker_cooldown = cooldown;
        })
    }

    /// The cache's name in `Cache-Status` (an RFC 8941 token such as `monps`; default
    /// `tower-redis-cache`). A name that is not a token is ignored.
    pub fn name(self, name: &str) -> Self {
        if !is_token(name) {
            return self;
        }
        let name = name.to_owned();
        self.map_shared(|s| s.name = name)
    }

    /// The key factory, for building keys to inspect or invalidate.
    pub fn keys(&self) -> &KeyFactory {
        &self.shared.keys
    }

    /// What the cache has done so far, across every route sharing this layer's store.
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }

    fn map_shared(self, change: impl FnOnce(&mut Shared)) -> Self {
        let s = &self.shared;
        let mut shared = Shared {
            store: s.store.clone(),
            keys: s.keys.clone(),
            name: s.name.clone(),
            lookup_timeout: s.lookup_timeout,
            max_pending_writes: s.max_pending_writes,
            writes: Arc::new(Semaphore::new(0)),
            breaker_threshold: s.breaker_threshold,
            breaker_cooldown: s.breaker_cooldown,
            breaker: CircuitBreaker::new(s.breaker_threshold, s.breaker_cooldown, s.lookup_timeout),
            counters: Counters::default(),
        };
        change(&mut shared);
        // Rebuilt from the final settings.
        shared.writes = Arc::new(Semaphore::new(shared.max_pending_writes));
        shared.breaker = CircuitBreaker::new(
            shared.breaker_threshold,
            shared.breaker_cooldown,
            shared.lookup_timeout.saturating_mul(2),
        );
        Self {
            shared: Arc::new(shared),
            policy: self.policy,
        }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache::new(inner, self.clone())
    }
}
