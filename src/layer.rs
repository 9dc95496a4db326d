//! [`CacheLayer`] and its builder: configuration only.

use crate::{
    coalesce::flight::Flights,
    config_error::ConfigError,
    entry::Compression,
    hit::is_token,
    invalidate::Invalidator,
    key::{BodyMemo, KeyFactory},
    observe::{
        hot_keys::HotKey,
        stats::{CacheCounters, CacheStats},
    },
    policy::Policy,
    runtime::Runtime,
    service::Cache,
    store::{
        guard::{breaker::CircuitBreaker, budget::WriteBudget, deadline::Deadlines},
        Store,
    },
};
use std::{any::Any, fmt, sync::Arc, time::Duration};
use tower_layer::Layer;

/// Layer that applies [`Cache`], which serves responses from a [`Store`] (usually Redis) and
/// stores the inner service's responses in it.
///
/// One layer holds the store, the [`KeyFactory`] and the state every route shares (lookup
/// timeout, circuit breaker, write budget, counters), made once by
/// [`CacheLayerBuilder::build`]; [`policy`](Self::policy) gives a copy of it the [`Policy`] of
/// one route. Clones and copies are cheap and share all of it.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use tower_redis_cache::{CacheLayer, Entity, KeyFactory, MemoryStore, Policy};
///
/// let cache = CacheLayer::builder(MemoryStore::default(), KeyFactory::new("monps", "prod", "v1"))
///     .lookup_timeout(Duration::from_millis(20))
///     .name("monps")
///     .build()
///     .expect("a valid configuration");
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
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) policy: Arc<Policy>,
}

/// Builder for [`CacheLayer`]: the settings every route of the layer shares.
///
/// Made by [`CacheLayer::builder`]; [`build`](Self::build) checks the settings and creates the
/// shared state (breaker, write budget, counters) exactly once.
#[derive(Clone)]
pub struct CacheLayerBuilder {
    store: Arc<dyn Store>,
    keys: KeyFactory,
    name: String,
    lookup_timeout: Duration,
    max_pending_writes: usize,
    max_pending_write_bytes: usize,
    breaker_failures: u32,
    breaker_cooldown: Duration,
    tag_header: Option<http::HeaderName>,
    coalescing: bool,
    coalescing_timeout: Duration,
    compression: Compression,
}

impl CacheLayer {
    /// Creates a layer caching in `store`, with keys from `keys`, the default settings (see
    /// [`CacheLayerBuilder`]) and the default [`Policy`] (namespace `default`).
    ///
    /// The store may be a concrete store or an `Arc<dyn Store>` chosen at run time.
    pub fn new(store: impl Store, keys: KeyFactory) -> Self {
        Self::builder(store, keys)
            .build()
            .expect("the default settings are valid")
    }

    /// Starts building a layer caching in `store` with keys from `keys`.
    pub fn builder(store: impl Store, keys: KeyFactory) -> CacheLayerBuilder {
        CacheLayerBuilder {
            store: shared(store),
            keys,
            name: "tower-redis-cache".to_owned(),
            lookup_timeout: Duration::from_millis(50),
            max_pending_writes: 1024,
            max_pending_write_bytes: 64 * 1024 * 1024,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
            tag_header: None,
            coalescing: true,
            coalescing_timeout: Duration::from_secs(5),
            compression: Compression::default(),
        }
    }

    /// A copy of this layer that applies `policy`; it shares the store, the breaker, the write
    /// budget and the counters.
    pub fn policy(&self, mut policy: Policy) -> Self {
        policy.stats = self.runtime.namespace_counters(&policy.namespace);
        policy.negotiation = self.runtime.negotiation(&policy.namespace);
        Self {
            runtime: self.runtime.clone(),
            policy: Arc::new(policy),
        }
    }

    /// The key factory, for building keys to inspect or invalidate.
    pub fn keys(&self) -> &KeyFactory {
        &self.runtime.keys
    }

    /// Drops cached entries by entity, namespace or tag, from the app's own handlers.
    pub fn invalidator(&self) -> Invalidator {
        Invalidator::new(self.runtime.store.clone(), self.runtime.keys.clone())
    }

    /// What the cache has done so far, across every route sharing this layer's store.
    pub fn stats(&self) -> CacheStats {
        let (writes, bytes) = self.runtime.writes.in_flight();
        self.runtime.counters.snapshot(writes, bytes)
    }

    /// The `k` entities (namespace and entity, never full keys) that took the most hits of this
    /// layer's routes, most first, with their estimated hits. From a bounded sketch that one
    /// hit in 16 updates (at most 64 entities; an entity with a large share of the hits is
    /// always among them).
    ///
    /// ```
    /// use tower_redis_cache::{CacheLayer, KeyFactory, MemoryStore};
    ///
    /// let cache = CacheLayer::new(MemoryStore::default(), KeyFactory::new("a", "b", "c"));
    /// assert!(cache.hot_keys(10).is_empty(), "no hits yet");
    /// ```
    pub fn hot_keys(&self, k: usize) -> Vec<HotKey> {
        self.runtime.hot_keys.top(k)
    }

    /// What the cache has done so far in each namespace of this layer's routes; the in-flight
    /// figures (`writes_in_flight`, `write_bytes_in_flight`) are the layer's only, so they are
    /// zero here. Cheap: one snapshot per namespace.
    ///
    /// ```
    /// use tower_redis_cache::{CacheLayer, KeyFactory, MemoryStore, Policy};
    ///
    /// let cache = CacheLayer::new(MemoryStore::default(), KeyFactory::new("a", "b", "c"));
    /// let _route = cache.policy(Policy::new("markets"));
    /// assert_eq!(cache.namespace_stats()["markets"].hits, 0);
    /// ```
    pub fn namespace_stats(&self) -> std::collections::BTreeMap<String, CacheStats> {
        let namespaces = self
            .runtime
            .namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        namespaces
            .iter()
            .map(|(namespace, counters)| (namespace.clone(), counters.snapshot(0, 0)))
            .collect()
    }
}

impl CacheLayerBuilder {
    /// The longest a request waits for a lookup before it is treated as a miss (default 50 ms).
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.lookup_timeout = timeout;
        self
    }

    /// How many write-backs may be in flight at once (default 1024); a storable response
    /// beyond that is passed on but not stored (counted in [`CacheStats::writes_dropped`]).
    pub fn max_pending_writes(mut self, writes: usize) -> Self {
        self.max_pending_writes = writes;
        self
    }

    /// How many bytes the write-backs in flight may hold between them: bodies being recorded
    /// and entries being written (default 64 MiB). A storable response that would take more
    /// is passed on intact but not stored (counted in [`CacheStats::writes_dropped`]), so a slow
    /// store never holds more memory than this.
    pub fn max_pending_write_bytes(mut self, bytes: usize) -> Self {
        self.max_pending_write_bytes = bytes;
        self
    }

    /// Opens the circuit breaker after `failures` consecutive failed or timed-out lookups:
    /// for `cooldown`, requests skip the store entirely (no round trip, no body read or
    /// canonicalisation, no write-back; answered by the inner service with `Cache-Status: …; fwd=miss;
    /// detail=circuit-open`), then one request at a time probes it until one succeeds.
    /// Default: 5 failures, 1 s.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_failures = failures;
        self.breaker_cooldown = cooldown;
        self
    }

    /// The response header in which handlers name an entry's tags (such as `cache-tag` or
    /// `surrogate-key`; values split on commas and whitespace). The header is removed from
    /// every response of a cached route before the client sees it and is never stored;
    /// [`Invalidator::tag`] drops every entry with a tag. Default: none.
    pub fn tag_header(mut self, name: http::HeaderName) -> Self {
        self.tag_header = Some(name);
        self
    }

    /// Whether concurrent misses for one key in this process make one inner call (default:
    /// on). The first forwards; the others wait for it (at most the
    /// [`coalescing_timeout`](Self::coalescing_timeout)) and are answered with its response
    /// when it is storable (`Cache-Status: …; fwd=uri-miss; collapsed`), or forward on their
    /// own at once when it is not (private, `Set-Cookie`, an error status, too large, failed
    /// or cancelled). `HEAD` requests and requests that bypass the cache are never coalesced.
    pub fn coalescing(mut self, on: bool) -> Self {
        self.coalescing = on;
        self
    }

    /// The longest a coalesced miss waits for the request it joined before it forwards on its
    /// own (default 5 s).
    pub fn coalescing_timeout(mut self, timeout: Duration) -> Self {
        self.coalescing_timeout = timeout;
        self
    }

    /// How stored bodies are compressed (default: LZ4 for bodies of 4 KiB and more, see
    /// [`Compression`]). Entries written with any setting are read with any other.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The cache's name in `Cache-Status` (default `tower-redis-cache`): an RFC 8941 token
    /// such as `monps`. Anything else makes [`build`](Self::build) fail.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks the settings and creates the layer's shared state.
    ///
    /// ```
    /// use tower_redis_cache::{CacheLayer, KeyFactory, MemoryStore};
    ///
    /// let keys = KeyFactory::new("monps", "prod", "v1");
    /// let error = CacheLayer::builder(MemoryStore::default(), keys).name("two words").build();
    /// assert!(error.unwrap_err().to_string().contains("RFC 8941 token"));
    /// ```
    pub fn build(self) -> Result<CacheLayer, ConfigError> {
        if !is_token(&self.name) {
            return Err(ConfigError::new(format!(
                "cache name {:?} is not an RFC 8941 token (a letter or `*`, then letters, \
                 digits or any of :/!#$%&'*+-.^_`|~)",
                self.name
            )));
        }
        let runtime = Runtime {
            store: self.store,
            keys: self.keys,
            name: self.name,
            deadlines: Deadlines::new(self.lookup_timeout),
            breaker: CircuitBreaker::new(
                self.breaker_failures,
                self.breaker_cooldown,
                self.lookup_timeout.saturating_mul(2),
            ),
            writes: Arc::new(WriteBudget::new(
                self.max_pending_writes,
                self.max_pending_write_bytes,
            )),
            counters: CacheCounters::default(),
            hot_keys: Default::default(),
            bodies: BodyMemo::new(),
            tag_header: self.tag_header,
            flights: self.coalescing.then(|| Arc::new(Flights::sealing())),
            refreshes: Arc::default(),
            namespaces: Default::default(),
            negotiations: Default::default(),
            coalescing_timeout: self.coalescing_timeout,
            unsafe_invalidation_warnings: Default::default(),
            compression: self.compression,
        };
        Ok(CacheLayer {
            runtime: Arc::new(runtime),
            policy: Arc::new(Policy::new("default")),
        })
    }
}

impl fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("keys", &self.keys)
            .field("name", &self.name)
            .field("lookup_timeout", &self.lookup_timeout)
            .field("max_pending_writes", &self.max_pending_writes)
            .field("max_pending_write_bytes", &self.max_pending_write_bytes)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("tag_header", &self.tag_header)
            .field("coalescing", &self.coalescing)
            .field("coalescing_timeout", &self.coalescing_timeout)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

/// `store` behind an `Arc<dyn Store>`, without a second `Arc` when it already is one.
fn shared(store: impl Store) -> Arc<dyn Store> {
    let mut store = Some(store);
    if let Some(arc) = (&mut store as &mut dyn Any).downcast_mut::<Option<Arc<dyn Store>>>() {
        if let Some(arc) = arc.take() {
            return arc;
        }
    }
    Arc::new(store.expect("taken only when it was an Arc"))
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache::new(inner, self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn an_arc_dyn_store_is_not_wrapped_again() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let layer = CacheLayer::new(store.clone(), KeyFactory::new("a", "b", "c"));
        assert!(Arc::ptr_eq(&layer.runtime.store, &store));
    }

    #[test]
    fn copies_share_one_runtime() {
        let layer = CacheLayer::new(MemoryStore::default(), KeyFactory::new("a", "b", "c"));
        let route = layer.policy(Policy::new("n"));
        assert!(Arc::ptr_eq(&layer.runtime, &route.runtime));
    }
}
