//! [`items_app`]: the plain cached route the cluster tests drive, one entity per item.

use super::Runs;
use axum::{extract::Path, routing::get, Router};
use tower_redis_cache::{CacheLayer, Entity, Policy};

/// `GET /items/{id}` in namespace `items`, entity `{prefix}{id}`; the body, `item {id} run
/// {n}`, names the handler run that made it.
pub fn items_app(layer: &CacheLayer, runs: &Runs, prefix: &'static str) -> Router {
    let runs = runs.clone();
    Router::new().route(
        "/items/{id}",
        get(move |Path(id): Path<String>| {
            let runs = runs.clone();
            async move { format!("item {id} run {}", runs.bump()) }
        })
        .route_layer(
            layer.policy(Policy::new("items").entity(Entity::path_segment(1).prefix(prefix))),
        ),
    )
}
