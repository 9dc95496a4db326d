//! What the `metrics` feature costs a hit: the same route with a Prometheus recorder installed
//! (`metrics-exporter-prometheus`, as the predictions example serves it) and without one.
//!
//! ```text
//! taskset -c 0 cargo bench --bench metrics
//! ```
//!
//! Two layers over the same kind of store answer the same `GET` (a 1 KiB JSON body) from their
//! entry. The `no recorder` layer sees its first request before any recorder is installed, so
//! its handles are the facade's no-ops, as in an application that installs none; the
//! `Prometheus recorder` layer sees its first after `install_recorder`, so every hit counts a
//! hit and records its lookup latency. Each pair is measured on a [`MemoryStore`] (the strictest
//! comparison: a hit is nothing but the middleware's own work) and on a private `redis-server`
//! (`RedisStore`, what production pays). Criterion measures the rows; then the bench runs them
//! interleaved (short batches, rotating order, many rounds) and prints the median per-round
//! ratio of each recorded row to its unrecorded twin: the figure quoted in BENCHMARKS.md.
//!
//! Requests are sent one at a time on a current-thread Tokio runtime, so wall time is CPU time
//! for the MemoryStore rows. Needs `redis-server` on `PATH` (`apt-get install redis-server`).

#[path = "support/json_handler.rs"]
mod json_handler;
#[path = "../tests/it/servers/mod.rs"]
mod servers;
#[path = "support/stats.rs"]
mod stats;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::{BodyExt, Full};
use json_handler::Handler;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use servers::RedisServer;
use stats::quartiles;
use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_redis_cache::{
    store::Store, Cache, CacheLayer, Entity, KeyFactory, MemoryStore, Policy, RedisStore,
};

/// Interleaved measurement: rounds, and requests per row in each round.
const ROUNDS: usize = 200;
const BATCH: u64 = 400;

/// The rows: (store, recorder installed).
const ROWS: [(&str, bool); 4] = [
    ("MemoryStore", false),
    ("MemoryStore", true),
    ("RedisStore", false),
    ("RedisStore", true),
];

fn metrics(c: &mut Criterion) {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let redis_store: Arc<dyn Store> = Arc::new(
        rt.block_on(RedisStore::connect(&redis.url()))
            .expect("connect to the private redis-server"),
    );
    let memory_store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let store = |name: &str| match name {
        "MemoryStore" => memory_store.clone(),
        _ => redis_store.clone(),
    };

    // The unrecorded layers register their (no-op) handles before the recorder exists.
    let mut routes: Vec<Option<Cache<Handler>>> = vec![None; ROWS.len()];
    for (i, (name, _)) in ROWS.iter().enumerate().filter(|(_, (_, rec))| !rec) {
        routes[i] = Some(rt.block_on(warmed_route(store(name), &format!("plain-{i}"))));
    }
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    for (i, (name, _)) in ROWS.iter().enumerate().filter(|(_, (_, rec))| *rec) {
        routes[i] = Some(rt.block_on(warmed_route(store(name), &format!("recorded-{i}"))));
    }
    let routes: Vec<Cache<Handler>> = routes.into_iter().map(Option::unwrap).collect();
    assert!(
        prometheus
            .render()
            .contains("tower_redis_cache_hits_total{namespace=\"recorded-1\"}"),
        "the recorded layer reports to the recorder"
    );

    let mut group = c.benchmark_group("hit, GET 1 KiB");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40);
    for ((name, recorded), route) in ROWS.iter().zip(&routes) {
        let label = format!(
            "{name}, {}",
            if *recorded {
                "Prometheus recorder"
            } else {
                "no recorder"
            }
        );
        group.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let route = route.clone();
                async move { time(route, iters).await }
            })
        });
        prometheus.run_upkeep();
    }
    group.finish();

    if measuring() {
        rt.block_on(interleaved(&routes, &prometheus));
    }
    drop(rt);
    drop(redis);
}

/// Times `iters` hits on `route`, one after the other.
async fn time(mut route: Cache<Handler>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(hit(&mut route).await);
    }
    start.elapsed()
}

/// Runs the rows in rotating order, `BATCH` requests each per round, and prints each store's
/// median per-round ratio of the recorded row to the unrecorded one.
async fn interleaved(routes: &[Cache<Handler>], prometheus: &PrometheusHandle) {
    let mut times = vec![Vec::with_capacity(ROUNDS); routes.len()];
    for round in 0..ROUNDS {
        for i in 0..routes.len() {
            let index = (round + i) % routes.len();
            let elapsed = time(routes[index].clone(), BATCH).await;
            times[index].push(elapsed.as_secs_f64() / BATCH as f64);
        }
        // Drains the histograms, as a scrape would; outside the timed batches.
        prometheus.run_upkeep();
    }
    println!("\ninterleaved: {ROUNDS} rounds of {BATCH} hits per row, rotating order");
    println!(
        "{:<12} {:>14} {:>14} {:>28}",
        "store", "no recorder", "Prometheus", "ratio [p25, p75]"
    );
    for pair in [0, 2] {
        let (plain, recorded) = (&times[pair], &times[pair + 1]);
        let ratios = recorded.iter().zip(plain).map(|(r, p)| r / p).collect();
        let (p25, ratio, p75) = quartiles(ratios);
        println!(
            "{:<12} {:>11.2} µs {:>11.2} µs {:>12.4}x [{p25:.4}, {p75:.4}]",
            ROWS[pair].0,
            quartiles(plain.clone()).1 * 1e6,
            quartiles(recorded.clone()).1 * 1e6,
            ratio,
        );
    }
}

/// A route of namespace `namespace` on `store` whose entry is stored and hit once.
async fn warmed_route(store: Arc<dyn Store>, namespace: &str) -> Cache<Handler> {
    let layer = CacheLayer::new(store, KeyFactory::new("monps", "bench-metrics", "v1"));
    let policy = Policy::new(namespace)
        .ttl(Duration::from_secs(3600))
        .entity(Entity::path_segment(1).prefix("m_"));
    let mut route = ServiceBuilder::new()
        .layer(layer.policy(policy))
        .service(Handler {
            body: Bytes::from(format!("{{\"markets\":\"{}\"}}", "x".repeat(1024 - 14))),
        });
    hit(&mut route).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while layer.stats().writes == 0 {
        assert!(
            Instant::now() < deadline,
            "no write-back: {:?}",
            layer.stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    hit(&mut route).await;
    assert_eq!(layer.stats().hits, 1, "{:?}", layer.stats());
    route
}

/// One `GET /matches/1/markets`, its body read to the end.
async fn hit(route: &mut Cache<Handler>) -> Bytes {
    let request = Request::get("/matches/1/markets")
        .body(Full::new(Bytes::new()))
        .expect("a request");
    let ready = ServiceExt::<Request<Full<Bytes>>>::ready(route).await;
    let Ok(response) = ready.expect("ready").call(request).await;
    let Ok(body) = response.into_body().collect().await;
    body.to_bytes()
}

/// Whether this is a measuring run (`cargo bench`), not criterion's test mode.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list")
}

criterion_group!(benches, metrics);
criterion_main!(benches);
