//! Coalescing under a cold Zipf workload: how many times a 150 ms handler runs for how many
//! distinct keys, with coalescing on (the default) and off, in alternating rounds against a
//! private `redis-server` (flushed before each round).
//!
//! ```text
//! cargo bench --bench coalescing
//! ```
//!
//! Each round serves an axum app on a loopback port (`GET /items/{id}`, entity = the id, TTL
//! 10 min) and drives it for 5 s from 64 concurrent connections (hyper's client), each request
//! for a key drawn from a Zipf(1.1) distribution over 1 000 keys. Prints a Markdown table:
//! requests, distinct keys requested, handler runs, and runs per distinct key (1.00 is
//! perfect: every key's handler ran once however many requests came for it while it was cold).

#[path = "../tests/it/servers/mod.rs"]
mod servers;

use axum::{extract::Path, routing::get, Router};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use servers::RedisServer;
use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use tower_redis_cache::{CacheLayer, Entity, KeyFactory, Policy, RedisStore};

const KEYS: usize = 1000;
const ZIPF: f64 = 1.1;
const CONCURRENCY: usize = 64;
const DURATION: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let redis = RedisServer::start();
    let cdf = zipf_cdf();
    let mut rows = Vec::new();
    for round in 0..ROUNDS {
        for coalescing in [true, false] {
            redis.flushall();
            let row = runtime.block_on(run(&redis.url(), coalescing, &cdf, round as u64));
            eprintln!("round {round}, coalescing {coalescing}: {row:?}");
            rows.push((coalescing, row));
        }
    }
    println!("| coalescing | requests | distinct keys | handler runs | runs per distinct key |");
    println!("|---|---|---|---|---|");
    for (coalescing, (requests, distinct, runs)) in rows {
        let on = if coalescing { "on" } else { "off" };
        let ratio = runs as f64 / distinct as f64;
        println!("| {on} | {requests} | {distinct} | {runs} | {ratio:.2} |");
    }
}

/// One round: (requests, distinct keys requested, handler runs).
async fn run(url: &str, coalescing: bool, cdf: &[f64], seed: u64) -> (u64, usize, u64) {
    let store = RedisStore::connect(url).await.expect("a store");
    let layer = CacheLayer::builder(store, KeyFactory::new("bench", "zipf", "v1"))
        .coalescing(coalescing)
        .build()
        .expect("a layer");
    let runs = Arc::new(AtomicU64::new(0));
    let handler = {
        let runs = runs.clone();
        move |Path(id): Path<String>| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(150)).await;
                format!("item {id}")
            }
        }
    };
    let policy = Policy::new("items")
        .entity(Entity::path_segment(1))
        .ttl(Duration::from_secs(600));
    let app = Router::new().route(
        "/items/{id}",
        get(handler).route_layer(layer.policy(policy)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let requested = Arc::new(Mutex::new(HashSet::new()));
    let requests = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + DURATION;
    let workers: Vec<_> = (0..CONCURRENCY as u64)
        .map(|w| {
            let (client, cdf, requested, requests) = (
                client.clone(),
                cdf.to_vec(),
                requested.clone(),
                requests.clone(),
            );
            tokio::spawn(async move {
                let mut rng = ((seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ (w + 1);
                while Instant::now() < end {
                    let key = sample(&cdf, &mut rng);
                    requested.lock().unwrap().insert(key);
                    let uri = format!("http://{addr}/items/{key}").parse().unwrap();
                    let response = client.get(uri).await.expect("a response");
                    assert!(response.status().is_success());
                    response.into_body().collect().await.expect("a body");
                    requests.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    server.abort();
    let distinct = requested.lock().unwrap().len();
    (requests.load(Relaxed), distinct, runs.load(Relaxed))
}

/// The cumulative Zipf distribution over `KEYS` ranks.
fn zipf_cdf() -> Vec<f64> {
    let weights: Vec<f64> = (1..=KEYS).map(|k| 1.0 / (k as f64).powf(ZIPF)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

/// A key drawn from `cdf` (xorshift64*).
fn sample(cdf: &[f64], state: &mut u64) -> usize {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let x = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
    cdf.partition_point(|&p| p < x).min(cdf.len() - 1)
}
