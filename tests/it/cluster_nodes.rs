//! Redis Cluster with a node down: the entities of healthy masters keep hitting while one
//! master is gone, and with replicas caching resumes for every entity once a replica has taken
//! over. (The times printed are quoted in RELIABILITY.md.)

use crate::app::*;
use crate::servers::cluster::{key_slot, node_for_slot, RedisCluster};
use axum::Router;
use std::time::{Duration, Instant};
use tower_redis_cache::CacheLayer;

/// `GET /items/{id}` with entity `t_{id}`.
fn app(layer: &CacheLayer, runs: &Runs) -> Router {
    items_app(layer, runs, "t_")
}

/// One item id per master: `ids[i]`'s entity lives on node `i`.
fn one_id_per_node() -> [String; 3] {
    let mut ids: [Option<String>; 3] = Default::default();
    for i in 0.. {
        let id = i.to_string();
        let node = node_for_slot(key_slot(format!("{{t_{id}}}")));
        ids[node].get_or_insert(id);
        if ids.iter().all(Option::is_some) {
            break;
        }
    }
    ids.map(|id| id.expect("an id"))
}

fn is_hit(reply: &Reply) -> bool {
    reply.cache_status().starts_with(&format!("{NAME}; hit"))
}

/// Stores `/items/{id}` for every id and checks each hits.
async fn fill(app: &Router, layer: &CacheLayer, ids: &[String]) {
    for id in ids {
        send(app, get_req(&format!("/items/{id}"))).await;
    }
    eventually("the write-backs done", || {
        layer.stats().writes_in_flight == 0
    })
    .await;
    for id in ids {
        let reply = send(app, get_req(&format!("/items/{id}"))).await;
        assert!(is_hit(&reply), "{id}: {reply:?}");
    }
}

/// A cache on `redis`, its app, and one id per master, each stored.
async fn filled(redis: &Redis) -> (CacheLayer, Router, [String; 3]) {
    let layer = cache(redis).await;
    let app = app(&layer, &Runs::default());
    let ids = one_id_per_node();
    fill(&app, &layer, &ids).await;
    (layer, app, ids)
}

/// Sends `/items/{id}` until it hits, at most `bound`; how long that took.
async fn until_hit(app: &Router, id: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let reply = send(app, get_req(&format!("/items/{id}"))).await;
        assert_eq!(reply.status, axum::http::StatusCode::OK, "never an error");
        if is_hit(&reply) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{id} not cached again within {bound:?}"
        );
        // Polling: nothing announces that the cluster has healed.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_master_down_fails_only_its_own_slots() {
    let cluster = RedisCluster::builder()
        .arg("--cluster-require-full-coverage")
        .arg("no")
        .start();
    run(Redis::Cluster(cluster), |mut redis| async move {
        let (layer, app, ids) = filled(&redis).await;
        let Redis::Cluster(cluster) = &mut redis else {
            unreachable!()
        };
        cluster.nodes_mut()[0].kill();
        let killed = Instant::now();
        let mut slowest = Duration::ZERO;
        for round in 0..40 {
            for (node, id) in ids.iter().enumerate() {
                let started = Instant::now();
                let reply = send(&app, get_req(&format!("/items/{id}"))).await;
                slowest = slowest.max(started.elapsed());
                assert_eq!(reply.status, axum::http::StatusCode::OK);
                assert!(reply.text().starts_with(&format!("item {id} run")));
                if node == 0 {
                    assert!(!is_hit(&reply), "its master is gone");
                } else {
                    assert!(is_hit(&reply), "round {round}, node {node}: {reply:?}");
                }
            }
        }
        eprintln!(
            "one master of three killed: 80 lookups on the other two all hit; slowest request {slowest:?} over {:?}",
            killed.elapsed()
        );
        assert_eq!(
            layer.stats().circuit_open,
            0,
            "the layer's breaker stayed closed"
        );
        // Invalidation of entities on healthy masters works too.
        assert_eq!(
            layer
                .invalidator()
                .entity(&format!("t_{}", ids[1]))
                .await
                .unwrap(),
            1
        );
        assert!(layer
            .invalidator()
            .entity(&format!("t_{}", ids[0]))
            .await
            .is_err());

        // The master comes back: its entities are cached again.
        cluster.nodes_mut()[0].restart();
        let back = until_hit(&app, &ids[0], Duration::from_secs(20)).await;
        eprintln!("the master restarted: its entity cached again after {back:?}");
    });
}

#[test]
fn with_replicas_caching_resumes_for_every_entity_after_a_failover() {
    let cluster = RedisCluster::builder().replicas().start();
    run(Redis::Cluster(cluster), |mut redis| async move {
        let (layer, app, ids) = filled(&redis).await;
        let Redis::Cluster(cluster) = &mut redis else {
            unreachable!()
        };
        cluster.nodes_mut()[0].kill();
        let killed = Instant::now();
        // The healthy masters' entities hit throughout.
        for id in &ids[1..] {
            assert!(
                is_hit(&send(&app, get_req(&format!("/items/{id}"))).await),
                "{id}"
            );
        }
        // The killed master's entity is a miss (not an error) until its replica takes over
        // (node timeout 2 s, then the election), then it is stored and hits again.
        let resumed = until_hit(&app, &ids[0], Duration::from_secs(30)).await;
        eprintln!(
            "master killed, replica promoted: its entity cached again {:?} after the kill",
            killed.elapsed().min(resumed + Duration::from_millis(1))
        );
        for id in &ids[1..] {
            assert!(
                is_hit(&send(&app, get_req(&format!("/items/{id}"))).await),
                "{id}"
            );
        }
        assert_eq!(
            layer.stats().circuit_open,
            0,
            "the layer's breaker stayed closed"
        );
    });
}
