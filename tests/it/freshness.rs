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

/// `GET /items/{id}`: answers the current version, after waiting at `gate` (open unless a test
/// closes it).
#[derive(Clone)]
struct Versioned {
    version: Arc<AtomicUsize>,
    runs: Runs,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Versioned {
    fn new() -> Self {
        Self {
            version: Arc::new(AtomicUsize::new(1)),
            runs: Runs::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(1 << 20)),
        }
    }

    fn app(&self, layer: &CacheLayer, policy: Policy) -> Router {
        let origin = self.clone();
        let handler = move || {
            let origin = origin.clone();
            async move {
                origin.runs.bump();
                let version = origin.version.load(SeqCst);
                let _pass = origin.gate.acquire().await.expect("never closed");
                format!("v{version}")
            }
        };
        Router::new().route(
            "/items/{id}",
            get(handler).route_layer(layer.policy(policy)),
        )
    }
}

fn items(stale: Duration) -> Policy {
    Policy::new("items")
        .entity(Entity::path_segment(1))
        .ttl(Duration::from_secs(60))
        .stale_while_revalidate(stale)
}

redis_test!(
    a_soft_purge_serves_stale_once_while_one_refresh_runs,
    |redis| async move {
        let layer = cache(&redis).await;
        let origin = Versioned::new();
        let app = origin.app(&layer, items(Duration::from_secs(60)));
        assert!(send(&app, get_req("/items/1")).await.is_stored());
        wait_writes(&layer, 1).await;
        origin.version.store(2, SeqCst);
        assert_eq!(layer.invalidator().soft().entity("1").await.unwrap(), 1);

        // 200 at once, the handler held: every one gets v1 at once (stale), none waits for
        // the handler, and one refresh runs.
        let held = origin.gate.acquire_many(1 << 20).await.unwrap();
        let replies =
            futures_util::future::join_all((0..200).map(|_| send(&app, get_req("/items/1")))).await;
        drop(held);
        for reply in &replies {
            assert_eq!(reply.text(), "v1", "{}", reply.cache_status());
            assert!(
                reply
                    .cache_status()
                    .contains("detail=stale-while-revalidate"),
                "{}",
                reply.cache_status()
            );
        }
        wait_writes(&layer, 2).await;
        assert_eq!(origin.runs.get(), 2, "the first request and one refresh");
        let fresh = send(&app, get_req("/items/1")).await;
        assert_eq!((fresh.text(), fresh.is_hit()), ("v2", true));
        assert!(
            !fresh.cache_status().contains("stale"),
            "{}",
            fresh.cache_status()
        );
    }
);

redis_test!(
    a_soft_purge_without_a_stale_window_is_a_miss,
    |redis| async move {
        let layer = cache(&redis).await;
        let origin = Versioned::new();
        let app = origin.app(&layer, items(Duration::ZERO));
        assert!(send(&app, get_req("/items/2")).await.is_stored());
        wait_writes(&layer, 1).await;
        origin.version.store(2, SeqCst);
        assert_eq!(layer.invalidator().soft().entity("2").await.unwrap(), 1);
        let reply = send(&app, get_req("/items/2")).await;
        assert_eq!(reply.text(), "v2", "{}", reply.cache_status());
        assert!(!reply.is_hit());
    }
);

redis_test!(
    a_soft_purge_racing_a_write_back_is_not_undone,
    |redis| async move {
        let layer = cache(&redis).await;
        let origin = Versioned::new();
        let app = origin.app(&layer, items(Duration::from_secs(60)));
        // A miss whose handler read v1 and is held before answering.
        let held = origin.gate.acquire_many(1 << 20).await.unwrap();
        let racing = tokio::spawn({
            let app = app.clone();
            async move { send(&app, get_req("/items/3")).await }
        });
        eventually("the racing handler runs", || origin.runs.get() == 1).await;
        origin.version.store(2, SeqCst);
        layer.invalidator().soft().entity("3").await.unwrap();
        drop(held);
        let racing = racing.await.unwrap();
        assert_eq!(racing.text(), "v1");
        eventually("the racing write-back is refused", || {
            layer.stats().writes_invalidated == 1
        })
        .await;
        assert_eq!(layer.stats().writes, 0);
        let next = send(&app, get_req("/items/3")).await;
        assert_eq!(
            (next.text(), next.is_hit()),
            ("v2", false),
            "{}",
            next.cache_status()
        );
    }
);

redis_test!(a_soft_purge_reaches_the_near_cache, |redis| async move {
    let near = tower_redis_cache::NearCache::builder(connect(&redis).await)
        .build()
        .unwrap();
    let layer = CacheLayer::builder(near.clone(), key_factory())
        .lookup_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let origin = Versioned::new();
    let app = origin.app(&layer, items(Duration::from_secs(60)));
    assert!(send(&app, get_req("/items/4")).await.is_stored());
    wait_writes(&layer, 1).await;
    // Reads until one is answered from the near cache (it keeps what Redis answered).
    let near_hits = near.stats().hits;
    for _ in 0..200 {
        assert!(send(&app, get_req("/items/4")).await.is_hit());
        if near.stats().hits > near_hits {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        near.stats().hits > near_hits,
        "the near cache holds the entry"
    );
    origin.version.store(2, SeqCst);
    assert_eq!(layer.invalidator().soft().entity("4").await.unwrap(), 1);
    let held = origin.gate.acquire_many(1 << 20).await.unwrap();
    let reply = send(&app, get_req("/items/4")).await;
    drop(held);
    assert_eq!(reply.text(), "v1");
    assert!(
        reply
            .cache_status()
            .contains("detail=stale-while-revalidate"),
        "the near cache must not keep the entry fresh: {}",
        reply.cache_status()
    );
});
