//! A history checker, the Jepsen idea scaled to the cache's promise: "once an invalidation
//! returns, no response computed before it was called is served".
//!
//! Two app instances (one on a `RedisStore`, one on a `NearCache`) serve nine entities from a
//! cluster of three masters with a replica each. Readers request them; writers bump an entity's
//! version in the "database" the handler reads, then invalidate it through either instance,
//! retrying while the error says so. Meanwhile a nemesis injects faults, one after the
//! other, in rounds: a graceful failover, a master paused (below the node timeout), a live slot migration
//! (the `SETSLOT`/`MIGRATE` sequence, key by key), and a master killed while its replication
//! link is cut, so that its replica, promoted, never received what the master acknowledged
//! last.
//!
//! Every operation is recorded with its start and end. The checker then asserts: no read that
//! started after an invalidation was acknowledged returns an older version than that
//! invalidation's (for the near-cache instance reading another instance's invalidation: once
//! its `max_silence` has passed too, the lag it documents); no request fails; every request
//! ends within a bound. Without durability (`Durability::Master`) the same history has
//! violations: the second test shows the checker finds them.
//!
//! One round by default (about 25 s). `HISTORY_SECS=600` runs rounds for ten minutes, each
//! killed master restarted as a replica before the next (`scripts/history.sh`; figures in
//! RELIABILITY.md); `HISTORY_VERBOSE=1` prints each fault and each retried failure.

use crate::app::*;
use crate::servers::{
    cluster::{key_slot, node_for_slot, RedisCluster},
    RedisServer,
};
use axum::{extract::Path, routing::get, Router};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};
use tower_redis_cache::{
    CacheLayer, Durability, Entity, Invalidator, NearCache, Policy, RedisStore,
};

/// Entities per master: nine in all.
const PER_MASTER: usize = 3;
/// Readers, each on both instances in turn.
const READERS: u64 = 8;
/// The near cache's documented lag bound (its default `max_silence`).
const NEAR_LAG: Duration = Duration::from_millis(300);
/// The lookup timeout: a lookup slower than this is a miss (the handler answers).
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(250);
/// The longest any request may take, faults included.
const REQUEST_BOUND: Duration = Duration::from_secs(5);
/// The longest a writer retries one invalidation (a failover takes a few seconds).
const RETRY_BOUND: Duration = Duration::from_secs(30);

/// One recorded operation.
#[derive(Clone, Debug)]
enum Op {
    Read {
        instance: usize,
        entity: usize,
        version: u64,
        /// Its `Cache-Status`.
        status: String,
        start: Instant,
        end: Instant,
    },
    Invalidated {
        instance: usize,
        entity: usize,
        version: u64,
        /// Calls made: the first, and its retries after retryable errors.
        attempts: u32,
        start: Instant,
        end: Instant,
    },
}

/// What the checker found.
#[derive(Debug, Default)]
struct Verdict {
    reads: usize,
    hits: usize,
    invalidations: usize,
    /// Invalidation calls that failed retryably and were retried.
    retries: u64,
    violations: Vec<String>,
    /// The slowest read.
    slowest: Duration,
    /// The slowest invalidation, its retries included.
    slowest_invalidation: Duration,
    /// The faults injected, in order.
    faults: Vec<String>,
}

/// Entity ids, `PER_MASTER` on each master's slots.
fn entity_ids() -> Vec<String> {
    let mut per_node = vec![Vec::new(); 3];
    for i in 0.. {
        let id = format!("h{i}");
        let node = node_for_slot(key_slot(format!("{{{id}}}")));
        if per_node[node].len() < PER_MASTER {
            per_node[node].push(id);
        }
        if per_node.iter().all(|ids| ids.len() == PER_MASTER) {
            break;
        }
    }
    per_node.concat()
}

/// One app instance: `GET /e/{n}` answers entity `n`'s current version, cached per entity.
fn app(layer: &CacheLayer, ids: &Arc<Vec<String>>, versions: &Arc<Vec<AtomicU64>>) -> Router {
    let (ids_for_entity, versions) = (ids.clone(), versions.clone());
    let entity = Entity::from_fn(move |parts| {
        let n: usize = parts.uri.path().rsplit('/').next()?.parse().ok()?;
        ids_for_entity.get(n).cloned()
    });
    Router::new().route(
        "/e/{n}",
        get(move |Path(n): Path<usize>| {
            let versions = versions.clone();
            async move { format!("v{}", versions[n].load(SeqCst)) }
        })
        .route_layer(layer.policy(Policy::new("h").entity(entity))),
    )
}

/// A tiny deterministic generator per task (xorshift).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Runs the history on a fresh 3+3 cluster with `durability`, and checks it.
fn history(durability: Durability) -> Verdict {
    let cluster = RedisCluster::builder().replicas().start();
    let url = cluster.url();
    let ids = Arc::new(entity_ids());
    let versions: Arc<Vec<AtomicU64>> =
        Arc::new((0..ids.len()).map(|_| AtomicU64::new(1)).collect());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(Mutex::new(Vec::new()));

    let (apps, invalidators) = runtime.block_on(async {
        let connect = || async {
            RedisStore::builder(url.clone())
                .durability(durability, Duration::from_millis(500))
                .connect()
                .await
                .expect("the cluster answers")
        };
        let plain = CacheLayer::builder(connect().await, key_factory())
            .lookup_timeout(LOOKUP_TIMEOUT)
            .build()
            .unwrap();
        let near = NearCache::builder(connect().await).build().unwrap();
        eventually("client tracking on", || near.stats().tracking).await;
        let near = CacheLayer::builder(near, key_factory())
            .lookup_timeout(LOOKUP_TIMEOUT)
            .build()
            .unwrap();
        let apps = vec![app(&plain, &ids, &versions), app(&near, &ids, &versions)];
        (apps, vec![plain.invalidator(), near.invalidator()])
    });

    let mut tasks = Vec::new();
    for reader in 0..READERS {
        let (apps, stop, ops) = (apps.clone(), stop.clone(), ops.clone());
        let entities = ids.len();
        tasks.push(runtime.spawn(async move {
            let mut state = 0x9e37_79b9_7f4a_7c15 ^ (reader + 1);
            while !stop.load(SeqCst) {
                let entity = next(&mut state) as usize % entities;
                let instance = next(&mut state) as usize % 2;
                let start = Instant::now();
                let reply = send(&apps[instance], get_req(&format!("/e/{entity}"))).await;
                let end = Instant::now();
                assert_eq!(reply.status, axum::http::StatusCode::OK, "never an error");
                let version = reply.text().trim_start_matches('v').parse();
                ops.lock().unwrap().push(Op::Read {
                    instance,
                    entity,
                    version: version.expect("a version"),
                    status: reply.cache_status().to_owned(),
                    start,
                    end,
                });
            }
        }));
    }
    // Writers: two; a new version, then its invalidation, retried while retryable.
    for writer in 0..2u64 {
        let (invalidators, stop, ops) = (invalidators.clone(), stop.clone(), ops.clone());
        let (ids, versions) = (ids.clone(), versions.clone());
        tasks.push(runtime.spawn(async move {
            let mut state = 0x2545_f491_4f6c_dd1d ^ (writer + 1);
            while !stop.load(SeqCst) {
                let entity = next(&mut state) as usize % ids.len();
                let instance = next(&mut state) as usize % 2;
                let version = versions[entity].fetch_add(1, SeqCst) + 1;
                let start = Instant::now();
                let invalidated = invalidate(&invalidators[instance], &ids[entity], &stop);
                // One never acknowledged (the run ended first) promises nothing.
                let Some(attempts) = invalidated.await else {
                    break;
                };
                ops.lock().unwrap().push(Op::Invalidated {
                    instance,
                    entity,
                    version,
                    attempts,
                    start,
                    end: Instant::now(),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let faults = nemesis(cluster, &ids, run_for());
    stop.store(true, SeqCst);
    runtime.block_on(async {
        for task in tasks {
            task.await.expect("a client task panicked");
        }
    });
    let ops = std::mem::take(&mut *ops.lock().unwrap());
    let mut verdict = check(&ops);
    verdict.faults = faults;
    eprintln!(
        "history ({durability:?}): {} reads ({} hits), {} invalidations ({} retried calls), \
         {} faults ({}); violations: {}; slowest request {:?}, slowest invalidation {:?}",
        verdict.reads,
        verdict.hits,
        verdict.invalidations,
        verdict.retries,
        verdict.faults.len(),
        fault_counts(&verdict.faults),
        verdict.violations.len(),
        verdict.slowest,
        verdict.slowest_invalidation,
    );
    verdict
}

/// Invalidates `entity` through `invalidator`, again while the error is retryable and the run
/// goes on; the calls made, or `None` if the run ended first.
async fn invalidate(invalidator: &Invalidator, entity: &str, stop: &AtomicBool) -> Option<u32> {
    let started = Instant::now();
    let mut attempts = 1;
    loop {
        match invalidator.entity(entity).await {
            Ok(_) => return Some(attempts),
            Err(_) if stop.load(SeqCst) => return None,
            Err(error) => {
                if std::env::var("HISTORY_VERBOSE").is_ok() {
                    eprintln!("invalidation of {entity} failed: {error}");
                }
                assert!(error.is_retryable(), "not retryable: {error}");
                assert!(started.elapsed() < RETRY_BOUND, "still failing: {error}");
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// "3 graceful failover, 3 master paused 1 s, …": how often each fault was injected.
fn fault_counts(faults: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for fault in faults {
        match counts.iter_mut().find(|(name, _)| name == fault) {
            Some((_, n)) => *n += 1,
            None => counts.push((fault, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(f, n)| format!("{n} {f}")).collect();
    counts.join(", ")
}

/// How long the nemesis runs rounds: `HISTORY_SECS`, or one round.
fn run_for() -> Duration {
    let secs = std::env::var("HISTORY_SECS").ok().map(|s| {
        s.parse()
            .unwrap_or_else(|_| panic!("HISTORY_SECS must be a number of seconds: {s:?}"))
    });
    Duration::from_secs(secs.unwrap_or(0))
}

/// Rounds of faults, one after the other, while the clients run, until `run_for` has passed
/// (one round at least); the faults injected.
fn nemesis(mut cluster: RedisCluster, ids: &[String], run_for: Duration) -> Vec<String> {
    let started = Instant::now();
    let mut faults = Vec::new();
    let mut record = |fault: &str| {
        if std::env::var("HISTORY_VERBOSE").is_ok() {
            eprintln!("{:>8.1?} {fault}", started.elapsed());
        }
        faults.push(fault.to_owned());
    };
    thread::sleep(Duration::from_secs(2));
    for round in 0.. {
        // A graceful failover: a replica takes over from its master (no write lost).
        let shard = &shards(&cluster)[(round + 1) % 3];
        let (master, replica) = (shard.master, shard.replica.expect("a replica"));
        cluster.server(replica).command(&["CLUSTER", "FAILOVER"]);
        wait_for_role(cluster.server(replica), "master");
        wait_synced(cluster.server(master));
        record("graceful failover");
        thread::sleep(Duration::from_millis(1500));

        // A master paused for a second (below the 2 s node timeout: no failover).
        let master = shards(&cluster)[(round + 2) % 3].master;
        cluster.server(master).pause();
        thread::sleep(Duration::from_secs(1));
        cluster.server(master).resume();
        record("master paused 1 s");
        thread::sleep(Duration::from_millis(1500));

        // A live migration of an entity's slot to the next master, key by key.
        let entity = &ids[(2 * PER_MASTER + 4 * round) % ids.len()];
        let slot = key_slot(format!("{{{entity}}}"));
        let now = shards(&cluster);
        let from = now
            .iter()
            .position(|shard| shard.serves(slot))
            .expect("a master serves the slot");
        let to = now[(from + 1) % now.len()].master;
        migrate_slot(cluster.server(now[from].master), cluster.server(to), slot);
        record("slot migration");
        thread::sleep(Duration::from_secs(2));

        // A master's replication link cut (its replica stopped, the link closed); the writes
        // go on for 1.5 s; the master dies; the replica, resumed, takes over without what the
        // master last acknowledged.
        let shard = &shards(&cluster)[round % 3];
        let (master, replica) = (shard.master, shard.replica.expect("a replica"));
        cluster.server(replica).pause();
        let replicas = ["CLIENT", "KILL", "TYPE", "replica"];
        cluster.server(master).command(&replicas);
        thread::sleep(Duration::from_millis(1500));
        cluster.server_mut(master).kill();
        cluster.server(replica).resume();
        wait_for_role(cluster.server(replica), "master");
        if std::env::var("HISTORY_VERBOSE").is_ok() {
            eprintln!("killed {master}, promoted {replica}");
        }
        record("master killed with its replication link cut");
        thread::sleep(Duration::from_secs(3));
        if started.elapsed() >= run_for {
            break;
        }

        // For the next round: the dead master restarted, back as a replica.
        cluster.server_mut(master).restart();
        wait_synced(cluster.server(master));
        cluster.wait_healthy();
        record("master restarted");
        thread::sleep(Duration::from_millis(1500));
    }
    faults
}

/// A master, its replica, and the slot ranges it serves, as `CLUSTER NODES` lists them.
struct Shard {
    master: u16,
    replica: Option<u16>,
    slots: Vec<(u16, u16)>,
}

impl Shard {
    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot))
    }
}

/// The cluster's shards, ordered by their lowest slot, as a node that answers sees them.
fn shards(cluster: &RedisCluster) -> Vec<Shard> {
    let nodes = cluster
        .nodes()
        .iter()
        .chain(cluster.replicas())
        .find_map(|server| {
            let reply = server.try_query(&["CLUSTER", "NODES"], Duration::from_secs(1));
            reply.ok().filter(|r| !r.is_error()).map(|r| r.text())
        })
        .expect("a node answers CLUSTER NODES");
    // Each line: id, address, flags, master id, ping, pong, epoch, link, slots...
    let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
    let port = |fields: &[&str]| -> u16 {
        let address = fields[1].split(['@', ',']).next().unwrap();
        address.rsplit(':').next().unwrap().parse().unwrap()
    };
    let healthy = |fields: &[&str]| !fields[2].contains("fail");
    let ports: HashMap<&str, u16> = lines.iter().map(|f| (f[0], port(f))).collect();
    let mut shards: Vec<Shard> = lines
        .iter()
        .filter(|f| f[2].contains("master") && healthy(f) && f.len() > 8)
        .map(|f| Shard {
            master: port(f),
            replica: lines
                .iter()
                .find(|r| r[3] == f[0] && healthy(r))
                .map(|r| ports[r[0]]),
            slots: f[8..]
                .iter()
                .filter(|range| !range.starts_with('['))
                .map(|range| {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    (lo.parse().unwrap(), hi.parse().unwrap())
                })
                .collect(),
        })
        .collect();
    shards.sort_by_key(|shard| shard.slots.iter().map(|s| s.0).min());
    assert_eq!(shards.len(), 3, "three masters:\n{nodes}");
    shards
}

/// Waits (at most 30 s) until `node`'s `ROLE` is `role`.
fn wait_for_role(node: &RedisServer, role: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = node.query(&["ROLE"]).text();
        if reply.lines().next() == Some(role) {
            return;
        }
        assert!(Instant::now() < deadline, "never {role}: {reply}");
        // Polling: nothing announces the end of an election.
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most 30 s) until `node` is a replica whose link to its master is up.
fn wait_synced(node: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = node.command(&["INFO", "replication"]);
        if info.contains("role:slave") && info.contains("master_link_status:up") {
            return;
        }
        assert!(Instant::now() < deadline, "never a synced replica: {info}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Moves `slot` from `source` to `target` as `redis-cli --cluster reshard` does: importing and
/// migrating, the keys one `MIGRATE` at a time (with the clients' writes going on), then the
/// slot assigned to the target. The entries go first and the rest half a second later, so
/// that invalidations meet the slot split between the nodes (entries moved, index, leases and
/// fences not), the case where a script's undeclared keys would escape the server's checks.
fn migrate_slot(source: &RedisServer, target: &RedisServer, slot: u16) {
    let slot = slot.to_string();
    let source_id = source.command(&["CLUSTER", "MYID"]);
    let target_id = target.command(&["CLUSTER", "MYID"]);
    let importing = ["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id];
    assert_eq!(target.command(&importing), "OK");
    let migrating = ["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id];
    assert_eq!(source.command(&migrating), "OK");
    let port = target.port().to_string();
    let migrate = |key: &str| {
        let reply = source.query(&["MIGRATE", "127.0.0.1", &port, key, "0", "5000"]);
        assert!(!reply.is_error(), "MIGRATE {key}: {reply}");
    };
    let keys = source
        .query(&["CLUSTER", "GETKEYSINSLOT", &slot, "1000"])
        .text();
    for key in keys.lines().filter(|key| is_entry_key(key)) {
        migrate(key);
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    // Whatever is left, entries written meanwhile included.
    loop {
        let keys = source.query(&["CLUSTER", "GETKEYSINSLOT", &slot, "10"]);
        let keys = keys.text();
        let Some(key) = keys.lines().next().filter(|k| !k.is_empty()) else {
            break;
        };
        migrate(key);
        thread::sleep(Duration::from_millis(50));
    }
    for node in [target, source] {
        let assign = ["CLUSTER", "SETSLOT", &slot, "NODE", &target_id];
        assert_eq!(node.command(&assign), "OK");
    }
}

/// Checks every read against every invalidation acknowledged before it started.
fn check(ops: &[Op]) -> Verdict {
    let mut verdict = Verdict::default();
    // Per entity and invalidating instance: acknowledgements in order, each with the highest
    // version acknowledged by then.
    let mut acked: HashMap<(usize, usize), Vec<(Instant, u64)>> = HashMap::new();
    for op in ops {
        if let &Op::Invalidated {
            instance,
            entity,
            version,
            attempts,
            start,
            end,
        } = op
        {
            verdict.invalidations += 1;
            verdict.retries += u64::from(attempts - 1);
            verdict.slowest_invalidation = verdict.slowest_invalidation.max(end - start);
            acked
                .entry((entity, instance))
                .or_default()
                .push((end, version));
        }
    }
    for acks in acked.values_mut() {
        acks.sort();
        let mut highest = 0;
        for (_, version) in acks.iter_mut() {
            highest = highest.max(*version);
            *version = highest;
        }
    }
    for op in ops {
        let Op::Read {
            instance,
            entity,
            version,
            status,
            start,
            end,
        } = op
        else {
            continue;
        };
        verdict.reads += 1;
        verdict.hits += usize::from(status.contains("; hit"));
        verdict.slowest = verdict.slowest.max(*end - *start);
        let required = (0..2)
            .filter_map(|by| {
                let acks = acked.get(&(*entity, by))?;
                // The near cache lags another instance's invalidations by up to its
                // `max_silence`.
                let lag = match *instance == 1 && by != 1 {
                    true => NEAR_LAG,
                    false => Duration::ZERO,
                };
                let before = acks.partition_point(|&(acknowledged, _)| acknowledged + lag < *start);
                before.checked_sub(1).map(|last| acks[last].1)
            })
            .max();
        if let Some(required) = required.filter(|&required| *version < required) {
            verdict.violations.push(format!(
                "entity {entity} on instance {instance}: read v{version} ({status}), \
                 v{required} acknowledged before the read began"
            ));
        }
    }
    verdict
}

#[test]
fn no_read_sees_what_an_acknowledged_invalidation_dropped() {
    let verdict = history(Durability::default());
    assert!(
        verdict.reads > 1000 && verdict.invalidations > 100,
        "{verdict:?}"
    );
    assert!(
        verdict.hits > verdict.reads / 4,
        "the cache served: {verdict:?}"
    );
    assert!(
        verdict.violations.is_empty(),
        "{} violations, the first: {:?}",
        verdict.violations.len(),
        &verdict.violations[..verdict.violations.len().min(5)]
    );
    assert!(verdict.slowest < REQUEST_BOUND, "{:?}", verdict.slowest);
}

#[test]
fn without_durability_the_checker_finds_violations() {
    let verdict = history(Durability::Master);
    assert!(
        !verdict.violations.is_empty(),
        "the failover to a replica that missed acknowledged drops went unnoticed: {} reads, \
         {} invalidations, faults {:?}",
        verdict.reads,
        verdict.invalidations,
        verdict.faults
    );
}
