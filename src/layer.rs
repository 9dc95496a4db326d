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

/// The settings every route of one layer shares.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: KeyFactory,
    pub(crate) name: String,
    pub(crate) lookup_timeout: Duration,
    pub(crate) max_pending_writes: usize,
    pub(crate) breaker_failures: u32,
    pub(crate) breaker_cooldown: Duration,
}

/// What every route of one layer shares: its settings and the state made from them.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) writes: Arc<Semaphore>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) counters: Counters,
}

impl Shared {
    fn new(settings: Settings) -> Self {
        Self {
            writes: Arc::new(Semaphore::new(settings.max_pending_writes)),
            breaker: CircuitBreaker::new(
                settings.breaker_failures,
                settings.breaker_cooldown,
                settings.lookup_timeout.saturating_mul(2),
            ),
            counters: Counters::default(),
            settings,
        }
    }
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
        let settings = Settings {
            store,
            keys,
            name: "tower-redis-cache".to_owned(),
            lookup_timeout: Duration::from_millis(50),
            max_pending_writes: 1024,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        };
        Self {
            shared: Arc::new(Shared::new(settings)),
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
        self.map_settings(|s| s.lookup_timeout = timeout)
    }

    /// How many write-backs may be in flight at once (default 1024); a storable response
    /// beyond that is passed on but not stored, so a slow store never holds unbounded memory.
    pub fn max_pending_writes(self, writes: usize) -> Self {
        self.map_settings(|s| s.max_pending_writes = writes.min(Semaphore::MAX_PERMITS))
    }

    /// Opens the circuit breaker after `failures` consecutive failed or timed-out lookups:
    /// for `cooldown`, requests skip the store entirely (no round trip, no write-back, answered
    /// by the inner service with `Cache-Status: …; fwd=miss; detail=circuit-open`), then one
    /// request at a time probes it until one succeeds. Default: 5 failures, 1 s.
    pub fn circuit_breaker(self, failures: u32, cooldown: Duration) -> Self {
        self.map_settings(|s| {
            s.breaker_failures = failures;
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
        self.map_settings(|s| s.name = name)
    }

    /// The key factory, for building keys to inspect or invalidate.
    pub fn keys(&self) -> &KeyFactory {
        &self.shared.settings.keys
    }

    /// What the cache has done so far, across every route sharing this layer's store.
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }

    /// A layer with changed settings; its write limit, breaker and counters start afresh.
    fn map_settings(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.shared.settings.clone();
        change(&mut settings);
        Self {
            shared: Arc::new(Shared::new(settings)),
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
