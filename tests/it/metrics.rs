//! What the cache reports through the `metrics` facade, read back with `metrics-util`'s
//! debugging recorder after a known request sequence through a real axum app on real Redis.
//!
//! Each test installs its recorder for its own thread only (`metrics::with_local_recorder`) and
//! runs on a current-thread runtime, so the cache, fred and the write-back tasks all report to
//! it and no other test's figures mix in.

use crate::app::*;
use axum::{
    body::Body,
    http::{header, Request},
    routing::get,
    Router,
};
use metrics_util::{
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
    MetricKind,
};
use std::{collections::BTreeMap, future::Future, time::Duration};
use tower_redis_cache::{CacheLayer, Entity, Policy};

/// Runs `test` with a debugging recorder installed on this thread (the test may read it), then
/// reads it. Each read gives what changed since the previous one.
fn recorded<Fut: Future<Output = ()>>(test: impl FnOnce(Snapshotter) -> Fut) -> Metrics {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            tokio::time::timeout(TEST_TIMEOUT, test(snapshotter.clone()))
                .await
                .expect("test hung");
        });
    });
    Metrics::read(&snapshotter)
}

/// A snapshot by `name{label=value,...}` (labels sorted).
struct Metrics(BTreeMap<String, (MetricKind, DebugValue)>);

impl Metrics {
    fn read(snapshotter: &Snapshotter) -> Self {
        let metrics = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = key.into_parts();
                let mut labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                labels.sort();
                let name = format!("{}{{{}}}", key.name(), labels.join(","));
                (name, (kind, value))
            });
        Self(metrics.collect())
    }

    fn counter(&self, name: &str) -> u64 {
        match self.0.get(name) {
            Some((MetricKind::Counter, DebugValue::Counter(n))) => *n,
            other => panic!("counter {name}: {other:?}; recorded: {:#?}", self.names()),
        }
    }

    fn gauge(&self, name: &str) -> f64 {
        match self.0.get(name) {
            Some((MetricKind::Gauge, DebugValue::Gauge(n))) => n.into_inner(),
            other => panic!("gauge {name}: {other:?}; recorded: {:#?}", self.names()),
        }
    }

    fn histogram(&self, name: &str) -> Vec<f64> {
        match self.0.get(name) {
            Some((MetricKind::Histogram, DebugValue::Histogram(values))) => {
                values.iter().map(|v| v.into_inner()).collect()
            }
            other => panic!("histogram {name}: {other:?}; recorded: {:#?}", self.names()),
        }
    }

    fn names(&self) -> Vec<&String> {
        self.0.keys().collect()
    }

    /// The sum of the counters whose name starts with `prefix`.
    fn sum(&self, prefix: &str) -> u64 {
        let counters = self.0.iter().filter(|(name, _)| name.starts_with(prefix));
        counters
            .map(|(_, value)| match value {
                (_, DebugValue::Counter(n)) => *n,
                _ => 0,
            })
            .sum()
    }
}

/// `GET /matches/{id}/markets` cached in namespace `markets`.
fn markets_app(layer: &CacheLayer, runs: &Runs) -> Router {
    let runs = runs.clone();
    Router::new().route(
        "/matches/{id}/markets",
        get(move || {
            let runs = runs.clone();
            async move { format!("markets run={}", runs.bump()) }
        })
        .route_layer(
            layer.policy(
                Policy::new("markets")
                    .entity(Entity::path_segment(1).prefix("m_"))
                    .ttl(Duration::from_secs(60)),
            ),
        ),
    )
}

#[test]
fn counts_and_labels_follow_the_requests() {
    let mut layer_stats = None;
    let metrics = recorded(|_| async {
        let redis = Redis::standalone();
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = markets_app(&layer, &runs);

        // A miss (stored), two hits, two bypasses, an invalidation, a miss again (stored).
        send(&app, get_req("/matches/1/markets")).await;
        wait_writes(&layer, 1).await;
        send(&app, get_req("/matches/1/markets")).await;
        send(&app, get_req("/matches/1/markets")).await;
        let with_cookie = Request::get("/matches/1/markets")
            .header(header::COOKIE, "session=1")
            .body(Body::empty())
            .unwrap();
        send(&app, with_cookie).await;
        send(&app, get_req("/matches/1/markets?utm=x")).await;
        let dropped = layer.invalidator().entity("m_1").await.unwrap();
        assert_eq!(dropped, 1);
        // A request within a millisecond of an invalidation may predate it (the fences'
        // documented slack): its write-back is refused. This one begins well after.
        tokio::time::sleep(Duration::from_millis(5)).await;
        send(&app, get_req("/matches/1/markets")).await;
        wait_writes(&layer, 2).await;
        assert_eq!(runs.get(), 4, "2 misses and 2 bypasses ran the handler");
        // The gauges are back to zero once the write-backs have ended.
        eventually("write-backs to end", || layer.stats().writes_in_flight == 0).await;
        layer_stats = Some(layer.stats());
    });
    let ns = "namespace=markets";
    assert_eq!(
        metrics.counter(&format!("tower_redis_cache_hits_total{{{ns}}}")),
        2
    );
    assert_eq!(
        metrics.counter(&format!(
            "tower_redis_cache_misses_total{{{ns},reason=absent}}"
        )),
        2
    );
    for reason in [
        "lookup-error",
        "circuit-open",
        "bad-entry",
        "variant",
        "expired",
    ] {
        let name = format!("tower_redis_cache_misses_total{{{ns},reason={reason}}}");
        assert_eq!(metrics.counter(&name), 0, "{name}");
    }
    for reason in ["credentials", "unkeyed-query"] {
        let name = format!("tower_redis_cache_bypasses_total{{{ns},reason={reason}}}");
        assert_eq!(metrics.counter(&name), 1, "{name}");
    }
    assert_eq!(metrics.sum("tower_redis_cache_bypasses_total{"), 2);
    let writes = |result: &str| {
        metrics.counter(&format!(
            "tower_redis_cache_writes_total{{{ns},result={result}}}"
        ))
    };
    assert_eq!(
        (
            writes("stored"),
            writes("dropped"),
            writes("failed"),
            writes("invalidated")
        ),
        (2, 0, 0, 0)
    );
    assert_eq!(
        metrics.counter("tower_redis_cache_invalidations_total{result=ok,scope=entity}"),
        1
    );
    assert_eq!(
        metrics.counter("tower_redis_cache_invalidated_entries_total{scope=entity}"),
        1
    );
    assert_eq!(
        metrics.counter(&format!("tower_redis_cache_coalesced_total{{{ns}}}")),
        0
    );

    // One lookup per keyed request: 2 misses and 2 hits; two entries written.
    let lookups = metrics.histogram(&format!(
        "tower_redis_cache_lookup_duration_seconds{{{ns}}}"
    ));
    assert_eq!(lookups.len(), 4, "{lookups:?}");
    assert!(lookups.iter().all(|&s| s > 0.0 && s < 2.0), "{lookups:?}");
    let sizes = metrics.histogram(&format!("tower_redis_cache_entry_bytes{{{ns}}}"));
    assert_eq!(sizes.len(), 2);
    assert!(
        sizes.iter().all(|&b| b > "markets run=1".len() as f64),
        "an entry holds the body and its head: {sizes:?}"
    );
    let stores = metrics.histogram(&format!("tower_redis_cache_write_duration_seconds{{{ns}}}"));
    assert_eq!(stores.len(), 2);
    assert_eq!(metrics.gauge("tower_redis_cache_writes_in_flight{}"), 0.0);
    assert_eq!(
        metrics.gauge("tower_redis_cache_write_bytes_in_flight{}"),
        0.0
    );

    // The metrics and the stats tell the same story.
    let stats = layer_stats.expect("the test ran");
    assert_eq!(
        (stats.hits, stats.misses, stats.bypasses, stats.writes),
        (2, 2, 2, 2)
    );

    // Labels are bounded: the namespace and fixed reasons, never keys, entities or paths.
    for name in metrics.names() {
        assert!(
            !name.contains("m_1") && !name.contains("/matches") && !name.contains("monps"),
            "{name} leaks a key, entity or path"
        );
    }
}

#[test]
fn an_outage_shows_as_lookup_errors_then_an_open_breaker() {
    let mut while_open = None;
    let slot = &mut while_open;
    let metrics = recorded(|snapshotter| async move {
        let mut redis = Redis::standalone();
        let layer = cache_builder(&redis)
            .await
            .lookup_timeout(Duration::from_millis(200))
            .circuit_breaker(3, Duration::from_secs(60))
            .build()
            .unwrap();
        let app = markets_app(&layer, &Runs::default());
        redis.kill();
        for _ in 0..5 {
            send(&app, get_req("/matches/2/markets")).await;
        }
        let stats = layer.stats();
        assert_eq!(
            (stats.lookup_errors, stats.circuit_open),
            (3, 2),
            "{stats:?}"
        );
        *slot = Some(Metrics::read(&snapshotter));
    });
    // Snapshots are deltas (the debugging recorder swaps each value to zero as it reads it).
    let while_open = while_open.expect("the test ran");
    let miss = |reason: &str| {
        while_open.counter(&format!(
            "tower_redis_cache_misses_total{{namespace=markets,reason={reason}}}"
        ))
    };
    assert_eq!((miss("lookup-error"), miss("circuit-open")), (3, 2));
    assert_eq!(while_open.gauge("tower_redis_cache_breakers_open{}"), 1.0);
    // The layer is gone: its breaker is no longer counted as open.
    assert_eq!(metrics.gauge("tower_redis_cache_breakers_open{}"), -1.0);
}
