//! The near cache against real Redis (standalone and a three-master cluster): hot hits send
//! nothing to Redis; two app instances sharing one Redis see each other's writes and
//! invalidations within the invalidation lag; an entry never outlives its Redis TTL; a killed,
//! restarted, paused or cut-off Redis (and a killed cluster master) flushes the near cache, and
//! nothing stale is served once the fault is visible; the bound in bytes holds.

use crate::app::*;
use crate::servers::{Monitor, ProxyMode, TcpProxy};
use axum::{extract::Path, http::StatusCode, routing::get, Router};
use bytes::Bytes;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        Arc,
    },
    time::{Duration, Instant},
};
use tower_redis_cache::{store::Store, CacheLayer, Entity, NearCache, Policy, RedisStore, Variant};

/// A near cache in front of its own store on `url`, once its tracking is on.
async fn near_on(url: &str) -> NearCache {
    let store = RedisStore::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    near_in_front_of(store).await
}

async fn near_in_front_of(store: RedisStore) -> NearCache {
    let near = NearCache::builder(store).build().expect("near cache");
    eventually("client tracking on", || near.stats().tracking).await;
    near
}

/// One app instance: a layer on its own near cache, serving `GET /items/{id}` with the
/// shared `version` in the body.
struct Instance {
    near: NearCache,
    layer: CacheLayer,
    app: Router,
}

async fn instance(url: &str, version: &Arc<AtomicUsize>, runs: &Runs) -> Instance {
    let near = near_on(url).await;
    let layer = CacheLayer::builder(near.clone(), key_factory())
        .lookup_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (version, runs) = (version.clone(), runs.clone());
    let app = Router::new().route(
        "/items/{id}",
        get(move |Path(id): Path<String>| {
            let (version, runs) = (version.clone(), runs.clone());
            async move {
                runs.bump();
                format!("item {id} v{}", version.load(SeqCst))
            }
        })
        .route_layer(
            layer.policy(
                Policy::new("items")
                    .ttl(Duration::from_secs(60))
                    .entity(Entity::path_segment(1)),
            ),
        ),
    );
    Instance { near, layer, app }
}

fn item_key(id: &str) -> String {
    key_factory().key("items", id, &Variant::new()).into()
}

/// Serves `/items/1` until the near cache holds it (a miss stores it in Redis, the next
/// lookup fills the near cache).
async fn warm(instance: &Instance) -> Reply {
    let first = send(&instance.app, get_req("/items/1")).await;
    assert_eq!(first.status, StatusCode::OK);
    let key = item_key("1");
    let layer = &instance.layer;
    // Stored by this instance, or found there (another instance stored it).
    eventually(&format!("the entry in Redis ({:?})", layer.stats()), || {
        layer.stats().writes + layer.stats().hits >= 1
    })
    .await;
    let deadline = Instant::now() + WAIT;
    while !instance.near.holds(&key) {
        assert!(
            Instant::now() < deadline,
            "never filled: {:?}",
            instance.near.stats()
        );
        let reply = send(&instance.app, get_req("/items/1")).await;
        assert_eq!(reply.text(), first.text());
    }
    first
}

// The test owns one key, so it asserts on the commands that name that key, not on server-wide
// counters (a canary heartbeat, a write-back or another instance move those too). Every
// master is watched: a command sent to the wrong node shows as well.
redis_test!(a_hot_hit_sends_nothing_to_redis, |redis| async move {
    let (version, runs) = (Arc::new(AtomicUsize::new(1)), Runs::default());
    let a = instance(&redis.url(), &version, &runs).await;
    let first = warm(&a).await;
    let key = item_key("1");
    let hits = a.near.stats().hits;
    let monitor = Monitor::start(redis.nodes());
    for _ in 0..50 {
        let reply = send(&a.app, get_req("/items/1")).await;
        assert_eq!(reply.text(), first.text());
        assert!(
            reply.cache_status().contains("hit"),
            "{}",
            reply.cache_status()
        );
    }
    let commands = monitor.stop();
    let about_key: Vec<&String> = commands.iter().filter(|c| c.contains(&key)).collect();
    assert!(
        about_key.is_empty(),
        "a near hit must not send its key to Redis: {about_key:#?}"
    );
    assert_eq!(a.near.stats().hits, hits + 50, "{:?}", a.near.stats());
    assert_eq!(runs.get(), 1);
});

redis_test!(
    another_instances_invalidation_reaches_the_near_cache,
    |redis| async move {
        let (version, runs) = (Arc::new(AtomicUsize::new(1)), Runs::default());
        let a = instance(&redis.url(), &version, &runs).await;
        let b = instance(&redis.url(), &version, &runs).await;
        let old = warm(&a).await;
        assert_eq!(old.text(), "item 1 v1");

        version.store(2, SeqCst);
        let acknowledged = Instant::now();
        assert_eq!(b.layer.invalidator().entity("1").await.unwrap(), 1);
        let key = item_key("1");
        eventually("A drops the invalidated entry", || !a.near.holds(&key)).await;
        let lag = acknowledged.elapsed();
        eprintln!("invalidation lag (B acknowledged -> A dropped): {lag:?}");
        let reply = send(&a.app, get_req("/items/1")).await;
        assert_eq!(
            reply.text(),
            "item 1 v2",
            "A served the old entry after the lag"
        );
        assert!(a.near.stats().invalidations >= 1, "{:?}", a.near.stats());
    }
);

redis_test!(
    another_instances_overwrite_reaches_the_near_cache,
    |redis| async move {
        let (version, runs) = (Arc::new(AtomicUsize::new(1)), Runs::default());
        let a = instance(&redis.url(), &version, &runs).await;
        let b = instance(&redis.url(), &version, &runs).await;
        warm(&a).await;
        let key = item_key("1");
        // B writes the key directly (any client's write counts, not only the cache's).
        b.near
            .redis()
            .set(
                &key,
                Bytes::from_static(b"not an entry"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        eventually("A drops the overwritten entry", || !a.near.holds(&key)).await;
        // The overwritten value is not an entry: A treats it as a miss and runs the handler.
        let reply = send(&a.app, get_req("/items/1")).await;
        assert_eq!(reply.text(), "item 1 v1");
        assert_eq!(runs.get(), 2, "the foreign value is a miss, not a hit");
    }
);

redis_test!(
    an_own_invalidation_is_seen_before_it_returns,
    |redis| async move {
        let (version, runs) = (Arc::new(AtomicUsize::new(1)), Runs::default());
        let a = instance(&redis.url(), &version, &runs).await;
        warm(&a).await;
        version.store(2, SeqCst);
        assert_eq!(a.layer.invalidator().entity("1").await.unwrap(), 1);
        assert!(!a.near.holds(&item_key("1")), "{:?}", a.near.stats());
        let reply = send(&a.app, get_req("/items/1")).await;
        assert_eq!(reply.text(), "item 1 v2");
    }
);

redis_test!(an_entry_never_outlives_its_redis_ttl, |redis| async move {
    let near = near_on(&redis.url()).await;
    let key = item_key("ttl");
    near.redis()
        .set(
            &key,
            Bytes::from_static(b"short"),
            Duration::from_millis(600),
        )
        .await
        .unwrap();
    assert_eq!(
        near.lookup(&key).await.unwrap().as_deref(),
        Some(&b"short"[..])
    );
    assert!(near.holds(&key), "filled: {:?}", near.stats());
    // Redis expires the key; the moment it reports it gone, the near cache has dropped it.
    eventually("Redis expires the key", || redis.ttl_ms(&key) == -2).await;
    assert!(!near.holds(&key), "the near entry outlived the Redis TTL");
    assert_eq!(near.lookup(&key).await.unwrap(), None);
});

redis_test!(
    the_bound_in_bytes_holds_under_zipf_load,
    |redis| async move {
        let store = connect(&redis).await;
        const BOUND: u64 = 512 * 1024;
        let near = NearCache::builder(store.clone())
            .max_bytes(BOUND)
            .build()
            .unwrap();
        eventually("client tracking on", || near.stats().tracking).await;
        let body = Bytes::from(vec![b'x'; 48 * 1024]);
        for k in 0..64 {
            store
                .set(
                    &item_key(&k.to_string()),
                    body.clone(),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
        }
        // A Zipf(1.0)-like mix: key k drawn with weight 1/(k+1), by a fixed sequence.
        let weights: Vec<f64> = (0..64).map(|k| 1.0 / f64::from(k + 1)).collect();
        let total: f64 = weights.iter().sum();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut draw = (state >> 11) as f64 / (1u64 << 53) as f64 * total;
            let k = weights
                .iter()
                .position(|w| {
                    draw -= w;
                    draw <= 0.0
                })
                .unwrap_or(63);
            let value = near.lookup(&item_key(&k.to_string())).await.unwrap();
            assert_eq!(value.map(|v| v.len()), Some(body.len()));
        }
        let stats = near.stats();
        assert!(stats.bytes <= BOUND, "{stats:?}");
        assert!(stats.entries >= 4 && stats.hits > 1000, "{stats:?}");
    }
);

/// The fault tests: A holds `/items/1`; after the fault becomes visible, A holds nothing
/// and serves nothing stale.
async fn faulted_instance(url: &str) -> (Instance, Arc<AtomicUsize>, Runs) {
    let (version, runs) = (Arc::new(AtomicUsize::new(1)), Runs::default());
    let a = instance(url, &version, &runs).await;
    warm(&a).await;
    (a, version, runs)
}

async fn flushed(instance: &Instance) {
    let key = item_key("1");
    eventually("the near cache flushed", || {
        instance.near.stats().flushes >= 1 && !instance.near.holds(&key)
    })
    .await;
}

#[test]
fn a_killed_and_restarted_redis_flushes_the_near_cache() {
    run(Redis::standalone(), |redis| async move {
        let Redis::Standalone(mut server) = redis else {
            unreachable!()
        };
        let (a, _, runs) = faulted_instance(&server.url()).await;
        server.kill();
        flushed(&a).await;
        server.restart();
        eventually("tracking back", || a.near.stats().tracking).await;
        // Redis came back empty: the old entry must not come from process memory.
        let reply = send(&a.app, get_req("/items/1")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(runs.get(), 2, "the restarted Redis is empty: a miss");
    });
}

#[test]
fn a_paused_redis_flushes_the_near_cache() {
    run(Redis::standalone(), |redis| async move {
        let Redis::Standalone(server) = redis else {
            unreachable!()
        };
        let (a, _, _) = faulted_instance(&server.url()).await;
        server.pause();
        flushed(&a).await;
        server.resume();
        eventually("tracking back", || a.near.stats().tracking).await;
        warm(&a).await;
    });
}

/// A connection cut by the proxy, and a proxy that forwards nothing without closing: each
/// flushes A, and an invalidation B ran meanwhile is honoured once A is back.
#[test]
fn a_cut_or_silent_connection_flushes_the_near_cache() {
    run(Redis::standalone(), |redis| async move {
        let Redis::Standalone(server) = redis else {
            unreachable!()
        };
        let proxy = TcpProxy::start(server.addr());
        for fault in [ProxyMode::CutMidReply, ProxyMode::Blackhole] {
            let (a, version, runs) = faulted_instance(&proxy.url()).await;
            let before = runs.get();
            match fault {
                ProxyMode::CutMidReply => proxy.cut_all(),
                mode => proxy.set_mode(mode),
            }
            flushed(&a).await;
            // B, on a direct connection, changes the data while A is cut off.
            let b = instance(&server.url(), &version, &runs).await;
            version.fetch_add(1, SeqCst);
            b.layer.invalidator().entity("1").await.unwrap();
            // The silent connections end as TCP_USER_TIMEOUT would end them (the proxy has
            // discarded bytes, which TCP never does), and traffic flows again.
            proxy.cut_all();
            proxy.set_mode(ProxyMode::Forward);
            eventually(&format!("tracking back after {fault:?}"), || {
                a.near.stats().tracking
            })
            .await;
            let reply = send(&a.app, get_req("/items/1")).await;
            let now = format!("item 1 v{}", version.load(SeqCst));
            assert_eq!(reply.text(), now, "{fault:?}: A served what B invalidated");
            assert_eq!(runs.get(), before + 1);
            // The next round starts from an empty Redis, once this write-back has landed.
            wait_writes(&a.layer, 2).await;
            server.query(&["FLUSHALL"]);
        }
    });
}

#[test]
fn a_killed_cluster_master_flushes_the_near_cache() {
    run(Redis::cluster(), |redis| async move {
        let Redis::Cluster(mut cluster) = redis else {
            unreachable!()
        };
        let (a, _, _) = faulted_instance(&cluster.url()).await;
        let node = cluster.node_for_key(item_key("1"));
        cluster.nodes_mut()[node].kill();
        flushed(&a).await;
        // The other masters still answer; their keys are read from Redis, not process memory.
        let other = (0..100)
            .map(|i| i.to_string())
            .find(|id| cluster.node_for_key(item_key(id)) != node)
            .unwrap();
        let reply = send(&a.app, get_req(&format!("/items/{other}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(!a.near.holds(&item_key(&other)), "{:?}", a.near.stats());
    });
}

redis_test!(
    readers_racing_writes_never_keep_an_old_value,
    |redis| async move {
        // A reads one key from 4 tasks without pause while B overwrites it 60 times; a read
        // that began a bound after B's write was acknowledged must see that write or a later
        // one. A fill that raced a write and kept the old value would break it for good.
        const BOUND: Duration = Duration::from_millis(500);
        let a = Arc::new(near_on(&redis.url()).await);
        let b = connect(&redis).await;
        let key = item_key("race");
        let ttl = Duration::from_secs(60);
        b.set(&key, Bytes::from("0"), ttl).await.unwrap();
        let acknowledged = Arc::new(std::sync::Mutex::new(vec![(Instant::now(), 0u64)]));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (a, key, acked, done) =
                    (a.clone(), key.clone(), acknowledged.clone(), done.clone());
                tokio::spawn(async move {
                    let mut reads = 0u64;
                    while !done.load(SeqCst) {
                        let began = Instant::now();
                        let value = a.lookup(&key).await.unwrap().expect("the key is there");
                        let seen: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
                        let newest_due = acked
                            .lock()
                            .unwrap()
                            .iter()
                            .filter(|(at, _)| *at + BOUND <= began)
                            .map(|(_, n)| *n)
                            .max()
                            .unwrap_or(0);
                        assert!(seen >= newest_due, "read v{seen}, v{newest_due} was due");
                        reads += 1;
                        tokio::task::yield_now().await;
                    }
                    reads
                })
            })
            .collect();
        for n in 1..=60u64 {
            b.set(&key, Bytes::from(n.to_string()), ttl).await.unwrap();
            acknowledged.lock().unwrap().push((Instant::now(), n));
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        tokio::time::sleep(BOUND * 2).await;
        done.store(true, SeqCst);
        for reader in readers {
            assert!(reader.await.expect("reader") > 0);
        }
        let stats = a.stats();
        assert!(stats.hits > 0 && stats.invalidations > 0, "{stats:?}");
        assert_eq!(a.lookup(&key).await.unwrap().as_deref(), Some(&b"60"[..]));
    }
);

redis_test!(a_flushall_flushes_the_near_cache, |redis| async move {
    // FLUSHALL's invalidation names no keys (and fred does not pass it on): the heartbeat
    // finds the canary gone instead.
    // Every instance notices, not only the first (each checks a canary of its own).
    let (a, version, runs) = faulted_instance(&redis.url()).await;
    let b = instance(&redis.url(), &version, &runs).await;
    warm(&b).await;
    match &redis {
        Redis::Standalone(server) => server.flushall(),
        Redis::Cluster(cluster) => cluster.flushall(),
    }
    flushed(&a).await;
    flushed(&b).await;
    eventually("tracking back", || a.near.stats().tracking).await;
    let reply = send(&a.app, get_req("/items/1")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        runs.get(),
        2,
        "Redis was flushed: a miss, not the old entry"
    );
});
