//! Responses that `Vary`: stored once per value of the headers they name (normalised), never
//! served to a request with other values, bounded per key; with tower-http's `CompressionLayer`
//! and `CorsLayer` inside the cache and outside it. Standalone and cluster.

use crate::app::*;
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tower_http::{compression::CompressionLayer, cors::CorsLayer};
use tower_redis_cache::{CacheLayer, Entity, Policy};

fn req(uri: &str, headers: &[(&str, &str)]) -> axum::http::Request<Body> {
    let mut builder = axum::http::Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}

/// The language a handler negotiating by `Accept-Language` picks: the highest weight, the
/// first of equal weights, lowercased; `none` without the header.
fn negotiate_language(request: &Request) -> String {
    let Some(value) = request.headers().get(header::ACCEPT_LANGUAGE) else {
        return "none".to_owned();
    };
    let mut best = ("none".to_owned(), 0u32);
    for member in value.to_str().unwrap_or("").split(',') {
        let mut parts = member.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .map_or(1000, |q| (q.parse::<f64>().unwrap_or(0.0) * 1000.0) as u32);
        if q > best.1 {
            best = (tag, q);
        }
    }
    best.0
}

/// `GET /articles/{id}`, answered in the language the request negotiates, `Vary:
/// Accept-Language`; the route does not list the header.
fn language_app(layer: &CacheLayer, runs: &Runs, policy: Policy) -> Router {
    let runs = runs.clone();
    let handler = move |request: Request| {
        let run = runs.bump();
        async move {
            let language = negotiate_language(&request);
            (
                [
                    (header::VARY, "Accept-Language"),
                    (header::CONTENT_LANGUAGE, "x"),
                ],
                format!("lang={language} run={run}"),
            )
        }
    };
    Router::new().route(
        "/articles/{id}",
        get(handler).route_layer(layer.policy(policy)),
    )
}

fn articles() -> Policy {
    Policy::new("articles").entity(Entity::path_segment(1))
}

fn language(reply: &Reply) -> &str {
    reply.text().split(' ').next().unwrap_or("")
}

redis_test!(
    each_language_gets_its_own_entry_and_invalidation_drops_them_all,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = language_app(&layer, &runs, articles());
        let send_lang = |value: Option<&'static str>| {
            let headers: Vec<(&str, &str)> =
                value.map(|v| ("accept-language", v)).into_iter().collect();
            send(&app, req("/articles/1", &headers))
        };

        let en = send_lang(Some("en")).await;
        assert_eq!((language(&en), en.is_stored()), ("lang=en", true), "{en:?}");
        assert_eq!(en.header("vary"), "Accept-Language", "passed on");
        wait_writes(&layer, 1).await;
        let fr = send_lang(Some("fr")).await;
        assert_eq!((language(&fr), fr.is_stored()), ("lang=fr", true), "{fr:?}");
        wait_writes(&layer, 2).await;
        // Case, whitespace and the order of weights do not make new variants.
        for (value, expected) in [
            ("en", "lang=en"),
            ("EN", "lang=en"),
            ("fr", "lang=fr"),
            (" fr ", "lang=fr"),
        ] {
            let reply = send_lang(Some(value)).await;
            assert!(reply.is_hit(), "{value}: {}", reply.cache_status());
            assert_eq!(language(&reply), expected, "{value}");
            assert_eq!(reply.header("vary"), "Accept-Language");
        }
        let listed = send_lang(Some("fr, en;q=0.5")).await;
        assert_eq!(language(&listed), "lang=fr");
        wait_writes(&layer, 3).await;
        let reordered = send_lang(Some("en;q=0.50 ,FR")).await;
        assert!(reordered.is_hit(), "{}", reordered.cache_status());
        assert_eq!(language(&reordered), "lang=fr");
        // Equal weights in another order may mean another answer: their own variant.
        let other_order = send_lang(Some("en, fr")).await;
        assert_eq!(language(&other_order), "lang=en");
        assert!(!other_order.is_hit());
        wait_writes(&layer, 4).await;
        // No header is a value of its own, never another's.
        let none = send_lang(None).await;
        assert_eq!((language(&none), none.is_hit()), ("lang=none", false));
        wait_writes(&layer, 5).await;
        assert!(send_lang(None).await.is_hit());
        assert_eq!(runs.get(), 5, "one handler run per variant");
        let keys = redis.entry_keys(&format!("{PREFIX}articles:*"));
        assert_eq!(keys.len(), 5, "{keys:?}");

        // Invalidating the entity drops every variant.
        assert_eq!(layer.invalidator().entity("1").await.unwrap(), 5);
        assert_eq!(
            redis.entry_keys(&format!("{PREFIX}articles:*")),
            Vec::<String>::new()
        );
        for value in [Some("en"), Some("fr"), None] {
            assert!(
                !send_lang(value).await.is_hit(),
                "{value:?} after invalidation"
            );
        }
    }
);

redis_test!(
    variants_per_key_are_bounded_under_random_header_values,
    |redis| async move {
        const REQUESTS: usize = 10_000;
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = language_app(&layer, &runs, articles().max_variants(16));
        for i in 0..REQUESTS {
            let tag = format!("x-{i}");
            let reply = send(&app, req("/articles/2", &[("accept-language", &tag)])).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(
                language(&reply),
                format!("lang={tag}"),
                "every client gets its own"
            );
        }
        let stats = layer.stats();
        assert_eq!(stats.hits, 0);
        eventually("the stored variants are written", || {
            layer.stats().writes + layer.stats().variants_refused >= REQUESTS as u64
        })
        .await;
        let stats = layer.stats();
        assert_eq!(stats.writes, 16, "{stats:?}");
        assert_eq!(stats.variants_refused, REQUESTS as u64 - 16, "{stats:?}");
        let keys = redis.entry_keys(&format!("{PREFIX}articles:*"));
        assert_eq!(
            keys.len(),
            16,
            "Redis holds the bound, not one entry per value"
        );
        // A stored variant still hits.
        let reply = send(&app, req("/articles/2", &[("accept-language", "x-3")])).await;
        assert!(reply.is_hit(), "{}", reply.cache_status());
        assert_eq!(language(&reply), "lang=x-3");
    }
);

/// A handler answering `make(run)`, its run counted in `runs`.
fn counted(
    runs: &Runs,
    make: fn(usize) -> Response,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let runs = runs.clone();
    move || std::future::ready(make(runs.bump()))
}

/// A JSON body large enough for `CompressionLayer` to compress.
fn report(run: usize) -> Response {
    let body = format!(
        "{{\"run\":{run},\"rows\":[{}]}}",
        (0..100)
            .map(|i| format!("{{\"i\":{i},\"v\":\"row\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Where `CompressionLayer` sits, seen from the cache.
enum Compression {
    /// Between the cache and the handler.
    Inside,
    /// In front of the cache.
    Outside,
}

/// `GET /reports/{id}` ([`report`]), cached in namespace `reports`, compressed as `compression`
/// says.
fn reports_app(layer: &CacheLayer, runs: &Runs, compression: Compression) -> Router {
    let handler = get(counted(runs, report));
    let policy = layer.policy(Policy::new("reports").entity(Entity::path_segment(1)));
    let route = match compression {
        Compression::Inside => handler
            .route_layer(CompressionLayer::new())
            .route_layer(policy),
        Compression::Outside => handler
            .route_layer(policy)
            .route_layer(CompressionLayer::new()),
    };
    Router::new().route("/reports/{id}", route)
}

/// The `Content-Encoding` of `reply` is one its request's `accept` allows.
fn assert_acceptable(reply: &Reply, accept: &str) {
    let coding = match reply.header("content-encoding") {
        "" => "identity",
        coding => coding,
    };
    let listed = |name: &str| {
        accept.split(',').find_map(|m| {
            let mut parts = m.split(';');
            let token = parts.next()?.trim();
            let q = parts.find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned));
            let q: f64 = q.map_or(1.0, |q| q.parse().unwrap_or(0.0));
            (token.eq_ignore_ascii_case(name)).then_some(q)
        })
    };
    let q = listed(coding)
        .or_else(|| listed("*"))
        .or_else(|| (coding == "identity").then_some(1.0));
    assert!(q.is_some_and(|q| q > 0.0), "{coding} for `{accept}`");
}

/// Accept-Encoding strings as clients write them: codings in any order, case and spacing,
/// with and without weights.
fn accept_encodings(n: usize) -> Vec<String> {
    let codings = ["gzip", "deflate", "br", "zstd", "identity", "compress", "*"];
    (0..n)
        .map(|i| {
            let mut members = Vec::new();
            for (j, coding) in codings.iter().enumerate() {
                if (i >> j) & 1 == 1 || (i % 7 == j) {
                    let coding = if (i / 3) % 2 == 0 {
                        coding.to_string()
                    } else {
                        coding.to_uppercase()
                    };
                    let member = match (i + j) % 4 {
                        0 => coding,
                        1 => format!("{coding};q=0.{}", (i + j) % 10),
                        2 => format!("{coding} ; q=1"),
                        _ => format!("{coding};q=0.{:03}", (i * 7 + j) % 1000),
                    };
                    members.push(member);
                }
            }
            let sep = [",", ", ", " ,  "][i % 3];
            format!("{}{}", members.join(sep), " ".repeat(i / 128))
        })
        .collect()
}

redis_test!(
    compression_inside_the_cache_stores_one_variant_per_coding,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        // The cache outside: it sees (and stores) compressed responses.
        let app = reports_app(&layer, &runs, Compression::Inside);
        let gzip = send(&app, req("/reports/1", &[("accept-encoding", "gzip")])).await;
        assert_eq!(gzip.header("content-encoding"), "gzip");
        assert!(gzip.is_stored(), "{}", gzip.cache_status());
        wait_writes(&layer, 1).await;
        let again = send(
            &app,
            req("/reports/1", &[("accept-encoding", "deflate, gzip;q=1")]),
        )
        .await;
        assert!(again.is_hit(), "{}", again.cache_status());
        assert_eq!(again.body, gzip.body, "the stored gzip body");
        let plain = send(&app, req("/reports/1", &[])).await;
        assert_eq!(plain.header("content-encoding"), "", "{plain:?}");
        assert!(
            plain.text().starts_with("{\"run\":"),
            "a client without gzip never gets it"
        );

        let mut distinct = std::collections::HashSet::new();
        for accept in accept_encodings(1_000) {
            distinct.insert(accept.clone());
            let reply = send(&app, req("/reports/1", &[("accept-encoding", &accept)])).await;
            if reply.status == StatusCode::NOT_ACCEPTABLE {
                continue;
            }
            assert_eq!(reply.status, StatusCode::OK, "{accept}");
            assert_acceptable(&reply, &accept);
        }
        assert!(distinct.len() >= 900, "{} distinct strings", distinct.len());
        let keys = redis.entry_keys(&format!("{PREFIX}reports:*"));
        assert!(keys.len() <= 5, "{} entries: {keys:?}", keys.len());
        assert!(layer.stats().hits >= 900, "{:?}", layer.stats());
    }
);

redis_test!(
    compression_outside_the_cache_stores_once,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = reports_app(&layer, &runs, Compression::Outside);
        let first = send(&app, req("/reports/2", &[("accept-encoding", "gzip")])).await;
        assert_eq!(first.header("content-encoding"), "gzip");
        wait_writes(&layer, 1).await;
        for (accept, coding) in [
            ("gzip", "gzip"),
            ("deflate", "deflate"),
            ("identity", ""),
            ("", ""),
        ] {
            let headers: Vec<(&str, &str)> = match accept {
                "" => Vec::new(),
                accept => vec![("accept-encoding", accept)],
            };
            let reply = send(&app, req("/reports/2", &headers)).await;
            assert!(reply.is_hit(), "{accept}: {}", reply.cache_status());
            assert_eq!(reply.header("content-encoding"), coding, "{accept}");
            assert_eq!(reply.header("vary"), "accept-encoding");
        }
        assert_eq!(runs.get(), 1);
        assert_eq!(redis.entry_keys(&format!("{PREFIX}reports:*")).len(), 1);
    }
);

const ORIGIN_A: &str = "https://a.example";
const ORIGIN_B: &str = "https://b.example";

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin([
            HeaderValue::from_static(ORIGIN_A),
            HeaderValue::from_static(ORIGIN_B),
        ])
        .allow_methods([Method::GET])
}

fn preflight(uri: &str, origin: &str) -> axum::http::Request<Body> {
    axum::http::Request::options(uri)
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .body(Body::empty())
        .expect("request")
}

redis_test!(cors_inside_the_cache_varies_by_origin, |redis| async move {
    let layer = cache(&redis).await;
    let runs = Runs::default();
    let handler = counted(&runs, |run| format!("run={run}").into_response());
    let app = Router::new().route(
        "/teams/{id}",
        // `layer`, not `route_layer`: preflights (OPTIONS, which the route does not
        // serve) reach the CORS layer too.
        get(handler)
            .layer(cors())
            .route_layer(layer.policy(Policy::new("teams").entity(Entity::path_segment(1)))),
    );
    for origin in [ORIGIN_A, ORIGIN_B] {
        let reply = send(&app, req("/teams/1", &[("origin", origin)])).await;
        assert_eq!(reply.header("access-control-allow-origin"), origin);
        assert!(reply.is_stored(), "{}", reply.cache_status());
    }
    wait_writes(&layer, 2).await;
    for _ in 0..2 {
        for origin in [ORIGIN_A, ORIGIN_B] {
            let reply = send(&app, req("/teams/1", &[("origin", origin)])).await;
            assert!(reply.is_hit(), "{origin}: {}", reply.cache_status());
            assert_eq!(reply.header("access-control-allow-origin"), origin);
        }
    }
    let evil = send(&app, req("/teams/1", &[("origin", "https://evil.example")])).await;
    assert_eq!(evil.header("access-control-allow-origin"), "", "{evil:?}");
    wait_writes(&layer, 3).await;
    // Preflights go to the CORS layer, never to the store.
    for _ in 0..2 {
        let reply = send(&app, preflight("/teams/1", ORIGIN_A)).await;
        assert_eq!(reply.header("access-control-allow-origin"), ORIGIN_A);
        assert!(
            !reply.is_hit() && !reply.is_stored(),
            "{}",
            reply.cache_status()
        );
    }
    assert_eq!(runs.get(), 3, "one run per origin");
    assert_eq!(redis.entry_keys(&format!("{PREFIX}teams:*")).len(), 3);
});

redis_test!(cors_outside_the_cache_stores_once, |redis| async move {
    let layer = cache(&redis).await;
    let runs = Runs::default();
    let handler = counted(&runs, |run| format!("run={run}").into_response());
    let app = Router::new().route(
        "/teams/{id}",
        get(handler)
            .route_layer(layer.policy(Policy::new("teams").entity(Entity::path_segment(1))))
            .layer(cors()),
    );
    let first = send(&app, req("/teams/2", &[("origin", ORIGIN_A)])).await;
    assert!(first.is_stored());
    wait_writes(&layer, 1).await;
    for origin in [ORIGIN_B, ORIGIN_A] {
        let reply = send(&app, req("/teams/2", &[("origin", origin)])).await;
        assert!(reply.is_hit(), "{origin}: {}", reply.cache_status());
        assert_eq!(reply.header("access-control-allow-origin"), origin);
    }
    let reply = send(&app, preflight("/teams/2", ORIGIN_B)).await;
    assert_eq!(reply.header("access-control-allow-origin"), ORIGIN_B);
    assert_eq!(reply.cache_status(), "", "answered before the cache");
    assert_eq!(runs.get(), 1);
    assert_eq!(redis.entry_keys(&format!("{PREFIX}teams:*")).len(), 1);
});
