//! HTTP-level helpers shared by the cache integration tests (`tests/it/cache.rs`,
//! `tests/it/storability.rs`): a Redis topology, the [`redis_test!`] macro that runs one test body on
//! a standalone server and on a three-master cluster, a driver that sends a request through an axum
//! `Router` and reads the whole response, scripted bodies, and bounded polling.
//!
//! Declared in `main.rs` after the process harness, with `#[macro_use]`.

#![allow(dead_code)]

use crate::support::{RedisCluster, RedisServer};
use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    routing::get,
    Router,
};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::{
    collections::VecDeque,
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        Arc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tower::ServiceExt;
use tower_redis_cache::{CacheLayer, CacheLayerBuilder, Entity, KeyFactory, Policy, RedisStore};

/// Runs one test body on a standalone server (`<name>::standalone`) and on a three-master
/// cluster (`<name>::cluster`), as fred's `centralized_test!`/`cluster_test!` do.
///
/// `redis_test!(name, |redis| async move { ... })`: `redis` is a [`Redis`], owned by the test.
/// Attributes before the name (`#[ignore = "..."]`) go on both tests.
macro_rules! redis_test {
    ($(#[$attr:meta])* $name:ident, $test:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            #[test]
            fn standalone() {
                $crate::cache_support::run($crate::cache_support::Redis::standalone(), $test);
            }

            $(#[$attr])*
            #[test]
            fn cluster() {
                $crate::cache_support::run($crate::cache_support::Redis::cluster(), $test);
            }
        }
    };
}

/// The longest one test body may run before it is failed as hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(40);
/// The longest [`eventually`] waits.
pub const WAIT: Duration = Duration::from_secs(10);
/// The key prefix of every test's deployment, and a pattern matching all its keys.
pub const PREFIX: &str = "monps:test:v1:";
pub const ALL_KEYS: &str = "monps:test:v1:*";
/// The name the cache reports in `Cache-Status`.
pub const NAME: &str = "tower-redis-cache";

/// Runs `test` on its own multi-threaded runtime, failing it if it runs past [`TEST_TIMEOUT`].
pub fn run<F, Fut>(redis: Redis, test: F)
where
    F: FnOnce(Redis) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        if tokio::time::timeout(TEST_TIMEOUT, test(redis))
            .await
            .is_err()
        {
            panic!("test still running after {TEST_TIMEOUT:?}: hung");
        }
    });
}

/// One Redis deployment of a test: a standalone server or a three-master cluster.
///
/// Its methods are blocking (the harness speaks RESP over std sockets); they are quick
/// loopback round trips, fine on a multi-threaded runtime.
pub enum Redis {
    Standalone(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    pub fn standalone() -> Self {
        Redis::Standalone(RedisServer::start())
    }

    pub fn cluster() -> Self {
        Redis::Cluster(RedisCluster::start())
    }

    pub fn url(&self) -> String {
        match self {
            Redis::Standalone(s) => s.url(),
            Redis::Cluster(c) => c.url(),
        }
    }

    /// Keys matching `pattern` (on every node), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self {
            Redis::Standalone(s) => s.keys(pattern),
            Redis::Cluster(c) => c.keys(pattern),
        }
    }

    /// The entry keys matching `pattern`, sorted: without the invalidation indexes, leases
    /// and fences (`{prefix}#…`).
    pub fn entry_keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = self.keys(pattern);
        keys.retain(|key| is_entry_key(key));
        keys
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Redis::Standalone(s) => s.get(key),
            Redis::Cluster(c) => c.get(key),
        }
    }

    /// `SET key value` without expiry.
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        match self {
            Redis::Standalone(s) => s.set_raw(key, value),
            Redis::Cluster(c) => c.set_raw(key, value),
        }
    }

    /// `PTTL key`: `-2` when missing, `-1` without expiry.
    pub fn ttl_ms(&self, key: &str) -> i64 {
        match self {
            Redis::Standalone(s) => s.ttl_ms(key),
            Redis::Cluster(c) => c.ttl_ms(key),
        }
    }

    /// Runs `args` on the node that serves `key` (the server, when standalone).
    pub fn query_for(&self, key: &str, args: &[&str]) -> crate::support::resp::Reply {
        match self {
            Redis::Standalone(s) => s.query(args),
            Redis::Cluster(c) => c.server_for_key(key).query(args),
        }
    }

    /// Kills every process (the URL then points at nothing).
    pub fn kill(&mut self) {
        match self {
            Redis::Standalone(s) => s.kill(),
            Redis::Cluster(c) => c.nodes_mut().iter_mut().for_each(RedisServer::kill),
        }
    }
}

/// Whether `key` is an entry's, not an index's, lease's or fence's (`{prefix}#…`).
pub fn is_entry_key(key: &str) -> bool {
    !key.splitn(4, ':')
        .nth(3)
        .is_some_and(|rest| rest.starts_with('#'))
}

/// The key factory of every test: `monps:test:v1:…`.
pub fn key_factory() -> KeyFactory {
    KeyFactory::new("monps", "test", "v1")
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

/// Like [`cache`] with a single write permit, which [`assert_nothing_stored`] relies on.
pub async fn cache_one_write(redis: &Redis) -> CacheLayer {
    cache_builder(redis)
        .await
        .max_pending_writes(1)
        .build()
        .unwrap()
}

/// How many times a handler ran.
#[derive(Clone, Debug, Default)]
pub struct Runs(Arc<AtomicUsize>);

impl Runs {
    /// Counts one run; returns its number (1 for the first).
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, SeqCst) + 1
    }

    pub fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// A whole response: status, headers and the body read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The `Cache-Status` header, `""` when absent.
    pub fn cache_status(&self) -> &str {
        self.header("cache-status")
    }

    /// A header as text, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is text"))
            .unwrap_or("")
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    /// The `ttl` of a hit's `Cache-Status`.
    pub fn hit_ttl(&self) -> u64 {
        let status = self.cache_status();
        let ttl = status
            .strip_prefix(&format!("{NAME}; hit; ttl="))
            .unwrap_or_else(|| panic!("not a hit: {status:?}"));
        ttl.parse()
            .unwrap_or_else(|_| panic!("bad ttl in {status:?}"))
    }
}

/// Sends `req` through `app` and reads the whole response body.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("response body ends cleanly")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

pub fn post_req(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).body(body.into()).expect("request")
}

/// `Cache-Status` of a forwarded request: `fwd` and the parameters after it, e.g.
/// `fwd("uri-miss; stored")`.
pub fn fwd(rest: &str) -> String {
    format!("{NAME}; fwd={rest}")
}

/// Polls `condition` every 5 ms until it holds; fails the test after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the layer has written `n` entries in total.
pub async fn wait_writes(layer: &CacheLayer, n: u64) {
    eventually(&format!("{n} write(s); stats {:?}", layer.stats()), || {
        layer.stats().writes >= n
    })
    .await;
    assert_eq!(layer.stats().writes, n, "more writes than expected");
}

/// The key of the sentinel route added by [`with_sentinel`].
pub fn sentinel_key() -> String {
    format!("{PREFIX}sentinel:{{_}}:default")
}

/// Adds `GET /sentinel`, a route whose response is always stored, to `app`.
pub fn with_sentinel(app: Router, layer: &CacheLayer) -> Router {
    app.route(
        "/sentinel",
        get(|| async { "sentinel" })
            .route_layer(layer.policy(Policy::new("sentinel").entity(Entity::none()))),
    )
}

/// Proves that nothing the test sent before was stored, nor ever will be: needs a layer from
/// [`cache_one_write`] with [`with_sentinel`], and no entry written before.
///
/// A recorded response holds the layer's single write permit until its write has finished. So
/// the sentinel gets the permit (its `Cache-Status` says `stored`) only if every earlier write
/// is either abandoned or done; and once the sentinel's own entry is in Redis, it must be the
/// only key and the only write.
pub async fn assert_nothing_stored(app: &Router, layer: &CacheLayer, redis: &Redis) {
    let reply = send(app, get_req("/sentinel")).await;
    assert_eq!(
        reply.cache_status(),
        fwd("uri-miss; stored"),
        "the sentinel could not take the write permit: a write of an earlier response is pending"
    );
    let key = sentinel_key();
    eventually("the sentinel's entry in Redis", || {
        redis.get(&key).is_some()
    })
    .await;
    wait_writes(layer, 1).await;
    assert_eq!(
        redis.entry_keys(ALL_KEYS),
        vec![key],
        "only the sentinel may have been stored"
    );
    let stats = layer.stats();
    assert_eq!(
        (stats.writes_dropped, stats.write_errors),
        (0, 0),
        "{stats:?}"
    );
}

/// A body of scripted frames, of unknown size unless [`claiming_size`](Self::claiming_size):
/// axum and hyper send it chunked, without a `Content-Length`. Each poll returns the next frame
/// at once.
pub struct Frames {
    frames: VecDeque<Result<Frame<Bytes>, io::Error>>,
    size: Option<u64>,
}

impl Frames {
    pub fn new() -> Self {
        Self {
            frames: VecDeque::new(),
            size: None,
        }
    }

    /// Claims an exact size of `size` bytes (whatever the frames hold).
    pub fn claiming_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.frames.push_back(Ok(Frame::data(data.into())));
        self
    }

    pub fn error(mut self, message: &str) -> Self {
        self.frames
            .push_back(Err(io::Error::other(message.to_owned())));
        self
    }

    pub fn trailer(mut self, name: &'static str, value: &'static str) -> Self {
        let mut trailers = HeaderMap::new();
        trailers.insert(name, value.parse().expect("trailer value"));
        self.frames.push_back(Ok(Frame::trailers(trailers)));
        self
    }

    pub fn into_body(self) -> Body {
        Body::new(self)
    }
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(self.frames.pop_front())
    }

    fn size_hint(&self) -> SizeHint {
        self.size.map(SizeHint::with_exact).unwrap_or_default()
    }
}
