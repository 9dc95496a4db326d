//! The near cache's invalidation lag: how long after another instance's write is acknowledged
//! the near cache still holds the old entry.
//!
//! ```text
//! cargo bench --bench near_lag
//! NEAR_LAG_SAMPLES=5000 cargo bench --bench near_lag
//! ```
//!
//! Starts a private `redis-server` (and then a private three-master cluster) on free loopback
//! ports. Instance A is a [`NearCache`] in front of its own [`RedisStore`]; instance B is a
//! second `RedisStore` (its own connections) on the same Redis. For each sample, A reads a key
//! until the near cache holds it, then B overwrites it (`SET`, every other sample `DEL`) and
//! the bench polls A's [`NearCache::holds`] without pause until the entry is gone. It reports
//! the lag from B's acknowledgement to A's drop (0 when A had dropped it before B's call
//! returned) and from B's call to A's drop, as p50, p99 and max, in microseconds.
//!
//! Both instances run on one 2-worker Tokio runtime, as two apps on one machine would share its
//! CPUs. Needs `redis-server` and `redis-cli` on `PATH` (`apt-get install redis-server`).
//! Without `--bench` (as in `cargo test --benches`) it does nothing.

#[path = "../tests/it/servers/mod.rs"]
mod servers;
#[path = "support/stats.rs"]
mod stats;

use bytes::Bytes;
use servers::{RedisCluster, RedisServer};
use stats::{quantile, sorted_durations};
use std::time::{Duration, Instant};
use tower_redis_cache::{store::Store, NearCache, RedisStore};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let samples: usize = std::env::var("NEAR_LAG_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "| Redis | samples | after B's ack p50 / p99 / max | after B's call p50 / p99 / max |"
    );
    println!("|---|---|---|---|");
    let server = RedisServer::start();
    let row = runtime.block_on(measure(&server.url(), samples));
    println!("| standalone | {samples} | {} | {} |", row.0, row.1);
    drop(server);
    let cluster = RedisCluster::start();
    let row = runtime.block_on(measure(&cluster.url(), samples));
    println!("| 3-master cluster | {samples} | {} | {} |", row.0, row.1);
}

/// The lags after B's acknowledgement and after B's call, formatted.
async fn measure(url: &str, samples: usize) -> (String, String) {
    let a = NearCache::builder(RedisStore::connect(url).await.expect("A's store"))
        .build()
        .expect("A's near cache");
    let b = RedisStore::connect(url).await.expect("B's store");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.stats().tracking {
        assert!(Instant::now() < deadline, "tracking never came on");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ttl = Duration::from_secs(600);
    let (mut after_ack, mut after_call) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let key = format!("monps:bench:v1:lag:{{e{}}}:default", i % 100);
        b.set(&key, Bytes::from(format!("v{i}")), ttl)
            .await
            .expect("B's set");
        // A's next read fills its near cache (B's write above has been seen by then).
        let fill_deadline = Instant::now() + Duration::from_secs(5);
        while !a.holds(&key) {
            assert!(
                Instant::now() < fill_deadline,
                "never filled: {:?}",
                a.stats()
            );
            a.lookup(&key).await.expect("A's lookup");
        }
        let called = Instant::now();
        if i % 2 == 0 {
            b.set(&key, Bytes::from(format!("w{i}")), ttl)
                .await
                .expect("B's overwrite");
        } else {
            b.delete(&key).await.expect("B's delete");
        }
        let acknowledged = Instant::now();
        let drop_deadline = acknowledged + Duration::from_secs(5);
        while a.holds(&key) {
            assert!(
                Instant::now() < drop_deadline,
                "never dropped: {:?}",
                a.stats()
            );
            tokio::task::yield_now().await;
        }
        let dropped = Instant::now();
        after_ack.push(dropped.saturating_duration_since(acknowledged));
        after_call.push(dropped - called);
    }
    let stats = a.stats();
    assert_eq!(stats.flushes, 0, "a flush would hide the lag: {stats:?}");
    (summary(after_ack), summary(after_call))
}

fn summary(lags: Vec<Duration>) -> String {
    let lags = sorted_durations(lags);
    let at = |q: f64| quantile(&lags, q).as_micros();
    format!("{} / {} / {} µs", at(0.5), at(0.99), at(1.0))
}
