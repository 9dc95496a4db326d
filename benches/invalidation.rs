//! What invalidation costs, on a private standalone server and a private three-master cluster,
//! each holding 1 000 000 other keys: dropping one entity with 100 variants, a tag on 1 000
//! entries of 1 000 entities, a namespace of 1 000 entries; the index memory per entry; and a
//! write-back with its index (`Store::write`: three scripts) beside a plain `SET PX`
//! (`Store::set`), interleaved in rounds.
//!
//! And what waiting for replicas adds to an invalidation (`Durability`), on three masters with
//! a replica each.
//!
//! ```text
//! cargo bench --bench invalidation
//! INVALIDATION_BENCH=durability cargo bench --bench invalidation   # the durability table only
//! ```
//!
//! Prints a Markdown table (medians over the rounds); BENCHMARKS.md quotes it.

#[path = "../tests/it/servers/mod.rs"]
mod servers;
#[path = "support/stats.rs"]
mod stats;

use futures_util::StreamExt;
use servers::{RedisCluster, RedisServer};
use stats::{median, median_duration};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tower_redis_cache::{
    store::{EntryWrite, Store},
    Invalidator, KeyFactory, RedisStore, Variant,
};

const OTHER_KEYS: u64 = 1_000_000;
const ROUNDS: usize = 7;
const TTL: Duration = Duration::from_secs(600);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // INVALIDATION_BENCH=durability: only the durability table.
    let only_durability = std::env::var("INVALIDATION_BENCH").as_deref() == Ok("durability");
    let mut rows = Vec::new();
    if !only_durability {
        let server = RedisServer::builder()
            .args(["--enable-debug-command", "yes"])
            .start();
        populate(&[&server]);
        rows.push(runtime.block_on(measure("standalone", &server.url(), &[&server])));
    }
    if !only_durability {
        let cluster = RedisCluster::builder()
            .arg("--enable-debug-command")
            .arg("yes")
            .start();
        let nodes: Vec<&RedisServer> = cluster.nodes().iter().collect();
        populate(&nodes);
        rows.push(runtime.block_on(measure("cluster (3 masters)", &cluster.url(), &nodes)));
    }
    let durability = {
        let cluster = RedisCluster::builder().replicas().start();
        runtime.block_on(durability(&cluster.url()))
    };
    if !rows.is_empty() {
        println!(
            "| topology | entity, 100 variants | tag, 1 000 entries | namespace, 1 000 entries | \
             entity index B/entry | namespace index B/entity | tag index B/entry | write-back with index | plain SET | ratio |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for row in rows {
            println!("{row}");
        }
        println!();
    }
    println!("{durability}");
}

/// What waiting for replicas adds to an invalidation: on a cluster of three masters with a
/// replica each, an entity of 10 variants invalidated 200 times with each durability, in
/// alternation; the latency's p50 and p99.
async fn durability(url: &str) -> String {
    use tower_redis_cache::Durability;
    const TIMES: usize = 200;
    let keys = KeyFactory::new("bench", "dur", "v1");
    let mut variants = Vec::new();
    for (name, durability) in [
        ("`Durability::Master` (no WAIT)", Durability::Master),
        (
            "`Durability::Replicas(0)` (default: WAIT for the replica)",
            Durability::default(),
        ),
    ] {
        let store = RedisStore::builder(url)
            .durability(durability, Duration::from_millis(500))
            .connect()
            .await
            .expect("a store");
        let invalidator = Invalidator::new(Arc::new(store.clone()), keys.clone());
        variants.push((name, store, invalidator, Vec::new()));
    }
    // Warm-up, not measured: each store's connections to every primary (an invalidation that
    // waits makes its own, on first need).
    for round in 0..TIMES / 4 {
        for (variant, (_, store, invalidator, _)) in variants.iter_mut().enumerate() {
            let id = format!("warm{variant}-{round}");
            write_all(
                store,
                (0..10).map(|v| variant_write(&keys, "n", &id, v, &[])),
            )
            .await;
            invalidator.entity(&id).await.unwrap();
        }
    }
    for round in 0..TIMES {
        for (variant, (_, store, invalidator, took)) in variants.iter_mut().enumerate() {
            let id = format!("d{variant}-{round}");
            write_all(
                store,
                (0..10).map(|v| variant_write(&keys, "n", &id, v, &[])),
            )
            .await;
            let started = Instant::now();
            assert_eq!(invalidator.entity(&id).await.unwrap(), 10);
            took.push(started.elapsed());
        }
    }
    let mut table = String::from(
        "| invalidation of an entity of 10 variants, 3 masters + 3 replicas | p50 | p99 |\n|---|---|---|\n",
    );
    for (name, _, _, took) in variants {
        let sorted = stats::sorted_durations(took);
        table.push_str(&format!(
            "| {name} | {} | {} |\n",
            ms(stats::quantile(&sorted, 0.5)),
            ms(stats::quantile(&sorted, 0.99)),
        ));
    }
    table
}

/// `OTHER_KEYS` keys of 64 bytes that nothing invalidates, spread over the nodes.
fn populate(nodes: &[&RedisServer]) {
    let per_node = OTHER_KEYS / nodes.len() as u64;
    for (i, node) in nodes.iter().enumerate() {
        let prefix = format!("other{i}");
        let reply = node.query(&["DEBUG", "POPULATE", &per_node.to_string(), &prefix, "64"]);
        assert!(!reply.is_error(), "DEBUG POPULATE: {reply}");
    }
}

async fn measure(topology: &str, url: &str, nodes: &[&RedisServer]) -> String {
    let store = RedisStore::connect(url).await.expect("a store");
    let keys = KeyFactory::new("bench", "inv", "v1");
    let invalidator = Invalidator::new(Arc::new(store.clone()), keys.clone());
    let (mut entity, mut tag, mut namespace) = (Vec::new(), Vec::new(), Vec::new());
    let (mut indexed, mut plain) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // One entity, 100 variants.
        let id = format!("e{round}");
        write_all(
            &store,
            (0..100).map(|v| variant_write(&keys, "n", &id, v, &[])),
        )
        .await;
        let started = Instant::now();
        assert_eq!(invalidator.entity(&id).await.unwrap(), 100);
        entity.push(started.elapsed());

        // A tag on 1 000 entries of 1 000 entities.
        let tag_name = format!("tag{round}");
        let writes =
            (0..1000).map(|e| variant_write(&keys, "t", &format!("t{round}-{e}"), 0, &[&tag_name]));
        write_all(&store, writes).await;
        let started = Instant::now();
        assert_eq!(invalidator.tag(&tag_name).await.unwrap(), 1000);
        tag.push(started.elapsed());

        // A namespace of 1 000 entries (1 000 entities).
        let ns = format!("ns{round}");
        let writes = (0..1000).map(|e| variant_write(&keys, &ns, &format!("n{round}-{e}"), 0, &[]));
        write_all(&store, writes).await;
        let started = Instant::now();
        assert_eq!(invalidator.namespace(&ns).await.unwrap(), 1000);
        namespace.push(started.elapsed());

        // One write-back at a time: with its index, then a plain SET, 200 of each.
        let started = Instant::now();
        for v in 0..200 {
            let write = variant_write(&keys, "w", &format!("w{round}"), v, &[]);
            assert!(store.write(write).await.unwrap());
        }
        indexed.push(started.elapsed() / 200);
        let started = Instant::now();
        for v in 0..200 {
            let key = keys.key(
                "p",
                &format!("p{round}"),
                &Variant::new().query("v", v.to_string()),
            );
            store.set(key.as_str(), entry(), TTL).await.unwrap();
        }
        plain.push(started.elapsed() / 200);
    }

    // Index memory: one entity with 100 variants, a tag and a namespace of 1 000.
    let id = "mem";
    write_all(
        &store,
        (0..100).map(|v| variant_write(&keys, "n", id, v, &[])),
    )
    .await;
    let writes =
        (0..1000).map(|e| variant_write(&keys, "mem-ns", &format!("m-{e}"), 0, &["mem-tag"]));
    write_all(&store, writes).await;
    let entity_index = memory(nodes, "bench:inv:v1:#e:{mem}") / 100;
    let namespace_index = memory(nodes, "bench:inv:v1:#n:{mem-ns}") / 1000;
    let tag_index = memory(nodes, "bench:inv:v1:#t:{mem-tag}") / 1000;

    let ratios: Vec<f64> = indexed
        .iter()
        .zip(&plain)
        .map(|(i, p)| i.as_secs_f64() / p.as_secs_f64())
        .collect();
    format!(
        "| {topology} | {} | {} | {} | {entity_index} | {namespace_index} | {tag_index} | {} | {} | {:.2}x |",
        ms(median_duration(entity)),
        ms(median_duration(tag)),
        ms(median_duration(namespace)),
        us(median_duration(indexed)),
        us(median_duration(plain)),
        median(ratios),
    )
}

fn entry() -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; 1024])
}

fn variant_write(keys: &KeyFactory, ns: &str, entity: &str, v: usize, tags: &[&str]) -> EntryWrite {
    let key = keys.key(ns, entity, &Variant::new().query("v", v.to_string()));
    EntryWrite::new(key, entry(), TTL).tags(tags.iter().copied())
}

async fn write_all(store: &RedisStore, writes: impl Iterator<Item = EntryWrite>) {
    let results: Vec<_> = futures_util::stream::iter(writes.map(|w| store.write(w)))
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(true))),
        "every write stored"
    );
}

/// `MEMORY USAGE key` on whichever node holds it.
fn memory(nodes: &[&RedisServer], key: &str) -> u64 {
    nodes
        .iter()
        .find_map(|n| {
            n.query(&["MEMORY", "USAGE", key])
                .as_int()
                .and_then(|bytes| u64::try_from(bytes).ok())
        })
        .unwrap_or_else(|| panic!("{key} on no node"))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}
