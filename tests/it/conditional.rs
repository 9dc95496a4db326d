//! Conditional requests on hits: `ETag` on every hit (the handler's or one derived from the
//! body), `If-None-Match` and `If-Modified-Since` answered `304 Not Modified`, malformed
//! validators ignored, `HEAD` too, and misses passing the client's validators to the handler.

use crate::app::*;
use axum::{
    body::Body,
    http::{header, HeaderMap, Method, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use tower_redis_cache::{CacheLayer, Entity, Policy};

const MODIFIED: &str = "Tue, 01 Dec 2026 10:00:00 GMT";

/// `/plain` (no validators), `/tagged` (`ETag: "v1"`, `Last-Modified`), `/bad-etag` (an
/// invalid ETag) and a cached `POST /post`; every body echoes the client's `If-None-Match`.
fn app(layer: &CacheLayer, runs: &Runs) -> Router {
    let handler = |etag: Option<&'static str>, modified: bool| {
        let runs = runs.clone();
        move |headers: HeaderMap| {
            let runs = runs.clone();
            async move {
                let inm = headers
                    .get(header::IF_NONE_MATCH)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let mut response = format!("run {} saw [{inm}]", runs.bump()).into_response();
                let h = response.headers_mut();
                h.insert(header::CACHE_CONTROL, "max-age=60".parse().unwrap());
                if let Some(etag) = etag {
                    h.insert(header::ETAG, etag.parse().unwrap());
                }
                if modified {
                    h.insert(header::LAST_MODIFIED, MODIFIED.parse().unwrap());
                }
                response
            }
        }
    };
    let policy = |ns: &str| layer.policy(Policy::new(ns).entity(Entity::none()));
    Router::new()
        .route(
            "/plain",
            get(handler(None, false)).route_layer(policy("plain")),
        )
        .route(
            "/tagged",
            get(handler(Some("\"v1\""), true)).route_layer(policy("tagged")),
        )
        .route(
            "/bad-etag",
            get(handler(Some("v1"), false)).route_layer(policy("bad")),
        )
        .route(
            "/post",
            axum::routing::post(handler(None, false)).route_layer(
                layer.policy(
                    Policy::new("post")
                        .entity(Entity::none())
                        .methods([Method::POST]),
                ),
            ),
        )
}

fn with(method: Method, uri: &str, headers: &[(&str, &str)]) -> axum::http::Request<Body> {
    let mut req = axum::http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Body::empty()).unwrap()
}

/// Stores `uri` and returns its first hit.
async fn stored(app: &Router, layer: &CacheLayer, method: Method, uri: &str) -> Reply {
    let before = layer.stats().writes;
    send(app, with(method.clone(), uri, &[])).await;
    wait_writes(layer, before + 1).await;
    let hit = send(app, with(method, uri, &[])).await;
    assert!(hit.cache_status().contains("; hit"), "{uri}: {hit:?}");
    hit
}

fn assert_304(reply: &Reply, etag: &str, context: &str) {
    assert_eq!(
        reply.status,
        StatusCode::NOT_MODIFIED,
        "{context}: {reply:?}"
    );
    assert!(reply.body.is_empty(), "{context}: no body");
    assert_eq!(reply.header("etag"), etag, "{context}");
    assert_eq!(reply.header("cache-control"), "max-age=60", "{context}");
    assert!(reply.cache_status().contains("; hit; ttl="), "{context}");
    assert!(!reply.header("age").is_empty(), "{context}: Age");
    assert_eq!(
        reply.header("content-type"),
        "",
        "{context}: not a 15.4.5 header"
    );
}

fn assert_full(reply: &Reply, stored: &Reply, context: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{context}: {reply:?}");
    assert_eq!(reply.body, stored.body, "{context}: the stored body");
    assert!(reply.cache_status().contains("; hit"), "{context}: a hit");
}

redis_test!(
    matching_validators_get_304_and_malformed_ones_the_full_response,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = app(&layer, &runs);

        // No ETag from the handler: hits carry a strong one derived from the body.
        let hit = stored(&app, &layer, Method::GET, "/plain").await;
        let derived = hit.header("etag").to_owned();
        assert!(derived.starts_with('"') && derived.len() == 34, "{derived}");
        let weak = format!("W/{derived}");
        let listed = format!("\"other\", {weak}");
        for inm in [derived.as_str(), &weak, &listed, "*"] {
            let reply = send(&app, with(Method::GET, "/plain", &[("if-none-match", inm)])).await;
            assert_304(&reply, &derived, inm);
            let head = send(
                &app,
                with(Method::HEAD, "/plain", &[("if-none-match", inm)]),
            )
            .await;
            assert_304(&head, &derived, &format!("HEAD {inm}"));
        }
        for inm in ["\"other\"", "unquoted", "\"open", "W/x", "\"a\" \"b\""] {
            let reply = send(&app, with(Method::GET, "/plain", &[("if-none-match", inm)])).await;
            assert_full(&reply, &hit, inm);
        }

        // The handler's ETag is replayed; Last-Modified answers If-Modified-Since.
        let tagged = stored(&app, &layer, Method::GET, "/tagged").await;
        assert_eq!(tagged.header("etag"), "\"v1\"");
        let inm = send(
            &app,
            with(Method::GET, "/tagged", &[("if-none-match", "\"v1\"")]),
        )
        .await;
        assert_304(&inm, "\"v1\"", "handler's ETag");
        assert_eq!(inm.header("last-modified"), MODIFIED);
        for (ims, modified) in [
            (MODIFIED, true),
            ("Wed, 02 Dec 2026 10:00:00 GMT", true),
            ("Tuesday, 01-Dec-26 10:00:00 GMT", true),
            ("Mon, 30 Nov 2026 10:00:00 GMT", false),
            ("not a date", false),
        ] {
            let reply = send(
                &app,
                with(Method::GET, "/tagged", &[("if-modified-since", ims)]),
            )
            .await;
            if modified {
                assert_304(&reply, "\"v1\"", ims);
            } else {
                assert_full(&reply, &tagged, ims);
            }
        }
        // If-None-Match decides when present.
        let both = [("if-none-match", "\"v2\""), ("if-modified-since", MODIFIED)];
        let reply = send(&app, with(Method::GET, "/tagged", &both)).await;
        assert_full(&reply, &tagged, "both");

        // An invalid handler ETag is never replayed.
        let bad = stored(&app, &layer, Method::GET, "/bad-etag").await;
        assert_ne!(bad.header("etag"), "v1");
        assert!(bad.header("etag").starts_with('"'));
        let reply = send(
            &app,
            with(Method::GET, "/bad-etag", &[("if-none-match", "v1")]),
        )
        .await;
        assert_full(&reply, &bad, "invalid ETag");

        // A cached POST is never answered 304.
        let post = stored(&app, &layer, Method::POST, "/post").await;
        let etag = post.header("etag").to_owned();
        let reply = send(
            &app,
            with(Method::POST, "/post", &[("if-none-match", &etag)]),
        )
        .await;
        assert_full(&reply, &post, "POST");
        assert_eq!(runs.get(), 4, "every one of those was a hit");
    }
);

redis_test!(
    a_miss_passes_the_clients_validators_to_the_handler,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = app(&layer, &runs);
        let reply = send(
            &app,
            with(Method::GET, "/plain", &[("if-none-match", "\"x\"")]),
        )
        .await;
        assert_eq!(reply.text(), "run 1 saw [\"x\"]");
        assert!(reply.cache_status().contains("fwd=uri-miss"));
    }
);
