//! Freshness under control: refresh-ahead keeps a hot key fresh, and the hot-key sketch names
//! the entities that take the hits. Standalone and cluster. (Entries must come close to their
//! TTL here, so the refresh-ahead test paces its requests in time.)

use crate::app::*;
use axum::{routing::get, Router};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        Arc,
    },
    time::{Duration, Instant},
};
use tower_redis_cache::{CacheLayer, Entity, Policy};

const TTL: Duration = Duration::from_secs(2);
/// How long the handler takes: what each entry records, and what refresh-ahead weighs by.
const HANDLER: Duration = Duration::from_millis(50);

/// `GET /scores/{id}`, whose handler takes [`HANDLER`] and answers its run number.
fn scores_app(layer: &CacheLayer, runs: &Runs, policy: Policy) -> Router {
    let runs = runs.clone();
    let handler = move || {
        let run = runs.bump();
        async move {
            tokio::time::sleep(HANDLER).await;
            format!("run={run}")
        }
    };
    Router::new().route(
        "/scores/{id}",
        get(handler).route_layer(layer.policy(policy)),
    )
}

/// Requests one key every 10 ms for three TTLs after a warm-up; returns the misses among
/// them and the handler runs they caused.
async fn steady_load(layer: &CacheLayer, policy: Policy) -> (u64, usize) {
    let runs = Runs::default();
    let app = scores_app(layer, &runs, policy);
    let first = send(&app, get_req("/scores/1")).await;
    assert!(first.is_stored(), "{}", first.cache_status());
    wait_writes(layer, 1).await;
    let before = layer.stats();
    let runs_before = runs.get();
    let until = Instant::now() + TTL * 3;
    while Instant::now() < until {
        let reply = send(&app, get_req("/scores/1")).await;
        assert!(reply.text().starts_with("run="), "{reply:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let misses = layer.stats().misses - before.misses;
    (misses, runs.get() - runs_before)
}

redis_test!(
    refresh_ahead_keeps_a_hot_key_fresh_and_without_it_the_key_expires,
    |redis| async move {
        let layer = cache(&redis).await;
        let policy = || {
            Policy::new("scores")
                .entity(Entity::path_segment(1))
                .ttl(TTL)
        };
        // β = 5: a hit with r left refreshes with chance exp(-r / 250 ms), so with a hit
        // every 10 ms a refresh starts most likely some 700 ms before expiry, in time even
        // when a loaded machine spaces the hits out.
        let (misses, runs) = steady_load(&layer, policy().refresh_ahead(5.0)).await;
        assert_eq!(misses, 0, "every request after warm-up was a fresh hit");
        assert!(
            (2..=10).contains(&runs),
            "a refresh or two per TTL over three TTLs, not one per hit: {runs}"
        );

        let layer = cache(&redis).await;
        let (misses, _) = steady_load(
            &layer,
            Policy::new("plain")
                .entity(Entity::path_segment(1))
                .ttl(TTL),
        )
        .await;
        assert!(
            misses >= 2,
            "without refresh-ahead the key expires into misses: {misses}"
        );
    }
);

redis_test!(
    the_hot_key_sketch_names_the_hot_entities_of_a_zipf_load,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = scores_app(
            &layer,
            &runs,
            Policy::new("scores").entity(Entity::path_segment(1)),
        );
        // Entity i takes 3000 / (i + 1) requests (Zipf, s = 1), interleaved: 8 800 hits.
        let counts: Vec<usize> = (0..10).map(|i| 3000 / (i + 1)).collect();
        for i in 0..counts.len() {
            send(&app, get_req(&format!("/scores/{i}"))).await;
        }
        wait_writes(&layer, counts.len() as u64).await;
        let done = Arc::new(AtomicUsize::new(0));
        for round in 0..counts[0] {
            for (i, &n) in counts.iter().enumerate() {
                // Spread entity i's requests evenly over the rounds.
                if round * n / counts[0] != (round + 1) * n / counts[0] {
                    let reply = send(&app, get_req(&format!("/scores/{i}"))).await;
                    assert!(reply.is_hit(), "{}", reply.cache_status());
                    done.fetch_add(1, SeqCst);
                }
            }
        }
        let hot = layer.hot_keys(3);
        let names: Vec<(&str, &str)> = hot
            .iter()
            .map(|k| (k.namespace.as_str(), k.entity.as_str()))
            .collect();
        assert_eq!(
            names,
            [("scores", "0"), ("scores", "1"), ("scores", "2")],
            "{hot:?}"
        );
        let total = done.load(SeqCst) as f64;
        let share = hot[0].hits as f64 / total;
        assert!(
            (0.25..0.45).contains(&share),
            "entity 0 takes a third of the hits; the sketch says {share:.2}"
        );
        assert!(layer.hot_keys(1000).len() <= 64, "bounded");
    }
);
