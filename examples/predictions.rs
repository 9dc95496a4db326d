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
//! A team's matches are tagged `team-{team}` (the handler names its tags in `cache-tag`, which
//! the cache removes before the client sees it). Invalidation, answering
//! `{"invalidated": <entries dropped>}` (503 with the error while Redis is unreachable):
//!
//! | route                                  | drops                                        |
//! |----------------------------------------|----------------------------------------------|
//! | `POST /admin/matches/{id}/invalidate`  | every cached response of match `id`          |
//! | `POST /admin/namespaces/{ns}/invalidate` | every cached response of namespace `ns`    |
//! | `POST /admin/tags/{tag}/invalidate`    | every cached response tagged `tag`           |
//!
//! The prediction's optional JSON body (its config, such as `{"risk":"high","model":"v2"}`) is
//! part of the key in its RFC 8785 canonical form, so member order and whitespace do not matter.
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
//! - `APP_ENV` (default `dev`): the `{env}` field of the keys, `monps:{env}:v1:…`.
//! - `RUST_LOG` (default `info`).

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};
use tower_redis_cache::{
    CacheLayer, Entity, Invalidator, KeyFactory, MemoryStore, Policy, RedisStore, Store,
    StoreError, StoreErrorKind,
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

/// What the handlers share: the run counts and the cache's invalidator.
#[derive(Clone)]
struct AppState {
    runs: Arc<Runs>,
    invalidator: Invalidator,
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
        .init();

    let bind = env_or("BIND", "127.0.0.1:3000");
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
    let app_env = env_or("APP_ENV", "dev");

    // Pick the store at run time: Redis when it answers, else the in-process store.
    let store: Arc<dyn Store> = match RedisStore::connect(&redis_url).await {
        Ok(redis) => {
            tracing::info!("caching in Redis at {}", without_credentials(&redis_url));
            Arc::new(redis)
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
            Arc::new(MemoryStore::default())
        }
    };
    let cache = CacheLayer::builder(store, KeyFactory::new("monps", &app_env, "v1"))
        .tag_header(HeaderName::from_static(CACHE_TAG))
        .build()?;
    let state = AppState {
        runs: Arc::default(),
        invalidator: cache.invalidator(),
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
                        .stale_if_error(Duration::from_secs(600)),
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
    let prediction = analyze_match(&id, &config).await;
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

/// `POST /admin/matches/{id}/invalidate`: every cached response of the match, all namespaces.
async fn invalidate_match(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    invalidated(state.invalidator.entity(&format!("m_{id}")).await)
}

/// `POST /admin/namespaces/{ns}/invalidate`.
async fn invalidate_namespace(State(state): State<AppState>, Path(ns): Path<String>) -> Response {
    invalidated(state.invalidator.namespace(&ns).await)
}

/// `POST /admin/tags/{tag}/invalidate`.
async fn invalidate_tag(State(state): State<AppState>, Path(tag): Path<String>) -> Response {
    invalidated(state.invalidator.tag(&tag).await)
}

/// The answer of an admin route: the count, or 503 with the error (worth retrying).
fn invalidated(result: Result<u64, StoreError>) -> Response {
    match result {
        Ok(count) => Json(json!({ "invalidated": count })).into_response(),
        Err(error) => {
            let body = Json(json!({ "error": error.to_string() }));
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
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
