//! Hostile requests and hostile store contents, through a real axum `Router` and a real Redis.
//!
//! Every test drives the layer the way an app does (`route_layer` on a `MethodRouter`) in front
//! of handlers that echo every input they can read, so a response served to the wrong request
//! shows. Each one proves that a hostile input does not panic, does not turn into a 500 caused
//! by the cache, does not read or overwrite another entity's entry, does not widen an
//! invalidation pattern, and is not served to a request that lacks it.
//!
//! Several of these tests began as reports of defects in `src/` (the fuzz targets in `fuzz/`
//! found one of them); they stay as regression tests.

use crate::app::is_entry_key;
use crate::servers::{RedisServer, Reply as RespReply};
use axum::{
    body::Body,
    extract::{Query, Request},
    http::{header, HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{any as any_method, get, post},
    Json, Router,
};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, SystemTime},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{ServiceBuilder, ServiceExt};
use tower_redis_cache::{
    CacheLayer, Entity, Entry, KeyFactory, Policy, RedisStore, Store, StoreFuture, Variant,
    MAX_ENTITY_LEN,
};

/// The request-body limit of the routes under test.
const LIMIT: usize = 4096;
/// Headers that rewrite the host, URL or method a handler sees: requests carrying one bypass
/// the cache unless the route keys it.
const REWRITING: [&str; 9] = [
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method",
    "x-http-method-override",
    "x-method-override",
    "x-original-method",
];
/// Request headers the echo handler reports (besides method, URI and body).
const ECHOED: [&str; 15] = [
    "authorization",
    "cookie",
    "content-type",
    "accept-language",
    "x-tenant",
    "x-foo",
    "forwarded",
    "x-forwarded-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-method-override",
    "x-original-method",
    "x-http-method",
    "x-forwarded-prefix",
];
const X_FOO: HeaderName = HeaderName::from_static("x-foo");
const GLOB: [char; 6] = ['*', '?', '[', ']', '\\', '^'];

fn keys() -> KeyFactory {
    KeyFactory::new("monps", "test", "v1")
}

/// The prediction route's policy, as in the original app.
fn pred() -> Policy {
    Policy::new("pred")
        .methods([Method::POST])
        .entity(Entity::path_segment(1).prefix("m_"))
        .max_request_body(LIMIT)
}

/// A GET route's policy on the same entities.
fn markets() -> Policy {
    Policy::new("markets").entity(Entity::path_segment(1).prefix("m_"))
}

/// Echoes every input a handler could read: `METHOD URI`, the [`ECHOED`] headers, a blank
/// line, then the body bytes exactly as received.
async fn echo(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("the handler reads the whole body");
    let mut out = format!("{} {}\n", parts.method, parts.uri).into_bytes();
    for name in ECHOED {
        for value in parts.headers.get_all(name) {
            out.extend_from_slice(format!("{name}: ").as_bytes());
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
    }
    out.push(b'\n');
    out.extend_from_slice(&body);
    Response::new(Body::from(out))
}

/// A Redis server and a layer on it, with a lookup timeout generous enough for debug builds.
struct Setup {
    redis: RedisServer,
    cache: CacheLayer,
    /// Responses announced as stored so far; `send` waits for their write-backs.
    stored: AtomicU64,
}

async fn setup() -> Setup {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("connect to the test redis");
    let cache = CacheLayer::builder(store, keys())
        .lookup_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    Setup {
        redis,
        cache,
        stored: AtomicU64::new(0),
    }
}

impl Setup {
    /// The prediction route with `policy`, in front of [`echo`].
    fn pred_app(&self, policy: Policy) -> Router {
        Router::new().route(
            "/matches/{id}/prediction",
            post(echo).route_layer(self.cache.policy(policy)),
        )
    }

    /// Sends `req` through `app`, reads the whole response, and waits until a response that
    /// announced `stored` has been written, so the next request sees it.
    async fn send(&self, app: &Router, req: Request<Body>) -> Reply {
        let what = format!("{} {}", req.method(), short(&req.uri().to_string()));
        let reply = self.send_unwaited(app, req).await;
        if reply.stored() {
            let stored = self.stored.fetch_add(1, Relaxed) + 1;
            for _ in 0..1000 {
                let stats = self.cache.stats();
                if stats.writes + stats.write_errors >= stored {
                    assert_eq!(stats.write_errors, 0, "{what}: write-back failed");
                    return reply;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("{what}: the write-back did not finish");
        }
        reply
    }

    /// Like [`send`](Self::send), for a response announced `stored` that will not be (its body
    /// turns out over the response limit): does not wait for a write.
    async fn send_unwaited(&self, app: &Router, req: Request<Body>) -> Reply {
        let what = format!("{} {}", req.method(), short(&req.uri().to_string()));
        let response = app.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        assert_ne!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: {}",
            reply.cache_status()
        );
        reply
    }

    /// Every entry key in Redis, each checked for the shape every key must have (indexes,
    /// leases and fences, `{prefix}#…`, have their own shape).
    fn all_keys(&self) -> Vec<String> {
        let mut all = self.redis.keys("*");
        all.retain(|key| is_entry_key(key));
        all.iter().for_each(|k| assert_key_shape(k));
        all
    }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .map_or("", |v| v.to_str().expect("cache-status is ASCII"))
    }

    fn hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }

    fn stored(&self) -> bool {
        self.cache_status().contains("; stored")
    }

    fn bypass(&self, detail: &str) -> bool {
        let status = self.cache_status();
        status.contains("fwd=bypass") && status.contains(&format!("detail={detail}"))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The request line the handler saw (`METHOD URI`).
    fn echoed_request_line(&self) -> String {
        self.text().lines().next().unwrap_or("").to_owned()
    }

    /// The request body the handler received.
    fn echoed_body(&self) -> &[u8] {
        let at = self
            .body
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("an echo");
        &self.body[at + 2..]
    }
}

fn short(s: &str) -> String {
    if s.len() > 80 {
        let start: String = s.chars().take(80).collect();
        format!("{start}…({} bytes)", s.len())
    } else {
        s.to_owned()
    }
}

fn post_req(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).body(body.into()).expect("valid request")
}

/// The variant of a [`json_req`] body: the canonical body and its media type.
fn json_variant(body: &[u8]) -> Variant {
    Variant::new()
        .json_body(body)
        .header(&header::CONTENT_TYPE, "application/json")
}

fn json_req(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("valid request")
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri)
        .body(Body::empty())
        .expect("valid request")
}

/// Deterministic bytes that are not JSON.
fn noise(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A path segment as axum's `Path` reads it: `%XX` decoded, a lone `%` kept.
fn decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 ids")
}

/// The hash tag field (`{…}`) of `key`.
fn tag(key: &str) -> &str {
    key.split(':').nth(4).expect("a fifth field")
}

/// The hash tag the key factory gives `entity`.
fn tag_of(entity: &str) -> String {
    tag(keys().key("n", entity, &Variant::new()).as_str()).to_owned()
}

/// Six `:`-separated fields, one `{` and one `}` enclosing exactly the fifth, no glob
/// character anywhere, a non-empty tag, a `default` or 16-hex-digit variant.
fn assert_key_shape(key: &str) {
    let fields: Vec<&str> = key.split(':').collect();
    assert_eq!(fields.len(), 6, "fields of {key:?}");
    assert_eq!(fields[..3], ["monps", "test", "v1"], "{key:?}");
    assert_eq!(key.matches('{').count(), 1, "{key:?}");
    assert_eq!(key.matches('}').count(), 1, "{key:?}");
    let tag = fields[4];
    assert!(
        tag.len() > 2 && tag.starts_with('{') && tag.ends_with('}'),
        "{key:?}"
    );
    assert!(!key.contains(GLOB), "glob character in {key:?}");
    assert!(key.is_ascii(), "{key:?}");
    let variant = fields[5];
    assert!(
        variant == "default"
            || (variant.len() == 16 && variant.bytes().all(|b| b.is_ascii_hexdigit())),
        "{key:?}"
    );
}

/// A request body that yields `chunks` and claims `hint` as its size, optionally failing at
/// the end: streamed bodies of unknown size, bodies that lie about their size, broken bodies.
struct Chunks {
    chunks: VecDeque<Bytes>,
    hint: SizeHint,
    fail: bool,
}

impl Chunks {
    fn body(chunks: &[&[u8]], hint: SizeHint, fail: bool) -> Body {
        Body::new(Chunks {
            chunks: chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
            hint,
            fail,
        })
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(match self.chunks.pop_front() {
            Some(chunk) => Some(Ok(Frame::data(chunk))),
            None if self.fail => {
                self.fail = false;
                Some(Err(io::Error::other("connection reset")))
            }
            None => None,
        })
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_reach_the_handler_intact_and_are_not_stored() {
    let s = setup().await;
    let app = s.pred_app(pred());
    for len in [LIMIT + 1, 1 << 20, 8 << 20] {
        let body = noise(len);
        for _ in 0..2 {
            let r = s
                .send(&app, post_req("/matches/1/prediction", body.clone()))
                .await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.bypass("body-too-large"), "{len}: {}", r.cache_status());
            assert_eq!(r.echoed_body().len(), len);
            assert!(r.echoed_body() == &body[..], "{len}: body altered");
        }
    }
    assert_eq!(s.redis.dbsize(), 0, "an oversized request was stored");

    // At the limit exactly: keyed and stored, and the handler still gets every byte.
    let body = noise(LIMIT);
    let first = s
        .send(&app, post_req("/matches/1/prediction", body.clone()))
        .await;
    assert!(first.stored(), "{}", first.cache_status());
    assert!(first.echoed_body() == &body[..]);
    let second = s
        .send(&app, post_req("/matches/1/prediction", body.clone()))
        .await;
    assert!(second.hit(), "{}", second.cache_status());
    assert!(second.echoed_body() == &body[..]);
    assert_eq!(s.all_keys().len(), 1);
}

/// A body of unknown size (streamed, chunked) is read up to the limit and keyed like any other;
/// one that grows past the limit reaches the handler whole and is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_bodies_of_unknown_size_are_keyed_and_arrive_intact() {
    let s = setup().await;
    let app = s.pred_app(pred());
    let at_limit = noise(LIMIT);
    let keyed: [&[&[u8]]; 3] = [
        &[b"{\"a\":", b"1}"],
        &[b"", b"x"],
        &[
            &at_limit[..100],
            &at_limit[100..LIMIT - 1],
            &at_limit[LIMIT - 1..],
        ],
    ];
    for chunks in keyed {
        let sent: Vec<u8> = chunks.concat();
        let body = || Chunks::body(chunks, SizeHint::default(), false);
        let first = s
            .send(&app, post_req("/matches/1/prediction", body()))
            .await;
        assert_eq!(first.status, StatusCode::OK);
        assert!(first.stored(), "{}", first.cache_status());
        assert!(first.echoed_body() == &sent[..], "streamed body altered");
        let second = s
            .send(&app, post_req("/matches/1/prediction", body()))
            .await;
        assert!(second.hit(), "{}", second.cache_status());
        assert!(second.echoed_body() == &sent[..], "streamed body altered");
    }
    assert_eq!(s.all_keys().len(), 3);

    let big = noise(100_000);
    let growing: [&[&[u8]]; 3] = [
        &[&big[..50_000], &big[50_000..]],
        &[&big[..LIMIT], b"y"],
        &[b"{", &big[..LIMIT], b"}", b"more"],
    ];
    for chunks in growing {
        let sent: Vec<u8> = chunks.concat();
        for _ in 0..2 {
            let body = Chunks::body(chunks, SizeHint::default(), false);
            let r = s.send(&app, post_req("/matches/1/prediction", body)).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.bypass("body-too-large"), "{}", r.cache_status());
            assert!(r.echoed_body() == &sent[..], "growing body altered");
        }
    }
    assert_eq!(s.all_keys().len(), 3, "a body past the limit was stored");
}

/// A body whose size hint promises at most the limit but that delivers more, or that fails, has
/// been partly read when the cache notices: the handler gets what was read and then the rest
/// (or the same error), exactly as without the cache, and nothing is stored. Never a 500 of
/// the cache's making. (Only a hand-written body can lie this way: hyper enforces
/// `Content-Length`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_or_failing_bodies_reach_the_handler_as_they_are_never_stored() {
    let s = setup().await;
    let app = s.pred_app(pred());
    let over = noise(LIMIT + 1);
    let lying = Chunks::body(&[b"{}", &over], SizeHint::with_exact(2), false);
    let r = s.send(&app, post_req("/matches/1/prediction", lying)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.bypass("body-too-large"), "{}", r.cache_status());
    assert!(
        r.echoed_body() == &[&b"{}"[..], &over].concat()[..],
        "lying body altered"
    );

    // The handler's own extractor (axum's `Bytes`) turns the body error into its 400.
    let handler = post(|body: Bytes| async move { body });
    let direct = Chunks::body(&[b"{\"a\":"], SizeHint::with_exact(10), true);
    let without_cache = Router::new()
        .route("/matches/{id}/prediction", handler.clone())
        .oneshot(post_req("/matches/1/prediction", direct))
        .await
        .unwrap();
    let app = Router::new().route(
        "/matches/{id}/prediction",
        handler.route_layer(s.cache.policy(pred())),
    );
    for size in [SizeHint::with_exact(10), SizeHint::default()] {
        let failing = Chunks::body(&[b"{\"a\":"], size, true);
        let r = s
            .send(&app, post_req("/matches/1/prediction", failing))
            .await;
        assert_eq!(r.status, without_cache.status());
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.bypass("body-error"), "{}", r.cache_status());
    }
    assert_eq!(s.redis.dbsize(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_keyed_by_its_raw_bytes_without_overflowing_the_stack() {
    const DEPTH: usize = 100_000;
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    // The same document as `arrays` but for one insignificant space: raw-byte keying tells
    // them apart (a wasted entry, never a wrong one).
    let spaced = format!("{} {}", "[".repeat(DEPTH), "]".repeat(DEPTH));

    // No recursion past serde_json's limit: a small stack is plenty.
    let (a, o) = (arrays.clone(), objects.clone());
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            for body in [a, o] {
                let id = Variant::new().json_body(body.as_bytes()).id();
                assert_eq!(id.len(), 16);
            }
        })
        .expect("spawn")
        .join()
        .expect("json_body on 100 000 levels overflowed a 256 KiB stack");

    let s = setup().await;
    let app = s.pred_app(pred().max_request_body(1 << 20));
    for body in [&arrays, &objects, &spaced] {
        let first = s
            .send(&app, json_req("/matches/1/prediction", body.clone()))
            .await;
        assert!(first.stored() && !first.hit(), "{}", first.cache_status());
        assert!(first.echoed_body() == body.as_bytes(), "deep body altered");
        let again = s
            .send(&app, json_req("/matches/1/prediction", body.clone()))
            .await;
        assert!(again.hit(), "{}", again.cache_status());
        assert!(again.echoed_body() == body.as_bytes());
    }
    assert_eq!(s.all_keys().len(), 3);

    // Within the nesting limit the body is canonical JSON: whitespace does not matter.
    let shallow = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let shallow_spaced = format!("{} \n{}", "[".repeat(100), "]".repeat(100));
    let first = s
        .send(&app, json_req("/matches/1/prediction", shallow))
        .await;
    assert!(first.stored());
    let second = s
        .send(&app, json_req("/matches/1/prediction", shallow_spaced))
        .await;
    assert!(second.hit(), "{}", second.cache_status());
}

/// Bodies that are not canonicalisable JSON are keyed by their bytes, so none of them shares
/// a key with another body, nor with the value a lenient parser would see in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_json_bodies_never_share_a_key() {
    let three_hundred_digits = format!("1{}", "0".repeat(299));
    let bodies: Vec<Vec<u8>> = [
        // Invalid UTF-8, bare and inside strings.
        &b"\"\xff\""[..],
        b"\xff\xfe",
        b"{\"a\":\"\xff\"}",
        b"{\"a\":\"\xfe\"}",
        // Duplicate members: the last-wins value first, then documents spelling it twice.
        b"{\"a\":2}",
        b"{\"a\":1,\"a\":2}",
        b"{\"a\":2,\"a\":1}",
        b"{\"a\":1}",
        b"{\"o\":{\"a\":1,\"a\":2}}",
        b"{\"o\":{\"a\":2}}",
        // Numbers out of the IEEE 754 range, and a 300-digit integer.
        b"1e400",
        b"1e401",
        b"-1e400",
        b"[1e400]",
        b"{\"x\":1e400}",
        three_hundred_digits.as_bytes(),
        // Lone surrogates, and a valid pair.
        b"\"\\ud800\"",
        b"\"\\udc00\"",
        b"\"\\ud800\\u0041\"",
        b"\"\\ud800\\udc00\"",
        // Small documents and near-JSON.
        b"{}",
        b"[]",
        b"null",
        b"\"\"",
        b"0",
        b"{",
        b"{}{}",
        b"\xef\xbb\xbf{}",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();

    let s = setup().await;
    let app = s.pred_app(pred());
    for body in &bodies {
        let r = s
            .send(&app, json_req("/matches/1/prediction", body.clone()))
            .await;
        let shown = String::from_utf8_lossy(body);
        assert!(!r.hit(), "{shown}: served another body's entry");
        assert!(r.stored(), "{shown}: {}", r.cache_status());
        assert!(r.echoed_body() == &body[..], "{shown}: body altered");
    }
    for body in &bodies {
        let r = s
            .send(&app, json_req("/matches/1/prediction", body.clone()))
            .await;
        let shown = String::from_utf8_lossy(body);
        assert!(r.hit(), "{shown}: {}", r.cache_status());
        assert!(r.echoed_body() == &body[..], "{shown}: served another body");
    }
    assert_eq!(s.all_keys().len(), bodies.len());

    // Equal documents still share: a surrogate pair and its UTF-8, member order, whitespace.
    for (stored, same) in [
        (&b"\"\\ud800\\udc00\""[..], "\"\u{10000}\"".as_bytes()),
        (b"{\"a\":1}", b" { \"a\" : 1 } "),
        (b"{}", b"{} "),
    ] {
        let r = s.send(&app, json_req("/matches/1/prediction", same)).await;
        assert!(r.hit(), "{}", String::from_utf8_lossy(same));
        assert!(r.echoed_body() == stored);
    }
}

/// A handler reading `{"id": u64}` sees 9007199254740993 and 9007199254740992 as different
/// ids, but RFC 8785 writes both as the double 9007199254740992: the crate keys bodies with
/// integers beyond 2^53 by their raw bytes, so neither is served the other's response.
/// (Found here: before that, the second request was a hit on the first one's entry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_f64_precision_are_keyed_apart() {
    let s = setup().await;
    let app = Router::new().route(
        "/matches/{id}/prediction",
        post(|Json(config): Json<serde_json::Value>| async move {
            match config["id"].as_u64() {
                Some(id) => id.to_string().into_response(),
                None => StatusCode::UNPROCESSABLE_ENTITY.into_response(),
            }
        })
        .route_layer(s.cache.policy(pred())),
    );
    for (first, second) in [
        ("9007199254740992", "9007199254740993"),
        ("18446744073709551614", "18446744073709551615"),
    ] {
        let r = s
            .send(
                &app,
                json_req("/matches/1/prediction", format!(r#"{{"id":{first}}}"#)),
            )
            .await;
        assert_eq!(r.text(), first);
        let r = s
            .send(
                &app,
                json_req("/matches/1/prediction", format!(r#"{{"id":{second}}}"#)),
            )
            .await;
        assert_eq!(r.text(), second, "{second} was served {first}'s response");
    }
}

/// `1`, `1.0` and `1e0` are one RFC 8785 number, and the crate keys them as one value (as the
/// issue asks: equivalent spellings never change the key). A handler that reads numbers by value
/// (here as `f64`) answers them alike, so sharing the entry serves exactly what it would have.
/// (A handler that refuses `1.0` for an integer field would have answered 422, which is not
/// stored; the README states that numbers are keyed by value.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_and_float_spellings_of_one_value_share_an_entry() {
    let s = setup().await;
    let app = Router::new().route(
        "/matches/{id}/prediction",
        post(|Json(config): Json<serde_json::Value>| async move {
            match config["id"].as_f64() {
                Some(id) => format!("{id:?}").into_response(),
                None => StatusCode::UNPROCESSABLE_ENTITY.into_response(),
            }
        })
        .route_layer(s.cache.policy(pred())),
    );
    let r = s
        .send(&app, json_req("/matches/1/prediction", r#"{"id":1}"#))
        .await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "1.0"));
    for float in [r#"{"id":1.0}"#, r#"{"id":1e0}"#, r#"{"id":10E-1}"#] {
        let r = s.send(&app, json_req("/matches/1/prediction", float)).await;
        assert!(
            r.cache_status().contains("; hit"),
            "{float}: {}",
            r.cache_status()
        );
        assert_eq!(r.text(), "1.0", "{float}");
    }
}

// ---------------------------------------------------------------------------------------------
// Entity ids and query strings
// ---------------------------------------------------------------------------------------------

/// Path ids as they appear in the URI (raw or percent-encoded), each a different entity.
const HOSTILE_IDS: [&str; 24] = [
    "1",
    "12",
    "12345",
    "12345}:*",
    "a%7D%3A%2A",
    "%2A",
    "*",
    "%3F",
    "[a-z]",
    "1*",
    "{x}",
    "a:b",
    "a}{b",
    "]",
    "[",
    "%C3%A9",
    "é",
    "%",
    "%25",
    "\\",
    "^",
    "m_1",
    "%7Bm_1%7D",
    "..",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_stay_in_their_hash_tag_and_patterns_match_only_their_entity() {
    let s = setup().await;
    let app = s.pred_app(pred()).route(
        "/matches/{id}/markets",
        get(echo).route_layer(s.cache.policy(markets().vary_query(["lang"]))),
    );
    for id in HOSTILE_IDS {
        let pred_uri = format!("/matches/{id}/prediction");
        let markets_uri = format!("/matches/{id}/markets?lang=x{{}}:*?[]%25%C3%A9");
        for round in 0..2 {
            let r = s
                .send(&app, json_req(&pred_uri, r#"{"risk":"high"}"#))
                .await;
            assert_eq!(r.echoed_request_line(), format!("POST {pred_uri}"));
            assert_eq!(r.hit(), round == 1, "{id}: {}", r.cache_status());
            let r = s.send(&app, get_req(&markets_uri)).await;
            assert_eq!(r.echoed_request_line(), format!("GET {markets_uri}"));
            assert_eq!(r.hit(), round == 1, "{id}: {}", r.cache_status());
        }
    }

    // Spellings of one id (`%2A` and `*`) are one entity, as the handler reads them alike.
    let distinct: BTreeSet<String> = HOSTILE_IDS.iter().map(|id| decoded(id)).collect();
    assert_eq!(distinct.len(), HOSTILE_IDS.len() - 3, "{distinct:?}");
    let all = s.all_keys();
    assert_eq!(all.len(), 2 * distinct.len(), "{all:#?}");
    let tags: BTreeSet<&str> = all.iter().map(|k| tag(k)).collect();
    assert_eq!(tags.len(), distinct.len(), "two ids share a hash tag");

    // Each entity's pattern finds exactly its two keys (one per namespace); crafted patterns
    // (glob characters, other entities' prefixes) find exactly the keys of the entity they
    // spell, here none but `m_1*`'s.
    let crafted = [
        "*", "?", "[a-z]", "m_*", "m_?", "m_1*", "m_1?", "m_[0-9]*", "}:*", "*}:*{", "\\*", "",
    ];
    let entities = distinct
        .iter()
        .map(|id| format!("m_{id}"))
        .chain(crafted.iter().map(|c| (*c).to_owned()));
    for entity in entities {
        let pattern = keys().entity_pattern(&entity);
        let found = s.redis.keys(&pattern);
        let expected: Vec<String> = all
            .iter()
            .filter(|k| tag(k) == tag_of(&entity))
            .cloned()
            .collect();
        assert_eq!(found, expected, "entity {entity:?}, pattern {pattern:?}");
        let is_stored = distinct.iter().any(|id| format!("m_{id}") == entity);
        assert_eq!(found.len(), if is_stored { 2 } else { 0 }, "{entity:?}");
    }
    for namespace in ["pred", "markets"] {
        let found = s.redis.keys(&keys().namespace_pattern(namespace));
        assert_eq!(found.len(), distinct.len());
        assert!(found.iter().all(|k| k.split(':').nth(3) == Some(namespace)));
    }
    for namespace in ["*", "pred*", "?red", "[a-z]*"] {
        let pattern = keys().namespace_pattern(namespace);
        assert_eq!(s.redis.keys(&pattern), Vec::<String>::new(), "{pattern}");
    }
}

/// The default entity is the whole path: hostile paths stay inside their hash tag, an
/// overlong one bypasses, and each path's pattern matches only its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_path_entities_are_safe_and_bounded() {
    let s = setup().await;
    let app = Router::new().route(
        "/items/{*rest}",
        get(echo).route_layer(s.cache.policy(Policy::new("items"))),
    );
    let paths = [
        "/items/1",
        "/items/1/",
        "/items/*",
        "/items/a:b}{",
        "/items/[a-z]",
        "/items/../x",
        "/items/é",
        "/items/a%2Fb",
        "/items/a/b",
    ];
    // Other spellings of paths above: the same entity, so the same key (each overwrites the
    // other's entry, as a handler may tell them apart) and one invalidation for both.
    let spellings = [
        ("/items/%2A", "/items/*"),
        ("/items/%C3%A9", "/items/%c3%a9"),
    ];
    for path in paths {
        for round in 0..2 {
            let r = s.send(&app, get_req(path)).await;
            assert_eq!(r.echoed_request_line(), format!("GET {path}"));
            assert_eq!(r.hit(), round == 1, "{path}: {}", r.cache_status());
        }
    }
    let long = format!("/items/{}", "a".repeat(MAX_ENTITY_LEN));
    let r = s.send(&app, get_req(&long)).await;
    assert!(r.bypass("no-entity"), "{}", r.cache_status());
    for (spelling, twin) in spellings {
        for path in [spelling, twin] {
            let r = s.send(&app, get_req(path)).await;
            assert_eq!(
                r.echoed_request_line(),
                format!("GET {path}"),
                "never the twin's"
            );
            assert!(!r.hit(), "{path}: {}", r.cache_status());
        }
    }

    let all = s.all_keys();
    assert_eq!(all.len(), paths.len(), "spellings add no key: {all:#?}");
    for path in paths {
        let found = s.redis.keys(&keys().entity_pattern(path));
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        assert_eq!(tag(&found[0]), tag_of(path));
    }
    for crafted in ["*", "/items/*", "/items/?", "/items/[a-z]*", "/*"] {
        let found = s.redis.keys(&keys().entity_pattern(crafted));
        let own = paths.contains(&crafted) as usize;
        assert_eq!(found.len(), own, "{crafted}: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_ids_bypass_and_keys_stay_bounded_whatever_the_query_and_headers() {
    let s = setup().await;
    let app = s.pred_app(pred()).route(
        "/matches/{id}/markets",
        get(echo).route_layer(
            s.cache
                .policy(markets().vary_query(["lang"]).vary_headers([X_FOO])),
        ),
    );
    // `m_` + 254 bytes is the longest entity keyed.
    let longest = "a".repeat(MAX_ENTITY_LEN - 2);
    let r = s
        .send(
            &app,
            json_req(&format!("/matches/{longest}/prediction"), "{}"),
        )
        .await;
    assert!(r.stored(), "{}", r.cache_status());
    for id in [
        "a".repeat(MAX_ENTITY_LEN - 1),
        // Decoded, `%2A` as text: 3 bytes, 5 encoded (`%252A`): over the limit once encoded.
        "%252A".repeat(52),
        "é".repeat(100),
        // `http` refuses URIs of 64 KiB and more: this is about the longest path there is.
        "a".repeat(60_000),
    ] {
        let uri = format!("/matches/{id}/prediction");
        for _ in 0..2 {
            let r = s.send(&app, json_req(&uri, "{}")).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.bypass("no-entity"), "{}", r.cache_status());
            assert_eq!(r.echoed_request_line(), format!("POST {uri}"));
        }
    }

    // Huge keyed query values and headers go into the variant hash, not the key.
    let huge_value = "x".repeat(60_000);
    let many_values = "lang=v&".repeat(8_000);
    for query in [format!("lang={huge_value}"), many_values] {
        let uri = format!("/matches/1/markets?{query}");
        let r = s.send(&app, get_req(&uri)).await;
        assert!(r.stored(), "{}", r.cache_status());
        assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
        assert!(s.send(&app, get_req(&uri)).await.hit());
    }
    let mut req = get_req("/matches/1/markets");
    req.headers_mut()
        .insert(X_FOO, HeaderValue::from_str(&huge_value).unwrap());
    for i in 0..2_000 {
        let name = HeaderName::from_bytes(format!("x-junk-{i}").as_bytes()).unwrap();
        req.headers_mut()
            .insert(name, HeaderValue::from_str(&"j".repeat(1024)).unwrap());
    }
    let r = s.send(&app, req).await;
    assert!(r.stored(), "{}", r.cache_status());
    assert!(r.text().contains(&huge_value));
    // A 1 MiB keyed header value: answered intact; the echo (over the 1 MiB response limit)
    // is announced `stored` from its head but never written.
    let mut req = get_req("/matches/1/markets");
    let mib = "q".repeat(1 << 20);
    req.headers_mut()
        .insert(X_FOO, HeaderValue::from_str(&mib).unwrap());
    let r = s.send_unwaited(&app, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains(&mib));

    let all = s.all_keys();
    assert_eq!(all.len(), 4, "{all:#?}");
    let bound = |namespace: &str| {
        let entity = format!("m_{longest}");
        keys()
            .key(namespace, &entity, &Variant::new().query("a", "b"))
            .as_str()
            .len()
    };
    for key in &all {
        let namespace = key.split(':').nth(3).unwrap();
        assert!(key.len() <= bound(namespace), "{} bytes: {key}", key.len());
    }
    let max = all.iter().map(String::len).max().unwrap();
    assert_eq!(
        max,
        bound("pred"),
        "the longest key is the longest entity's"
    );
    assert_eq!(max, 14 + 5 + 2 + MAX_ENTITY_LEN + 1 + 16);
}

// ---------------------------------------------------------------------------------------------
// Unkeyed inputs (cache poisoning)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_query_parameters_bypass_and_never_poison() {
    let s = setup().await;
    let app = Router::new().route(
        "/matches/{id}/markets",
        get(echo).route_layer(
            s.cache
                .policy(markets().vary_query(["lang"]).ignore_query(["utm"])),
        ),
    );
    let poisoned = [
        "/matches/1/markets?evil=1",
        "/matches/1/markets?lang=en&evil=1",
        "/matches/1/markets?l%61ng=evil",
        "/matches/1/markets?LANG=evil",
        "/matches/1/markets?utm=1&lang%00=evil",
    ];
    for uri in poisoned {
        let r = s.send(&app, get_req(uri)).await;
        assert!(r.bypass("unkeyed-query"), "{uri}: {}", r.cache_status());
        assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
    }
    assert_eq!(s.redis.dbsize(), 0);
    for uri in ["/matches/1/markets", "/matches/1/markets?lang=en"] {
        let r = s.send(&app, get_req(uri)).await;
        assert!(r.stored());
        let r = s.send(&app, get_req(uri)).await;
        assert!(r.hit());
        assert!(!r.text().contains("evil"));
        assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
    }
    // Poisoned requests after the clean ones are stored are still bypassed, never served.
    for uri in poisoned {
        let r = s.send(&app, get_req(uri)).await;
        assert!(r.bypass("unkeyed-query"), "{uri}");
        assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
    }
}

/// Parameter cloaking: an ignored parameter whose value spells a keyed one (`;` or an encoded
/// `&`). axum's `Query` splits on `&` only, so the handler sees no `lang`: nothing to poison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_parameters_cannot_cloak_a_keyed_one() {
    let s = setup().await;
    let app = Router::new().route(
        "/matches/{id}/markets",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            format!("lang={}", q.get("lang").map_or("-", String::as_str))
        })
        .route_layer(
            s.cache
                .policy(markets().vary_query(["lang"]).ignore_query(["utm"])),
        ),
    );
    for uri in [
        "/matches/1/markets?utm=x;lang=evil",
        "/matches/1/markets?utm=x%26lang%3Devil",
        "/matches/1/markets?utm=x&utm=;lang=evil",
    ] {
        let r = s.send(&app, get_req(uri)).await;
        assert_eq!(r.text(), "lang=-", "{uri}");
    }
    let r = s.send(&app, get_req("/matches/1/markets")).await;
    assert_eq!(r.text(), "lang=-");
    let r = s.send(&app, get_req("/matches/1/markets?lang=en")).await;
    assert_eq!(r.text(), "lang=en");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_bypass_unless_keyed_and_are_never_served_to_others() {
    let s = setup().await;
    let app = s.pred_app(pred());
    let with = |name: header::HeaderName, value: &str| {
        let mut req = json_req("/matches/1/prediction", "{}");
        req.headers_mut()
            .insert(name, HeaderValue::from_str(value).unwrap());
        req
    };
    for _ in 0..2 {
        let r = s
            .send(&app, with(header::AUTHORIZATION, "Bearer evil"))
            .await;
        assert!(r.bypass("credentials"), "{}", r.cache_status());
        assert!(r.text().contains("authorization: Bearer evil"));
        let r = s.send(&app, with(header::COOKIE, "session=evil")).await;
        assert!(r.bypass("credentials"), "{}", r.cache_status());
        let clean = s.send(&app, json_req("/matches/1/prediction", "{}")).await;
        assert!(!clean.text().contains("evil"), "{}", clean.text());
    }
    assert_eq!(s.all_keys().len(), 1);

    // Keyed by credential: each token its own entry; no token never sees a token's entry.
    let keyed = s.pred_app(pred().vary_headers([header::AUTHORIZATION]));
    let with_token = |token: &str| {
        let mut req = json_req("/matches/2/prediction", "{}");
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        req.headers_mut().insert(header::AUTHORIZATION, value);
        req
    };
    for round in 0..2 {
        for token in ["alice", "bob"] {
            let r = s.send(&keyed, with_token(token)).await;
            assert_eq!(r.hit(), round == 1);
            assert!(r.text().contains(&format!("authorization: Bearer {token}")));
        }
        let r = s
            .send(&keyed, json_req("/matches/2/prediction", "{}"))
            .await;
        assert_eq!(r.hit(), round == 1);
        assert!(!r.text().contains("authorization"), "{}", r.text());
    }
}

/// A handler that reads a header the route does not key, and says so with `Vary`, is never
/// stored; keying the route on that header separates its values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_varying_on_unkeyed_headers_are_not_stored() {
    let s = setup().await;
    let varying = |vary: &'static str| {
        move |req: Request| async move {
            let mut response = echo(req).await;
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static(vary));
            response
        }
    };
    let poisoning_headers = [
        ("x-foo", "X-Foo"),
        ("accept-language", "accept-encoding, Accept-Language"),
        ("x-tenant", "X-TENANT"),
        ("x-foo", "*"),
    ];
    for (i, (name, vary)) in poisoning_headers.into_iter().enumerate() {
        let uri = format!("/matches/{i}/prediction");
        let app = Router::new().route(
            "/matches/{id}/prediction",
            post(varying(vary)).route_layer(s.cache.policy(pred())),
        );
        let mut evil = json_req(&uri, "{}");
        evil.headers_mut()
            .insert(name, HeaderValue::from_static("evil.example"));
        let r = s.send(&app, evil).await;
        assert!(!r.stored(), "{name}: {}", r.cache_status());
        let r = s.send(&app, json_req(&uri, "{}")).await;
        assert!(!r.text().contains("evil"), "{name}: {}", r.text());
        assert!(!r.stored());
    }
    assert_eq!(s.redis.dbsize(), 0);

    // The route keys x-foo: each value (and its absence) is its own entry.
    let app = Router::new().route(
        "/matches/{id}/prediction",
        post(varying("X-Foo")).route_layer(s.cache.policy(pred().vary_headers([X_FOO]))),
    );
    let foo = |value: Option<&'static str>| {
        let mut req = json_req("/matches/9/prediction", "{}");
        if let Some(value) = value {
            req.headers_mut()
                .insert(X_FOO, HeaderValue::from_static(value));
        }
        req
    };
    for round in 0..2 {
        let r = s.send(&app, foo(Some("evil"))).await;
        assert_eq!(r.hit(), round == 1);
        assert!(r.text().contains("x-foo: evil"));
        let r = s.send(&app, foo(None)).await;
        assert_eq!(r.hit(), round == 1);
        assert!(!r.text().contains("evil"));
        let r = s.send(&app, foo(Some("good"))).await;
        assert_eq!(r.hit(), round == 1);
        assert!(r.text().contains("x-foo: good") && !r.text().contains("evil"));
    }
    assert_eq!(s.all_keys().len(), 3);
}

/// Headers that rewrite the host, URL or method a handler sees never poison a clean request:
/// unkeyed, the request bypasses the cache; keyed, each value is its own entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_headers_bypass_unless_keyed_and_never_poison() {
    let s = setup().await;
    let app = s.pred_app(pred());
    let with = |uri: &str, name: &'static str| {
        let mut req = json_req(uri, "{}");
        req.headers_mut()
            .insert(name, HeaderValue::from_static("evil.example"));
        req
    };
    for (i, name) in REWRITING.into_iter().enumerate() {
        let uri = format!("/matches/{i}/prediction");
        for round in 0..2 {
            let r = s.send(&app, with(&uri, name)).await;
            assert!(!r.hit() && !r.stored(), "{name}: {}", r.cache_status());
            assert!(r.text().contains(&format!("{name}: evil.example")));
            let r = s.send(&app, json_req(&uri, "{}")).await;
            assert!(!r.text().contains("evil"), "{name} poisoned: {}", r.text());
            assert_eq!(r.hit(), round == 1, "{name}: {}", r.cache_status());
        }
    }
    assert_eq!(s.all_keys().len(), REWRITING.len());

    // Keyed by the route: stored per value, and the clean request keeps its own entry.
    let names = REWRITING.map(HeaderName::from_static);
    let keyed = s.pred_app(pred().vary_headers(names));
    for name in REWRITING {
        let r = s.send(&keyed, with("/matches/99/prediction", name)).await;
        assert!(r.stored(), "{name}: {}", r.cache_status());
        let r = s.send(&keyed, with("/matches/99/prediction", name)).await;
        assert!(r.hit(), "{name}: {}", r.cache_status());
        let r = s
            .send(&keyed, json_req("/matches/99/prediction", "{}"))
            .await;
        assert!(!r.text().contains("evil"), "{name}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_never_stored_and_get_entries_answer_head_without_a_body() {
    let s = setup().await;
    let app = Router::new().route(
        "/matches/{id}/markets",
        get(echo).route_layer(s.cache.policy(markets())),
    );
    let head = || {
        Request::head("/matches/1/markets")
            .body(Body::empty())
            .unwrap()
    };
    let r = s.send(&app, head()).await;
    assert!(r.body.is_empty() && !r.stored(), "{}", r.cache_status());
    assert_eq!(s.redis.dbsize(), 0, "a HEAD response was stored");
    let r = s.send(&app, get_req("/matches/1/markets")).await;
    assert!(r.stored() && !r.hit());
    assert_eq!(r.echoed_request_line(), "GET /matches/1/markets");
    let r = s.send(&app, head()).await;
    assert!(r.hit() && r.body.is_empty(), "{}", r.cache_status());
    let r = s.send(&app, get_req("/matches/1/markets")).await;
    assert!(r.hit());
    assert_eq!(r.echoed_request_line(), "GET /matches/1/markets");

    // A POST-only route passes every other method through untouched.
    let app = Router::new()
        .route("/matches/{id}/prediction", any_method(echo))
        .route_layer(s.cache.policy(pred()));
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
        let req = Request::builder()
            .method(method.clone())
            .uri("/matches/1/prediction")
            .header("x-http-method-override", "POST")
            .body(Body::from("{}"))
            .unwrap();
        let r = s.send(&app, req).await;
        assert_eq!(r.cache_status(), "", "{method}");
    }
    // Only the GET entry: nothing was stored for the methods passed through.
    assert_eq!(s.all_keys().len(), 1);
}

/// The media type of a body is keyed (a handler such as axum's `Json` reads the body only with
/// a JSON type), so the entry stored for one type never answers another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_is_keyed_with_the_body() {
    let s = setup().await;
    let typed = |content_type: &'static str, id: u32| {
        Request::post(format!("/matches/{id}/prediction"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(r#"{"a":1}"#))
            .unwrap()
    };
    let app = s.pred_app(pred());
    let r = s.send(&app, typed("application/json", 1)).await;
    assert!(r.stored());
    let r = s.send(&app, typed("text/plain", 1)).await;
    assert!(!r.hit(), "{}", r.cache_status());
    assert!(r.text().contains("content-type: text/plain"));

    // Listing it in `vary_headers` changes nothing: separate entries, each its own echo.
    // Keyed: separate entries, each answered with its own echo.
    let app = s.pred_app(pred().vary_headers([header::CONTENT_TYPE]));
    for round in 0..2 {
        for content_type in ["application/json", "text/plain"] {
            let r = s.send(&app, typed(content_type, 2)).await;
            assert_eq!(r.hit(), round == 1, "{content_type}");
            assert!(r.text().contains(&format!("content-type: {content_type}")));
        }
    }

    // axum's `Json` refuses text/plain (415, not stored); with the route keyed on the
    // content type, the stored JSON answer is never served to the refused form.
    let app = Router::new().route(
        "/matches/{id}/prediction",
        post(|Json(v): Json<serde_json::Value>| async move { v.to_string() })
            .route_layer(s.cache.policy(pred().vary_headers([header::CONTENT_TYPE]))),
    );
    for _ in 0..2 {
        let r = s.send(&app, typed("application/json", 3)).await;
        assert_eq!(r.status, StatusCode::OK);
        let r = s.send(&app, typed("text/plain", 3)).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile store contents
// ---------------------------------------------------------------------------------------------

fn encoded_entry(identity: &[u8], body: &'static [u8], headers: &[(&str, &str)]) -> Bytes {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    Entry::new(StatusCode::OK, map, Bytes::from_static(body))
        .with_stored_at(SystemTime::now())
        .with_ttl(Duration::from_secs(60))
        .with_identity(Bytes::copy_from_slice(identity))
        .encode()
}

/// What sits under a request's key before it is asked for: garbage, another version, a
/// truncated entry, an entry answering another request, a value of another Redis type. Each
/// is a miss (never a 500, never served) and is overwritten by the handler's response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_foreign_entries_are_misses_and_get_overwritten() {
    let s = setup().await;
    let app = s.pred_app(pred());
    let body = r#"{"risk":"high"}"#;
    let key = keys().key("pred", "m_1", &json_variant(body.as_bytes()));
    let key = key.as_str();
    let planted_elsewhere = encoded_entry(b"\0\0\0\x15/matches/2/prediction", b"ENTITY 2", &[]);
    let mut truncated = encoded_entry(b"x", b"TRUNCATED", &[]).to_vec();
    truncated.truncate(truncated.len() - 3);
    let mut next_version = encoded_entry(b"x", b"V3", &[]).to_vec();
    next_version[3] = 3;
    let values: Vec<(Vec<u8>, &str)> = vec![
        (b"garbage".to_vec(), "bad-entry"),
        (Vec::new(), "bad-entry"),
        (b"TRC".to_vec(), "bad-entry"),
        (truncated, "bad-entry"),
        (next_version, "bad-entry"),
        (planted_elsewhere.to_vec(), "vary-miss"),
    ];
    for (value, outcome) in values {
        s.redis.set_raw(key, &value);
        let r = s.send(&app, json_req("/matches/1/prediction", body)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.cache_status().contains(outcome), "{}", r.cache_status());
        assert!(r.stored(), "{}", r.cache_status());
        assert_eq!(r.echoed_request_line(), "POST /matches/1/prediction");
        assert_eq!(s.all_keys(), [key], "not the key the factory computes");
        let r = s.send(&app, json_req("/matches/1/prediction", body)).await;
        assert!(r.hit(), "not overwritten: {}", r.cache_status());
        assert_eq!(r.echoed_request_line(), "POST /matches/1/prediction");
    }

    // A value of another type: WRONGTYPE on GET is a store error, a miss; SET overwrites it.
    s.redis.flushall();
    let reply = s.redis.query(&["RPUSH", key, "a", "b"]);
    assert_eq!(reply, RespReply::Integer(2));
    let r = s.send(&app, json_req("/matches/1/prediction", body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.cache_status().contains("fwd=miss"),
        "{}",
        r.cache_status()
    );
    assert!(r.stored());
    assert!(s
        .send(&app, json_req("/matches/1/prediction", body))
        .await
        .hit());
}

/// The 28 bytes `TRC 01 | stored_at 0 | ttl 0 | status 200 | identity "" | header count 0xFFFF`.
/// `Entry::decode` used to call `HeaderMap::with_capacity(count)`, which panics ("size
/// overflows MAX_SIZE") for any count above 24 576.
const HUGE_HEADER_COUNT: [u8; 28] = [
    b'T', b'R', b'C', 1, // magic, version
    0, 0, 0, 0, 0, 0, 0, 0, // stored_at
    0, 0, 0, 0, 0, 0, 0, 0, // ttl
    0, 200, // status
    0, 0, 0, 0, // identity length
    0xFF, 0xFF, // header count
];

/// The first crash of `fuzz/fuzz_targets/entry_decode.rs` (artifact
/// `crash-cd5df3ddf1b4bb0aa302bfa2f5d6a029a51b8b74`, found after 5 083 runs), behind the
/// `TRC 01` the target puts in front of its input: status 768, header count 0xFFFF.
const FUZZ_ENTRY_DECODE_CRASH: [u8; 36] = [
    b'T', b'R', b'C', 1, // magic, version
    41, 4, 114, 10, 10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 3, 0, 0, 0, 0, 0, 255, 255, 255, 255, 10,
    10, 6, 0, 10, 10,
];

#[test]
fn entry_decode_of_a_huge_header_count_is_an_error_not_a_panic() {
    let mut inputs = vec![HUGE_HEADER_COUNT.to_vec(), FUZZ_ENTRY_DECODE_CRASH.to_vec()];
    for count in [24_576u16, 24_577, 32_768] {
        let mut input = HUGE_HEADER_COUNT.to_vec();
        input[26..].copy_from_slice(&count.to_be_bytes());
        inputs.push(input);
    }
    for input in inputs {
        let decoded = std::panic::catch_unwind(|| Entry::decode(Bytes::from(input.clone())));
        assert!(
            matches!(decoded, Ok(Err(_))),
            "decode panicked or accepted {input:?}"
        );
    }
}

/// The same 28 bytes planted under a request's key: the request is a miss. (The panic used to
/// unwind out of the response future; through hyper, the connection was dropped.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_huge_header_count_is_a_miss_not_a_panic() {
    let s = setup().await;
    let app = s.pred_app(pred());
    let key = keys().key("pred", "m_1", &json_variant(b"{}"));
    s.redis.set_raw(key.as_str(), &HUGE_HEADER_COUNT);
    let task = tokio::spawn({
        let app = app.clone();
        async move { app.oneshot(json_req("/matches/1/prediction", "{}")).await }
    });
    let response = task
        .await
        .expect("the request panicked")
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let status = response.headers()["cache-status"].to_str().unwrap();
    assert!(status.contains("detail=bad-entry"), "{status}");
}

// ---------------------------------------------------------------------------------------------
// Over real HTTP/1.1: hyper's view of body sizes
// ---------------------------------------------------------------------------------------------

/// A chunked request body and a `Content-Length` one with the same bytes have one key; either
/// over the limit is bypassed and delivered intact; a chunked body with trailers bypasses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_chunked_and_sized_bodies_are_keyed_alike() {
    let s = setup().await;
    let app = s.pred_app(pred());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    async fn exchange(addr: std::net::SocketAddr, request: Vec<u8>) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }
    let head = "POST /matches/1/prediction HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
    let chunked = format!("{head}Transfer-Encoding: chunked\r\n\r\n7\r\n{{\"a\":1}}\r\n0\r\n\r\n");
    let response = exchange(addr, chunked.into_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("; stored"), "{response}");
    assert!(response.ends_with("\n\n{\"a\":1}"), "{response}");
    for _ in 0..200 {
        if s.cache.stats().writes == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sized = format!("{head}Content-Length: 7\r\n\r\n{{\"a\":1}}");
    let response = exchange(addr, sized.into_bytes()).await;
    assert!(response.contains("; hit"), "{response}");
    assert!(response.ends_with("\n\n{\"a\":1}"), "{response}");

    let big = "b".repeat(LIMIT + 1);
    let over = format!("{head}Content-Length: {}\r\n\r\n{big}", big.len());
    let response = exchange(addr, over.into_bytes()).await;
    assert!(response.contains("detail=body-too-large"), "{response}");
    assert!(response.ends_with(&format!("\n\n{big}")));

    let (first, rest) = big.split_at(LIMIT / 2);
    let chunked_over = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
        first.len(),
        rest.len()
    );
    let response = exchange(addr, chunked_over.into_bytes()).await;
    assert!(response.contains("detail=body-too-large"), "{response}");
    assert!(
        response.ends_with(&format!("\n\n{big}")),
        "chunked body altered"
    );

    let trailing = format!(
        "{head}Transfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n7\r\n{{\"b\":1}}\r\n0\r\nx-checksum: 1\r\n\r\n"
    );
    let response = exchange(addr, trailing.into_bytes()).await;
    assert!(response.contains("detail=request-trailers"), "{response}");
    assert!(response.ends_with("\n\n{\"b\":1}"), "{response}");
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// A store that records every key asked for and holds nothing.
#[derive(Clone, Default)]
struct KeyLog(Arc<Mutex<Vec<String>>>);

impl KeyLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Store for KeyLog {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        self.0.lock().unwrap().push(key.to_owned());
        Box::pin(async { Ok(None) })
    }

    fn set(&self, key: &str, _: Bytes, _: Duration) -> StoreFuture<()> {
        self.0.lock().unwrap().push(key.to_owned());
        Box::pin(async { Ok(()) })
    }

    fn delete(&self, _: &str) -> StoreFuture<bool> {
        Box::pin(async { Ok(false) })
    }
}

/// The entity id a request carries, read by `Entity::from_fn`.
#[derive(Clone)]
struct Id(String);

fn ids() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[{}:*?\\[\\]%\\\\^m_0-9a-z]{0,24}",
        "[a]{250,260}",
    ]
}

/// The key looked up for a request whose `Entity::from_fn` returns `id`, if it was cached.
fn key_for_id(runtime: &tokio::runtime::Runtime, log: &KeyLog, id: &str) -> Option<String> {
    let cache = CacheLayer::new(log.clone(), keys()).policy(Policy::new("pred").entity(
        Entity::from_fn(|parts| parts.extensions.get::<Id>().map(|id| id.0.clone())),
    ));
    let service = ServiceBuilder::new().layer(cache).service_fn(|_| async {
        // 204 is never stored: only lookups reach the log.
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok::<_, Infallible>(response)
    });
    let mut request = http::Request::get("/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request.extensions_mut().insert(Id(id.to_owned()));
    runtime.block_on(service.oneshot(request)).unwrap();
    let mut logged = log.take();
    assert!(logged.len() <= 1, "{logged:?}");
    logged.pop()
}

proptest! {
    #[test]
    fn any_entity_id_gives_one_safe_hash_tag_or_bypasses(a in ids(), b in ids()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let log = KeyLog::default();
        let key_a = key_for_id(&runtime, &log, &a);
        let key_b = key_for_id(&runtime, &log, &b);
        for (id, key) in [(&a, &key_a), (&b, &key_b)] {
            let expected = keys().key("pred", id, &Variant::new());
            let tag_len = tag(expected.as_str()).len() - 2;
            match key {
                Some(key) => {
                    assert_key_shape(key);
                    prop_assert_eq!(key.as_str(), expected.as_str());
                    prop_assert!(!id.is_empty() && tag_len <= MAX_ENTITY_LEN);
                }
                None => prop_assert!(id.is_empty() || tag_len > MAX_ENTITY_LEN, "{:?}", id),
            }
        }
        if let (Some(key_a), Some(key_b)) = (&key_a, &key_b) {
            prop_assert_eq!(tag(key_a) == tag(key_b), a == b);
            let pattern = keys().entity_pattern(&a);
            prop_assert_eq!(pattern.matches(GLOB).count(), 2, "{}", pattern);
        }
    }

    #[test]
    fn json_body_never_panics_on_arbitrary_bytes(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            "[\\[\\]{}\",:0-9eE.+\\-tfnrulas\\\\ \\t\\n]{0,96}".prop_map(String::into_bytes),
        ]
    ) {
        let id = Variant::new().json_body(&bytes).id();
        if bytes.is_empty() {
            prop_assert_eq!(id, "default");
        } else {
            prop_assert_eq!(id.len(), 16);
            prop_assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    /// Documents whose numbers a double holds exactly: canonical, whatever the formatting.
    /// (Bodies with integers beyond 2^53 are keyed by their raw bytes, formatting included.)
    #[test]
    fn json_values_have_one_id_whatever_their_formatting(
        value in json_value().prop_filter("numbers within ±2^53", exact_numbers)
    ) {
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        let canonical = serde_json_canonicalizer::to_vec(&value).unwrap();
        let id = Variant::new().json_body(&compact).id();
        prop_assert_eq!(Variant::new().json_body(&pretty).id(), id.clone());
        prop_assert_eq!(Variant::new().json_body(&canonical).id(), id);
    }

    #[test]
    fn integers_beyond_2_53_never_share_a_key(n in (1u64 << 53)..u64::MAX, negative in any::<bool>()) {
        let sign = if negative && n <= 1 << 63 { "-" } else { "" };
        let body = |n: u64| format!(r#"{{"id":{sign}{n}}}"#);
        prop_assert_ne!(
            Variant::new().json_body(body(n).as_bytes()).id(),
            Variant::new().json_body(body(n + 1).as_bytes()).id()
        );
    }
}

/// Whether every number in `value` is one a double holds exactly and RFC 8785 writes without
/// an exponent only when it has at most 16 digits: integers within ±2^53, floats below 2^53.
fn exact_numbers(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    const LIMIT: u64 = 1 << 53;
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(|u| u <= LIMIT)
            .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= LIMIT))
            .unwrap_or_else(|| n.as_f64().is_some_and(|f| f.abs() < LIMIT as f64)),
        Value::Array(items) => items.iter().all(exact_numbers),
        Value::Object(members) => members.values().all(exact_numbers),
        _ => true,
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}
