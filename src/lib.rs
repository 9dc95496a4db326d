//! Tower middleware that caches HTTP responses in Redis, for axum and hyper.
//!
//! [`CacheLayer`] derives a canonical key from each request — path entity, RFC 8785 canonical JSON
//! body, allow-listed query parameters and headers — serves hits straight from the store, forwards
//! misses to the inner service and writes storable responses back with a TTL, without delaying
//! them. Redis (standalone, Cluster, Sentinel, TLS) is reached through [`RedisStore`] on `fred`;
//! [`NearCache`] keeps hot entries in process memory, coherent with Redis; [`MemoryStore`] is an
//! in-process fallback.
//!
//! What an application uses is at the crate root; what a store implementor needs (the
//! [`Store`](store::Store) trait, [`EntryWrite`](store::EntryWrite),
//! [`Invalidation`](store::Invalidation), [`Entry`](store::Entry), ...) is in [`store`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{body::Body, http::{Request, Method}, routing::post, Router};
//! use tower::ServiceExt;
//! use tower_redis_cache::{CacheLayer, Entity, KeyFactory, MemoryStore, Policy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In production: RedisStore::connect("redis://127.0.0.1:6379").await?
//! let cache = CacheLayer::new(MemoryStore::default(), KeyFactory::new("monps", "prod", "v1"));
//!
//! let app = Router::new().route(
//!     "/matches/{id}/prediction",
//!     post(|body: String| async move { format!("prediction for {body}") }).route_layer(
//!         cache.policy(
//!             Policy::new("pred")
//!                 .ttl(Duration::from_secs(300))
//!                 .methods([Method::POST])
//!                 .entity(Entity::path_segment(1).prefix("m_")),
//!         ),
//!     ),
//! );
//!
//! let request = |body: &'static str| {
//!     Request::post("/matches/12345/prediction").body(Body::from(body)).unwrap()
//! };
//! let first = app.clone().oneshot(request(r#"{"risk":"high","model":"v2"}"#)).await.unwrap();
//! assert!(first.headers()["cache-status"].to_str().unwrap().contains("fwd=uri-miss"));
//! // The response is stored once its body has been read to the end.
//! axum::body::to_bytes(first.into_body(), usize::MAX).await.unwrap();
//! # for _ in 0..1000 { if cache.stats().writes > 0 { break } tokio::task::yield_now().await; }
//! // Same config, other member order: served from the cache.
//! let second = app.oneshot(request(r#"{"model":"v2","risk":"high"}"#)).await.unwrap();
//! assert!(second.headers()["cache-status"].to_str().unwrap().contains("; hit"));
//! # }
//! ```
//!
//! # The request path
//!
//! 1. **Policy.** A method the route does not cache passes through untouched. A request carrying
//!    an input the key would not cover (`Authorization`, `Proxy-Authorization`, `Cookie`, a
//!    header that rewrites host, URL or method such as `X-Forwarded-Host`, an unlisted query
//!    parameter, a body declared larger than the limit, no entity) is forwarded with
//!    `Cache-Status: …; fwd=bypass; detail=…`.
//! 2. **Breaker.** While the circuit breaker is open (the store failed repeatedly), requests go
//!    straight to the inner service: no body read, no canonicalisation, no round trip
//!    ([`CacheLayerBuilder::circuit_breaker`]).
//! 3. **Key.** `{app}:{env}:{version}:{namespace}:{{entity}}:{variant}` — see [`KeyFactory`] and
//!    [`Variant`]. A body, sized or streamed, is read up to the limit; the inner service gets the
//!    same bytes in a [`RequestBody`]. A body that grows past the limit, fails or ends with
//!    trailers is forwarded whole (what was read, then the rest, unchanged) and not cached.
//! 4. **Lookup**, bounded by the lookup timeout. A hit is rebuilt with its status, headers and
//!    body plus `Age` and `Cache-Status: …; hit; ttl=N`, or answered `304 Not Modified` when the
//!    client's `If-None-Match` / `If-Modified-Since` match. An entry is served only to the exact
//!    request inputs it was stored for, so hash collisions cannot serve a wrong variant. A stale
//!    entry within the route's stale-while-revalidate window is served at once and refreshed in
//!    the background. A store that is slow, down or returns garbage is a miss
//!    (`fwd=miss; detail=…`), never an error.
//! 5. **Miss.** Concurrent misses for one key make one inner call (in the process, and across
//!    instances with [`Policy::lease`]). The inner response streams to the client; if storable
//!    it is recorded and written back in the background with the route's TTL, within a budget
//!    of write-backs in flight and of the bytes they hold. A 5xx within the route's
//!    stale-if-error window is replaced by the stale entry.
//! 6. **Invalidation.** [`Invalidator`] drops entries by entity, namespace or tag; write-backs of
//!    requests that began before an invalidation are refused.
//!
//! Which file does what is in `ARCHITECTURE.md` of the repository; the guide (configuration,
//! guarantees in full, invalidation, the near cache, observability, operating Redis) is in its
//! `docs/` folder.
//!
//! # What is never stored
//!
//! Responses with `Set-Cookie`, `Cache-Control: private | no-store | no-cache`, `Vary: *` or a
//! `Vary` on a credential the route does not key, a status the policy does not list, a body over
//! the limit, trailers, or a body that failed or was abandoned before its end. A response that
//! `Vary`s on other headers is stored once per value of them (the namespace learns the headers
//! and keys its requests by their normalised values; at most
//! [`Policy::max_variants`] per key) and served only to requests with the same values. `HEAD` requests are
//! answered from `GET` entries and never stored. A client's `Cache-Control: no-cache` does not
//! bypass the cache (that would let any client defeat it).
//!
//! # Metrics
//!
//! With the `metrics` feature (default), the cache reports through the
//! [`metrics`](https://docs.rs/metrics) facade to whatever recorder the application installs
//! (Prometheus, StatsD, …; none installed: nothing is recorded). Install it before the first
//! request: each namespace registers its handles on its first event. [`describe_metrics`] adds
//! descriptions and units. Labels are bounded: namespaces and fixed reasons, never keys,
//! entities or paths.
//!
//! | name | kind | labels | what |
//! |------|------|--------|------|
//! | `tower_redis_cache_hits_total` | counter | `namespace` | answered from the store (fresh, or stale while revalidating) |
//! | `tower_redis_cache_stale_total` | counter | `namespace`, `window` = `while-revalidate` \| `if-error` | stale entries served |
//! | `tower_redis_cache_misses_total` | counter | `namespace`, `reason` = `absent` \| `variant` \| `expired` \| `lookup-error` \| `circuit-open` \| `bad-entry` | looked up (or skipped by the open breaker) and forwarded |
//! | `tower_redis_cache_coalesced_total` | counter | `namespace` | misses answered with the response another request fetched (each also a miss) |
//! | `tower_redis_cache_bypasses_total` | counter | `namespace`, `reason` = `credentials` \| `unkeyed-query` \| `unkeyed-header` \| `no-entity` \| `body-too-large` \| `body-error` \| `request-trailers` | forwarded without a lookup |
//! | `tower_redis_cache_writes_total` | counter | `namespace`, `result` = `stored` \| `invalidated` \| `dropped` \| `too-many-variants` \| `failed` | write-backs: accepted, refused after an invalidation, not attempted (budget or breaker; a varying response past its key's variant bound), failed or timed out |
//! | `tower_redis_cache_lookup_duration_seconds` | histogram | `namespace` | from when the store did not answer a lookup at once to its answer or the timeout (zero for an in-process answer) |
//! | `tower_redis_cache_write_duration_seconds` | histogram | `namespace` | time a write-back waited for the store |
//! | `tower_redis_cache_entry_bytes` | histogram | `namespace` | size of each encoded entry sent to the store (compressed, when it is) |
//! | `tower_redis_cache_invalidations_total` | counter | `scope` = `entity` \| `entity-in-namespace` \| `namespace` \| `tag`, `result` = `ok` \| `error` | invalidations run ([`Invalidator`] and unsafe requests) |
//! | `tower_redis_cache_invalidated_entries_total` | counter | `scope` | entries they dropped |
//! | `tower_redis_cache_breakers_open` | gauge | | layers whose circuit breaker is open |
//! | `tower_redis_cache_writes_in_flight` | gauge | | write-backs in flight |
//! | `tower_redis_cache_write_bytes_in_flight` | gauge | | bytes those write-backs hold |
//! | `tower_redis_cache_near_hits_total` | counter | | lookups a [`NearCache`] answered from process memory |
//! | `tower_redis_cache_near_invalidations_total` | counter | | near-cache entries dropped on Redis tracking messages |
//! | `tower_redis_cache_near_flushes_total` | counter | `reason` = `disconnect` \| `reconnect` \| `topology` \| `redirected` \| `missed-message` \| `silence` \| `emptied` | times a near cache was emptied and turned off until tracking was back |
//!
//! [`CacheLayer::stats`] and [`CacheLayer::namespace_stats`] give the same counts without a
//! recorder.
//!
//! # Tracing
//!
//! Spans at debug level: `cache.lookup` (`namespace`, `key_hash`, `outcome`), `cache.store`
//! (`namespace`, `key_hash`, `bytes`, `outcome`) and `cache.invalidate` (`scope`, `dropped`,
//! `outcome`). `key_hash` is 16 hex digits of the key's xxh3 hash, a correlator (not a secret):
//! keys, bodies and credentials are never logged. The breaker logs its opening once (warn) and its
//! closing once (info); failures while it is open are not logged.
//!
//! # Feature flags
//!
//! - `tls` (default): `rediss://` URLs, through rustls.
//! - `axum` (default): reads axum's `OriginalUri`, so routes inside `Router::nest` are keyed and
//!   checked by their full path.
//! - `metrics` (default): reports through the `metrics` facade (above).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod body;
mod coalesce;
mod config_error;
mod entry;
mod future;
mod hit;
mod invalidate;
mod key;
mod layer;
mod millis;
mod negotiate;
mod observe;
mod policy;
mod rules;
mod runtime;
mod service;
pub mod store;
mod write_back;

pub use crate::body::{RequestBody, ResponseBody};
pub use crate::config_error::ConfigError;
pub use crate::entry::Compression;
pub use crate::future::ResponseFuture;
pub use crate::invalidate::Invalidator;
pub use crate::key::{CacheKey, Entity, KeyFactory, Variant, MAX_ENTITY_LEN};
pub use crate::layer::{CacheLayer, CacheLayerBuilder};
pub use crate::observe::hot_keys::HotKey;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use crate::observe::metrics::describe_metrics;
pub use crate::observe::stats::CacheStats;
pub use crate::policy::Policy;
pub use crate::rules::tags::{MAX_TAGS, MAX_TAG_LEN};
pub use crate::service::Cache;
pub use crate::store::memory::MemoryStore;
pub use crate::store::near::{NearCache, NearCacheBuilder, NearCacheStats};
pub use crate::store::redis::{Durability, RedisStore, RedisStoreBuilder};
pub use crate::store::{StoreError, StoreErrorKind};
