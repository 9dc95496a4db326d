//! The core behaviour of the cache against real Redis: misses and hits, the keys it writes, TTL
//! expiry, canonical keys, request bodies, HEAD and methods, paths, Redis being down, foreign
//! entries and hash collisions, and the same over real TCP (`over_the_wire`). Every test runs
//! on a standalone server and on a three-master cluster (`<test>::standalone`,
//! `<test>::cluster`), each starting its own `redis-server`s. Apps are real axum routers with
//! the layer applied by `route_layer`, driven with `oneshot`.
//!
//! Write-backs happen in the background once the client has read a response body to its end,
//! so tests read whole bodies, then poll (bounded) for the write before expecting a hit.

use crate::app::*;
use crate::servers::Monitor;
use axum::{
    body::Body,
    extract::Path,
    http::{header, Method, Request, StatusCode},
    response::Response,
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::time::{Duration, Instant};
use tower_redis_cache::{CacheLayer, Entity, Policy, RedisStore, Variant};

const PREDICTION: &str = "/matches/12345/prediction";
const MARKETS: &str = "/matches/12345/markets";

/// The policy of the prediction route: POST, per match, keyed by the JSON config.
fn prediction_policy() -> Policy {
    Policy::new("pred")
        .ttl(Duration::from_secs(60))
        .methods([Method::POST])
        .entity(Entity::path_segment(1).prefix("m_"))
}

/// A response whose body says which run of the handler made it.
fn response(run: usize, body: impl Into<Body>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-run", run)
        .header("x-custom", "kept")
        .header(header::LINK, "</a.js>; rel=preload")
        .header(header::LINK, "</b.css>; rel=preload")
        .body(body.into())
        .expect("response")
}

/// `POST /matches/{id}/prediction` under `policy`: answers `match={id} run={n} config=` and the
/// request body's exact bytes.
fn prediction_app_with(layer: &CacheLayer, runs: &Runs, policy: Policy) -> Router {
    let runs = runs.clone();
    Router::new().route(
        "/matches/{id}/prediction",
        post(move |Path(id): Path<String>, body: Bytes| {
            let runs = runs.clone();
            async move {
                let run = runs.bump();
                let mut out = format!("match={id} run={run} config=").into_bytes();
                out.extend_from_slice(&body);
                response(run, out)
            }
        })
        .route_layer(layer.policy(policy)),
    )
}

fn prediction_app(layer: &CacheLayer, runs: &Runs) -> Router {
    prediction_app_with(layer, runs, prediction_policy())
}

/// `GET /matches/{id}/markets`, cached with the default policy (GET, and HEAD from GET entries).
fn markets_app(layer: &CacheLayer, runs: &Runs) -> Router {
    let runs = runs.clone();
    Router::new().route(
        "/matches/{id}/markets",
        get(move |Path(id): Path<String>| {
            let runs = runs.clone();
            async move {
                let run = runs.bump();
                response(
                    run,
                    format!(r#"{{"match":"{id}","run":{run},"markets":[1,2]}}"#),
                )
            }
        })
        .route_layer(
            layer.policy(Policy::new("markets").entity(Entity::path_segment(1).prefix("m_"))),
        ),
    )
}

/// The key the cache uses for a prediction of match 12345 with `body`.
fn prediction_key(body: &str) -> String {
    key_factory()
        .key(
            "pred",
            "m_12345",
            &Variant::new().json_body(body.as_bytes()),
        )
        .into()
}

redis_test!(miss_then_hit, |redis| async move {
    let layer = cache(&redis).await;
    let runs = Runs::default();
    let app = prediction_app(&layer, &runs);
    let config = r#"{"risk":"high","model":"v2"}"#;

    let miss = send(&app, post_req(PREDICTION, config)).await;
    assert_eq!(miss.status, StatusCode::OK);
    assert_eq!(miss.cache_status(), fwd("uri-miss; stored"));
    assert_eq!(miss.text(), format!("match=12345 run=1 config={config}"));
    assert!(miss.headers.get(header::AGE).is_none(), "a miss has no Age");
    wait_writes(&layer, 1).await;

    let hit = send(&app, post_req(PREDICTION, config)).await;
    assert_eq!(runs.get(), 1, "a hit must not run the handler");
    assert_eq!(hit.status, miss.status);
    assert_eq!(hit.body, miss.body);
    for name in ["content-type", "x-run", "x-custom"] {
        assert_eq!(hit.header(name), miss.header(name), "header {name}");
    }
    let links = |r: &Reply| -> Vec<String> {
        let values = r.headers.get_all(header::LINK).iter();
        values.map(|v| v.to_str().unwrap().to_owned()).collect()
    };
    assert_eq!(
        links(&hit),
        ["</a.js>; rel=preload", "</b.css>; rel=preload"]
    );
    assert_eq!(hit.header("content-length"), miss.body.len().to_string());
    let ttl = hit.hit_ttl();
    assert!((55..=60).contains(&ttl), "ttl={ttl} of a fresh 60 s entry");
    let age: u64 = hit.header("age").parse().expect("a hit has a numeric Age");
    assert!(age <= 5, "age={age} of a fresh entry");
    assert_eq!(
        hit.headers.get_all("cache-status").iter().count(),
        1,
        "one Cache-Status: the stored miss's own must not be replayed"
    );
    let stats = layer.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.writes, stats.bypasses),
        (1, 1, 1, 0),
        "{stats:?}"
    );
});

redis_test!(a_hit_sends_one_get_and_nothing_else, |redis| async move {
    let layer = cache(&redis).await;
    let app = prediction_app(&layer, &Runs::default());
    let config = r#"{"risk":"high","model":"v2"}"#;
    send(&app, post_req(PREDICTION, config)).await;
    wait_writes(&layer, 1).await;
    // The entry's key, as Redis saw it written.
    let key = redis
        .entry_keys(ALL_KEYS)
        .pop()
        .expect("the entry is stored");
    let monitor = Monitor::start(redis.nodes());
    for _ in 0..20 {
        let hit = send(&app, post_req(PREDICTION, config)).await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
    }
    let commands = monitor.stop();
    // Everything that reached Redis while the hits were served: one GET of the entry each.
    let get = format!("\"GET\" \"{key}\"");
    assert!(
        commands.len() == 20 && commands.iter().all(|c| c.ends_with(&get)),
        "20 hits, 20 commands, each `GET {key}`: {commands:#?}"
    );
});

redis_test!(
    keys_land_in_redis_in_the_documented_form,
    |redis| async move {
        let layer = cache(&redis).await;
        let app = prediction_app(&layer, &Runs::default());

        send(&app, post_req(PREDICTION, Body::empty())).await;
        wait_writes(&layer, 1).await;
        let default = "monps:test:v1:pred:{m_12345}:default";
        assert_eq!(redis.entry_keys(ALL_KEYS), vec![default.to_owned()]);

        let config = r#"{"risk":"high","model":"v2"}"#;
        send(&app, post_req(PREDICTION, config)).await;
        wait_writes(&layer, 2).await;
        let variant = prediction_key(config);
        let id = variant
            .strip_prefix("monps:test:v1:pred:{m_12345}:")
            .expect("same entity prefix");
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "variant id {id:?} is 16 hex digits"
        );
        let mut expected = vec![default.to_owned(), variant.clone()];
        expected.sort();
        assert_eq!(redis.entry_keys(ALL_KEYS), expected);
        for key in &expected {
            let ttl = redis.ttl_ms(key);
            assert!(0 < ttl && ttl <= 60_000, "PTTL {key} = {ttl}");
        }
        assert_eq!(
            crate::servers::key_slot(default),
            crate::servers::key_slot(&variant),
            "variants of one entity share a hash slot"
        );

        // An id that tries to close the hash tag, add a field and inject a glob stays inside.
        send(
            &app,
            post_req("/matches/x%7D%3Ay*/prediction", Body::empty()),
        )
        .await;
        wait_writes(&layer, 3).await;
        // (The id is percent-decoded first, as the handler reads it: `x}:y*`.)
        let hostile = "monps:test:v1:pred:{m_x%7D%3Ay%2A}:default";
        assert!(
            redis.entry_keys(ALL_KEYS).contains(&hostile.to_owned()),
            "{:?}",
            redis.entry_keys(ALL_KEYS)
        );
        assert_eq!(hostile.split(':').count(), 6);

        // An id too long to key (it would blow up key length) bypasses the cache.
        let overlong = format!("/matches/{}/prediction", "9".repeat(300));
        for _ in 0..2 {
            let reply = send(&app, post_req(&overlong, Body::empty())).await;
            assert_eq!(reply.cache_status(), fwd("bypass; detail=no-entity"));
        }
        assert_eq!(redis.entry_keys(ALL_KEYS).len(), 3);
    }
);

redis_test!(entries_expire_with_their_ttl, |redis| async move {
    let layer = cache(&redis).await;
    let runs = Runs::default();
    let policy = prediction_policy().ttl(Duration::from_secs(1));
    let app = prediction_app_with(&layer, &runs, policy);
    let key = prediction_key("");

    let first = send(&app, post_req(PREDICTION, Body::empty())).await;
    assert_eq!(first.cache_status(), fwd("uri-miss; stored"));
    wait_writes(&layer, 1).await;
    let ttl = redis.ttl_ms(&key);
    assert!(0 < ttl && ttl <= 1_000, "PTTL {ttl}");
    let hit = send(&app, post_req(PREDICTION, Body::empty())).await;
    assert!(hit.hit_ttl() <= 1, "{hit:?}");
    assert_eq!(runs.get(), 1);

    eventually("the entry to expire in Redis", || redis.ttl_ms(&key) == -2).await;
    let after = send(&app, post_req(PREDICTION, Body::empty())).await;
    assert_eq!(after.cache_status(), fwd("uri-miss; stored"));
    assert_eq!(
        runs.get(),
        2,
        "the handler runs again once the entry expired"
    );
    assert_eq!(after.header("x-run"), "2");
});

redis_test!(equivalent_json_configs_share_an_entry, |redis| async move {
    let layer = cache(&redis).await;
    let runs = Runs::default();
    let app = prediction_app(&layer, &runs);
    let config = r#"{"risk":"high","model":"v2","stake":1.0,"limit":1e2,"legs":[1,2]}"#;
    let first = send(&app, post_req(PREDICTION, config)).await;
    assert_eq!(first.cache_status(), fwd("uri-miss; stored"));
    wait_writes(&layer, 1).await;

    let equivalents = [
        r#"{"limit":100,"legs":[1,2],"model":"v2","risk":"high","stake":1}"#,
        " {\n  \"stake\" : 1 ,\t\"legs\" : [ 1.0 , 2e0 ],\r\n  \"model\":\"v2\", \"risk\" : \"high\",\"limit\":100.00 }\n",
        r#"{"risk":"\u0068igh","model":"v\u0032","stake":10E-1,"limit":1E+2,"legs":[1,2]}"#,
    ];
    for body in equivalents {
        let reply = send(&app, post_req(PREDICTION, body)).await;
        assert!(reply.cache_status().contains("; hit"), "{body}: {reply:?}");
        assert_eq!(reply.body, first.body, "{body}");
    }
    assert_eq!(runs.get(), 1);

    let different = [
        r#"{"risk":"low","model":"v2","stake":1.0,"limit":1e2,"legs":[1,2]}"#,
        r#"{"risk":"high","model":"v2","stake":1.5,"limit":1e2,"legs":[1,2]}"#,
        r#"{"risk":"high","model":"v2","stake":1.0,"limit":1e2,"legs":[2,1]}"#,
        r#"{"risk":"high","model":"v2","stake":"1","limit":1e2,"legs":[1,2]}"#,
        r#"{"risk":"high","model":"v2","stake":1.0,"limit":1e2}"#,
    ];
    for (i, body) in different.iter().enumerate() {
        let reply = send(&app, post_req(PREDICTION, *body)).await;
        assert_eq!(reply.cache_status(), fwd("uri-miss; stored"), "{body}");
        assert_eq!(
            reply.text(),
            format!("match=12345 run={} config={body}", i + 2)
        );
        wait_writes(&layer, i as u64 + 2).await;
    }
    assert_eq!(redis.entry_keys(ALL_KEYS).len(), 1 + different.len());
});

redis_test!(
    invalid_json_is_keyed_by_its_exact_bytes,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = prediction_app(&layer, &runs);
        let bodies = [
            r#"{"risk": high}"#,
            r#"{"risk": hihg}"#,
            r#"{"risk":  high}"#,
            r#"{"risk":"high","risk":"low"}"#,
            r#"{"risk":"low","risk":"high"}"#,
        ];
        for (i, body) in bodies.iter().enumerate() {
            let reply = send(&app, post_req(PREDICTION, *body)).await;
            assert_eq!(reply.cache_status(), fwd("uri-miss; stored"), "{body}");
            assert_eq!(
                reply.text(),
                format!("match=12345 run={} config={body}", i + 1),
                "the handler sees the exact bytes"
            );
            wait_writes(&layer, i as u64 + 1).await;
        }
        let keys = redis.entry_keys(ALL_KEYS);
        assert_eq!(
            keys.len(),
            bodies.len(),
            "one entry per invalid body: {keys:?}"
        );
        assert!(!keys.iter().any(|k| k.ends_with(":default")));
        for (i, body) in bodies.iter().enumerate() {
            let reply = send(&app, post_req(PREDICTION, *body)).await;
            assert!(reply.cache_status().contains("; hit"), "{body}: {reply:?}");
            assert_eq!(
                reply.text(),
                format!("match=12345 run={} config={body}", i + 1)
            );
        }
        assert_eq!(runs.get(), bodies.len());

        // Not even UTF-8: keyed, passed on and replayed byte for byte.
        let binary: &[u8] = b"\xff\xfe\x00 not json \x80";
        let miss = send(&app, post_req(PREDICTION, Bytes::from_static(binary))).await;
        assert_eq!(miss.cache_status(), fwd("uri-miss; stored"));
        assert!(miss.body.ends_with(binary), "{:?}", miss.body);
        wait_writes(&layer, bodies.len() as u64 + 1).await;
        let hit = send(&app, post_req(PREDICTION, Bytes::from_static(binary))).await;
        assert!(hit.cache_status().contains("; hit"), "{hit:?}");
        assert_eq!(hit.body, miss.body);
    }
);

redis_test!(
    request_bodies_reach_the_handler_intact,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let policy = prediction_policy().max_request_body(64);
        let app = prediction_app_with(&layer, &runs, policy);

        // Odd whitespace, escapes and non-ASCII: the handler gets these bytes, not a canonical form.
        let odd = " {\t\"name\" :\"Zoë – ⚽\\u00e9\" ,\r\n \"n\": 1.50 }\n";
        let reply = send(&app, post_req(PREDICTION, odd)).await;
        assert_eq!(reply.cache_status(), fwd("uri-miss; stored"));
        assert_eq!(reply.text(), format!("match=12345 run=1 config={odd}"));
        wait_writes(&layer, 1).await;

        // Exactly at the limit: keyed and stored.
        let at_limit = format!("{{\"pad\":\"{}\"}}", "x".repeat(54));
        assert_eq!(at_limit.len(), 64);
        let reply = send(&app, post_req(PREDICTION, at_limit.clone())).await;
        assert_eq!(reply.cache_status(), fwd("uri-miss; stored"));
        assert_eq!(reply.text(), format!("match=12345 run=2 config={at_limit}"));
        wait_writes(&layer, 2).await;

        // One byte over: forwarded intact, not looked up, not stored.
        let big = format!("{{\"pad\":\"{}x\"}}", "é".repeat(27));
        assert_eq!(big.len(), 65);
        for run in 3..=4 {
            let reply = send(&app, post_req(PREDICTION, big.clone())).await;
            assert_eq!(reply.cache_status(), fwd("bypass; detail=body-too-large"));
            assert_eq!(reply.text(), format!("match=12345 run={run} config={big}"));
        }

        // Of unknown size (a stream, sent chunked): read up to the limit and keyed like any
        // other body; the handler gets the same bytes.
        let streamed = || Frames::new().data("{\"a\":").data(" 1}").into_body();
        let reply = send(&app, post_req(PREDICTION, streamed())).await;
        assert_eq!(reply.cache_status(), fwd("uri-miss; stored"));
        assert_eq!(reply.text(), "match=12345 run=5 config={\"a\": 1}");
        wait_writes(&layer, 3).await;
        let reply = send(&app, post_req(PREDICTION, streamed())).await;
        assert!(reply.cache_status().contains("; hit"), "{reply:?}");
        assert_eq!(reply.text(), "match=12345 run=5 config={\"a\": 1}");

        // A stream that grows past the limit: forwarded whole (what was read, then the rest),
        // not stored.
        let growing = Frames::new()
            .data("{\"pad\":\"")
            .data("y".repeat(60))
            .data("\"}");
        let reply = send(&app, post_req(PREDICTION, growing.into_body())).await;
        assert_eq!(reply.cache_status(), fwd("bypass; detail=body-too-large"));
        let whole = format!("{{\"pad\":\"{}\"}}", "y".repeat(60));
        assert_eq!(reply.text(), format!("match=12345 run=6 config={whole}"));

        // A body that claims a size within the limit and sends more: the same.
        let lying = Frames::new().data("x".repeat(65)).claiming_size(10);
        let reply = send(&app, post_req(PREDICTION, lying.into_body())).await;
        assert_eq!(reply.cache_status(), fwd("bypass; detail=body-too-large"));
        assert_eq!(
            reply.text(),
            format!("match=12345 run=7 config={}", "x".repeat(65))
        );

        // A body that fails while it is read for the key: the handler gets what was read and
        // then the same error, and answers as it would without the cache (axum's `Bytes`
        // extractor: 400, the handler never runs).
        for failing in [
            Frames::new().data("{\"a\":").error("client went away"),
            Frames::new()
                .data("{\"a\":")
                .error("client went away")
                .claiming_size(10),
        ] {
            let reply = send(&app, post_req(PREDICTION, failing.into_body())).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(reply.cache_status(), fwd("bypass; detail=body-error"));
        }
        assert_eq!(
            runs.get(),
            7,
            "the handler never saw a failed body as a whole one"
        );

        // Request trailers are not keyed: such a request bypasses, trailers and all.
        let trailing = Frames::new().data("{\"a\": 1}").trailer("x-checksum", "1");
        let reply = send(&app, post_req(PREDICTION, trailing.into_body())).await;
        assert_eq!(reply.cache_status(), fwd("bypass; detail=request-trailers"));
        assert_eq!(reply.text(), "match=12345 run=8 config={\"a\": 1}");

        assert_eq!(layer.stats().bypasses, 7);
        let mut expected = vec![
            prediction_key(odd),
            prediction_key(&at_limit),
            prediction_key("{\"a\": 1}"),
        ];
        expected.sort();
        assert_eq!(redis.entry_keys(ALL_KEYS), expected);
        assert_eq!(layer.stats().writes, 3);
    }
);

redis_test!(
    head_after_get_is_served_from_the_get_entry,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = markets_app(&layer, &runs);
        let get = send(&app, get_req(MARKETS)).await;
        assert_eq!(get.cache_status(), fwd("uri-miss; stored"));
        wait_writes(&layer, 1).await;

        let head = send(&app, Request::head(MARKETS).body(Body::empty()).unwrap()).await;
        assert_eq!(runs.get(), 1, "HEAD is answered from the GET entry");
        assert!(head.cache_status().contains("; hit"), "{head:?}");
        assert_eq!(head.status, get.status);
        assert!(head.body.is_empty(), "HEAD has no body: {:?}", head.body);
        for name in ["content-type", "x-run", "x-custom"] {
            assert_eq!(head.header(name), get.header(name), "header {name}");
        }
        let length = head.header("content-length");
        assert!(
            length.is_empty() || length == get.body.len().to_string(),
            "a HEAD Content-Length must be the GET body's length ({}), got {length}",
            get.body.len()
        );

        let again = send(&app, get_req(MARKETS)).await;
        assert!(again.cache_status().contains("; hit"));
        assert_eq!(again.body, get.body, "the GET entry still has its body");
        assert_eq!(layer.stats().writes, 1, "HEAD stored nothing");
    }
);

redis_test!(head_first_stores_nothing, |redis| async move {
    let layer = cache_one_write(&redis).await;
    let runs = Runs::default();
    let app = with_sentinel(markets_app(&layer, &runs), &layer);

    let head = send(&app, Request::head(MARKETS).body(Body::empty()).unwrap()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.cache_status(), fwd("uri-miss"), "HEAD is never stored");
    assert!(head.body.is_empty());
    assert_eq!(runs.get(), 1);
    assert_nothing_stored(&app, &layer, &redis).await;

    let get = send(&app, get_req(MARKETS)).await;
    assert_eq!(get.cache_status(), fwd("uri-miss; stored"));
    assert_eq!(runs.get(), 2);
    assert_eq!(get.text(), r#"{"match":"12345","run":2,"markets":[1,2]}"#);
});

redis_test!(
    uncached_methods_pass_through_untouched,
    |redis| async move {
        let layer = cache_one_write(&redis).await;
        let runs = Runs::default();
        let posts = runs.clone();
        let app = Router::new().route(
            "/items",
            get(|| async { "get" })
                .post(move |body: Bytes| {
                    let posts = posts.clone();
                    async move { response(posts.bump(), body) }
                })
                .route_layer(layer.policy(Policy::new("items"))),
        );
        let app = with_sentinel(app, &layer);
        for run in 1..=2 {
            let reply = send(&app, post_req("/items", "payload")).await;
            assert_eq!(
                reply.cache_status(),
                "",
                "no Cache-Status on an uncached method"
            );
            assert_eq!(reply.text(), "payload");
            assert_eq!(runs.get(), run);
        }
        let stats = layer.stats();
        assert_eq!((stats.hits, stats.misses, stats.bypasses), (0, 0, 0));
        assert_nothing_stored(&app, &layer, &redis).await;
    }
);

redis_test!(cached_methods_have_their_own_entries, |redis| async move {
    let layer = cache(&redis).await;
    let runs = Runs::default();
    let echo = {
        let runs = runs.clone();
        move |method: Method| {
            let runs = runs.clone();
            async move {
                let run = runs.bump();
                response(run, format!("method={method} run={run}"))
            }
        }
    };
    let policy = Policy::new("both").methods([Method::GET, Method::POST]);
    let app = Router::new().route(
        "/both",
        get(echo.clone())
            .post(echo)
            .route_layer(layer.policy(policy)),
    );
    let get_miss = send(&app, get_req("/both")).await;
    assert_eq!(get_miss.cache_status(), fwd("uri-miss; stored"));
    wait_writes(&layer, 1).await;
    let post_miss = send(&app, post_req("/both", Body::empty())).await;
    assert_eq!(
        post_miss.cache_status(),
        fwd("uri-miss; stored"),
        "POST never gets GET's entry"
    );
    assert_eq!(post_miss.text(), "method=POST run=2");
    wait_writes(&layer, 2).await;
    let post_hit = send(&app, post_req("/both", Body::empty())).await;
    assert_eq!(post_hit.body, post_miss.body);
    let get_hit = send(&app, get_req("/both")).await;
    assert_eq!(get_hit.body, get_miss.body);
    let head = send(&app, Request::head("/both").body(Body::empty()).unwrap()).await;
    assert!(head.cache_status().contains("; hit"), "{head:?}");
    assert_eq!(
        head.header("x-run"),
        "1",
        "HEAD is answered from the GET entry"
    );
    assert_eq!(runs.get(), 2);
    assert_eq!(redis.keys(&format!("{PREFIX}both:*")).len(), 2);
});

redis_test!(
    paths_of_one_route_never_get_each_others_entries,
    |redis| async move {
        // `Entity::none()` on a route with a path parameter: every path shares one key, and
        // only the identity check keeps each path's answer its own.
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let handler_runs = runs.clone();
        let app = Router::new().route(
            "/items/{id}",
            get(move |Path(id): Path<String>| {
                let runs = handler_runs.clone();
                async move { response(runs.bump(), format!("item={id}")) }
            })
            .route_layer(layer.policy(Policy::new("items").entity(Entity::none()))),
        );
        let mut writes = 0;
        for id in ["1", "2", "1", "2", "1"] {
            let reply = send(&app, get_req(&format!("/items/{id}"))).await;
            assert_eq!(
                reply.text(),
                format!("item={id}"),
                "{:?}",
                reply.cache_status()
            );
            if reply.cache_status().ends_with("; stored") {
                writes += 1;
                wait_writes(&layer, writes).await;
            }
        }
    }
);

redis_test!(
    paths_of_one_route_are_cached_side_by_side,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let handler_runs = runs.clone();
        let app = Router::new().route(
            "/items/{id}",
            get(move |Path(id): Path<String>| {
                let runs = handler_runs.clone();
                async move { response(runs.bump(), format!("item={id}")) }
            })
            .route_layer(layer.policy(Policy::new("items"))),
        );
        for (i, id) in ["1", "2"].iter().enumerate() {
            let reply = send(&app, get_req(&format!("/items/{id}"))).await;
            assert_eq!(reply.cache_status(), fwd("uri-miss; stored"), "/items/{id}");
            wait_writes(&layer, i as u64 + 1).await;
        }
        for id in ["1", "2"] {
            let reply = send(&app, get_req(&format!("/items/{id}"))).await;
            assert!(
                reply.cache_status().contains("; hit"),
                "/items/{id}: {:?}",
                reply.cache_status()
            );
            assert_eq!(reply.text(), format!("item={id}"));
        }
        assert_eq!(runs.get(), 2);
    }
);

redis_test!(
    nested_routers_never_get_each_others_entries,
    |redis| async move {
        // The same routes, cached with the same policy, nested twice with different handlers
        // (say, two model versions). Inside `nest`, the layer sees the path without its prefix.
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let api = |model: &'static str| {
            let runs = runs.clone();
            Router::new().route(
                "/matches/{id}/prediction",
                post(move |Path(id): Path<String>| {
                    let runs = runs.clone();
                    async move { response(runs.bump(), format!("match={id} model={model}")) }
                })
                .route_layer(layer.policy(prediction_policy())),
            )
        };
        let app = Router::new().nest("/v1", api("v1")).nest("/v2", api("v2"));
        let v1 = send(
            &app,
            post_req("/v1/matches/12345/prediction", Body::empty()),
        )
        .await;
        assert_eq!(v1.text(), "match=12345 model=v1");
        assert_eq!(v1.cache_status(), fwd("uri-miss; stored"));
        wait_writes(&layer, 1).await;
        let v2 = send(
            &app,
            post_req("/v2/matches/12345/prediction", Body::empty()),
        )
        .await;
        assert_eq!(
            v2.text(),
            "match=12345 model=v2",
            "/v2 served /v1's entry: {:?}",
            v2.cache_status()
        );
    }
);

redis_test!(
    redis_down_at_start_serves_every_request,
    |redis| async move {
        let mut redis = redis;
        let url = redis.url();
        redis.kill();
        let store = RedisStore::builder(url)
            .build()
            .expect("builds without a server");
        let layer = CacheLayer::builder(store, key_factory())
            .lookup_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        let runs = Runs::default();
        let app = prediction_app(&layer, &runs);

        let started = Instant::now();
        for i in 1..=10 {
            let config = format!(r#"{{"n":{}}}"#, i % 3);
            let one = Instant::now();
            let reply = send(&app, post_req(PREDICTION, config.clone())).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.text(), format!("match=12345 run={i} config={config}"));
            let status = reply.cache_status();
            assert!(
                status.starts_with(&fwd("miss")) && status.contains("; detail="),
                "request {i}: {status:?}"
            );
            assert!(
                one.elapsed() < Duration::from_secs(1),
                "request {i} hung for {:?}",
                one.elapsed()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "10 requests took {:?}: lookups must not wait for a reconnect",
            started.elapsed()
        );
        let stats = layer.stats();
        assert_eq!((stats.hits, stats.misses), (0, 10), "{stats:?}");
    }
);

redis_test!(
    foreign_entries_are_misses_and_get_overwritten,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = prediction_app(&layer, &runs);
        let key = prediction_key("");

        let mut foreign: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"not a cache entry".to_vec(),
            b"TRC".to_vec(),
            b"TRC\x01\x00\x00".to_vec(),
            b"TRC\x7fsome later version".to_vec(),
        ];
        let mut round = 0;
        while let Some(bytes) = foreign.pop() {
            round += 1;
            redis.set_raw(&key, &bytes);
            assert_eq!(redis.ttl_ms(&key), -1);
            let miss = send(&app, post_req(PREDICTION, Body::empty())).await;
            assert_eq!(
                miss.cache_status(),
                fwd("miss; stored; detail=bad-entry"),
                "entry {:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(miss.header("x-run"), round.to_string());
            wait_writes(&layer, round).await;
            let ttl = redis.ttl_ms(&key);
            assert!(0 < ttl && ttl <= 60_000, "overwritten with a TTL: {ttl}");
            let hit = send(&app, post_req(PREDICTION, Body::empty())).await;
            assert!(hit.cache_status().contains("; hit"), "{hit:?}");
            assert_eq!(hit.body, miss.body);
            if round == 5 {
                // A real entry, truncated or with a byte appended, is corrupt too.
                let good = redis.get(&key).expect("stored entry");
                foreign.push(good[..good.len() - 1].to_vec());
                foreign.push([good.as_slice(), b"\0"].concat());
            }
        }
        assert_eq!(runs.get(), 7);
        assert_eq!(layer.stats().bad_entries, 7);
    }
);

redis_test!(
    a_hash_collision_cannot_serve_another_variant,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = prediction_app(&layer, &runs);
        let (a, b) = (r#"{"risk":"high"}"#, r#"{"risk":"low"}"#);
        let (key_a, key_b) = (prediction_key(a), prediction_key(b));
        assert_ne!(key_a, key_b);

        let reply_a = send(&app, post_req(PREDICTION, a)).await;
        wait_writes(&layer, 1).await;
        // B's key now holds a valid entry made for A, as if their hashes collided.
        let entry_a = redis.get(&key_a).expect("A's entry");
        redis.set_raw(&key_b, &entry_a);

        let reply_b = send(&app, post_req(PREDICTION, b)).await;
        assert_eq!(reply_b.cache_status(), fwd("vary-miss; stored"));
        assert_eq!(reply_b.text(), format!("match=12345 run=2 config={b}"));
        wait_writes(&layer, 2).await;

        let hit_b = send(&app, post_req(PREDICTION, b)).await;
        assert!(hit_b.cache_status().contains("; hit"), "{hit_b:?}");
        assert_eq!(hit_b.body, reply_b.body);
        let hit_a = send(&app, post_req(PREDICTION, a)).await;
        assert!(hit_a.cache_status().contains("; hit"), "{hit_a:?}");
        assert_eq!(hit_a.body, reply_a.body);
        assert_eq!(runs.get(), 2);

        // The same entry under the key of another path of the same entity is a vary-miss too.
        let other_path_key = key_factory()
            .key("markets", "m_12345", &Variant::new())
            .to_string();
        let markets = markets_app(&layer, &runs);
        let entry_b = redis.get(&key_b).expect("B's entry");
        redis.set_raw(&other_path_key, &entry_b);
        let reply = send(&markets, get_req(MARKETS)).await;
        assert_eq!(reply.cache_status(), fwd("vary-miss; stored"));
        assert_eq!(reply.text(), r#"{"match":"12345","run":3,"markets":[1,2]}"#);
    }
);

/// A response read off the wire.
async fn fetch(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
    req: Request<Body>,
) -> Reply {
    let response = client.request(req).await.expect("request over TCP");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("whole body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

redis_test!(over_the_wire, |redis| async move {
    let layer = cache(&redis).await;
    let runs = Runs::default();
    let app = prediction_app(&layer, &runs).merge(markets_app(&layer, &runs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let post = |body: Body| {
        Request::post(format!("{base}{PREDICTION}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("request")
    };

    let config = r#"{"model":"v2", "risk":"high"}"#;
    let miss = fetch(&client, post(Body::from(config))).await;
    assert_eq!(miss.cache_status(), fwd("uri-miss; stored"));
    assert_eq!(miss.text(), format!("match=12345 run=1 config={config}"));
    wait_writes(&layer, 1).await;

    let hit = fetch(&client, post(Body::from(r#"{"risk":"high","model":"v2"}"#))).await;
    assert!(hit.cache_status().contains("; hit"), "{hit:?}");
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(hit.body, miss.body);
    for name in ["content-type", "x-run", "x-custom"] {
        assert_eq!(hit.header(name), miss.header(name), "header {name}");
    }
    assert_eq!(hit.header("content-length"), hit.body.len().to_string());
    assert!(hit.header("age").parse::<u64>().is_ok());
    assert_eq!(runs.get(), 1);

    // A chunked request body (no Content-Length) is read and keyed like a sized one: the
    // same config, sent in two chunks and another member order, is a hit.
    let chunked = Frames::new()
        .data("{\"risk\":")
        .data("\"high\",\"model\":\"v2\"}");
    let reply = fetch(&client, post(chunked.into_body())).await;
    assert!(reply.cache_status().contains("; hit"), "{reply:?}");
    assert_eq!(reply.body, miss.body);

    // One that grows past the limit reaches the handler whole, over the wire too.
    let big = format!("{{\"pad\":\"{}\"}}", "z".repeat(70 * 1024));
    let growing = Frames::new()
        .data(big[..40 * 1024].to_owned())
        .data(big[40 * 1024..].to_owned());
    let reply = fetch(&client, post(growing.into_body())).await;
    assert_eq!(reply.cache_status(), fwd("bypass; detail=body-too-large"));
    assert_eq!(reply.text(), format!("match=12345 run=2 config={big}"));

    // HEAD over the wire: the GET entry's head, no body.
    let markets = format!("{base}{MARKETS}");
    let get = fetch(&client, Request::get(&markets).body(Body::empty()).unwrap()).await;
    wait_writes(&layer, 2).await;
    let head = fetch(
        &client,
        Request::head(&markets).body(Body::empty()).unwrap(),
    )
    .await;
    assert!(head.cache_status().contains("; hit"), "{head:?}");
    assert!(head.body.is_empty());
    assert_eq!(head.header("x-run"), get.header("x-run"));
    let length = head.header("content-length");
    assert!(
        length.is_empty() || length == get.body.len().to_string(),
        "HEAD Content-Length {length:?}, GET body is {} bytes",
        get.body.len()
    );
    assert_eq!(runs.get(), 3);
});

redis_test!(
    // Found in review: the method was keyed only when one policy listed several methods.
    get_and_post_routes_sharing_a_namespace_never_answer_each_other,
    |redis| async move {
        let layer = cache(&redis).await;
        let app = Router::new().route(
            "/m/{id}",
            get(|| async { "GET view" })
                .route_layer(layer.policy(Policy::new("m")))
                .post(|| async { "POST action" })
                .route_layer(layer.policy(Policy::new("m").methods([Method::POST]))),
        );
        let first = send(&app, get_req("/m/1")).await;
        assert_eq!(first.text(), "GET view");
        wait_writes(&layer, 1).await;
        let post = send(&app, post_req("/m/1", Body::empty())).await;
        assert_eq!(post.text(), "POST action", "{}", post.cache_status());
        assert!(
            !post.cache_status().contains("; hit"),
            "{}",
            post.cache_status()
        );
    }
);

redis_test!(
    // Found in review: a body ending short of its declared Content-Length was stored.
    a_body_shorter_than_its_content_length_is_never_stored,
    |redis| async move {
        let layer = cache_one_write(&redis).await;
        let app = Router::new().route(
            "/short",
            get(|| async {
                Response::builder()
                    .header(header::CONTENT_LENGTH, "10")
                    .body(Frames::new().data("12345").into_body())
                    .expect("response")
            })
            .route_layer(layer.policy(Policy::new("short").entity(Entity::none()))),
        );
        let app = with_sentinel(app, &layer);
        let reply = send(&app, get_req("/short")).await;
        assert_eq!(reply.text(), "12345");
        assert_nothing_stored(&app, &layer, &redis).await;
    }
);

redis_test!(
    // Found in review: axum's `Json` refuses a body without a JSON media type, so the media
    // type is keyed; a refused request must never be served the accepted one's entry.
    the_media_type_of_a_body_is_keyed,
    |redis| async move {
        let layer = cache(&redis).await;
        let app = Router::new().route(
            "/matches/{id}/prediction",
            post(|axum::Json(v): axum::Json<serde_json::Value>| async move { v.to_string() })
                .route_layer(layer.policy(prediction_policy())),
        );
        let json = Request::post(PREDICTION)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"n":1}"#))
            .unwrap();
        assert_eq!(send(&app, json).await.status, StatusCode::OK);
        wait_writes(&layer, 1).await;
        let untyped = send(&app, post_req(PREDICTION, r#"{"n":1}"#)).await;
        assert_eq!(
            untyped.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{}",
            untyped.cache_status()
        );
    }
);

redis_test!(
    stats_are_kept_per_namespace_and_in_total,
    |redis| async move {
        let layer = cache(&redis).await;
        let route = |ns: &str| layer.policy(Policy::new(ns).entity(Entity::none()));
        let app = Router::new()
            .route("/a", get(|| async { "a" }).route_layer(route("a")))
            .route("/b", get(|| async { "b" }).route_layer(route("b")))
            .route("/a2", get(|| async { "a2" }).route_layer(route("a")));
        send(&app, get_req("/a")).await;
        send(&app, get_req("/b")).await;
        wait_writes(&layer, 2).await;
        send(&app, get_req("/a")).await;
        // Another route of namespace `a`: its own identity, the same entity key: a vary-miss.
        send(&app, get_req("/a2")).await;
        let per = layer.namespace_stats();
        assert_eq!(per.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((per["a"].hits, per["a"].misses), (1, 2), "{:?}", per["a"]);
        assert_eq!((per["b"].hits, per["b"].misses, per["b"].writes), (0, 1, 1));
        let total = layer.stats();
        assert_eq!((total.hits, total.misses), (1, 3));
    }
);
