//! `load-peer`: the load bench's route (`benches/load.rs`) served through a peer crate's response
//! cache, one peer per process, speaking the bench's child protocol:
//!
//! - `LOAD_SERVE=<peer>`: `axum-response-cache` or `tower-http-cache`;
//! - `LOAD_REDIS_URL`: the Redis the `tower-http-cache` peer stores in;
//! - `LOAD_PORT` (0 = any free port), `LOAD_WATCH_STDIN=1` (exit when stdin closes);
//! - prints `LOAD_READY <port>` once listening on 127.0.0.1 (`TCP_NODELAY` on every accepted
//!   socket), then serves `GET /matches/{id}/markets` (the bench's 1 KiB JSON body,
//!   `content-type: application/json`, cached for 3600 s) and `GET /__stats` (the bench's
//!   counter line), on a default multi-thread Tokio runtime, until killed.
//!
//! Each peer is set up as its README shows for a plain GET cache:
//!
//! - `axum-response-cache`: `get(handler).layer(CacheLayer::with_lifespan(3600 s))`: an in-process
//!   `cached::TtlCache` behind a `Mutex`, keyed by method and URI.
//! - `tower-http-cache`: `CacheLayer::builder(RedisBackend::new(manager)).ttl(3600 s).build()`
//!   (the default policy otherwise: key = path and query, GET and HEAD) over a `redis`
//!   `ConnectionManager` with the README's timeouts (10 s response, 5 s connection), plus
//!   `TCP_NODELAY` (which the README does not mention; every other Redis connection the bench
//!   measures has it, and redis-rs leaves Nagle on by default). Its service answers `BoxError`
//!   and needs a `Sync` response body, which an axum handler's is not: the handler is a
//!   `tower::service_fn` answering a `Full<Bytes>` body (as the crate's own docs show), and
//!   axum's `HandleErrorLayer` turns its errors into a 500.
//!
//! The peers keep no counters the bench can read, so this binary counts: requests to the route
//! (in an outer layer) and handler runs (in the handler). A request that did not run the handler
//! was answered from the cache: hits = requests − handler runs; misses = writes = handler runs.
//!
//! Build and run it through `bash scripts/peers.sh` (the bench finds it through `LOAD_PEER_BIN`).

#[path = "../../support/json_body.rs"]
mod json_body;

use axum::{
    error_handling::HandleErrorLayer,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    routing::{get, get_service, MethodRouter},
    serve::ListenerExt,
    Router,
};
use bytes::Bytes;
use http_body_util::Full;
use json_body::json_body;
use redis::{aio::ConnectionManagerConfig, io::tcp::TcpSettings, IntoConnectionInfo as _};
use std::{
    convert::Infallible,
    io::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};
use tower::{util::MapRequestLayer, ServiceBuilder};
use tower_http_cache::{backend::redis::RedisBackend, layer::BoxError};

/// The handler's body size (the bench's `BODY_SIZE`).
const BODY_SIZE: usize = 1024;
/// How long a response stays cached (the bench's policies' TTL).
const TTL: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug)]
enum Peer {
    AxumResponseCache,
    TowerHttpCache,
}

impl Peer {
    fn parse(name: &str) -> Peer {
        match name {
            "axum-response-cache" => Peer::AxumResponseCache,
            "tower-http-cache" => Peer::TowerHttpCache,
            _ => panic!("unknown peer {name:?}: expected axum-response-cache or tower-http-cache"),
        }
    }
}

/// Requests to the route and runs of its handler.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    handler_runs: AtomicU64,
}

impl Counters {
    /// The bench's `Counts` line.
    fn render(&self) -> String {
        // Runs first: a request is counted before its handler runs, so the requests read after
        // the runs are never fewer than them.
        let runs = self.handler_runs.load(Relaxed);
        let requests = self.requests.load(Relaxed);
        let hits = requests.saturating_sub(runs);
        format!(
            "hits={hits} misses={runs} bypasses=0 lookup_errors=0 circuit_open=0 writes={runs} \
             write_errors=0 writes_dropped=0 handler_runs={runs} near_hits=0\n"
        )
    }
}

fn main() {
    let name = std::env::var("LOAD_SERVE")
        .expect("LOAD_SERVE: the peer to serve (axum-response-cache or tower-http-cache)");
    let peer = Peer::parse(&name);
    let port: u16 = match std::env::var("LOAD_PORT") {
        Ok(port) => port
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("LOAD_PORT={port:?} is not a port")),
        Err(_) => 0,
    };
    let url = std::env::var("LOAD_REDIS_URL").ok();
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
    rt.block_on(serve(peer, port, url));
}

async fn serve(peer: Peer, port: u16, url: Option<String>) {
    let counters = Arc::new(Counters::default());
    let body = json_body(BODY_SIZE);
    let route: MethodRouter = match peer {
        Peer::AxumResponseCache => {
            let counters = counters.clone();
            let handler = move || {
                let counters = counters.clone();
                let body = body.clone();
                async move {
                    counters.handler_runs.fetch_add(1, Relaxed);
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        body,
                    )
                }
            };
            get(handler).layer(axum_response_cache::CacheLayer::with_lifespan(TTL))
        }
        Peer::TowerHttpCache => {
            let url = url.expect("LOAD_REDIS_URL: the Redis URL the tower-http-cache peer uses");
            // TCP_NODELAY, as on every other Redis connection the bench measures (the floor's,
            // the crate's): redis-rs leaves Nagle on by default.
            let info = url
                .as_str()
                .into_connection_info()
                .unwrap_or_else(|e| panic!("a Redis URL ({url:?}): {e}"))
                .set_tcp_settings(TcpSettings::default().set_nodelay(true));
            let client = redis::Client::open(info).expect("a Redis client");
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_connection_timeout(Some(Duration::from_secs(5)));
            let manager = client
                .get_connection_manager_with_config(config)
                .await
                .expect("connect the tower-http-cache peer's ConnectionManager");
            let cache = tower_http_cache::CacheLayer::builder(RedisBackend::new(manager))
                .ttl(TTL)
                .build();
            let counters = counters.clone();
            let handler = tower::service_fn(move |_request: Request| {
                let counters = counters.clone();
                let body = body.clone();
                async move {
                    counters.handler_runs.fetch_add(1, Relaxed);
                    let mut response = http::Response::new(Full::<Bytes>::new(body));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            get_service(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(cache_error))
                    .layer(cache)
                    .service(handler),
            )
        }
    };
    let route = route.layer(MapRequestLayer::new({
        let counters = counters.clone();
        move |request: Request| {
            counters.requests.fetch_add(1, Relaxed);
            request
        }
    }));
    let app = Router::new().route("/matches/{id}/markets", route).route(
        "/__stats",
        get(move || {
            let counters = counters.clone();
            async move { counters.render() }
        }),
    );
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
}

/// tower-http-cache's errors (the handler's, or reading its body) as a 500.
async fn cache_error(error: BoxError) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}
