//! A hot key under steady load, with refresh-ahead on and off: does it ever turn into a miss?
//!
//! ```text
//! cargo bench --bench refresh_ahead
//! REFRESH_SECS=30 cargo bench --bench refresh_ahead
//! ```
//!
//! Each run serves an axum app on a loopback port (`GET /items/{id}`, TTL 2 s, a handler that
//! takes 100 ms) over a private `redis-server`, and drives one key from 32 concurrent
//! connections (hyper's client) for `REFRESH_SECS` seconds (default 30) after a 1 s warm-up:
//! with `Policy::refresh_ahead(1.0)` (XFetch's default β), with `0.5`, and without. For each run
//! it prints the requests, the misses and stale answers among them (by `Cache-Status`), the
//! handler runs, and the runs per TTL that passed (1.00 is one recomputation per expiry).
//! Without `--bench` (as in `cargo test --benches`) it does nothing.

#[path = "../tests/it/servers/mod.rs"]
mod servers;

use axum::{routing::get, Router};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use servers::RedisServer;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};
use tower_redis_cache::{CacheLayer, Entity, KeyFactory, Policy, RedisStore};

const TTL: Duration = Duration::from_secs(2);
const HANDLER: Duration = Duration::from_millis(100);
const CONCURRENCY: usize = 32;
const WARMUP: Duration = Duration::from_secs(1);

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs: u64 = std::env::var("REFRESH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let redis = RedisServer::start();
    println!("| refresh-ahead | requests | misses | stale answers | handler runs | runs per TTL |");
    println!("|---|---:|---:|---:|---:|---:|");
    for beta in [Some(1.0), Some(0.5), None] {
        redis.flushall();
        let run = runtime.block_on(run(&redis.url(), beta, Duration::from_secs(secs)));
        let per_ttl = run.runs as f64 / (secs as f64 / TTL.as_secs_f64());
        let label = beta.map_or("off".to_owned(), |b| format!("β = {b}"));
        println!(
            "| {label} | {} | {} | {} | {} | {per_ttl:.2} |",
            run.requests, run.misses, run.stale, run.runs
        );
    }
}

#[derive(Default)]
struct Run {
    requests: u64,
    misses: u64,
    stale: u64,
    runs: u64,
}

async fn run(url: &str, beta: Option<f64>, duration: Duration) -> Run {
    let store = RedisStore::connect(url).await.expect("a store");
    let layer = CacheLayer::new(store, KeyFactory::new("bench", "refresh", "v1"));
    let runs = Arc::new(AtomicU64::new(0));
    let handler = {
        let runs = runs.clone();
        move || {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Relaxed);
                tokio::time::sleep(HANDLER).await;
                "a hot item"
            }
        }
    };
    let mut policy = Policy::new("items")
        .entity(Entity::path_segment(1))
        .ttl(TTL);
    if let Some(beta) = beta {
        policy = policy.refresh_ahead(beta);
    }
    let app = Router::new().route(
        "/items/{id}",
        get(handler).route_layer(layer.policy(policy)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let counted = Instant::now() + WARMUP;
    let end = counted + duration;
    let (requests, misses, stale) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, requests, misses, stale) = (
                client.clone(),
                requests.clone(),
                misses.clone(),
                stale.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < end {
                    let uri = format!("http://{addr}/items/1").parse().unwrap();
                    let response = client.get(uri).await.expect("a response");
                    assert!(response.status().is_success());
                    let status = response
                        .headers()
                        .get("cache-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    response.into_body().collect().await.expect("a body");
                    if Instant::now() < counted {
                        continue;
                    }
                    requests.fetch_add(1, Relaxed);
                    if !status.contains("; hit") {
                        misses.fetch_add(1, Relaxed);
                    } else if status.contains("stale") {
                        stale.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep_until(counted.into()).await;
    let runs_at_start = runs.load(Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    server.abort();
    Run {
        requests: requests.load(Relaxed),
        misses: misses.load(Relaxed),
        stale: stale.load(Relaxed),
        runs: runs.load(Relaxed) - runs_at_start,
    }
}
