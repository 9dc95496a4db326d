//! Stale serving (RFC 5861): a stale entry within the route's stale-while-revalidate window is
//! served at once while one background refresh renews it; within the stale-if-error window it
//! is served instead of a 5xx; Redis keeps entries for the TTL plus the longest window.
//! (Entries must age past their TTL here, so these tests wait for time to pass.)

use crate::app::*;
use axum::{http::StatusCode, response::IntoResponse, routing::get, Router};
use futures_util::future::join_all;
use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};
use tokio::sync::Semaphore;
use tower_redis_cache::{CacheLayer, Entity, Policy};

const TTL: Duration = Duration::from_millis(300);

/// What the handler serves: a version, or a 500 while `failing`; it waits at `gate`.
#[derive(Clone)]
struct Origin {
    version: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    runs: Runs,
    gate: Arc<Semaphore>,
}

impl Origin {
    fn new() -> Self {
        Self {
            version: Arc::new(AtomicUsize::new(1)),
            failing: Arc::new(AtomicBool::new(false)),
            runs: Runs::default(),
            gate: Arc::new(Semaphore::new(1 << 20)),
        }
    }
}

fn app(layer: &CacheLayer, origin: &Origin, policy: Policy) -> Router {
    let origin = origin.clone();
    let handler = move || {
        let origin = origin.clone();
        async move {
            origin.runs.bump();
            let _permit = origin.gate.acquire().await.expect("gate");
            if origin.failing.load(SeqCst) {
                return (StatusCode::INTERNAL_SERVER_ERROR, "origin down").into_response();
            }
            format!("v{}", origin.version.load(SeqCst)).into_response()
        }
    };
    let policy = policy.entity(Entity::none()).ttl(TTL);
    Router::new().route("/s", get(handler).route_layer(layer.policy(policy)))
}

/// Stores the current version and waits until it is past its TTL.
async fn stored_then_stale(app: &Router, layer: &CacheLayer) {
    let before = layer.stats().writes;
    assert_eq!(send(app, get_req("/s")).await.text(), "v1");
    wait_writes(layer, before + 1).await;
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
}

redis_test!(
    a_stale_entry_is_served_at_once_and_refreshed_once,
    |redis| async move {
        let layer = cache(&redis).await;
        let origin = Origin::new();
        let policy = Policy::new("swr").stale_while_revalidate(Duration::from_secs(30));
        let app = app(&layer, &origin, policy);
        stored_then_stale(&app, &layer).await;
        let key = format!("{PREFIX}swr:{{_}}:default");
        let pttl = redis.ttl_ms(&key);
        assert!(
            pttl > 20_000,
            "Redis keeps it for TTL + window: PTTL {pttl}"
        );

        origin.version.store(2, SeqCst);
        let gate = origin.gate.acquire_many(1 << 20).await.unwrap();
        // Ten requests while the refresh is held: all served the stale entry at once.
        let replies = join_all((0..10).map(|_| send(&app, get_req("/s")))).await;
        for reply in &replies {
            assert_eq!(reply.text(), "v1", "{reply:?}");
            let status = reply.cache_status();
            assert!(
                status.starts_with(&format!("{NAME}; hit; ttl=-"))
                    && status.ends_with("; detail=stale-while-revalidate"),
                "{status}"
            );
        }
        eventually("the refresh running", || origin.runs.get() == 2).await;
        drop(gate);
        eventually("the refreshed entry stored", || layer.stats().writes == 2).await;
        let fresh = send(&app, get_req("/s")).await;
        assert_eq!(fresh.text(), "v2");
        assert!(fresh
            .cache_status()
            .starts_with(&format!("{NAME}; hit; ttl=")));
        assert!(!fresh.cache_status().contains("ttl=-"), "{fresh:?}");
        assert_eq!(origin.runs.get(), 2, "one refresh for ten stale hits");
        assert_eq!(layer.stats().stale, 10);
    }
);

redis_test!(
    a_stale_entry_is_served_instead_of_a_server_error,
    |redis| async move {
        let layer = cache(&redis).await;
        let origin = Origin::new();
        let policy = Policy::new("sie").stale_if_error(Duration::from_secs(30));
        let app = app(&layer, &origin, policy);
        stored_then_stale(&app, &layer).await;

        origin.failing.store(true, SeqCst);
        let reply = send(&app, get_req("/s")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), "v1", "the stale entry, not the 500");
        let status = reply.cache_status();
        assert!(
            status.starts_with(&format!("{NAME}; hit; ttl=-"))
                && status.ends_with("; detail=stale-if-error"),
            "{status}"
        );
        assert_eq!(origin.runs.get(), 2, "the handler was asked first");

        // Once the origin answers again, its fresh response replaces the stale entry.
        origin.failing.store(false, SeqCst);
        origin.version.store(2, SeqCst);
        let reply = send(&app, get_req("/s")).await;
        assert_eq!(reply.text(), "v2");
        assert_eq!(reply.cache_status(), fwd("stale; stored"));
        eventually("stored", || layer.stats().writes == 2).await;
        assert_eq!(send(&app, get_req("/s")).await.text(), "v2");
    }
);

redis_test!(
    past_every_window_the_error_reaches_the_client,
    |redis| async move {
        let layer = cache(&redis).await;
        let origin = Origin::new();
        let policy = Policy::new("short").stale_if_error(Duration::from_millis(100));
        let app = app(&layer, &origin, policy);
        stored_then_stale(&app, &layer).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        origin.failing.store(true, SeqCst);
        let reply = send(&app, get_req("/s")).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.text(), "origin down");
    }
);

redis_test!(
    freshness_can_come_from_the_responses_cache_control,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let handler = |cache_control: &'static str| {
            let runs = runs.clone();
            move || {
                let runs = runs.clone();
                async move {
                    let run = runs.bump();
                    ([("cache-control", cache_control)], format!("run {run}")).into_response()
                }
            }
        };
        let policy = |ns: &str| {
            layer.policy(
                Policy::new(ns)
                    .entity(Entity::none())
                    .ttl(Duration::from_secs(60))
                    .freshness_from_response(true),
            )
        };
        let app = Router::new()
            .route(
                "/short",
                get(handler("max-age=2, stale-while-revalidate=30")).route_layer(policy("short")),
            )
            .route(
                "/zero",
                get(handler("max-age=0")).route_layer(policy("zero")),
            )
            .route(
                "/long",
                get(handler("max-age=86400")).route_layer(policy("long")),
            );
        for path in ["/short", "/zero", "/long"] {
            send(&app, get_req(path)).await;
        }
        eventually("the write-backs done", || {
            layer.stats().writes_in_flight == 0
        })
        .await;
        // TTL 2 s and 30 s stale: Redis keeps it for 32 s, hits say ttl=1 or 2.
        let pttl = redis.ttl_ms(&format!("{PREFIX}short:{{_}}:default"));
        assert!((30_000..=32_000).contains(&pttl), "PTTL {pttl}");
        let hit = send(&app, get_req("/short")).await;
        let status = hit.cache_status();
        assert!(
            status == format!("{NAME}; hit; ttl=1") || status == format!("{NAME}; hit; ttl=2"),
            "{hit:?}"
        );
        // max-age=0: not stored; max-age beyond the route's TTL: capped at 60 s.
        assert_eq!(redis.ttl_ms(&format!("{PREFIX}zero:{{_}}:default")), -2);
        let long = redis.ttl_ms(&format!("{PREFIX}long:{{_}}:default"));
        assert!((50_000..=60_000).contains(&long), "PTTL {long}");
    }
);
