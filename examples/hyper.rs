//! `tower-redis-cache` on a plain hyper 1 server, without axum's router: a `tower::service_fn`
//! handler wrapped by [`CacheLayer`], with tower-http's `TimeoutLayer` outside it.
//!
//! ```text
//! cargo run --example hyper
//! curl -si localhost:3001/matches/12345/markets   # cache-status: …; fwd=uri-miss; stored
//! curl -si localhost:3001/matches/12345/markets   # cache-status: …; hit; ttl=59
//! ```
//!
//! `BIND` (default `127.0.0.1:3001`) and `REDIS_URL` are read from the environment; when
//! `REDIS_URL` is unset or no Redis answers, the cache lives in a [`MemoryStore`].
//!
//! The layer takes hyper's `Incoming` as it is: the handler reads it as a [`RequestBody`], which
//! is the client's body (or, for a request the cache keyed by its body, the bytes it read and
//! then the rest).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, Request, Response, StatusCode};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use std::{convert::Infallible, io::IsTerminal, sync::Arc, time::Duration};
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use tower_redis_cache::{
    store::Store, CacheLayer, Entity, KeyFactory, MemoryStore, Policy, RedisStore, RequestBody,
};

async fn handler(req: Request<RequestBody<Incoming>>) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(Duration::from_millis(150)).await; // the expensive part
    let body = format!("markets for {}\n", req.uri().path());
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // (fred warns about quitting its stopped clients when no Redis answers: not news here.)
    tracing_subscriber::fmt()
        .with_env_filter("info,fred::commands::impls::server=error")
        // Colour codes only on a terminal: logs piped to a file or collector stay plain.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let store: Arc<dyn Store> = match std::env::var("REDIS_URL") {
        Ok(url) => match RedisStore::connect(&url).await {
            Ok(redis) => Arc::new(redis),
            Err(error) => {
                tracing::warn!("no Redis answered ({error}); caching in process (MemoryStore)");
                Arc::new(MemoryStore::default())
            }
        },
        Err(_) => Arc::new(MemoryStore::default()),
    };
    let cache = CacheLayer::new(store, KeyFactory::new("example", "dev", "v1"));

    let service = ServiceBuilder::new()
        // Outside the cache: a request that takes longer than 1 s gets a 503 from here.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(1),
        ))
        .layer(
            cache.policy(
                Policy::new("markets")
                    .entity(Entity::path_segment(1).prefix("m_"))
                    .ttl(Duration::from_secs(60)),
            ),
        )
        .service_fn(handler);

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        // hyper calls a `hyper::service::Service`; this adapter drives the tower service.
        let hyper_service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper_service)
                .await
            {
                tracing::debug!("connection error: {error}");
            }
        });
    }
    tracing::info!("cache stats: {:?}", cache.stats());
    Ok(())
}
