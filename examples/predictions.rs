//! The main example: `tower-redis-cache` in front of an axum app modelled on a football-prediction
//! API, whose `analyze_match` takes ~150 ms.
//!
//! Run it (a Redis on 127.0.0.1:6379 is used when one answers, else an in-process store):
//!
//! ```text
//! cargo run --release --example predictions
//! ```
//!
//! Routes, each cached by its own [`Policy`]:
//!
//! | route                             | namespace     | methods | entity    | TTL   |
//! |-----------------------------------|---------------|---------|-----------|-------|
//! | `POST /matches/{id}/prediction`   | `pred`        | POST    | `m_{id}`  | 300 s |
//! | `GET  /matches/{id}/markets`      | `markets`     | GET     | `m_{id}`  | 60 s  |
//! | `GET  /matches/{id}/goalscorers`  | `goalscorers` | GET     | `m_{id}`  | 60 s  |
//! | `GET  /teams/{team}/matches`      | `teams`       | GET     | `t_{team}`| 60 s  |
//! | `GET  /health`                    | `health`      | GET     | (none)    | 5 s   |
//!
//! Not cached: `GET /metrics`, the cache's metrics in Prometheus text format (through
//! `metrics-exporter-prometheus`), and `GET /stats`, JSON with per-namespace hits, misses and
//! hit rate, the handlers' run counts, the ten entities that take the most hits (`hot_keys`)
//! and, on Redis, figures from `INFO` (`used_memory`, `maxmemory`, `evicted_keys`,
//! `keyspace_hits`/`misses`, …). `examples/loadgen.rs` reads `/stats` for its report.
//!
//! A team's matches are tagged `team-{team}` (the handler names its tags in `cache-tag`, which
//! the cache removes before the client sees it). Invalidation, answering
//! `{"invalidated": <entries dropped>}` (`503` with `Retry-After` and the error when a retry may
//! help: Redis unreachable or busy, replicas late to acknowledge; `500` when not):
//!
//! | route                                  | drops                                        |
//! |----------------------------------------|----------------------------------------------|
//! | `POST /admin/matches/{id}/invalidate`  | every cached response of match `id`          |
//! | `POST /admin/namespaces/{ns}/invalidate` | every cached response of namespace `ns`    |
//! | `POST /admin/tags/{tag}/invalidate`    | every cached response tagged `tag`           |
//!
//! Each takes `?soft=true`: a soft purge, which marks the entries stale instead of dropping
//! them (routes with a stale-while-revalidate window then serve each once while one refresh
//! renews it).
//!
//! The prediction's optional JSON body (its config, such as `{"risk":"high","model":"v2"}`) is
//! part of the key in its RFC 8785 canonical form, so member order and whitespace do not matter.
//! A config with `"detail": N` (at most 1 MiB) adds a minute-by-minute timeline of about N
//! bytes to the prediction: large bodies for load and memory tests.
//! Every response carries `x-handler-runs`: how many times that route's handler had run when it
//! produced the response. The handler sets it, so a hit replays the count stored with the entry.
//!
//! ```text
//! curl -si -X POST localhost:3000/matches/12345/prediction -d '{"risk":"high","model":"v2"}'
//! curl -si -X POST localhost:3000/matches/12345/prediction -d '{"model":"v2","risk":"high"}'
//! # second answer: `cache-status: tower-redis-cache; hit; ttl=299` and the same `x-handler-runs`
//! redis-cli --scan --pattern 'monps:*'   # monps:dev:v1:pred:{m_12345}:<16 hex digits>
//! # 100 concurrent identical cold predictions run analyze_match once (coalesced in-process,
//! # and across instances through a lease in Redis): all 100 answers carry one x-handler-runs:
//! seq 100 | xargs -P100 -I{} curl -s -o /dev/null -D - -X POST localhost:3000/matches/777/prediction | grep -i x-handler-runs | sort | uniq -c
//! # a client holding the response gets 304:
//! curl -si localhost:3000/matches/12345/markets -H 'If-None-Match: <the etag of a hit>'
//! curl -s -X POST localhost:3000/admin/matches/12345/invalidate   # {"invalidated":1}
//! curl -si -X POST localhost:3000/matches/12345/prediction -d '{"risk":"high","model":"v2"}'
//! # a miss again: the handler runs, x-handler-runs goes up
//! ```
//!
//! Environment:
//!
//! - `BIND` (default `127.0.0.1:3000`): the address to listen on.
//! - `REDIS_URL` (default `redis://127.0.0.1:6379`): any URL [`RedisStore`] accepts (`redis://`,
//!   `rediss://`, `redis-cluster://`, `redis-sentinel://`, credentials in the URL). When no Redis
//!   answers within the connection timeout, the app logs one warning and caches in a
//!   [`MemoryStore`] (per process) instead. Credentials are never logged.
//! - `NEAR_CACHE_BYTES` (unset: off): with Redis, keep hot entries in process memory too, up
//!   to this many bytes, in a [`NearCache`] kept coherent with Redis by client tracking (RESP3).
//!   `/stats` then shows its hits, bytes and flushes under `near_cache`.
//! - `APP_ENV` (default `dev`): the `{env}` field of the keys, `monps:{env}:v1:…`.
//! - `RUST_LOG` (default `info`).

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Value};
use std::{
    io::IsTerminal,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};
use tower_redis_cache::{
    store::Store, CacheLayer, CacheStats, Entity, Invalidator, KeyFactory, MemoryStore, NearCache,
    NearCacheStats, Policy, RedisStore, StoreError, StoreErrorKind,
};
use tracing_subscriber::EnvFilter;

/// How many times each route's handler has run.
#[derive(Default)]
struct Runs {
    prediction: AtomicU64,
    markets: AtomicU64,
    goalscorers: AtomicU64,
    teams: AtomicU64,
    health: AtomicU64,
}

/// What the handlers share: the run counts, the cache's invalidator and what `/metrics` and
/// `/stats` report.
#[derive(Clone)]
struct AppState {
    runs: Arc<Runs>,
    invalidator: Invalidator,
    cache: CacheLayer,
    metrics: PrometheusHandle,
    /// The Redis store, for `INFO` in `/stats` (`None` on the in-process store).
    redis: Option<RedisStore>,
    /// The near cache in front of Redis, when `NEAR_CACHE_BYTES` is set.
    near: Option<NearCache>,
}

/// The response header in which handlers name the tags of a response.
const CACHE_TAG: &str = "cache-tag";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // fred warns "Attempted to quit client that was already stopped" when a failed connect
    // closes its pool; the fallback below already says all there is to say.
    let default_filter = "info,fred::commands::impls::server=error";
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        // Colour codes only on a terminal: logs piped to a file or collector stay plain.
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    // The recorder goes in before the cache sees its first request.
    let metrics = prometheus()?;

    let bind = env_or("BIND", "127.0.0.1:3000");
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let app_env = env_or("APP_ENV", "dev");
    let near_bytes =
        match std::env::var("NEAR_CACHE_BYTES") {
            Ok(bytes) => Some(bytes.trim().parse::<u64>().map_err(|_| {
                format!("NEAR_CACHE_BYTES must be a number of bytes, not {bytes:?}")
            })?),
            Err(_) => None,
        };

    // Pick the store at run time: Redis when it answers, else the in-process store.
    let (mut redis, mut near) = (None, None);
    let store: Arc<dyn Store> = match RedisStore::connect(&redis_url).await {
        Ok(store) => {
            tracing::info!("caching in Redis at {}", without_credentials(&redis_url));
            redis = Some(store.clone());
            match near_bytes {
                Some(bytes) => {
                    let near_cache = NearCache::builder(store).max_bytes(bytes).build()?;
                    tracing::info!(
                        "near cache on: up to {bytes} bytes of hot entries in process memory, \
                         kept coherent with Redis by client tracking"
                    );
                    near = Some(near_cache.clone());
                    Arc::new(near_cache)
                }
                None => Arc::new(store),
            }
        }
        Err(error) => {
            let problem = match error.kind() {
                StoreErrorKind::Config => "REDIS_URL is not usable:",
                _ => "no Redis answered at",
            };
            tracing::warn!(
                "{problem} {} ({error}): serving with the in-process store (MemoryStore); \
                 responses are cached per process only",
                without_credentials(&redis_url),
            );
            if near_bytes.is_some() {
                tracing::warn!(
                    "NEAR_CACHE_BYTES is ignored: the near cache sits in front of Redis"
                );
            }
            Arc::new(MemoryStore::default())
        }
    };
    let cache = CacheLayer::builder(store, KeyFactory::new("monps", &app_env, "v1"))
        .tag_header(HeaderName::from_static(CACHE_TAG))
        .build()?;
    let state = AppState {
        runs: Arc::default(),
        invalidator: cache.invalidator(),
        cache: cache.clone(),
        metrics,
        redis,
        near,
    };
    let by_match = Entity::path_segment(1).prefix("m_");

    let app = Router::new()
        .route(
            "/matches/{id}/prediction",
            post(prediction).route_layer(
                cache.policy(
                    Policy::new("pred")
                        .methods([Method::POST])
                        .entity(by_match.clone())
                        .ttl(Duration::from_secs(300))
                        // Instances sharing Redis run analyze_match about once per cold
                        // prediction: the first takes a lease, the others wait for its entry.
                        .lease(Duration::from_secs(2))
                        // For a minute past its TTL a prediction is served at once while one
                        // background refresh renews it, and for ten served if the model fails.
                        .stale_while_revalidate(Duration::from_secs(60))
                        .stale_if_error(Duration::from_secs(600))
                        // Room for the largest `"detail"` (1 MiB) and the rest of the answer.
                        .max_response_body(2 << 20),
                ),
            ),
        )
        .route(
            "/matches/{id}/markets",
            get(markets).route_layer(
                cache.policy(
                    Policy::new("markets")
                        .entity(by_match.clone())
                        .ttl(Duration::from_secs(60)),
                ),
            ),
        )
        .route(
            "/matches/{id}/goalscorers",
            get(goalscorers).route_layer(
                cache.policy(
                    Policy::new("goalscorers")
                        .entity(by_match)
                        .ttl(Duration::from_secs(60)),
                ),
            ),
        )
        .route(
            "/teams/{team}/matches",
            get(team_matches).route_layer(
                cache.policy(
                    Policy::new("teams")
                        .entity(Entity::path_segment(1).prefix("t_"))
                        .ttl(Duration::from_secs(60)),
                ),
            ),
        )
        .route("/admin/matches/{id}/invalidate", post(invalidate_match))
        .route(
            "/admin/namespaces/{ns}/invalidate",
            post(invalidate_namespace),
        )
        .route("/admin/tags/{tag}/invalidate", post(invalidate_tag))
        .route("/metrics", get(metrics_text))
        .route("/stats", get(stats))
        .route(
            "/health",
            get(health).route_layer(
                cache.policy(
                    // One path, one entity: `{_}`.
                    Policy::new("health")
                        .ttl(Duration::from_secs(5))
                        .entity(Entity::none()),
                ),
            ),
        )
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!(
        "listening on http://{} (keys monps:{app_env}:v1:…)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C: finishing in-flight requests, then exiting");
        })
        .await?;
    tracing::info!("cache stats: {:?}", cache.stats());
    Ok(())
}

/// `POST /matches/{id}/prediction` with an optional JSON config body.
async fn prediction(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let runs = state.runs.prediction.fetch_add(1, Relaxed) + 1;
    let config = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(config) => config,
            // A 400 is not stored: the policy stores 200s only.
            Err(error) => {
                let error = json!({ "error": format!("invalid JSON config: {error}") });
                return with_runs(runs, (StatusCode::BAD_REQUEST, Json(error)));
            }
        }
    };
    let mut prediction = analyze_match(&id, &config).await;
    if let Some(bytes) = config.get("detail").and_then(Value::as_u64) {
        prediction["timeline"] = timeline(&id, bytes.min(MAX_DETAIL));
    }
    with_runs(
        runs,
        Json(json!({ "match_id": id, "config": config, "prediction": prediction })),
    )
}

/// The expensive part of the original API.
async fn analyze_match(id: &str, config: &Value) -> Value {
    tokio::time::sleep(Duration::from_millis(150)).await;
    let seed = id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let home = 30 + seed % 40;
    let draw = 15 + seed % 15;
    json!({
        "home": home,
        "draw": draw,
        "away": 100 - home - draw,
        "model": config.get("model").cloned().unwrap_or_else(|| json!("v1")),
    })
}

/// The most `"detail"` a prediction config may ask for.
const MAX_DETAIL: u64 = 1 << 20;

/// About `bytes` of a minute-by-minute win-probability timeline: JSON as a real API would
/// send (numbers vary, names repeat), so that its size and compressibility are realistic.
fn timeline(id: &str, bytes: u64) -> Value {
    let mut seed = id
        .bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut points = Vec::new();
    let mut size = 0;
    let mut minute = 0u64;
    while size < bytes {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let home = (seed >> 33) % 1000;
        let draw = (seed >> 13) % (1000 - home);
        let point = json!({
            "minute": minute,
            "home": home as f64 / 1000.0,
            "draw": draw as f64 / 1000.0,
            "away": (1000 - home - draw) as f64 / 1000.0,
        });
        size += point.to_string().len() as u64 + 1;
        points.push(point);
        minute += 1;
    }
    Value::Array(points)
}

async fn markets(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let runs = state.runs.markets.fetch_add(1, Relaxed) + 1;
    tokio::time::sleep(Duration::from_millis(30)).await; // a database read
    let markets = json!({ "match_id": id, "markets": ["1x2", "over_under_2_5", "btts"] });
    with_runs(runs, Json(markets))
}

async fn goalscorers(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let runs = state.runs.goalscorers.fetch_add(1, Relaxed) + 1;
    tokio::time::sleep(Duration::from_millis(30)).await; // a database read
    let scorers = json!({ "match_id": id, "anytime": ["Player A", "Player B", "Player C"] });
    with_runs(runs, Json(scorers))
}

async fn health(State(state): State<AppState>) -> Response {
    let runs = state.runs.health.fetch_add(1, Relaxed) + 1;
    with_runs(runs, Json(json!({ "status": "ok" })))
}

/// A team's matches, tagged with the team so that one call drops them wherever they are cached.
async fn team_matches(State(state): State<AppState>, Path(team): Path<String>) -> Response {
    let runs = state.runs.teams.fetch_add(1, Relaxed) + 1;
    tokio::time::sleep(Duration::from_millis(30)).await; // a database read
    let matches = json!({ "team": team, "matches": ["12345", "12346"] });
    let tags = [(CACHE_TAG, format!("team-{team}"))];
    with_runs(runs, (tags, Json(matches)))
}

/// The admin routes' query: `?soft=true` marks entries stale instead of dropping them.
type Purge = Query<std::collections::HashMap<String, String>>;

/// The app's invalidator, in its soft form when the query asks for it.
fn purging(state: &AppState, Query(query): &Purge) -> Invalidator {
    match query.get("soft").map(String::as_str) {
        Some("true" | "1") => state.invalidator.clone().soft(),
        _ => state.invalidator.clone(),
    }
}

/// `POST /admin/matches/{id}/invalidate`: every cached response of the match, all namespaces.
async fn invalidate_match(
    State(state): State<AppState>,
    Path(id): Path<String>,
    purge: Purge,
) -> Response {
    invalidated(purging(&state, &purge).entity(&format!("m_{id}")).await)
}

/// `POST /admin/namespaces/{ns}/invalidate`.
async fn invalidate_namespace(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    purge: Purge,
) -> Response {
    invalidated(purging(&state, &purge).namespace(&ns).await)
}

/// `POST /admin/tags/{tag}/invalidate`.
async fn invalidate_tag(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    purge: Purge,
) -> Response {
    invalidated(purging(&state, &purge).tag(&tag).await)
}

/// The answer of an admin route: the count; else `503` with `Retry-After` when calling again
/// may help (Redis unreachable, busy with a migration or failover, or replicas that did not
/// acknowledge in time), or `500` when it will not.
fn invalidated(result: Result<u64, StoreError>) -> Response {
    match result {
        Ok(count) => Json(json!({ "invalidated": count })).into_response(),
        Err(error) if error.is_retryable() => {
            let body = Json(json!({ "error": error.to_string(), "retryable": true }));
            let retry = [(axum::http::header::RETRY_AFTER, "1")];
            (StatusCode::SERVICE_UNAVAILABLE, retry, body).into_response()
        }
        Err(error) => {
            let body = Json(json!({ "error": error.to_string(), "retryable": false }));
            (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let content_type = (
        axum::http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    );
    ([content_type], state.metrics.render())
}

/// `GET /stats`: the cache's counters per namespace and in total, the handlers' run counts,
/// and on Redis, figures from `INFO` and `DBSIZE`.
async fn stats(State(state): State<AppState>) -> Response {
    let namespaces: serde_json::Map<String, Value> = state
        .cache
        .namespace_stats()
        .into_iter()
        .map(|(namespace, stats)| (namespace, figures(&stats)))
        .collect();
    let total = state.cache.stats();
    let mut totals = figures(&total);
    totals["writes_in_flight"] = json!(total.writes_in_flight);
    totals["write_bytes_in_flight"] = json!(total.write_bytes_in_flight);
    let runs = &state.runs;
    let handler_runs = [
        ("prediction", runs.prediction.load(Relaxed)),
        ("markets", runs.markets.load(Relaxed)),
        ("goalscorers", runs.goalscorers.load(Relaxed)),
        ("teams", runs.teams.load(Relaxed)),
        ("health", runs.health.load(Relaxed)),
    ];
    let total: u64 = handler_runs.iter().map(|(_, n)| n).sum();
    let mut handler_runs: serde_json::Map<String, Value> = handler_runs
        .into_iter()
        .map(|(name, n)| (name.to_owned(), json!(n)))
        .collect();
    handler_runs.insert("total".to_owned(), json!(total));
    let redis = match &state.redis {
        Some(redis) => redis_figures(redis).await,
        None => Value::Null,
    };
    let store = match (&state.redis, &state.near) {
        (Some(_), Some(_)) => "redis+near",
        (Some(_), None) => "redis",
        (None, _) => "memory",
    };
    Json(json!({
        "store": store,
        "namespaces": namespaces,
        "totals": totals,
        "handler_runs": handler_runs,
        "redis": redis,
        "near_cache": state.near.as_ref().map(|near| near_figures(&near.stats())),
        "hot_keys": state
            .cache
            .hot_keys(10)
            .into_iter()
            .map(|hot| json!({"namespace": hot.namespace, "entity": hot.entity, "hits": hot.hits}))
            .collect::<Vec<_>>(),
    }))
    .into_response()
}

/// One namespace's (or the totals') counters in `/stats`, with its hit rate (`null` before any
/// lookup).
fn figures(s: &CacheStats) -> Value {
    let looked_up = s.hits + s.misses;
    let hit_rate = (looked_up > 0).then(|| s.hits as f64 / looked_up as f64);
    json!({
        "hits": s.hits, "misses": s.misses, "hit_rate": hit_rate,
        "stale": s.stale, "coalesced": s.coalesced, "bypasses": s.bypasses,
        "lookup_errors": s.lookup_errors, "writes": s.writes,
        "write_errors": s.write_errors, "writes_dropped": s.writes_dropped,
    })
}

/// The near cache's counters in `/stats`, with its hit rate (`null` before any lookup).
fn near_figures(s: &NearCacheStats) -> Value {
    let looked_up = s.hits + s.misses + s.passed;
    let hit_rate = (looked_up > 0).then(|| s.hits as f64 / looked_up as f64);
    json!({
        "tracking": s.tracking, "hits": s.hits, "misses": s.misses, "passed": s.passed,
        "hit_rate": hit_rate, "fills": s.fills, "invalidations": s.invalidations,
        "flushes": s.flushes, "entries": s.entries, "bytes": s.bytes,
    })
}

/// Figures from Redis `INFO` and `DBSIZE` (of the node the pool asks, on a cluster; `keys`
/// counts the entries and their index, lease and fence keys), or
/// `{"error": …}` while Redis does not answer.
async fn redis_figures(redis: &RedisStore) -> Value {
    use fred::interfaces::{ClientLike, ServerInterface};
    let pool = redis.pool();
    let ask = async {
        let info: String = pool.info(None).await?;
        let keys: u64 = pool.next().dbsize().await?;
        Ok::<_, fred::error::Error>((info, keys))
    };
    let (info, keys) = match tokio::time::timeout(Duration::from_secs(1), ask).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return json!({ "error": error.to_string() }),
        Err(_) => return json!({ "error": "Redis did not answer within 1 s" }),
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
    json!({
        "used_memory": number("used_memory"),
        "used_memory_rss": number("used_memory_rss"),
        "used_memory_dataset": number("used_memory_dataset"),
        "maxmemory": number("maxmemory"),
        "maxmemory_policy": field("maxmemory_policy"),
        "mem_fragmentation_ratio": field("mem_fragmentation_ratio").and_then(|v| v.parse::<f64>().ok()),
        "evicted_keys": number("evicted_keys"),
        "keyspace_hits": number("keyspace_hits"),
        "keyspace_misses": number("keyspace_misses"),
        "keys": keys,
    })
}

/// Installs the Prometheus recorder, with histogram buckets fit for a cache (lookups in the
/// sub-millisecond range, entries up to megabytes), and keeps its upkeep running.
fn prometheus() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let seconds = [
        0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
        5.0,
    ];
    let bytes: Vec<f64> = (6..=22).step_by(2).map(|p| f64::from(1u32 << p)).collect();
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &seconds)?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".to_owned()), &bytes)?
        .install_recorder()?;
    tower_redis_cache::describe_metrics();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Adds `x-handler-runs` to a handler's response.
fn with_runs(runs: u64, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-handler-runs"),
        HeaderValue::from(runs),
    );
    response
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `url` without its user info and without query parameters other than `node` (fred also reads
/// `sentinelUsername` and `sentinelPassword` from the query), fit for a log line.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<REDIS_URL without a scheme>".to_owned();
    };
    let (rest, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let nodes: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.starts_with("node="))
        .collect();
    let mut out = format!("{scheme}://{host}{path}");
    if !nodes.is_empty() {
        out.push('?');
        out.push_str(&nodes.join("&"));
    }
    out
}

#[test]
fn urls_are_logged_without_credentials() {
    assert_eq!(
        without_credentials("redis://127.0.0.1:6379"),
        "redis://127.0.0.1:6379"
    );
    assert_eq!(
        without_credentials("rediss://default:s3cret@cache.example:6380/2"),
        "rediss://cache.example:6380/2"
    );
    assert_eq!(
        without_credentials("redis-cluster://:p%40ss@a:7001?node=b:7002&node=c:7003"),
        "redis-cluster://a:7001?node=b:7002&node=c:7003"
    );
    assert_eq!(
        without_credentials(
            "redis-sentinel://u:p@a:26379/1?sentinelServiceName=m&sentinelPassword=x&node=b:26379"
        ),
        "redis-sentinel://a:26379/1?node=b:26379"
    );
}
