//! Cached-GET throughput and CPU cost per request under concurrent load, over loopback, for
//! several ways of serving the same hit, side by side in one run.
//!
//! Every variant is an axum app serving `GET /matches/{id}/markets`, whose handler returns a
//! 1 KiB JSON body (`content-type: application/json`), in its own server process:
//!
//! - `layer`: [`CacheLayer`] over [`RedisStore::connect`] (the store's default pool size), applied
//!   with `.route_layer(cache.policy(Policy::new("markets").entity(Entity::path_segment(1)
//!   .prefix("m_")).ttl(3600 s)))`.
//! - `layer-poolN` (`layer-pool1`, `layer-pool2`, `layer-pool4`, ...): the same over
//!   `RedisStore::builder(url).pool_size(N).connect()`, to choose the default pool size by
//!   measurement.
//! - `floor`: the least a Redis cache can do: an `axum::middleware::from_fn_with_state` that sends
//!   one `GET` per request on its own single `fred::Client` (fred's defaults plus `TCP_NODELAY`),
//!   keyed by the request path. A hit is the stored bytes as the body with
//!   `content-type: application/json`; a miss runs the handler, collects its body, spawns a
//!   `SET key value EX 3600` and returns the response. The figure the crate must reach.
//! - `memory`: the layer over [`MemoryStore::default()`](MemoryStore::default) (64 MiB) (no Redis): the
//!   middleware's own cost.
//! - `near`: the layer over a [`NearCache`] (64 MiB) in front of `RedisStore::connect`: hot hits
//!   from process memory, kept coherent by client tracking. Warm means every path was a near
//!   hit in the last pass.
//! - `vary`, `gzip-inside`, `gzip-outside`: the layer over `RedisStore::connect` on routes whose
//!   responses negotiate content (every request of the bench carries `Accept-Encoding: gzip` and
//!   `Accept-Language: en`; the other variants ignore both): the handler's responses say `Vary:
//!   accept-language` (so the key holds the learned header); tower-http's `CompressionLayer`
//!   between the cache and the handler (the cache stores the gzip body); `CompressionLayer`
//!   outside the cache (one identity entry, compressed for every response). Their warm-up
//!   checks `content-encoding: gzip` instead of the body.
//! - `static`: no cache at all: the route's handler answers the prebuilt body (a `Bytes` clone)
//!   with `content-type: application/json`, and every request counts as a hit (hits = requests,
//!   handler runs = 0). The in-process ceiling: what axum, hyper and the loopback cost alone.
//! - `peer:axum-response-cache`, `peer:tower-http-cache`: the same route cached by another
//!   crate, served by the binary of `benches/peers` (`LOAD_PEER_BIN`; `bash scripts/peers.sh`
//!   builds it and runs the bench with them): axum-response-cache's in-memory `CacheLayer`, and
//!   tower-http-cache's `CacheLayer` over its Redis backend on the bench's redis-server, each set
//!   up as its README shows with a TTL of 3600 s (the versions and settings are in
//!   `benches/peers`). The peers keep no counters of their own: that binary counts requests to
//!   the route and handler runs, and reports hits = requests − handler runs and misses = writes
//!   = handler runs.
//!
//! The bench starts a private `redis-server` on a free loopback port (`--save "" --appendonly no
//! --bind 127.0.0.1`, never the shared 6379; killed when the bench ends, panics included), then
//! runs itself (`current_exe`) once per variant as a server child (`LOAD_SERVE=<variant>`; the
//! peers' binary for `peer:` variants, `LOAD_BASE_BIN` for `base:` ones), each on a default
//! multi-thread Tokio runtime; all of them stay up for the whole run. It warms every variant up
//! (all 100 hot paths served from the cache: the exact body and `content-type` always, the
//! child's counters showing a pass of 100 hits and no handler run, plus `cache-status: …; hit`
//! for the layers, and the 100 keys in Redis for the floor and for tower-http-cache), then runs
//! `R` rounds; each round drives every variant once, in an order that rotates from round to
//! round, with
//!
//! ```text
//! wrk -t2 -c<connections> -d<secs>s --latency -s <script> http://127.0.0.1:<port>/
//! ```
//!
//! whose Lua script picks uniformly among the 100 paths `/matches/{0..99}/markets`. For each run
//! it records wrk's requests, throughput, p50 and p99 latency and errors (any non-2xx response or
//! socket error fails the bench), and the CPU time (utime + stime from `/proc/PID/stat`) of the
//! variant's server process and of `redis-server` over exactly the wrk run, divided by the
//! requests; also Redis's commands (`INFO stats`) and `read` syscalls (`syscr` in
//! `/proc/PID/io`), which show how many commands Redis gets per `read`, that is, how well the
//! client pipelines, and the server's `write`/`writev` syscalls (`syscw`; its socket reads are
//! `recv` calls, which that file does not count). Each round's figures are divided by the floor's of the same round. The
//! report is a markdown table of medians over rounds (ratios with their p25–p75), the load
//! average at start and end, and each variant's own counters (hits, misses, ...) against the
//! requests wrk made, so the table is known to be all hits (read before and after every run too,
//! to count the runs that were not).
//!
//! # Why CPU per request
//!
//! The build machine has 2 shared vCPUs that other builds use too. With wrk, the server and
//! Redis on them, throughput mostly measures how much of the machine the bench got; the CPU time
//! a process spends per request moves far less with the load around it, and it is what a
//! cheaper hit path lowers. Interleaving the variants in every round keeps the ratios to the
//! floor meaningful even when the load changes during the run.
//!
//! # Run
//!
//! ```text
//! cargo bench --bench load
//! LOAD_ROUNDS=10 LOAD_SECS=5 LOAD_CONNECTIONS=64 \
//!     LOAD_VARIANTS=layer,layer-pool1,layer-pool2,layer-pool4,floor,memory cargo bench --bench load
//! ```
//!
//! - `LOAD_ROUNDS` (default 10): rounds.
//! - `LOAD_SECS` (default 5): seconds of each wrk run.
//! - `LOAD_CONNECTIONS` (default 64): wrk's connections (2 wrk threads; 1 for 1 connection,
//!   one request at a time).
//! - `LOAD_VARIANTS` (default `layer,layer-pool2,floor,memory`): comma-separated variants. A
//!   variant written `base:<variant>` is served by another build of this bench, the binary at
//!   `LOAD_BASE_BIN` (for example the commit before a change, with this file copied in), so a
//!   before and an after are measured side by side in one interleaved run.
//! - `LOAD_PEER_BIN`: the peers' binary (`benches/peers`, built by
//!   `cargo build --release --manifest-path benches/peers/Cargo.toml`), needed by the `peer:`
//!   variants only. `bash scripts/peers.sh` builds it, sets it, and runs
//!   `floor,static,peer:tower-http-cache,peer:axum-response-cache,layer,memory,near`.
//!
//! About `2 + R × variants × (secs + 1)` seconds: ~4 min with the defaults. Needs
//! `redis-server` and `wrk` on `PATH` (Debian: `apt-get install redis-server wrk`) and Linux's
//! `/proc`. Without `--bench` (as in `cargo test --benches`) it does nothing.
//!
//! A server child can also be run by hand, to profile it under wrk:
//!
//! ```text
//! LOAD_SERVE=layer LOAD_REDIS_URL=redis://127.0.0.1:PORT LOAD_PORT=18080 target/release/deps/load-<hash>
//! LOAD_SERVE=tower-http-cache LOAD_REDIS_URL=redis://127.0.0.1:PORT LOAD_PORT=18081 \
//!     benches/peers/target/release/load-peer
//! ```
//!
//! It prints `LOAD_READY <port>` once listening, serves `/__stats` (its counters, not cached),
//! and runs until killed (or, when `LOAD_WATCH_STDIN=1`, as the bench sets it, until its stdin
//! closes).

#[path = "support/json_body.rs"]
mod json_body;
#[path = "../tests/it/servers/mod.rs"]
mod servers;
#[path = "support/stats.rs"]
mod stats;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    serve::ListenerExt,
    Router,
};
use bytes::Bytes;
use fred::prelude::{
    Builder, Client as FredClient, ClientLike, Config as FredConfig, Expiration, KeysInterface as _,
};
use json_body::json_body;
use servers::RedisServer;
use stats::{median, quartiles};
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{BufRead, BufReader, Read, Write as _},
    net::TcpStream,
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};
use tower_http::compression::CompressionLayer;
use tower_redis_cache::{
    CacheLayer, Entity, KeyFactory, MemoryStore, NearCache, Policy, RedisStore,
};

/// The prefix of a variant served by the baseline build (`LOAD_BASE_BIN`).
const BASE_PREFIX: &str = "base:";
/// The prefix of a variant served by the peers' binary (`LOAD_PEER_BIN`, `benches/peers`).
const PEER_PREFIX: &str = "peer:";
/// The key prefix of the tower-http-cache peer's entries in Redis (its `RedisBackend`'s default
/// namespace, then `:` and the path).
const TOWER_HTTP_CACHE_NAMESPACE: &str = "tower_http_cache:";

/// The headers every request carries (wrk's and the warm-up's), for the variants that
/// negotiate content; the others ignore them.
const REQUEST_HEADERS: &str = "Accept-Encoding: gzip\r\nAccept-Language: en\r\n";

/// The hot paths wrk requests, uniformly.
const PATHS: usize = 100;
/// The handler's body size.
const BODY_SIZE: usize = 1024;

fn main() {
    if let Ok(variant) = std::env::var("LOAD_SERVE") {
        serve(&variant);
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("load: nothing to do outside `cargo bench --bench load`");
        return;
    }
    run();
}

fn path(i: usize) -> String {
    format!("/matches/{i}/markets")
}

// ------------------------------------------------------------------------------------------
// Variants
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The layer over Redis; `None` is `RedisStore::connect` (the default pool size).
    Layer(Option<usize>),
    Floor,
    Memory,
    /// The layer over a [`NearCache`] in front of `RedisStore::connect`.
    Near,
    /// The route answering the prebuilt body, no cache at all: the in-process ceiling.
    Static,
    /// Another crate's cache, served by the peers' binary (`LOAD_PEER_BIN`).
    Peer(Peer),
    /// The layer over Redis on a route whose responses negotiate content.
    Negotiated(Negotiated),
}

/// Routes whose responses `Vary`, all over `RedisStore::connect`; every request of the bench
/// carries `Accept-Encoding: gzip` and `Accept-Language: en`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Negotiated {
    /// `vary`: the handler's responses carry `Vary: accept-language` (learned, keyed by it).
    Language,
    /// `gzip-inside`: tower-http's `CompressionLayer` between the cache and the handler: the
    /// cache stores (and a hit sends) the gzip body, one variant per coding.
    GzipInside,
    /// `gzip-outside`: `CompressionLayer` outside the cache: one identity entry, compressed
    /// again for every response.
    GzipOutside,
}

/// The peers `benches/peers` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// axum-response-cache: in process memory.
    AxumResponseCache,
    /// tower-http-cache over its Redis backend.
    TowerHttpCache,
}

impl Kind {
    fn parse(name: &str) -> Kind {
        match name {
            "layer" => Kind::Layer(None),
            "floor" => Kind::Floor,
            "memory" => Kind::Memory,
            "near" => Kind::Near,
            "static" => Kind::Static,
            "vary" => Kind::Negotiated(Negotiated::Language),
            "gzip-inside" => Kind::Negotiated(Negotiated::GzipInside),
            "gzip-outside" => Kind::Negotiated(Negotiated::GzipOutside),
            _ => match name.strip_prefix("layer-pool").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Kind::Layer(Some(n)),
                _ => panic!(
                    "unknown variant {name:?}: expected layer, layer-poolN (N >= 1), floor, memory, \
                     near, static, vary, gzip-inside, gzip-outside, peer:axum-response-cache or \
                     peer:tower-http-cache"
                ),
            },
        }
    }

    /// The kind of a `LOAD_VARIANTS` entry: `base:<variant>` is `<variant>`'s, `peer:<name>` a
    /// peer's.
    fn of_variant(variant: &str) -> Kind {
        if let Some(variant) = variant.strip_prefix(BASE_PREFIX) {
            return Kind::parse(variant);
        }
        match variant.strip_prefix(PEER_PREFIX) {
            Some("axum-response-cache") => Kind::Peer(Peer::AxumResponseCache),
            Some("tower-http-cache") => Kind::Peer(Peer::TowerHttpCache),
            Some(name) => panic!(
                "unknown peer {name:?} in {variant:?}: expected peer:axum-response-cache or \
                 peer:tower-http-cache"
            ),
            None => Kind::parse(variant),
        }
    }

    fn is_layer(self) -> bool {
        matches!(
            self,
            Kind::Layer(_) | Kind::Memory | Kind::Near | Kind::Negotiated(_)
        )
    }

    /// Whether its hits are gzip (the warm-up cannot compare them with the handler's body).
    fn gzips(self) -> bool {
        matches!(
            self,
            Kind::Negotiated(Negotiated::GzipInside | Negotiated::GzipOutside)
        )
    }

    fn uses_redis(self) -> bool {
        !matches!(
            self,
            Kind::Memory | Kind::Static | Kind::Peer(Peer::AxumResponseCache)
        )
    }
}

// ------------------------------------------------------------------------------------------
// The server child
// ------------------------------------------------------------------------------------------

/// A child's counters, as `/__stats` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    hits: u64,
    misses: u64,
    bypasses: u64,
    lookup_errors: u64,
    circuit_open: u64,
    writes: u64,
    write_errors: u64,
    writes_dropped: u64,
    handler_runs: u64,
    /// Lookups the near cache answered (the `near` variant only).
    near_hits: u64,
}

impl Counts {
    fn render(&self) -> String {
        format!(
            "hits={} misses={} bypasses={} lookup_errors={} circuit_open={} writes={} \
             write_errors={} writes_dropped={} handler_runs={} near_hits={}\n",
            self.hits,
            self.misses,
            self.bypasses,
            self.lookup_errors,
            self.circuit_open,
            self.writes,
            self.write_errors,
            self.writes_dropped,
            self.handler_runs,
            self.near_hits
        )
    }

    fn parse(text: &str) -> Counts {
        let fields: BTreeMap<&str, u64> = text
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.parse().expect("a counter")))
            .collect();
        let get = |k: &str| *fields.get(k).unwrap_or_else(|| panic!("{k} in {text:?}"));
        Counts {
            hits: get("hits"),
            misses: get("misses"),
            bypasses: get("bypasses"),
            lookup_errors: get("lookup_errors"),
            circuit_open: get("circuit_open"),
            writes: get("writes"),
            write_errors: get("write_errors"),
            writes_dropped: get("writes_dropped"),
            handler_runs: get("handler_runs"),
            near_hits: get("near_hits"),
        }
    }

    fn minus(&self, before: &Counts) -> Counts {
        Counts {
            hits: self.hits - before.hits,
            misses: self.misses - before.misses,
            bypasses: self.bypasses - before.bypasses,
            lookup_errors: self.lookup_errors - before.lookup_errors,
            circuit_open: self.circuit_open - before.circuit_open,
            writes: self.writes - before.writes,
            write_errors: self.write_errors - before.write_errors,
            writes_dropped: self.writes_dropped - before.writes_dropped,
            handler_runs: self.handler_runs - before.handler_runs,
            near_hits: self.near_hits - before.near_hits,
        }
    }
}

/// The floor's own counters (the layer has [`CacheLayer::stats`]).
#[derive(Default)]
struct FloorCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    lookup_errors: AtomicU64,
    writes: AtomicU64,
    write_errors: AtomicU64,
}

#[derive(Clone)]
struct Floor {
    client: FredClient,
    counters: Arc<FloorCounters>,
}

/// The floor: one `GET` per request; on a miss, the handler and a background `SET … EX 3600`.
async fn floor_cache(State(floor): State<Floor>, req: Request, next: Next) -> Response {
    match floor.client.get::<Option<Bytes>, _>(req.uri().path()).await {
        Ok(Some(bytes)) => {
            floor.counters.hits.fetch_add(1, Relaxed);
            return (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response();
        }
        Ok(None) => floor.counters.misses.fetch_add(1, Relaxed),
        Err(_) => floor.counters.lookup_errors.fetch_add(1, Relaxed),
    };
    let key = req.uri().path().to_owned();
    let (parts, body) = next.run(req).await.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let value = bytes.clone();
    tokio::spawn(async move {
        let set = floor
            .client
            .set::<(), _, _>(key, value, Some(Expiration::EX(3600)), None, false)
            .await;
        let counter = match set {
            Ok(()) => &floor.counters.writes,
            Err(_) => &floor.counters.write_errors,
        };
        counter.fetch_add(1, Relaxed);
    });
    Response::from_parts(parts, Body::from(bytes))
}

/// Runs one variant's server until killed (or until stdin closes, with `LOAD_WATCH_STDIN=1`).
fn serve(name: &str) {
    let kind = Kind::parse(name);
    let port: u16 = env_or("LOAD_PORT", 0);
    let url = std::env::var("LOAD_REDIS_URL").ok();
    let url = || {
        url.clone()
            .expect("LOAD_REDIS_URL: the Redis URL this variant uses")
    };
    if std::env::var("LOAD_WATCH_STDIN").as_deref() == Ok("1") {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    rt.block_on(async move {
        let body = json_body(BODY_SIZE);
        let runs = Arc::new(AtomicU64::new(0));
        let handler = {
            let runs = runs.clone();
            let body = body.clone();
            move || {
                runs.fetch_add(1, Relaxed);
                let body = body.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        body,
                    )
                }
            }
        };
        let policy = || {
            Policy::new("markets")
                .entity(Entity::path_segment(1).prefix("m_"))
                .ttl(Duration::from_secs(3600))
        };
        let keys = || KeyFactory::new("monps", "bench", "v1");
        type StatsFn = Arc<dyn Fn() -> Counts + Send + Sync>;
        let (route, stats): (_, StatsFn) = match kind {
            Kind::Static => {
                // No cache: the handler answers the prebuilt body and counts the request as a hit;
                // handler runs stay 0, as nothing is computed.
                let requests = Arc::new(AtomicU64::new(0));
                let route = get({
                    let requests = requests.clone();
                    move || {
                        requests.fetch_add(1, Relaxed);
                        let body = body.clone();
                        async move {
                            (
                                [(
                                    header::CONTENT_TYPE,
                                    HeaderValue::from_static("application/json"),
                                )],
                                body,
                            )
                        }
                    }
                });
                let stats = move || Counts {
                    hits: requests.load(Relaxed),
                    ..Counts::default()
                };
                (route, Arc::new(stats) as StatsFn)
            }
            Kind::Peer(_) => panic!(
                "{name}: a peer is served by the peers' binary (LOAD_PEER_BIN), not by this bench"
            ),
            Kind::Layer(_) | Kind::Memory | Kind::Near | Kind::Negotiated(_) => {
                let mut near = None;
                let cache = match kind {
                    Kind::Layer(None) | Kind::Negotiated(_) => CacheLayer::new(
                        RedisStore::connect(&url())
                            .await
                            .expect("connect the store"),
                        keys(),
                    ),
                    Kind::Layer(Some(n)) => CacheLayer::new(
                        RedisStore::builder(url())
                            .pool_size(n)
                            .connect()
                            .await
                            .expect("connect the store"),
                        keys(),
                    ),
                    Kind::Near => {
                        let redis = RedisStore::connect(&url())
                            .await
                            .expect("connect the store");
                        let store = NearCache::builder(redis).build().expect("a near cache");
                        near = Some(store.clone());
                        CacheLayer::new(store, keys())
                    }
                    _ => CacheLayer::new(MemoryStore::default(), keys()),
                };
                // Each negotiating variant in a namespace of its own: the variants share one
                // Redis, and a namespace learns what its responses vary on.
                let own = |namespace: &str| {
                    Policy::new(namespace)
                        .entity(Entity::path_segment(1).prefix("m_"))
                        .ttl(Duration::from_secs(3600))
                };
                let route = match kind {
                    Kind::Negotiated(Negotiated::Language) => get(handler)
                        .route_layer(middleware::map_response(vary_by_language))
                        .route_layer(cache.policy(own("markets-vary"))),
                    Kind::Negotiated(Negotiated::GzipInside) => get(handler)
                        .route_layer(CompressionLayer::new())
                        .route_layer(cache.policy(own("markets-gzip-inside"))),
                    Kind::Negotiated(Negotiated::GzipOutside) => get(handler)
                        .route_layer(cache.policy(own("markets-gzip-outside")))
                        .route_layer(CompressionLayer::new()),
                    _ => get(handler).route_layer(cache.policy(policy())),
                };
                let runs = runs.clone();
                let stats = move || {
                    let s = cache.stats();
                    Counts {
                        hits: s.hits,
                        misses: s.misses,
                        bypasses: s.bypasses,
                        lookup_errors: s.lookup_errors,
                        circuit_open: s.circuit_open,
                        writes: s.writes,
                        write_errors: s.write_errors,
                        writes_dropped: s.writes_dropped,
                        handler_runs: runs.load(Relaxed),
                        near_hits: near.as_ref().map_or(0, |n| n.stats().hits),
                    }
                };
                (route, Arc::new(stats) as StatsFn)
            }
            Kind::Floor => {
                let config = FredConfig::from_url(&url()).expect("a Redis URL");
                let client = Builder::from_config(config)
                    .with_connection_config(|c| c.tcp.nodelay = Some(true))
                    .build()
                    .expect("a fred client");
                client.init().await.expect("connect the floor's client");
                let floor = Floor {
                    client,
                    counters: Arc::default(),
                };
                let counters = floor.counters.clone();
                let route =
                    get(handler).route_layer(middleware::from_fn_with_state(floor, floor_cache));
                let runs = runs.clone();
                let stats = move || Counts {
                    hits: counters.hits.load(Relaxed),
                    misses: counters.misses.load(Relaxed),
                    bypasses: 0,
                    lookup_errors: counters.lookup_errors.load(Relaxed),
                    circuit_open: 0,
                    writes: counters.writes.load(Relaxed),
                    write_errors: counters.write_errors.load(Relaxed),
                    writes_dropped: 0,
                    handler_runs: runs.load(Relaxed),
                    near_hits: 0,
                };
                (route, Arc::new(stats) as StatsFn)
            }
        };
        let app = Router::new()
            .route("/matches/{id}/markets", route)
            .route("/__stats", get(move || ready_text(stats())));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().expect("the bound address").port();
        println!("LOAD_READY {port}");
        let _ = std::io::stdout().flush();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.expect("serve");
    });
}

/// The `vary` variant's handler answers by `Accept-Language` (and says so).
async fn vary_by_language(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-language"));
    response
}

async fn ready_text(counts: Counts) -> String {
    counts.render()
}

// ------------------------------------------------------------------------------------------
// The driver
// ------------------------------------------------------------------------------------------

struct Settings {
    rounds: usize,
    secs: u64,
    connections: usize,
    variants: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid value")),
        Err(_) => default,
    }
}

/// One wrk run of one variant.
#[derive(Clone, Copy, Debug)]
struct Sample {
    requests: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    app_us_per_req: f64,
    redis_us_per_req: f64,
    redis_cmds_per_req: f64,
    redis_reads_per_req: f64,
    app_writes_per_req: f64,
    /// Requests the variant did not answer from the cache during the run (its own counters).
    non_hits: u64,
}

fn run() {
    let settings = Settings {
        rounds: env_or("LOAD_ROUNDS", 10),
        secs: env_or("LOAD_SECS", 5),
        connections: env_or("LOAD_CONNECTIONS", 64),
        variants: std::env::var("LOAD_VARIANTS")
            .unwrap_or_else(|_| "layer,layer-pool2,floor,memory".to_owned())
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    };
    assert!(settings.rounds > 0 && settings.secs > 0 && settings.connections >= 1);
    assert!(!settings.variants.is_empty(), "LOAD_VARIANTS is empty");
    let kinds: Vec<Kind> = settings
        .variants
        .iter()
        .map(|v| Kind::of_variant(v))
        .collect();
    if kinds.iter().any(|k| matches!(k, Kind::Peer(_))) {
        // Before any server starts: a missing binary is a setup mistake, not a failed run.
        peer_bin();
    }
    check_wrk();
    let (ticks, ticks_note) = clock_ticks();
    let load_start = load_average();

    let redis = RedisServer::start();
    let lua = LuaScript::write();
    let mut servers: Vec<Server> = settings
        .variants
        .iter()
        .map(|name| Server::start(name, &redis.url()))
        .collect();
    for (server, kind) in servers.iter_mut().zip(&kinds) {
        warm_up(server, *kind, &redis);
        server.baseline = server.stats();
    }
    eprintln!(
        "load: {} variants warmed up; {} rounds of {} s each, {} connections",
        servers.len(),
        settings.rounds,
        settings.secs,
        settings.connections
    );

    let n = servers.len();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(settings.rounds); n];
    for round in 0..settings.rounds {
        for i in 0..n {
            let index = (round + i) % n;
            let sample = measure(&servers[index], &redis, &lua, &settings, ticks);
            eprintln!(
                "round {:>2}/{}: {:<24} {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  \
                 app {:>6.1} µs/req  redis {:>5.1} µs/req  redis cmds/read {:>5.2}  non-hits {}",
                round + 1,
                settings.rounds,
                servers[index].name,
                sample.rps,
                sample.p50_us,
                sample.p99_us,
                sample.app_us_per_req,
                sample.redis_us_per_req,
                sample.redis_cmds_per_req / sample.redis_reads_per_req.max(f64::MIN_POSITIVE),
                sample.non_hits,
            );
            samples[index].push(sample);
        }
    }
    let load_end = load_average();

    let mut report = String::new();
    let _ = writeln!(
        report,
        "\n## load: {} rounds × {} s per variant, wrk -t{} -c{}, {} hot paths, {} B body\n",
        settings.rounds,
        settings.secs,
        settings.connections.min(2),
        settings.connections,
        PATHS,
        BODY_SIZE
    );
    let _ = writeln!(report, "- load average at start: {load_start}");
    let _ = writeln!(report, "- load average at end:   {load_end}");
    let _ = writeln!(
        report,
        "- CPU: utime+stime from /proc/PID/stat, CLK_TCK = {ticks} ({ticks_note}); {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        report,
        "- figures: medians over rounds; ratios: median [p25–p75] of the per-round ratio to `floor`; \
         runs with non-hits: runs in which the variant's own counters saw a miss or bypass (a \
         lookup over the 50 ms lookup timeout, or the circuit breaker it opened), whose figures \
         mix in handler calls; `static` and the `peer:` variants count a request that did not \
         run the handler as a hit (the peers' binary counts requests and handler runs)\n"
    );
    report.push_str(&main_table(&settings.variants, &samples));
    report.push('\n');
    report.push_str(&syscall_table(&settings.variants, &samples, &kinds));
    let _ = writeln!(
        report,
        "\n(syscalls from /proc/PID/io: redis-server's `read`s; the server's `write`/`writev`s, \
         for hyper's responses and fred's commands)\n"
    );

    // Every measured request must have been a hit.
    let _ = writeln!(
        report,
        "| variant | wrk requests (all rounds) | hits | misses | of which lookup errors | of which circuit open | bypasses | writes | writes dropped | handler runs | all hits |"
    );
    let _ = writeln!(
        report,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let mut all_hits = true;
    for (i, server) in servers.iter().enumerate() {
        let counts = server.stats().minus(&server.baseline);
        let requests: u64 = samples[i].iter().map(|s| s.requests).sum();
        // wrk does not count the responses still in flight when a run ends, so the server may
        // have answered up to `connections` more per run than wrk reports.
        let slack = (settings.connections * settings.rounds) as u64;
        let ok = counts.misses == 0
            && counts.bypasses == 0
            && counts.lookup_errors == 0
            && counts.handler_runs == 0
            && counts.hits >= requests
            && counts.hits <= requests + slack;
        all_hits &= ok;
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            server.name,
            requests,
            counts.hits,
            counts.misses,
            counts.lookup_errors,
            counts.circuit_open,
            counts.bypasses,
            counts.writes,
            counts.writes_dropped,
            counts.handler_runs,
            if ok { "yes" } else { "**NO**" }
        );
    }
    let _ = writeln!(
        report,
        "\n(hits may exceed wrk's count by the responses in flight when each run ended; a miss \
         under load is a lookup over the layer's 50 ms lookup timeout, or one skipped while the \
         circuit breaker it opened was open)"
    );
    let _ = writeln!(
        report,
        "\nredis-server INFO commandstats after the run:\n\n```\n{}```",
        redis.command(&["INFO", "commandstats"])
    );
    println!("{report}");
    if !all_hits {
        eprintln!(
            "WARNING: some measured requests were not hits (see the table): the figures mix in \
             misses"
        );
    }
    drop(servers);
    drop(lua);
    drop(redis);
}

fn main_table(names: &[String], samples: &[Vec<Sample>]) -> String {
    let floor = names.iter().position(|n| n == "floor");
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| variant | req/s | p50 | p99 | app µs/req | redis µs/req | req/s ÷ floor | app CPU/req ÷ floor | redis CPU/req ÷ floor | runs with non-hits |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, rows) in names.iter().zip(samples) {
        let ratio = |f: fn(&Sample) -> f64| match floor {
            Some(fl) => {
                let ratios: Vec<f64> = rows
                    .iter()
                    .zip(&samples[fl])
                    .map(|(s, b)| f(s) / f(b))
                    .collect();
                let (p25, m, p75) = quartiles(ratios);
                format!("{m:.3} [{p25:.3}–{p75:.3}]")
            }
            None => "–".to_owned(),
        };
        let _ = writeln!(
            t,
            "| {name} | {:.0} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {}/{} |",
            median(rows.iter().map(|s| s.rps)),
            micros(median(rows.iter().map(|s| s.p50_us))),
            micros(median(rows.iter().map(|s| s.p99_us))),
            median(rows.iter().map(|s| s.app_us_per_req)),
            median(rows.iter().map(|s| s.redis_us_per_req)),
            ratio(|s| s.rps),
            ratio(|s| s.app_us_per_req),
            ratio(|s| s.redis_us_per_req),
            rows.iter().filter(|s| s.non_hits > 0).count(),
            rows.len(),
        );
    }
    t
}

fn syscall_table(names: &[String], samples: &[Vec<Sample>], kinds: &[Kind]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| variant | redis cmds/req | redis read syscalls/req | redis cmds per read | app write syscalls/req |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|");
    for ((name, rows), kind) in names.iter().zip(samples).zip(kinds) {
        let per_read = if kind.uses_redis() {
            format!(
                "{:.2}",
                median(
                    rows.iter()
                        .map(|s| s.redis_cmds_per_req / s.redis_reads_per_req)
                )
            )
        } else {
            "–".to_owned()
        };
        let _ = writeln!(
            t,
            "| {name} | {:.3} | {:.3} | {per_read} | {:.3} |",
            median(rows.iter().map(|s| s.redis_cmds_per_req)),
            median(rows.iter().map(|s| s.redis_reads_per_req)),
            median(rows.iter().map(|s| s.app_writes_per_req)),
        );
    }
    t
}

fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// One wrk run against `server`, with the CPU time and syscalls of it and of Redis over it.
fn measure(
    server: &Server,
    redis: &RedisServer,
    lua: &LuaScript,
    settings: &Settings,
    ticks: f64,
) -> Sample {
    let counts_before = server.stats();
    let cmds_before = total_commands(redis);
    let redis_io_before = proc_io(redis_pid(redis));
    let app_io_before = proc_io(server.pid());
    let redis_cpu_before = cpu_ticks(redis_pid(redis));
    let app_cpu_before = cpu_ticks(server.pid());
    let output = Command::new("wrk")
        // Two threads, or one for one connection at a time (wrk needs a connection per thread).
        .arg(format!("-t{}", settings.connections.min(2)))
        .arg(format!("-c{}", settings.connections))
        .arg(format!("-d{}s", settings.secs))
        .arg("--latency")
        .arg("-s")
        .arg(&lua.path)
        .arg(format!("http://127.0.0.1:{}/", server.port))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run wrk: {e}"));
    let app_cpu = cpu_ticks(server.pid()) - app_cpu_before;
    let redis_cpu = cpu_ticks(redis_pid(redis)) - redis_cpu_before;
    let app_io = proc_io(server.pid()).minus(app_io_before);
    let redis_io = proc_io(redis_pid(redis)).minus(redis_io_before);
    let cmds = total_commands(redis) - cmds_before;
    let counts = server.stats().minus(&counts_before);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "wrk failed ({}) against {}:\n{stdout}\n{stderr}",
        output.status,
        server.name
    );
    let result = WrkResult::parse(&stdout)
        .unwrap_or_else(|| panic!("no LOAD_RESULT line in wrk's output:\n{stdout}\n{stderr}"));
    let errors = result.connect + result.read + result.write + result.timeout;
    assert!(
        result.status == 0 && errors == 0 && result.requests > 0,
        "{}: {} non-2xx responses and {errors} socket errors (connect {}, read {}, write {}, \
         timeout {}) in {} requests: the figures would not be of hits. wrk said:\n{stdout}\n{stderr}",
        server.name,
        result.status,
        result.connect,
        result.read,
        result.write,
        result.timeout,
        result.requests
    );
    let requests = result.requests as f64;
    Sample {
        requests: result.requests,
        rps: requests / (result.duration_us / 1e6),
        p50_us: result.p50_us,
        p99_us: result.p99_us,
        app_us_per_req: app_cpu as f64 / ticks * 1e6 / requests,
        redis_us_per_req: redis_cpu as f64 / ticks * 1e6 / requests,
        // The INFO call that opens the window is counted by the one that closes it.
        redis_cmds_per_req: cmds.saturating_sub(1) as f64 / requests,
        redis_reads_per_req: redis_io.reads as f64 / requests,
        app_writes_per_req: app_io.writes as f64 / requests,
        non_hits: counts.misses + counts.bypasses,
    }
}

/// What the Lua script's `done` prints.
#[derive(Debug)]
struct WrkResult {
    requests: u64,
    duration_us: f64,
    p50_us: f64,
    p99_us: f64,
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
}

impl WrkResult {
    fn parse(stdout: &str) -> Option<WrkResult> {
        let line = stdout.lines().find(|l| l.starts_with("LOAD_RESULT "))?;
        let fields: BTreeMap<&str, f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        let f = |k: &str| fields.get(k).copied();
        Some(WrkResult {
            requests: f("requests")? as u64,
            duration_us: f("duration_us")?,
            p50_us: f("p50_us")?,
            p99_us: f("p99_us")?,
            connect: f("connect")? as u64,
            read: f("read")? as u64,
            write: f("write")? as u64,
            status: f("status")? as u64,
            timeout: f("timeout")? as u64,
        })
    }
}

fn check_wrk() {
    match Command::new("wrk")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("wrk not found on PATH: install it with `apt-get install wrk`")
        }
        Err(e) => panic!("cannot run wrk: {e}"),
    }
}

/// Clock ticks per second for `/proc/PID/stat`, and where the figure came from.
fn clock_ticks() -> (f64, &'static str) {
    let reported = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0);
    match reported {
        Some(t) => (t, "from `getconf CLK_TCK`"),
        None => (100.0, "ASSUMED: `getconf CLK_TCK` gave no answer"),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')').expect("a /proc stat line") + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a tick count") };
    field(14) + field(15)
}

/// Read and write syscalls of a process so far (`/proc/PID/io`: `syscr`, `syscw`).
#[derive(Clone, Copy, Debug, Default)]
struct Io {
    reads: u64,
    writes: u64,
}

impl Io {
    fn minus(self, before: Io) -> Io {
        Io {
            reads: self.reads - before.reads,
            writes: self.writes - before.writes,
        }
    }
}

/// `total_commands_processed` from `INFO stats`.
fn total_commands(redis: &RedisServer) -> u64 {
    redis
        .info_field("stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .expect("total_commands_processed in INFO stats")
}

fn redis_pid(redis: &RedisServer) -> u32 {
    redis.pid().expect("redis-server is running")
}

fn proc_io(pid: u32) -> Io {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/io: {e}"));
    let get = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/io"))
    };
    Io {
        reads: get("syscr"),
        writes: get("syscw"),
    }
}

/// Sends every hot path until each is served from the cache, checking every body.
fn warm_up(server: &Server, kind: Kind, redis: &RedisServer) {
    let expected = json_body(BODY_SIZE);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut passes = 0;
    loop {
        passes += 1;
        let before = server.stats();
        let mut tagged_hits = 0;
        for i in 0..PATHS {
            let response = http_get(server.port, &path(i));
            assert_eq!(response.status, 200, "{}: GET {}", server.name, path(i));
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{}: GET {}",
                server.name,
                path(i)
            );
            if kind.gzips() {
                assert_eq!(
                    response.header("content-encoding"),
                    Some("gzip"),
                    "{}: GET {}",
                    server.name,
                    path(i)
                );
            }
            assert!(
                kind.gzips() || response.body == expected,
                "{}: GET {}: not the handler's body ({} bytes)",
                server.name,
                path(i),
                response.body.len()
            );
            if kind.is_layer() {
                let status = response.header("cache-status").unwrap_or_default();
                if status.contains("; hit") {
                    tagged_hits += 1;
                }
            }
        }
        let pass = server.stats().minus(&before);
        let all_hits = pass.hits == PATHS as u64
            && pass.misses == 0
            && pass.handler_runs == 0
            && (!kind.is_layer() || tagged_hits == PATHS)
            && (kind != Kind::Near || pass.near_hits == PATHS as u64);
        if all_hits {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not every path is a hit after {passes} passes: {pass:?}, {tagged_hits} tagged hits",
            server.name
        );
        // Write-backs are in the background: give them a moment.
        std::thread::sleep(Duration::from_millis(50));
    }
    // The variants that store each response in Redis under a key of its path must hold all of
    // them there.
    let key_prefix = match kind {
        Kind::Floor => Some(""),
        Kind::Peer(Peer::TowerHttpCache) => Some(TOWER_HTTP_CACHE_NAMESPACE),
        _ => None,
    };
    if let Some(prefix) = key_prefix {
        let mut args = vec!["EXISTS".to_owned()];
        args.extend((0..PATHS).map(|i| format!("{prefix}{}", path(i))));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply = redis.query(&args);
        assert_eq!(
            reply.as_int(),
            Some(PATHS as i64),
            "{}: Redis does not hold the {PATHS} keys {prefix}/matches/{{0..99}}/markets ({reply:?})",
            server.name
        );
    }
    eprintln!("load: {} warm ({passes} passes)", server.name);
}

/// An HTTP/1.1 response read by [`http_get`].
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A blocking `GET` on a fresh connection (`Connection: close`), read to its end.
fn http_get(port: u16, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{REQUEST_HEADERS}Connection: close\r\n\r\n"
    )
    .expect("send a request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read a response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut response = HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if response.header("transfer-encoding") == Some("chunked") {
        response.body = dechunk(&response.body);
    }
    response
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// One variant's server child process, killed on drop.
struct Server {
    name: String,
    child: Child,
    /// Closing it tells the child to exit, should the bench die without killing it.
    _stdin: ChildStdin,
    port: u16,
    /// The child's counters once warm.
    baseline: Counts,
}

impl Server {
    fn start(name: &str, redis_url: &str) -> Server {
        // `base:<variant>` runs `<variant>` from another build of this bench (`LOAD_BASE_BIN`),
        // such as the commit before a change: before and after in one interleaved run.
        // `peer:<name>` runs another crate's cache from the peers' binary (`LOAD_PEER_BIN`).
        let (exe, serve) = if let Some(variant) = name.strip_prefix(BASE_PREFIX) {
            let bin = std::env::var("LOAD_BASE_BIN").expect(
                "LOAD_BASE_BIN: the bench binary of the baseline build, for base: variants",
            );
            (PathBuf::from(bin), variant)
        } else if let Some(peer) = name.strip_prefix(PEER_PREFIX) {
            (peer_bin(), peer)
        } else {
            (
                std::env::current_exe().expect("the bench's own executable"),
                name,
            )
        };
        let mut child = Command::new(exe)
            .env("LOAD_SERVE", serve)
            .env("LOAD_PORT", "0")
            .env("LOAD_REDIS_URL", redis_url)
            .env("LOAD_WATCH_STDIN", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name} server: {e}"));
        let stdin = child.stdin.take().expect("the child's stdin");
        let stdout = child.stdout.take().expect("the child's stdout");
        let (tx, rx) = mpsc::channel();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("LOAD_READY ") {
                    Some(port) => {
                        let _ = tx.send(port.trim().parse::<u16>().ok());
                    }
                    None => eprintln!("[{label}] {line}"),
                }
            }
        });
        let mut server = Server {
            name: name.to_owned(),
            child,
            _stdin: stdin,
            port: 0,
            baseline: Counts::default(),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => server.port = port,
            Ok(None) => panic!("{name}: a malformed ready line"),
            Err(_) => panic!("{name}: the server child did not get ready within 60 s"),
        }
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stats(&self) -> Counts {
        let response = http_get(self.port, "/__stats");
        assert_eq!(response.status, 200, "{}: GET /__stats", self.name);
        Counts::parse(&String::from_utf8_lossy(&response.body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The peers' binary (`benches/peers`), from `LOAD_PEER_BIN`.
fn peer_bin() -> PathBuf {
    let bin = std::env::var_os("LOAD_PEER_BIN").unwrap_or_else(|| {
        panic!(
            "LOAD_PEER_BIN is not set: peer: variants are served by the binary of benches/peers; \
             run them through `bash scripts/peers.sh`, which builds it and sets LOAD_PEER_BIN"
        )
    });
    let bin = PathBuf::from(bin);
    assert!(
        bin.is_file(),
        "LOAD_PEER_BIN={}: no such file; `bash scripts/peers.sh` builds it",
        bin.display()
    );
    bin
}

/// The wrk script, in a temporary file removed on drop.
struct LuaScript {
    path: PathBuf,
}

impl LuaScript {
    fn write() -> LuaScript {
        let path =
            std::env::temp_dir().join(format!("tower-redis-cache-load-{}.lua", std::process::id()));
        let script = format!(
            r#"-- Written by tower-redis-cache's benches/load.rs: uniform over {PATHS} hot paths.
local paths = {{}}
for i = 0, {last} do paths[#paths + 1] = "/matches/" .. i .. "/markets" end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end
local headers = {{ ["Accept-Encoding"] = "gzip", ["Accept-Language"] = "en" }}
function request()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LOAD_RESULT requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#,
            last = PATHS - 1
        );
        std::fs::write(&path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        LuaScript { path }
    }
}

impl Drop for LuaScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
