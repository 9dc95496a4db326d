//! What a cache hit through [`Cache`] costs, next to a bare `fred` GET of the same entry.
//!
//! Starts a private `redis-server` on a free loopback port (never the shared one on 6379) with
//! `--save "" --appendonly no`, as compose.yaml runs it, and kills it when the bench ends,
//! panics included. One group per request shape: a `GET` keyed by its path alone (the `default`
//! variant) answered with a 1 KiB and a 16 KiB JSON body, and a `POST` keyed also by the
//! canonical form of its 1 KiB JSON config (the original's prediction route) answered with
//! 1 KiB. Each group has these rows, measured in the same run:
//!
//! - `bare fred GET (Client)`: `client.get::<Bytes, _>(key)` on a plain `fred` client built from
//!   the same URL (fred's defaults, plus `TCP_NODELAY` as the store sets it). The baseline.
//! - `bare fred GET (store's pool)`: the same GET through [`RedisStore::pool`]: the very
//!   connections and settings (command timeout, ...) the cache uses.
//! - `cache hit through Cache<S>`: `svc.ready().await?.call(request)` on a [`Cache`] over a
//!   [`RedisStore`] (a new request each time), and the response body read to its end.
//! - `cache hit, MemoryStore`: the same over a [`MemoryStore`]: the middleware's own CPU cost,
//!   without the network.
//! - `inner handler alone`: the trivial handler without the cache (a real handler, such as the
//!   original's ~150 ms `analyze_match`, is what a hit saves).
//!
//! Criterion measures the rows one after the other, so on a shared, busy machine a change of
//! load between two rows skews their ratio. After the criterion groups, the bench therefore
//! also runs the rows *interleaved* (short batches in rotating order, many rounds) and prints
//! the median per-round ratio of each row to the bare GET, and its median extra time over it:
//! the figures to quote.
//!
//! Requests are sent one at a time (latency, not throughput) on a current-thread Tokio runtime,
//! which keeps thread wake-ups out of the figures. `HIT_BENCH_RUNTIME=multi_thread` runs them
//! instead on a 2-worker runtime, the loops spawned onto the workers as a server's would be.
//!
//! Bodies of 4 KiB and more are stored LZ4-compressed, as the layer's default does (the 16 KiB
//! rows pay the decompression); `HIT_BENCH_COMPRESSION=none` stores every body as it is, and
//! `HIT_BENCH_COMPRESSION=1024` compresses the 1 KiB bodies too.
//!
//! Run with `taskset -c 0 cargo bench --bench hit` (needs `redis-server` on `PATH`:
//! `apt-get install redis-server`). Pinning keeps the bench and its redis-server on one CPU: on
//! the 2-vCPU build VM a loopback round trip between two CPUs costs ~16 µs or ~55 µs depending
//! on whether the other vCPU is awake, which moves every ratio; the extra time a hit adds over
//! the bare GET is the same either way. See BENCHMARKS.md.

#[path = "support/json_body.rs"]
mod json_body;
#[path = "support/json_handler.rs"]
mod json_handler;
#[path = "../tests/it/servers/mod.rs"]
mod servers;
#[path = "support/stats.rs"]
mod stats;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use fred::prelude::*;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use json_body::json_body;
use json_handler::Handler;
use servers::RedisServer;
use stats::quartiles;
use std::{
    convert::Infallible,
    fmt::Write as _,
    future::Future,
    hint::black_box,
    time::{Duration, Instant},
};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_redis_cache::{
    Cache, CacheLayer, Compression, Entity, KeyFactory, MemoryStore, Policy, RedisStore, Variant,
};

/// The groups: request method (a `POST` carries a 1 KiB JSON config, keyed canonically),
/// response body size, and label.
const GROUPS: [(Method, usize, &str); 3] = [
    (Method::GET, 1024, "GET, 1 KiB body"),
    (Method::GET, 16 * 1024, "GET, 16 KiB body"),
    (Method::POST, 1024, "POST 1 KiB JSON config, 1 KiB body"),
];

/// Interleaved measurement: rounds, and requests per row in each round.
const ROUNDS: usize = 400;
const BATCH: u64 = 25;

fn hit(c: &mut Criterion) {
    let redis = RedisServer::start();
    let (rt, spawn) = runtime();
    let mut fixture = rt.block_on(Fixture::new(&redis.url()));
    let targets: Vec<_> = GROUPS
        .iter()
        .map(|(method, size, label)| (label, rt.block_on(fixture.target(method, *size))))
        .collect();

    for (label, target) in &targets {
        let mut group = c.benchmark_group(format!("hit, {label}"));
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .sample_size(50);
        for row in Row::ALL {
            group.bench_function(row.name(), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let timed = target.clone().time(row, iters);
                    run(spawn, timed)
                })
            });
        }
        group.finish();
    }

    for (label, target) in targets.iter().filter(|_| measuring()) {
        let report = rt.block_on(run(spawn, target.clone().interleaved()));
        println!(
            "\ninterleaved, {label}: {ROUNDS} rounds of {BATCH} requests per row, rotating order"
        );
        println!("{report}");
    }

    rt.block_on(fixture.finish());
    drop(rt);
    drop(redis);
}

/// Whether this is a measuring run (`cargo bench`), not criterion's test mode (`cargo test
/// --benches`), a listing or a profiling run: only then is the interleaved pass worth its time.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| a == "--list" || a.starts_with("--profile-time"))
}

/// The runtime the requests run on, and whether to spawn the measured loops onto its workers.
fn runtime() -> (Runtime, bool) {
    let flavor = std::env::var("HIT_BENCH_RUNTIME").unwrap_or_default();
    let (mut builder, spawn) = match flavor.as_str() {
        "" | "current_thread" => (tokio::runtime::Builder::new_current_thread(), false),
        "multi_thread" => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            (builder, true)
        }
        other => panic!("HIT_BENCH_RUNTIME={other}: expected current_thread or multi_thread"),
    };
    let rt = builder.enable_all().build().expect("a Tokio runtime");
    (rt, spawn)
}

/// Awaits `timed`, on a worker thread when `spawn` is set.
async fn run<T: Send + 'static>(spawn: bool, timed: impl Future<Output = T> + Send + 'static) -> T {
    if spawn {
        tokio::spawn(timed).await.expect("the measured task")
    } else {
        timed.await
    }
}

/// One row of a group: one way of getting the entry's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    BareClient,
    BarePool,
    RedisHit,
    MemoryHit,
    Inner,
}

impl Row {
    const ALL: [Row; 5] = [
        Row::BareClient,
        Row::BarePool,
        Row::RedisHit,
        Row::MemoryHit,
        Row::Inner,
    ];

    fn name(self) -> &'static str {
        match self {
            Row::BareClient => "bare fred GET (Client)",
            Row::BarePool => "bare fred GET (store's pool)",
            Row::RedisHit => "cache hit through Cache<S>",
            Row::MemoryHit => "cache hit, MemoryStore",
            Row::Inner => "inner handler alone",
        }
    }
}

/// Everything one route's rows need; cheap to clone, so a measured loop can own it.
#[derive(Clone)]
struct Target {
    client: Client,
    pool: Pool,
    key: String,
    request: RequestSpec,
    redis: Cache<Handler>,
    memory: Cache<Handler>,
    inner: Handler,
}

impl Target {
    /// Runs `row` once: the entry's bytes (or the handler's response body), read to the end.
    async fn once(&mut self, row: Row) {
        let bytes: Bytes = match row {
            Row::BareClient => self.client.get(self.key.as_str()).await.expect("GET"),
            Row::BarePool => self.pool.get(self.key.as_str()).await.expect("GET"),
            Row::RedisHit => send(&mut self.redis, &self.request).await,
            Row::MemoryHit => send(&mut self.memory, &self.request).await,
            Row::Inner => send(&mut self.inner, &self.request).await,
        };
        black_box(bytes);
    }

    /// Runs `row` `iters` times, one after the other; returns the time taken.
    async fn time(mut self, row: Row, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.once(row).await;
        }
        start.elapsed()
    }

    /// Runs every row in short batches, rotating the order each round, and reports for each row
    /// its median per-request time, and the median over rounds of its ratio to the bare GET and
    /// of its difference from it.
    async fn interleaved(mut self) -> String {
        let mut times = vec![Vec::with_capacity(ROUNDS); Row::ALL.len()];
        for round in 0..ROUNDS {
            for i in 0..Row::ALL.len() {
                let index = (round + i) % Row::ALL.len();
                let start = Instant::now();
                for _ in 0..BATCH {
                    self.once(Row::ALL[index]).await;
                }
                times[index].push(start.elapsed().as_secs_f64() / BATCH as f64);
            }
        }
        let base = &times[0];
        let mut report = format!(
            "{:<30} {:>10} {:>30} {:>22}\n",
            "row", "median", "ratio to bare GET [p25, p75]", "extra over bare GET"
        );
        for (row, row_times) in Row::ALL.iter().zip(&times) {
            let (_, median, _) = quartiles(row_times.clone());
            let ratios = row_times.iter().zip(base).map(|(t, b)| t / b).collect();
            let (p25, ratio, p75) = quartiles(ratios);
            let extras = row_times.iter().zip(base).map(|(t, b)| t - b).collect();
            let (_, extra, _) = quartiles(extras);
            let _ = writeln!(
                report,
                "{:<30} {:>7.2} µs {:>12.3}x [{p25:.3}, {p75:.3}] {:>+16.2} µs",
                row.name(),
                median * 1e6,
                ratio,
                extra * 1e6,
            );
        }
        report
    }
}

/// The request a target sends, built anew each time (as a server would receive it).
#[derive(Clone)]
struct RequestSpec {
    method: Method,
    path: String,
    body: Bytes,
}

impl RequestSpec {
    fn build(&self) -> Request<Full<Bytes>> {
        Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .body(Full::new(self.body.clone()))
            .expect("a request")
    }
}

/// Sends one request and reads the response body to its end.
async fn send<S, B>(svc: &mut S, request: &RequestSpec) -> Bytes
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes, Error = Infallible>,
{
    let request = request.build();
    let Ok(response) = svc.ready().await.expect("ready").call(request).await;
    let Ok(body) = response.into_body().collect().await;
    body.to_bytes()
}

/// The stores and layers shared by every size.
struct Fixture {
    store: RedisStore,
    client: Client,
    redis_layer: CacheLayer,
    memory_layer: CacheLayer,
    /// Entries written so far to each store (one per target).
    warmed: u64,
}

impl Fixture {
    async fn new(url: &str) -> Self {
        let store = RedisStore::connect(url)
            .await
            .expect("connect the store to the private redis-server");
        let config = Config::from_url(url).expect("a Redis URL");
        let client = Builder::from_config(config)
            .with_connection_config(|c| c.tcp.nodelay = Some(true))
            .build()
            .expect("a fred client");
        client.init().await.expect("connect the bare fred client");

        // Each target applies its route's policy to copies of these (sharing store and counters).
        let keys = KeyFactory::new("monps", "bench", "v1");
        // HIT_BENCH_COMPRESSION=none stores bodies uncompressed, =N compresses those of N bytes
        // and more (default: the layer's default).
        let compression = match std::env::var("HIT_BENCH_COMPRESSION").as_deref() {
            Ok("none") => Compression::none(),
            Ok(bytes) => Compression::lz4_above(bytes.parse().expect("none, or a size in bytes")),
            Err(_) => Compression::default(),
        };
        let redis_layer = CacheLayer::builder(store.clone(), keys.clone())
            .compression(compression)
            .build()
            .expect("a layer");
        let memory_layer = CacheLayer::builder(MemoryStore::default(), keys)
            .compression(compression)
            .build()
            .expect("a layer");
        Self {
            store,
            client,
            redis_layer,
            memory_layer,
            warmed: 0,
        }
    }

    /// Builds the route answering `method` with a `size`-byte body, and stores its entry in
    /// both stores. A `GET` route is keyed by its path alone (the `default` variant); a `POST`
    /// route (the original's prediction) also by the canonical form of a 1 KiB JSON config.
    async fn target(&mut self, method: &Method, size: usize) -> Target {
        let inner = Handler {
            body: json_body(size),
        };
        let post = method == Method::POST;
        let (namespace, path, body) = if post {
            (
                "pred",
                format!("/matches/post{size}/prediction"),
                json_body(1024),
            )
        } else {
            ("markets", format!("/matches/{size}/markets"), Bytes::new())
        };
        let entity = if post {
            format!("m_post{size}")
        } else {
            format!("m_{size}")
        };
        // A TTL far longer than the run: every measured request must be a hit.
        let policy = Policy::new(namespace)
            .ttl(Duration::from_secs(3600))
            .methods([method.clone()])
            .entity(Entity::path_segment(1).prefix("m_"));
        let keys = self.redis_layer.keys();
        let mut target = Target {
            client: self.client.clone(),
            pool: self.store.pool().clone(),
            key: keys
                .key(namespace, &entity, &Variant::new().json_body(&body))
                .into(),
            request: RequestSpec {
                method: method.clone(),
                path,
                body,
            },
            redis: ServiceBuilder::new()
                .layer(self.redis_layer.policy(policy.clone()))
                .service(inner.clone()),
            memory: ServiceBuilder::new()
                .layer(self.memory_layer.policy(policy))
                .service(inner.clone()),
            inner,
        };
        self.warmed += 1;
        for (svc, layer) in [
            (&target.redis, &self.redis_layer),
            (&target.memory, &self.memory_layer),
        ] {
            let status = cache_status(svc.clone(), &target.request).await;
            assert!(status.contains("fwd=uri-miss; stored"), "{status}");
            let deadline = Instant::now() + Duration::from_secs(5);
            while layer.stats().writes < self.warmed {
                assert!(
                    Instant::now() < deadline,
                    "no write-back: {:?}",
                    layer.stats()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let status = cache_status(svc.clone(), &target.request).await;
            assert!(status.contains("; hit"), "{status}");
        }
        let stored: Bytes = self.client.get(target.key.as_str()).await.expect("GET");
        // The entry holds the body (LZ4-compressed, as bodies of 1 KiB and more are by default).
        let entry = tower_redis_cache::store::Entry::decode(stored).expect("an entry");
        assert_eq!(entry.body().len(), size, "the entry holds the body");
        for row in Row::ALL {
            target.once(row).await;
        }
        target
    }

    /// Reports whether every measured request was a hit, and disconnects.
    async fn finish(self) {
        for (name, layer) in [("redis", &self.redis_layer), ("memory", &self.memory_layer)] {
            let stats = layer.stats();
            eprintln!("{name} store: {stats:?}");
            if stats.misses != self.warmed || stats.lookup_errors != 0 {
                eprintln!(
                    "WARNING: {name} store: lookups that were not hits during the run \
                     (slow or failed lookups were forwarded); the figures mix in misses"
                );
            }
        }
        let _ = self.client.quit().await;
        let _ = self.store.pool().quit().await;
    }
}

/// Sends one request and returns its `Cache-Status`, with the body read to the end.
async fn cache_status(svc: Cache<Handler>, request: &RequestSpec) -> String {
    let Ok(response) = svc.oneshot(request.build()).await;
    let status = response.headers()["cache-status"]
        .to_str()
        .expect("an ASCII header")
        .to_owned();
    let Ok(_) = response.into_body().collect().await;
    status
}

criterion_group!(benches, hit);
criterion_main!(benches);
