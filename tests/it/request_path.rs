//! The request path's shape as users meet it: any request body (hyper's `Incoming` straight
//! from a real HTTP/1.1 server), tower-http's `TimeoutLayer` outside the cache, the builder's
//! settings shared by every route, the circuit breaker checked before any body or key work, and
//! write-backs bounded by bytes.

use crate::app::*;
use crate::servers::RedisServer;
use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use tower_redis_cache::{
    store::{EntryWrite, Invalidation, Store, StoreFuture},
    CacheLayer, Entity, MemoryStore, Policy, RedisStore, RequestBody,
};

/// A plain hyper 1 server (no axum) on a loopback port: `TimeoutLayer` outside the cache, the
/// cache on `Incoming` as it comes, a `service_fn` handler that echoes its request body.
/// `/slow/...` sleeps past the timeout.
async fn serve_hyper(layer: CacheLayer, runs: Runs) -> String {
    let handler = move |req: Request<RequestBody<Incoming>>| {
        let runs = runs.clone();
        async move {
            let slow = req.uri().path().starts_with("/slow/");
            let body = req
                .into_body()
                .collect()
                .await
                .expect("the body")
                .to_bytes();
            if slow {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let run = runs.bump();
            let text = format!("run={run} body={}", String::from_utf8_lossy(&body));
            Ok::<_, Infallible>(
                http::Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(Full::new(Bytes::from(text)))
                    .expect("response"),
            )
        }
    };
    let policy = Policy::new("echo")
        .methods([Method::GET, Method::POST])
        .entity(Entity::path_segment(1));
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_millis(300),
        ))
        .layer(layer.policy(policy))
        .service_fn(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    base
}

/// Sends `req` with hyper's client and reads the whole response.
async fn fetch(req: Request<Body>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let response = client.request(req).await.expect("a response");
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("the body").to_bytes(),
    }
}

redis_test!(
    hyper_incoming_with_a_timeout_layer_outside_the_cache,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let base = serve_hyper(layer.clone(), runs.clone()).await;
        let post = |path: &str, body: Body| {
            Request::post(format!("{base}{path}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .expect("request")
        };

        let miss = fetch(post("/e/1", Body::from(r#"{"b":2,"a":1}"#))).await;
        assert_eq!(miss.cache_status(), fwd("uri-miss; stored"));
        assert_eq!(miss.text(), r#"run=1 body={"b":2,"a":1}"#);
        wait_writes(&layer, 1).await;

        // Chunked, other member order: the same key, answered from Redis.
        let chunked = Frames::new()
            .data(r#"{"a":"#)
            .data(r#"1,"b":2}"#)
            .into_body();
        let hit = fetch(post("/e/1", chunked)).await;
        assert!(hit.cache_status().contains("; hit"), "{hit:?}");
        assert_eq!(hit.body, miss.body);
        assert_eq!(runs.get(), 1);

        let get = fetch(
            Request::get(format!("{base}/e/2"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(get.cache_status(), fwd("uri-miss; stored"));
        assert_eq!(get.text(), "run=2 body=");
        wait_writes(&layer, 2).await;

        // The timeout outside answers with an empty response of the cache's body type.
        let slow = fetch(
            Request::get(format!("{base}/slow/1"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
        assert!(slow.body.is_empty());
        assert_eq!(
            redis.entry_keys(ALL_KEYS).len(),
            2,
            "{:?}",
            redis.entry_keys(ALL_KEYS)
        );
    }
);

/// A request body that counts how often it has been polled.
struct Counted {
    data: Option<Bytes>,
    polls: Arc<AtomicUsize>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls.fetch_add(1, SeqCst);
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// While the breaker is open, a keyed request's body is not read (nor canonicalised) by the
/// cache: the handler is the first to poll it, and gets it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_skips_reading_and_keying_the_body() {
    let mut redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    let layer = CacheLayer::builder(store, key_factory())
        .lookup_timeout(Duration::from_millis(200))
        .circuit_breaker(1, Duration::from_secs(60))
        .build()
        .unwrap();
    let polls = Arc::new(AtomicUsize::new(0));
    let seen = polls.clone();
    let app = Router::new().route(
        "/p/{id}",
        post(move |req: Request<Body>| {
            let seen = seen.clone();
            async move {
                let before = seen.load(SeqCst);
                let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                    .await
                    .unwrap();
                format!(
                    "polled before the handler: {before}; body: {}",
                    String::from_utf8_lossy(&body)
                )
            }
        })
        .route_layer(
            layer.policy(
                Policy::new("p")
                    .methods([Method::POST])
                    .entity(Entity::path_segment(1)),
            ),
        ),
    );
    let request = |polls: &Arc<AtomicUsize>| {
        polls.store(0, SeqCst);
        let body = Counted {
            data: Some(Bytes::from_static(br#"{"a":1}"#)),
            polls: polls.clone(),
        };
        Request::post("/p/1").body(Body::new(body)).unwrap()
    };

    // Healthy: the cache reads the body to key it before the handler runs.
    let reply = send(&app, request(&polls)).await;
    assert_eq!(reply.cache_status(), fwd("uri-miss; stored"));
    assert!(
        !reply.text().starts_with("polled before the handler: 0"),
        "{}",
        reply.text()
    );

    redis.kill();
    let reply = send(&app, request(&polls)).await;
    assert!(
        reply.cache_status().contains("fwd=miss"),
        "{}",
        reply.cache_status()
    );
    eventually("the breaker opens", || layer.stats().lookup_errors >= 1).await;

    let reply = send(&app, request(&polls)).await;
    assert_eq!(reply.cache_status(), fwd("miss; detail=circuit-open"));
    assert_eq!(
        reply.text(),
        r#"polled before the handler: 0; body: {"a":1}"#
    );
    assert_eq!(layer.stats().circuit_open, 1);
}

/// A store whose writes wait until released, holding what they were given.
#[derive(Clone)]
struct HeldWrites {
    inner: MemoryStore,
    release: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl HeldWrites {
    fn new() -> Self {
        Self {
            inner: MemoryStore::default(),
            release: Arc::new(Semaphore::new(0)),
            waiting: Arc::default(),
        }
    }
}

impl Store for HeldWrites {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
        let (this, key) = (self.clone(), key.to_owned());
        Box::pin(async move {
            this.waiting.fetch_add(1, SeqCst);
            let _released = this.release.acquire().await.expect("never closed");
            this.inner.set(&key, value, ttl).await
        })
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        self.inner.delete(key)
    }
}

/// A store that stores each write at once but answers it only when released: the entry is in
/// the store, and an invalidation can drop it, while the cache still waits for the answer.
#[derive(Clone)]
struct SlowAcks {
    inner: MemoryStore,
    release: Arc<Semaphore>,
    stored: Arc<AtomicUsize>,
}

impl Store for SlowAcks {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
        self.inner.set(key, value, ttl)
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        self.inner.delete(key)
    }

    fn write(&self, write: EntryWrite) -> StoreFuture<bool> {
        let (this, written) = (self.clone(), self.inner.write(write));
        Box::pin(async move {
            let result = written.await;
            this.stored.fetch_add(1, SeqCst);
            let _released = this.release.acquire().await.expect("never closed");
            result
        })
    }

    fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
        self.inner.invalidate(invalidation)
    }
}

/// A miss that begins after an invalidation was acknowledged never gets the entry that
/// invalidation dropped, even from a leader whose write-back the store had not answered yet
/// (found by the history checker: `fwd=uri-miss; collapsed` with the dropped version): it
/// joins the flight late, and looks the key up again once the write-back ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_after_an_invalidation_never_gets_the_entry_it_dropped() {
    let store = SlowAcks {
        inner: MemoryStore::default(),
        release: Arc::new(Semaphore::new(0)),
        stored: Arc::default(),
    };
    // Waiters wait for the leader's write-back up to the lookup timeout: long here.
    let layer = CacheLayer::builder(store.clone(), key_factory())
        .lookup_timeout(Duration::from_secs(30))
        .coalescing_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let version = Arc::new(AtomicUsize::new(1));
    let handler = {
        let version = version.clone();
        move || {
            let version = version.load(SeqCst);
            async move { format!("v{version}") }
        }
    };
    let app = Router::new().route(
        "/items/{id}",
        get(handler)
            .route_layer(layer.policy(Policy::new("items").entity(Entity::path_segment(1)))),
    );
    let first = send(&app, get_req("/items/1")).await;
    assert_eq!((first.text(), first.is_stored()), ("v1", true));
    eventually("the store holds v1", || store.stored.load(SeqCst) == 1).await;
    version.store(2, SeqCst);
    assert_eq!(layer.invalidator().entity("1").await.unwrap(), 1);

    let later = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get_req("/items/1")).await }
    });
    eventually("the later request missed and joined the flight", || {
        layer.stats().misses == 2
    })
    .await;
    // The store answers v1's write-back (accepted: it came before the invalidation).
    store.release.add_permits(10);
    let later = later.await.unwrap();
    assert_eq!(later.text(), "v2", "{}", later.cache_status());
    assert_eq!(layer.stats().coalesced, 0, "{:?}", layer.stats());
}

/// The write budget bounds what write-backs hold in bytes, not only in count: while the store
/// holds every write, storable responses beyond the budget reach the client intact and are
/// not stored; the budget is whole again once the store answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_backs_are_bounded_by_bytes() {
    const BODY: usize = 8 * 1024;
    const BUDGET: usize = 64 * 1024;
    let store = HeldWrites::new();
    let layer = CacheLayer::builder(store.clone(), key_factory())
        .max_pending_write_bytes(BUDGET)
        .build()
        .unwrap();
    let app = Router::new().route(
        "/items/{id}",
        get(|| async { "x".repeat(BODY) }).route_layer(layer.policy(Policy::new("items"))),
    );

    let mut announced = 0;
    for i in 0..40 {
        let reply = send(&app, get_req(&format!("/items/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.body.len(),
            BODY,
            "every response reaches the client whole"
        );
        announced += u64::from(reply.cache_status().ends_with("; stored"));
        let stats = layer.stats();
        assert!(stats.write_bytes_in_flight <= BUDGET as u64, "{stats:?}");
        // A write-back holds its peak share of the budget until its background task has
        // encoded the entry; wait for that (it then waits in the store) so that how many fit
        // does not depend on when the runtime schedules those tasks.
        eventually("the write-back reaches the store", || {
            store.waiting.load(SeqCst) as u64 == announced
        })
        .await;
    }
    let stats = layer.stats();
    let held = stats.writes_in_flight;
    // Each held write-back holds one encoded entry of a little over 8 KiB (and twice that
    // while it is being encoded).
    assert!(
        (5..=7).contains(&held),
        "{held} write-backs held, {stats:?}"
    );
    assert_eq!(announced, held, "{stats:?}");
    assert_eq!(stats.writes_dropped, 40 - held, "{stats:?}");

    // A body without Content-Length is budgeted as it streams: dropped part-way, still whole.
    let streamed = Router::new().route(
        "/stream/{id}",
        get(|| async { Frames::new().data("y".repeat(BODY)).data("z").into_body() })
            .route_layer(layer.policy(Policy::new("stream"))),
    );
    let dropped_before = layer.stats().writes_dropped;
    let reply = send(&streamed, get_req("/stream/1")).await;
    assert_eq!(reply.body.len(), BODY + 1);
    // Whether it fit depends on how many write-backs are held (5 to 7): count it if it did.
    let streamed_written = u64::from(
        reply.cache_status().ends_with("; stored")
            && layer.stats().writes_dropped == dropped_before,
    );

    store.release.add_permits(1000);
    eventually("the budget is whole again", || {
        let stats = layer.stats();
        stats.writes_in_flight == 0 && stats.write_bytes_in_flight == 0
    })
    .await;
    assert_eq!(layer.stats().writes, held + streamed_written);
}

/// Settings made on the builder hold for every route made from the built layer, which share one
/// set of counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_settings_hold_for_every_route() {
    let layer = CacheLayer::builder(MemoryStore::default(), key_factory())
        .name("edge")
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/a",
            get(|| async { "a" }).route_layer(layer.policy(Policy::new("a"))),
        )
        .route(
            "/b",
            get(|| async { "b" }).route_layer(layer.policy(Policy::new("b"))),
        );
    for path in ["/a", "/b"] {
        let reply = send(&app, get_req(path)).await;
        assert_eq!(reply.cache_status(), "edge; fwd=uri-miss; stored");
    }
    assert_eq!(layer.stats().misses, 2);

    let bad = CacheLayer::builder(MemoryStore::default(), key_factory()).name("no spaces please");
    assert!(
        bad.build().is_err(),
        "an invalid name is an error, not ignored"
    );
}

/// What other middleware asks of the cache's types: a `Default` response body (tower-http's
/// `TimeoutLayer` makes its own responses with it) and a `Debug` response future.
#[tokio::test]
async fn the_future_is_debug_and_the_body_has_a_default() {
    use http_body::Body as _;
    use tower::Service;
    use tower_redis_cache::ResponseBody;

    let empty = ResponseBody::<Full<Bytes>>::default();
    assert!(empty.is_end_stream());
    assert_eq!(empty.size_hint().exact(), Some(0));

    let layer = CacheLayer::new(MemoryStore::default(), key_factory());
    let mut service = ServiceBuilder::new()
        .layer(layer.policy(Policy::new("d")))
        .service_fn(|_: Request<RequestBody<Body>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"d"))))
        });
    let future = service.call(get_req("/d"));
    let debug = format!("{future:?}");
    assert!(debug.starts_with("ResponseFuture"), "{debug}");
    let response = future.await.unwrap();
    assert_eq!(response.headers()["cache-status"], fwd("uri-miss; stored"));
}
