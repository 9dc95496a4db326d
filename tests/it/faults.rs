//! Fail open: against real `redis-server` processes, under steady concurrent HTTP load, the cache
//! never causes a client-visible error, a wrong body or a hang, whatever happens to Redis; and
//! caching resumes once Redis is back.
//!
//! Every scenario runs the same three phases through the axum app of `app::load`
//! (16 clients over real TCP, 50 distinct requests, a 20 ms handler, the default 50 ms lookup
//! timeout and circuit breaker of 5 failures / 1 s cool-down):
//!
//! 1. **warm-up**, until hits and successful write-backs are observed;
//! 2. **fault**: Redis killed, paused, slow, cutting connections, full, holding foreign values,
//!    or absent;
//! 3. **recovery**, polled with a deadline until hits come back and write-backs succeed again.
//!
//! Each scenario prints one markdown row; RELIABILITY.md's table is produced by
//!
//! ```text
//! cargo test --release --test it faults:: -- --nocapture --test-threads=1 2>&1 | grep '^|'
//! ```

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::app::load::{
    entity, expected_body, key_factory, lang, redis_key, serve_app, App, Load, LoadConfig, Report,
    Sample,
};
use crate::servers::server::{ephemeral_port, PortChoice};
use crate::servers::{ProxyMode, RedisServer, Reply, TcpProxy};
use tower_redis_cache::{store::Entry, CacheLayer, CacheStats, RedisStore};

/// What the handler costs.
const HANDLER: Duration = Duration::from_millis(20);
/// The layer's lookup timeout (the default, set explicitly).
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(50);
/// Scheduling noise allowed on top of handler + lookup timeout. The tests run on small (2-core)
/// machines, possibly next to other test binaries: a descheduled tokio worker can add tens to
/// a few hundred milliseconds to a request that does nothing wrong. Anything that actually
/// waits for Redis is far above the bound: a reconnect (50 ms to 2 s back-off), the 1 s command
/// timeout, a paused server (3 s), a 200 ms proxy delay; a real hang hits the 5 s client timeout.
const SLACK: Duration = Duration::from_millis(400);
/// Entry TTL: short, so entries keep expiring and being written back in every phase, and
/// "caching resumed" means write-backs succeed again, not just old entries being read.
const SHORT_TTL: Duration = Duration::from_secs(3);
/// Entry TTL where entries must outlive the scenario.
const LONG_TTL: Duration = Duration::from_secs(120);
/// How long a timed fault lasts.
const FAULT: Duration = Duration::from_secs(3);
/// The longest a scenario waits for caching to work (warm-up) or to resume (recovery).
const WITHIN: Duration = Duration::from_secs(15);
/// New hits that count as "caching has resumed".
const RESUMED_HITS: u64 = 20;

/// The bound every request must meet.
fn max_latency() -> Duration {
    HANDLER + LOOKUP_TIMEOUT + SLACK
}

/// A store that waited for its first connection (Redis is up when the scenario starts).
async fn connected_store(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .connect()
        .await
        .expect("connect to the test's Redis")
}

/// One scenario: the app and its load.
struct Run {
    name: &'static str,
    app: App,
    load: Load,
}

impl Run {
    /// Starts the app caching in `store`, and the load.
    async fn start(name: &'static str, store: RedisStore, ttl: Duration, keys: u32) -> Run {
        Self::start_with(name, store, ttl, keys, None).await
    }

    /// Like [`start`](Self::start), with only the first `initial_keys` requests active until
    /// [`Load::set_active_keys`] widens them.
    async fn start_with(
        name: &'static str,
        store: RedisStore,
        ttl: Duration,
        keys: u32,
        initial_keys: Option<u32>,
    ) -> Run {
        let layer = CacheLayer::builder(store, key_factory())
            .lookup_timeout(LOOKUP_TIMEOUT)
            .circuit_breaker(5, Duration::from_secs(1))
            .build()
            .unwrap();
        let app = serve_app(layer, ttl, HANDLER).await;
        let config = LoadConfig {
            keys,
            initial_keys,
            ..LoadConfig::default()
        };
        let load = Load::start(&app.url(), config);
        Run { name, app, load }
    }

    fn stats(&self) -> CacheStats {
        self.app.stats()
    }

    /// Waits until caching demonstrably works: hits served and entries written.
    async fn warm_up(&self) {
        let result = self
            .load
            .wait_for(WITHIN, |c| c.hits >= 100 && self.stats().writes > 0)
            .await;
        if let Err(counts) = result {
            panic!(
                "{}: caching never started during warm-up: {counts:?}, {:?}",
                self.name,
                self.stats()
            );
        }
    }

    /// Waits until caching has resumed after the fault: [`RESUMED_HITS`] new hits, and more
    /// successful write-backs than at the fault's end (`at_fault_end`).
    async fn await_recovery(&self, at_fault_end: CacheStats) {
        let hits = self.load.counts().hits;
        let result = self
            .load
            .wait_for(WITHIN, |c| {
                c.hits >= hits + RESUMED_HITS && self.stats().writes > at_fault_end.writes
            })
            .await;
        if let Err(counts) = result {
            panic!(
                "{}: caching did not resume within {WITHIN:?}: {counts:?}, at fault end \
                 {at_fault_end:?}, now {:?}",
                self.name,
                self.stats()
            );
        }
    }

    /// Waits until every request in `keys` has been a hit since `before` (per-key hit counts).
    async fn await_hits_on(&self, keys: Range<u32>, before: &[u64]) -> Result<(), Vec<u64>> {
        let result = self
            .load
            .wait_for(WITHIN, |_| {
                let now = self.load.key_hits();
                keys.clone().all(|k| now[k as usize] > before[k as usize])
            })
            .await;
        result.map(drop).map_err(|_| self.load.key_hits())
    }

    /// Lets the load run half a second longer, stops it, and prints the report row.
    async fn finish(
        self,
        fault_start: Instant,
        fault_end: Instant,
        recovery: Recovery,
    ) -> (Report, Vec<Sample>) {
        self.load.run_for(Duration::from_millis(500)).await;
        let samples = self.load.stop().await;
        let stats = self.app.stats();
        let report = |end| Report::new(self.name, &samples, fault_start, end, stats);
        let report = match recovery {
            Recovery::FirstHit => report(fault_end),
            Recovery::AllHit(keys) => {
                report(fault_end).recovered_when_all_hit(&samples, keys, fault_end)
            }
            Recovery::Repair(keys) => {
                let recovered = report(fault_end).recovered_when_all_hit(&samples, keys, fault_end);
                let repaired = fault_end + recovered.time_to_recover.unwrap_or_default();
                Report {
                    time_to_recover: recovered.time_to_recover,
                    ..report(repaired)
                }
            }
        };
        // A leading newline: with --nocapture, libtest has already begun the test's line.
        println!("\n{}", report.row());
        (report, samples)
    }
}

/// What "recovered" means for a scenario's time to recover.
enum Recovery {
    /// The first hit after the fault ended.
    FirstHit,
    /// Every request in the range has been a hit since the fault ended.
    AllHit(Range<u32>),
    /// Like `AllHit`, and the fault lasts until then (damage the cache repairs itself: the
    /// latency columns then cover the repair).
    Repair(Range<u32>),
}

/// The fail-open contract, checked on every scenario.
fn assert_fail_open(report: &Report) {
    let name = &report.scenario;
    assert!(report.requests > 0, "{name}: no requests were made");
    assert_eq!(
        report.errors, 0,
        "{name}: client-visible errors, e.g. {:?}",
        report.error_examples
    );
    assert_eq!(
        report.wrong_bodies, 0,
        "{name}: bodies differing from the handler's"
    );
    assert!(
        report.max <= max_latency(),
        "{name}: a request took {:?} (> handler {HANDLER:?} + lookup timeout {LOOKUP_TIMEOUT:?} \
         + slack {SLACK:?})",
        report.max
    );
    assert!(report.hits_after > 0, "{name}: no hits after recovery");
    assert!(
        report.time_to_recover.is_some(),
        "{name}: caching did not recover after the fault"
    );
}

/// During a sustained outage the breaker keeps requests off Redis: lookups are skipped, and
/// more are skipped than tried (and failed).
fn assert_breaker_skipped(name: &str, before: CacheStats, after: CacheStats) {
    let skipped = after.circuit_open - before.circuit_open;
    let tried = after.lookup_errors - before.lookup_errors;
    assert!(
        skipped > 0 && skipped > tried,
        "{name}: the circuit breaker did not keep requests off the failing store \
         (skipped {skipped}, tried and failed {tried})"
    );
}

/// Prints the header of the table the scenarios' rows fill (sorted first by name).
#[test]
fn s0_table_header() {
    println!("\n{}", Report::table_header());
}

/// Redis is killed (SIGKILL) mid-load and restarted on the same port 3 s later, empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s1_redis_killed_then_restarted() {
    let mut redis = RedisServer::start();
    let store = connected_store(&redis.url()).await;
    let run = Run::start("Killed, restarted after 3 s", store, SHORT_TTL, 50).await;
    run.warm_up().await;

    let fault_start = Instant::now();
    redis.kill();
    let at_kill = run.stats();
    run.load.run_for(FAULT).await;
    assert_breaker_skipped(run.name, at_kill, run.stats());
    redis.restart();
    let fault_end = Instant::now();
    run.await_recovery(run.stats()).await;

    let (report, _) = run.finish(fault_start, fault_end, Recovery::FirstHit).await;
    assert_fail_open(&report);
    assert!(report.hits_before > 0);
}

/// Redis is frozen with SIGSTOP for 3 s (connections stay open, nothing answers), then resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s2_redis_paused_then_resumed() {
    let redis = RedisServer::start();
    let store = connected_store(&redis.url()).await;
    let run = Run::start("Paused (SIGSTOP) for 3 s", store, SHORT_TTL, 50).await;
    run.warm_up().await;

    let fault_start = Instant::now();
    redis.pause();
    let at_pause = run.stats();
    run.load.run_for(FAULT).await;
    let before_resume = run.stats();
    redis.resume();
    let fault_end = Instant::now();
    assert_breaker_skipped(run.name, at_pause, before_resume);
    run.await_recovery(run.stats()).await;

    let (report, _) = run.finish(fault_start, fault_end, Recovery::FirstHit).await;
    assert_fail_open(&report);
    assert!(report.hits_before > 0);
}

/// Every reply from Redis is delayed 200 ms (4x the lookup timeout) for 3 s, then normal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_redis_slow_then_normal() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.addr());
    let store = connected_store(&proxy.url()).await;
    let run = Run::start("Slow: +200 ms per reply for 3 s", store, SHORT_TTL, 50).await;
    run.warm_up().await;

    let fault_start = Instant::now();
    proxy.set_latency(Duration::from_millis(200));
    let at_slow = run.stats();
    run.load.run_for(FAULT).await;
    let before_normal = run.stats();
    proxy.set_latency(Duration::ZERO);
    let fault_end = Instant::now();
    assert_breaker_skipped(run.name, at_slow, before_normal);
    run.await_recovery(run.stats()).await;

    let (report, _) = run.finish(fault_start, fault_end, Recovery::FirstHit).await;
    assert_fail_open(&report);
    assert!(report.hits_before > 0);
}

/// Replies are cut in the middle (then the connection closed) for 1.5 s; then every open
/// connection is cut and new ones are closed on accept for 1.5 s; then traffic flows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s4_connections_cut_mid_reply_then_refused() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.addr());
    let store = connected_store(&proxy.url()).await;
    let name = "Cut mid-reply 1.5 s, then refused 1.5 s";
    let run = Run::start(name, store, SHORT_TTL, 50).await;
    run.warm_up().await;

    let fault_start = Instant::now();
    proxy.set_mode(ProxyMode::CutMidReply);
    let at_cut = run.stats();
    run.load.run_for(FAULT / 2).await;
    proxy.set_mode(ProxyMode::DropNewConnections);
    proxy.cut_all();
    run.load.run_for(FAULT / 2).await;
    let before_normal = run.stats();
    proxy.set_mode(ProxyMode::Forward);
    let fault_end = Instant::now();
    assert_breaker_skipped(run.name, at_cut, before_normal);
    run.await_recovery(run.stats()).await;

    let (report, _) = run.finish(fault_start, fault_end, Recovery::FirstHit).await;
    assert_fail_open(&report);
    assert!(report.hits_before > 0);
}

/// Redis is full (`maxmemory` with `noeviction`): writes fail with OOM while the entries
/// already stored still hit; once memory is freed, the entries refused meanwhile are written
/// and hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_redis_full_writes_fail_reads_hit() {
    const KEYS: u32 = 50;
    const WARM_KEYS: u32 = 20;
    let redis = RedisServer::builder()
        .args(["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"])
        .start();
    let store = connected_store(&redis.url()).await;
    // Warm up on the first 20 requests only (from the very first request on); the other 30
    // arrive once Redis is full.
    let name = "Full: maxmemory + noeviction (OOM)";
    let run = Run::start_with(name, store, LONG_TTL, KEYS, Some(WARM_KEYS)).await;
    run.warm_up().await;
    let warm = run
        .load
        .wait_for(WITHIN, |_| {
            (0..WARM_KEYS).all(|k| redis.exists(&redis_key(k)))
        })
        .await;
    assert!(
        warm.is_ok(),
        "the first {WARM_KEYS} entries were never all written"
    );

    let fault_start = Instant::now();
    let fillers = fill_until_oom(&redis);
    let at_full = run.stats();
    run.load.set_active_keys(KEYS);
    run.load.run_for(FAULT).await;
    let before_free = run.stats();
    let hits_while_full = run.load.key_hits();
    assert!(
        before_free.write_errors > at_full.write_errors,
        "no write-back failed while Redis was full: {before_free:?}"
    );
    // (The `writes` counter may still move by a write-back that Redis executed just before it
    // filled up; what must not happen is an entry refused while full appearing in Redis.)
    assert!(
        (WARM_KEYS..KEYS).all(|k| !redis.exists(&redis_key(k))),
        "write-backs succeeded although Redis was full: {before_free:?}"
    );
    let (old, new) = hits_while_full.split_at(WARM_KEYS as usize);
    assert!(
        old.iter().sum::<u64>() > 0 && new.iter().all(|&h| h == 0),
        "only the entries stored before Redis filled up can hit: {hits_while_full:?}"
    );

    // Free the memory (as an operator would): the refused entries are written and hit.
    let mut del = vec!["DEL".to_owned()];
    del.extend(fillers);
    let deleted = redis.connect().call(&del).expect("DEL fillers");
    assert!(matches!(deleted, Reply::Integer(n) if n > 0), "{deleted:?}");
    let fault_end = Instant::now();
    let at_free = run.stats();
    if let Err(now) = run.await_hits_on(WARM_KEYS..KEYS, &hits_while_full).await {
        panic!("entries refused while Redis was full never hit after memory was freed: {now:?}");
    }
    assert!(run.stats().writes > at_free.writes);

    let recovered = Recovery::AllHit(WARM_KEYS..KEYS);
    let (report, _) = run.finish(fault_start, fault_end, recovered).await;
    assert_fail_open(&report);
    assert!(
        report.hits_during > 0,
        "stored entries must still hit while Redis is full"
    );
}

/// Fills Redis with 1 KiB values until it refuses writes with OOM, then lowers `maxmemory` to
/// half the memory in use; returns the filler keys.
///
/// The margin keeps Redis full however the memory it counts moves on its own (client buffers
/// are resized by `clientsCron`, connections come and go, a debug build is slower): with a 10%
/// margin a few write-backs still got through now and then.
fn fill_until_oom(redis: &RedisServer) -> Vec<String> {
    const BATCH: usize = 100;
    let mut conn = redis.connect();
    let value = vec![b'x'; 1024];
    let mut keys = Vec::new();
    loop {
        assert!(
            keys.len() < 100_000,
            "Redis never reported OOM: maxmemory is not in effect"
        );
        let batch: Vec<String> = (keys.len()..keys.len() + BATCH)
            .map(|i| format!("filler:{i}"))
            .collect();
        for key in &batch {
            conn.send(&[b"SET".as_slice(), key.as_bytes(), &value])
                .expect("SET filler");
        }
        let mut oom = false;
        for key in batch {
            match conn.read_reply().expect("SET filler reply") {
                Reply::Simple(ok) if ok == "OK" => keys.push(key),
                Reply::Error(e) if e.starts_with("OOM") => oom = true,
                other => panic!("SET {key}: {other:?}"),
            }
        }
        if oom {
            break;
        }
    }
    let used: u64 = redis
        .info_field("memory", "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory");
    let lowered = (used / 2).to_string();
    assert_eq!(
        redis.query(&["CONFIG", "SET", "maxmemory", &lowered]),
        Reply::Simple("OK".into())
    );
    keys
}

/// Foreign or corrupt values under all 50 keys: garbage bytes, truncated valid entries and
/// LISTs (wrong type), a third each. Each is a miss (`bad-entry` or `store-error`), is
/// overwritten by the write-back, and then hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s6_foreign_and_corrupt_values() {
    const KEYS: u32 = 50;
    let redis = RedisServer::start();
    let store = connected_store(&redis.url()).await;
    let name = "Foreign, truncated, wrong-type values";
    let run = Run::start(name, store, LONG_TTL, KEYS).await;
    run.warm_up().await;
    let valid = (0..KEYS)
        .find_map(|k| redis.get(&redis_key(k)))
        .expect("warm-up wrote an entry");

    let fault_start = Instant::now();
    let before = run.stats();
    for k in 0..KEYS {
        let key = redis_key(k);
        match k % 3 {
            0 => redis.set_raw(&key, b"\xff\x00 not a cache entry: written by someone else"),
            1 => {
                let entry = redis.get(&key).unwrap_or_else(|| valid.clone());
                redis.set_raw(&key, &entry[..entry.len() / 2]);
            }
            _ => {
                redis.query(&["DEL", &key]);
                let pushed = redis.query(&["RPUSH", &key, "a", "b", "c"]);
                assert_eq!(pushed, Reply::Integer(3), "RPUSH {key}");
            }
        }
    }
    let fault_end = Instant::now();
    let hits_at_corruption = run.load.key_hits();
    if let Err(now) = run.await_hits_on(0..KEYS, &hits_at_corruption).await {
        panic!(
            "some corrupted keys never hit again: hits at corruption {hits_at_corruption:?}, \
             now {now:?}, {:?}",
            run.stats()
        );
    }
    let after = run.stats();
    assert!(
        after.bad_entries > before.bad_entries,
        "no bad entry was detected"
    );
    assert!(
        after.lookup_errors > before.lookup_errors,
        "no WRONGTYPE error was seen"
    );
    for k in 0..KEYS {
        let key = redis_key(k);
        let kind = redis.command(&["TYPE", &key]);
        assert_eq!(kind, "string", "{key} was not overwritten");
        let stored = redis.get(&key).expect("the rewritten entry");
        let entry = Entry::decode(stored.into()).expect("a valid entry");
        assert_eq!(entry.body(), expected_body(&entity(k), lang(k)).as_bytes());
    }

    let (report, _) = run
        .finish(fault_start, fault_end, Recovery::Repair(0..KEYS))
        .await;
    assert_fail_open(&report);
    assert!(report.hits_before > 0);
}

/// Redis is not running when the app starts (the store is built to connect in the
/// background): every request is served by the handler. After 3 s a `redis-server` starts on
/// that port, and caching begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s7_redis_absent_at_startup() {
    let port = ephemeral_port();
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .build()
        .expect("RedisStore::build");
    let run = Run::start(
        "Absent at start-up, started after 3 s",
        store,
        SHORT_TTL,
        50,
    )
    .await;
    let fault_start = run.load.started();
    run.load.run_for(FAULT).await;
    let before_start = run.stats();
    assert_eq!(run.load.counts().hits, 0, "hits without a Redis");
    assert_breaker_skipped(run.name, CacheStats::default(), before_start);

    let _redis = RedisServer::builder()
        .port_choice(PortChoice::Fixed(port))
        .start();
    let fault_end = Instant::now();
    run.await_recovery(run.stats()).await;

    let (report, _) = run.finish(fault_start, fault_end, Recovery::FirstHit).await;
    assert_fail_open(&report);
}

/// A value of the wrong type (a LIST) under the one hot key. Expected as in scenario 6: a few
/// misses, the write-back overwrites it, then hits.
///
/// Regression: WRONGTYPE used to count as a breaker failure, so every probe reopened the
/// breaker and the write-back that repairs the key was never sent. An answer from Redis, even
/// an error about one key, now counts as the store being up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s8_wrong_type_under_the_one_hot_key() {
    let redis = RedisServer::start();
    let store = connected_store(&redis.url()).await;
    let run = Run::start("Wrong type under the one hot key", store, SHORT_TTL, 1).await;
    run.warm_up().await;
    let key = redis_key(0);

    let fault_start = Instant::now();
    redis.query(&["DEL", &key]);
    let pushed = redis.query(&["RPUSH", &key, "a", "b", "c"]);
    assert_eq!(pushed, Reply::Integer(3));
    let fault_end = Instant::now();
    run.await_recovery(run.stats()).await;
    let kind = redis.command(&["TYPE", &key]);
    assert_eq!(kind, "string", "{key} was not overwritten");

    let (report, _) = run.finish(fault_start, fault_end, Recovery::FirstHit).await;
    assert_fail_open(&report);
}
