//! Durable invalidation on a Redis Cluster with a replica per master: an acknowledged
//! invalidation survives a failover, because it waited for the replica (`WAIT`); one that could
//! not be acknowledged says so, retryably. And without durability, the failover does undo it:
//! what the `WAIT` is for.

use crate::app::*;
use crate::servers::cluster::{key_slot, node_for_slot, RedisCluster};
use axum::Router;
use std::time::{Duration, Instant};
use tower_redis_cache::{CacheLayer, Durability, RedisStore, StoreErrorKind};

/// `GET /items/{id}` with entity `d_{id}`.
fn app(layer: &CacheLayer, runs: &Runs) -> Router {
    items_app(layer, runs, "d_")
}

/// An item id whose entity lives on the first master.
fn id_on_first_master() -> String {
    (0..)
        .map(|i: u32| i.to_string())
        .find(|id| node_for_slot(key_slot(format!("{{d_{id}}}"))) == 0)
        .expect("an id")
}

/// A cache on `redis` whose invalidations wait for replicas as `durability` says.
async fn layer(redis: &Redis, durability: Durability) -> CacheLayer {
    let store = RedisStore::builder(redis.url())
        .durability(durability, Duration::from_millis(500))
        .connect()
        .await
        .expect("the cluster answers");
    CacheLayer::builder(store, key_factory())
        .lookup_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Stores `/items/{id}` (the handler's first run) and checks it hits.
async fn store_first_run(app: &Router, layer: &CacheLayer, id: &str) {
    let first = send(app, get_req(&format!("/items/{id}"))).await;
    assert_eq!(first.text(), format!("item {id} run 1"));
    wait_writes(layer, 1).await;
    let hit = send(app, get_req(&format!("/items/{id}"))).await;
    assert!(hit.is_hit(), "{hit:?}");
}

/// Stops the first master's replica and closes its replication link: what the master writes
/// from now on does not reach the replica until it is resumed and reconnects.
fn cut_replication_link(cluster: &RedisCluster) {
    cluster.replicas()[0].pause();
    let killed = cluster.nodes()[0].command(&["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(killed, "1", "one replica link closed");
}

/// Kills the first master and requests `/items/{id}` until a replica has taken over and the
/// entity hits again (at most 30 s); every response seen, in order.
async fn fail_over(cluster: &mut RedisCluster, app: &Router, id: &str) -> Vec<Reply> {
    cluster.nodes_mut()[0].kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let reply = send(app, get_req(&format!("/items/{id}"))).await;
        assert_eq!(reply.status, axum::http::StatusCode::OK, "never an error");
        let hit = reply.is_hit();
        seen.push(reply);
        if hit {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no replica took over: {} responses, the last {:?}",
            seen.len(),
            seen.last()
        );
        // Polling: nothing announces the end of the election.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_acknowledged_invalidation_survives_a_failover() {
    let cluster = RedisCluster::builder().replicas().start();
    run(Redis::Cluster(cluster), |mut redis| async move {
        let layer = layer(&redis, Durability::default()).await;
        let app = app(&layer, &Runs::default());
        let id = id_on_first_master();
        store_first_run(&app, &layer, &id).await;
        let Redis::Cluster(cluster) = &mut redis else {
            unreachable!()
        };
        let entity = format!("d_{id}");

        // The master's replication link is down: the invalidation cannot be acknowledged, and
        // says so within its bound, retryably.
        cut_replication_link(cluster);
        let started = Instant::now();
        let error = layer.invalidator().entity(&entity).await.unwrap_err();
        let took = started.elapsed();
        cluster.replicas()[0].resume();
        assert_eq!(error.kind(), StoreErrorKind::NotReplicated, "{error}");
        assert!(error.is_retryable());
        assert!(took < Duration::from_secs(3), "{took:?}");

        // Retried (as a caller does with a retryable error) once the replica is back, it is
        // acknowledged.
        let started = Instant::now();
        let mut attempts = 1;
        while let Err(error) = layer.invalidator().entity(&entity).await {
            assert!(error.is_retryable(), "{error}");
            assert!(started.elapsed() < Duration::from_secs(20), "{error}");
            attempts += 1;
        }
        eprintln!(
            "durable invalidation: unacknowledged with the link down (error after {took:?}); \
             acknowledged {:?} after the replica came back ({attempts} attempts)",
            started.elapsed()
        );

        // The master dies; its replica, which holds the drop, takes over: the dropped response
        // is never served again.
        let seen = fail_over(cluster, &app, &id).await;
        for reply in &seen {
            assert_ne!(
                reply.text(),
                format!("item {id} run 1"),
                "the invalidated response came back after {} responses",
                seen.len()
            );
        }
    });
}

#[test]
fn without_durability_a_failover_to_a_lagging_replica_undoes_the_invalidation() {
    let cluster = RedisCluster::builder().replicas().start();
    run(Redis::Cluster(cluster), |mut redis| async move {
        let layer = layer(&redis, Durability::Master).await;
        let app = app(&layer, &Runs::default());
        let id = id_on_first_master();
        store_first_run(&app, &layer, &id).await;
        let Redis::Cluster(cluster) = &mut redis else {
            unreachable!()
        };
        // The replication link is down when the drop is made; the invalidation returns at once.
        cut_replication_link(cluster);
        let dropped = layer.invalidator().entity(&format!("d_{id}")).await;
        assert_eq!(dropped.unwrap(), 1);
        // The master dies before the replica got the drop; the replica takes over.
        cluster.nodes_mut()[0].kill();
        let replica = &cluster.replicas()[0];
        replica.resume();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !replica.query(&["ROLE"]).text().starts_with("master") {
            assert!(Instant::now() < deadline, "the replica never took over");
            // Polling: nothing announces the end of the election.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The entry the invalidation reported dropped is on the new master. (Read there, not
        // through the app: a request that missed while the master was down stores its own
        // response once the replica has taken over, and may replace it before a hit shows it.)
        let entries: Vec<String> = replica
            .keys("monps:test:v1:*")
            .into_iter()
            .filter(|key| is_entry_key(key))
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let entry = replica.get(&entries[0]).expect("the entry");
        let first_run = format!("item {id} run 1");
        assert!(
            entry
                .windows(first_run.len())
                .any(|w| w == first_run.as_bytes()),
            "the promoted replica does not hold the dropped entry: the drop reached it before \
             the link was cut, and there is nothing for durability to prevent"
        );
    });
}
