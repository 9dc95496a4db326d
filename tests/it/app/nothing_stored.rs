//! [`assert_nothing_stored`]: proof that nothing a test sent was stored, nor ever will be, by a
//! sentinel route whose write must wait for every earlier one.

use super::{
    layer::ALL_KEYS,
    layer::PREFIX,
    send::{fwd, get_req, send},
    wait::{eventually, wait_writes},
};
use crate::servers::Redis;
use axum::{routing::get, Router};
use tower_redis_cache::{CacheLayer, Entity, Policy};

/// The key of the sentinel route added by [`with_sentinel`].
pub fn sentinel_key() -> String {
    format!("{PREFIX}sentinel:{{_}}:default")
}

/// Adds `GET /sentinel`, a route whose response is always stored, to `app`.
pub fn with_sentinel(app: Router, layer: &CacheLayer) -> Router {
    app.route(
        "/sentinel",
        get(|| async { "sentinel" })
            .route_layer(layer.policy(Policy::new("sentinel").entity(Entity::none()))),
    )
}

/// Proves that nothing the test sent before was stored, nor ever will be: needs a layer from
/// [`cache_one_write`](super::cache_one_write) with [`with_sentinel`], and no entry written
/// before.
///
/// A recorded response holds the layer's single write permit until its write has finished. So
/// the sentinel gets the permit (its `Cache-Status` says `stored`) only if every earlier write
/// is either abandoned or done; and once the sentinel's own entry is in Redis, it must be the
/// only key and the only write.
pub async fn assert_nothing_stored(app: &Router, layer: &CacheLayer, redis: &Redis) {
    let reply = send(app, get_req("/sentinel")).await;
    assert_eq!(
        reply.cache_status(),
        fwd("uri-miss; stored"),
        "the sentinel could not take the write permit: a write of an earlier response is pending"
    );
    let key = sentinel_key();
    eventually("the sentinel's entry in Redis", || {
        redis.get(&key).is_some()
    })
    .await;
    wait_writes(layer, 1).await;
    assert_eq!(
        redis.entry_keys(ALL_KEYS),
        vec![key],
        "only the sentinel may have been stored"
    );
    let stats = layer.stats();
    assert_eq!(
        (stats.writes_dropped, stats.write_errors),
        (0, 0),
        "{stats:?}"
    );
}
