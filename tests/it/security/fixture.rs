//! What the security tests share: distinctive secrets, a store builder with short timeouts,
//! checks that a connect fails in time and that a text hides every secret, the ACL user, and
//! a cache round trip that proves a store works.

use crate::app::{eventually, get_req, send};
use crate::servers::server::percent_encode;
use crate::servers::{Redis, Reply as RespReply, Topology};
use axum::{extract::Path, http::StatusCode, routing::get, Router};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_redis_cache::{
    store::Store, CacheLayer, Entity, KeyFactory, Policy, RedisStore, RedisStoreBuilder, StoreError,
};

/// The server password: distinctive, so a leak cannot hide behind a common word.
pub const PASSWORD: &str = "Sup3r-Secr3t-Pw";
/// A wrong password, just as distinctive (it must not leak either).
pub const WRONG_PASSWORD: &str = "Wr0ng-Secr3t-Pw";
/// The ACL user and its secret.
pub const ACL_USER: &str = "cacheuser";
pub const ACL_SECRET: &str = "Acl-Us3r-S3cret";
/// A password with characters that must be percent-encoded in a URL.
pub const ODD_PASSWORD: &str = "p@ss:w/rd%Secr3t#?";

/// How long a failing connect may take: its connection timeout plus scheduling slack.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const CONNECT_SLACK: Duration = Duration::from_millis(1500);
/// The overall deadline of a test that runs without `redis_test!` (whose runner has its own).
pub const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `test` with an overall deadline, so a hang fails the test instead of the run.
pub async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .expect("test exceeded its overall deadline");
}

/// A deployment of `topology` whose default user needs [`PASSWORD`].
pub fn with_password(topology: Topology) -> Redis {
    Redis::with_password(topology, PASSWORD)
}

pub fn store_builder(url: &str) -> RedisStoreBuilder {
    RedisStore::builder(url)
        .connection_timeout(CONNECT_TIMEOUT)
        .command_timeout(Duration::from_secs(2))
}

/// Connects with `builder` and expects a failure within the connection timeout (plus slack).
pub async fn connect_fails(builder: RedisStoreBuilder, what: &str) -> StoreError {
    let started = Instant::now();
    let result = tokio::time::timeout(CONNECT_TIMEOUT * 3, builder.connect())
        .await
        .unwrap_or_else(|_| panic!("{what}: connect hung past 3x its connection timeout"));
    let elapsed = started.elapsed();
    let error = match result {
        Ok(store) => panic!("{what}: connect succeeded ({store:?})"),
        Err(error) => error,
    };
    assert!(
        elapsed <= CONNECT_TIMEOUT + CONNECT_SLACK,
        "{what}: failed only after {elapsed:?} ({error})"
    );
    error
}

/// Asserts that none of `secrets` (nor their percent-encoded forms) occurs in `text`.
#[track_caller]
pub fn assert_hides(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        for form in [secret.to_string(), percent_encode(secret)] {
            assert!(
                !text.contains(&form),
                "{what} reveals the secret {form:?}:\n{text}"
            );
        }
    }
}

/// Asserts a connect error reveals no secret in its `Display` or `Debug` form.
#[track_caller]
/// Every error of the chain (`source()` included: a store error keeps fred's) is checked.
pub fn assert_error_hides(error: &(dyn std::error::Error + 'static), secrets: &[&str], what: &str) {
    let mut next = Some(error);
    while let Some(error) = next {
        assert_hides(&error.to_string(), secrets, &format!("{what} (Display)"));
        assert_hides(&format!("{error:?}"), secrets, &format!("{what} (Debug)"));
        next = error.source();
    }
}

/// The app of every round trip: `GET /items/{id}`, cached per id, counting handler runs.
pub fn cached_app(cache: &CacheLayer, runs: Arc<AtomicU64>) -> Router {
    Router::new().route(
        "/items/{id}",
        get(move |Path(id): Path<String>| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Relaxed);
                format!("item {id}")
            }
        })
        .route_layer(cache.policy(Policy::new("items").entity(Entity::path_segment(1)))),
    )
}

/// A layer on `store` with keys `monps:sec:v1:…` and a lookup timeout generous enough for TLS
/// under a loaded test run.
pub fn layer(store: impl Store) -> CacheLayer {
    layer_with_timeout(store, Duration::from_secs(1))
}

pub fn layer_with_timeout(store: impl Store, lookup_timeout: Duration) -> CacheLayer {
    CacheLayer::builder(store, KeyFactory::new("monps", "sec", "v1"))
        .lookup_timeout(lookup_timeout)
        .build()
        .unwrap()
}

/// Miss, write-back, then hit through a [`CacheLayer`] on `store`; the entry lands in `redis`.
pub async fn assert_cache_round_trip(store: RedisStore, redis: &Redis) {
    let cache = layer(store);
    let runs = Arc::new(AtomicU64::new(0));
    let app = cached_app(&cache, runs.clone());

    let first = send(&app, get_req("/items/42")).await;
    assert_eq!(first.status, StatusCode::OK);
    let status = first.cache_status();
    assert!(status.contains("fwd=uri-miss"), "first: {status}");
    assert_eq!(first.text(), "item 42");

    eventually(&format!("a write-back: {:?}", cache.stats()), || {
        let stats = cache.stats();
        stats.writes > 0 || stats.write_errors > 0
    })
    .await;
    let stats = cache.stats();
    assert_eq!(stats.write_errors, 0, "write-back failed: {stats:?}");

    let second = send(&app, get_req("/items/42")).await;
    assert_eq!(second.status, StatusCode::OK);
    let status = second.cache_status();
    assert!(status.contains("; hit"), "second: {status}");
    assert_eq!(second.text(), "item 42");
    assert_eq!(runs.load(Relaxed), 1, "the hit must not run the handler");

    let keys = redis.keys("monps:sec:v1:items:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
}

/// Creates the ACL user on every node with exactly what the store needs: on connect fred sends
/// `AUTH user pw`, `CLIENT ID` and `INFO server` (fred tolerates refusals of the last two, but
/// then logs warnings); the cache sends `GET`, and writes and invalidates by `EVALSHA` (`EVAL`
/// when a server lacks the script) running the commands listed after them (README, "ACL").
/// On a cluster fred also reads the slot map (`CLUSTER SLOTS`).
pub fn create_acl_user(redis: &Redis) {
    let secret = format!(">{ACL_SECRET}");
    let mut args = vec![
        "ACL",
        "SETUSER",
        ACL_USER,
        "reset",
        "on",
        &secret,
        "~monps:*",
        "+get",
        "+set",
        "+del",
        "+evalsha",
        "+eval",
        "+time",
        "+pexpire",
        "+pttl",
        "+hset",
        "+hget",
        "+hdel",
        "+hkeys",
        "+zadd",
        "+zrem",
        "+zrange",
        "+zrangebyscore",
        "+zremrangebyscore",
        "+ping",
        "+client|id",
        "+info",
    ];
    if redis.topology() == Topology::Cluster {
        args.extend(["+cluster|slots", "+cluster|nodes", "+asking", "+wait"]);
    }
    for reply in redis.query_all(&args) {
        assert_eq!(reply, RespReply::Simple("OK".into()), "ACL SETUSER");
    }
}

/// How many `AUTH`s as `user` the deployment refused, from every node's `ACL LOG`.
pub fn refused_auths(redis: &Redis, user: &str) -> usize {
    redis
        .query_all(&["ACL", "LOG"])
        .iter()
        .flat_map(|log| log.as_array().unwrap_or_default().to_vec())
        .filter(|entry| {
            let fields = entry.as_array().unwrap_or_default();
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|pair| pair[0].text() == name)
                    .map(|pair| pair[1].text())
            };
            field("reason").as_deref() == Some("auth") && field("username").as_deref() == Some(user)
        })
        .count()
}

/// Text replies of `CLIENT LIST` from every node, one after the other.
pub fn client_list(redis: &Redis) -> String {
    redis
        .query_all(&["CLIENT", "LIST"])
        .iter()
        .map(RespReply::text)
        .collect::<Vec<_>>()
        .join("\n")
}
