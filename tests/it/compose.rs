//! compose.yaml stays true without Docker: a local `redis-server` runs with exactly the arguments
//! of the `redis` service's `command`, the settings DESIGN.md asks for are checked on the live
//! server, and the cache works against it with the password from the URL.

use crate::servers::RedisServer;
use axum::{body::Body, http::Request, routing::get, Router};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tower::ServiceExt;
use tower_redis_cache::{CacheLayer, Entity, KeyFactory, Policy, RedisStore};

#[test]
fn compose_settings_are_applied() {
    let redis = RedisServer::start_compose("compose-pw");
    assert_eq!(redis.config_get("port"), redis.port().to_string());
    assert_eq!(redis.config_get("maxmemory"), "1073741824");
    assert_eq!(redis.config_get("maxmemory-policy"), "allkeys-lfu");
    assert_eq!(redis.config_get("save"), "");
    assert_eq!(redis.config_get("appendonly"), "no");
    assert_eq!(redis.config_get("lazyfree-lazy-eviction"), "yes");
    let denied = redis.query_unauthenticated(&["PING"]);
    assert!(
        denied.error().is_some_and(|e| e.starts_with("NOAUTH")),
        "the compose server must require its password: {denied:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_runs_against_the_compose_server() {
    let redis = RedisServer::start_compose("compose-pw");
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("connect with the URL password");
    let cache = CacheLayer::new(store, KeyFactory::new("monps", "compose", "v1"));
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let app = Router::new().route(
        "/matches/{id}/markets",
        get(move || async move { format!("run {}", counted.fetch_add(1, Ordering::SeqCst) + 1) })
            .route_layer(
                cache.policy(Policy::new("markets").entity(Entity::path_segment(1).prefix("m_"))),
            ),
    );
    let get = || {
        Request::get("/matches/7/markets")
            .body(Body::empty())
            .unwrap()
    };

    let first = app.clone().oneshot(get()).await.unwrap();
    let first = axum::body::to_bytes(first.into_body(), usize::MAX)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.stats().writes == 0 {
        assert!(
            Instant::now() < deadline,
            "write-back never happened: {:?}",
            cache.stats()
        );
        tokio::task::yield_now().await;
    }
    let second = app.oneshot(get()).await.unwrap();
    let status = second.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let second = axum::body::to_bytes(second.into_body(), usize::MAX)
        .await
        .unwrap();

    assert!(status.contains("; hit"), "{status}");
    assert_eq!(first, second);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let keys = redis.keys("monps:compose:v1:markets:*");
    assert_eq!(keys, ["monps:compose:v1:markets:{m_7}:default"]);
    assert!(redis.ttl_ms(&keys[0]) > 0);
}
