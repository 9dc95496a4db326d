//! A live slot migration (the `CLUSTER SETSLOT` / `MIGRATE` sequence `redis-cli --cluster
//! reshard` runs), stopped half-way with an entity's entries on the importing node and its
//! index still on the migrating one: hits go on (the lookup follows `ASK`), an invalidation
//! whose keys are split fails retryably instead of dropping half, and once the migration ends it
//! drops every entry, which is never served again. The same with the lookups through a near
//! cache.

use crate::app::*;
use crate::servers::cluster::{key_slot, node_for_slot, RedisCluster};
use axum::{extract::Path, routing::get, Router};
use std::time::{Duration, Instant};
use tower_redis_cache::{CacheLayer, Entity, NearCache, Policy};

/// `GET /items/{variant}`: five variants of one entity, `r_1`, each its own entry.
fn app(layer: &CacheLayer, runs: &Runs) -> Router {
    let runs = runs.clone();
    Router::new().route(
        "/items/{variant}",
        get(move |Path(variant): Path<String>| {
            let runs = runs.clone();
            async move { format!("variant {variant} run {}", runs.bump()) }
        })
        .route_layer(
            layer.policy(
                Policy::new("items")
                    .entity(Entity::from_fn(|_| Some("r_1".into())))
                    .vary_query(["v"]),
            ),
        ),
    )
}

fn path(variant: usize) -> String {
    format!("/items/{variant}?v={variant}")
}

/// The id `CLUSTER MYID` gives.
fn id(node: &crate::servers::RedisServer) -> String {
    node.command(&["CLUSTER", "MYID"])
}

/// The keys of `slot` on `node`.
fn keys_in_slot(node: &crate::servers::RedisServer, slot: u16) -> Vec<String> {
    let reply = node.query(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"]);
    reply.text().lines().map(str::to_owned).collect()
}

/// `MIGRATE`s `keys` from `from` to `to`.
fn migrate(from: &crate::servers::RedisServer, to: &crate::servers::RedisServer, keys: &[String]) {
    let port = to.port().to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(from.command(&args), "OK", "MIGRATE {keys:?}");
}

/// A cache on `redis`, its lookups through a near cache when `near`.
async fn layer(redis: &Redis, near: bool) -> CacheLayer {
    if !near {
        return cache(redis).await;
    }
    let near = NearCache::builder(connect(redis).await).build().unwrap();
    eventually("client tracking on", || near.stats().tracking).await;
    CacheLayer::builder(near, key_factory())
        .lookup_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[test]
fn an_entity_stays_correct_through_a_live_slot_migration() {
    live_migration(false);
}

/// The near cache reads on fred's tracking connection, which does not follow `ASK` safely:
/// the slot's keys are read through the store while it migrates, and no lookup waits.
#[test]
fn a_near_cache_stays_correct_through_a_live_slot_migration() {
    live_migration(true);
}

/// The migration, with lookups through a near cache when `near`.
fn live_migration(near: bool) {
    let cluster = RedisCluster::builder().start();
    run(Redis::Cluster(cluster), move |redis| async move {
        let layer = layer(&redis, near).await;
        let app = app(&layer, &Runs::default());
        for variant in 0..5 {
            send(&app, get_req(&path(variant))).await;
        }
        wait_writes(&layer, 5).await;
        let Redis::Cluster(cluster) = &redis else {
            unreachable!()
        };
        let slot = key_slot("{r_1}");
        let source = &cluster.nodes()[node_for_slot(slot)];
        let target = &cluster.nodes()[(node_for_slot(slot) + 1) % 3];
        let slot_arg = slot.to_string();

        // The migration starts; the entries move, the index, leases and fences stay behind.
        let importing = ["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING"];
        assert_eq!(
            target.command(&[&importing[..], &[&id(source)]].concat()),
            "OK"
        );
        let migrating = ["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING"];
        assert_eq!(
            source.command(&[&migrating[..], &[&id(target)]].concat()),
            "OK"
        );
        let keys = keys_in_slot(source, slot);
        let (entries, rest): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|key| is_entry_key(key));
        assert_eq!(entries.len(), 5, "{entries:?}");
        migrate(source, target, &entries);

        // Every variant still hits, at once: the source answers ASK, the lookup follows it.
        for variant in 0..5 {
            let started = Instant::now();
            let reply = send(&app, get_req(&path(variant))).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "variant {variant} waited {:?}: {reply:?}",
                started.elapsed()
            );
            assert!(reply.is_hit(), "variant {variant}: {reply:?}");
            assert_eq!(
                reply.text(),
                format!("variant {variant} run {}", variant + 1)
            );
        }

        // The invalidation's keys are split between the nodes: it is refused (TRYAGAIN),
        // retried for a while, then fails retryably, having served nothing stale.
        let started = Instant::now();
        let error = layer.invalidator().entity("r_1").await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
        eprintln!(
            "invalidation during the migration: {:?} after {:?} ({error})",
            error.kind(),
            started.elapsed()
        );

        // The migration ends.
        migrate(source, target, &rest);
        let node = ["CLUSTER", "SETSLOT", &slot_arg, "NODE"];
        for master in cluster.nodes() {
            assert_eq!(master.command(&[&node[..], &[&id(target)]].concat()), "OK");
        }

        // Retried (the caller's part, as the error said), the invalidation drops every entry.
        let deadline = Instant::now() + Duration::from_secs(20);
        let dropped = loop {
            match layer.invalidator().entity("r_1").await {
                Ok(dropped) => break dropped,
                Err(error) => {
                    assert!(error.is_retryable(), "{error}");
                    assert!(Instant::now() < deadline, "{error}");
                }
            }
        };
        assert_eq!(dropped, 5);
        for variant in 0..5 {
            let reply = send(&app, get_req(&path(variant))).await;
            assert!(
                !reply.is_hit(),
                "variant {variant} served after its invalidation"
            );
            assert_eq!(reply.status, axum::http::StatusCode::OK);
        }
    });
}
