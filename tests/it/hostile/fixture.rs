//! What every hostile test shares: the routes' policies, a handler that echoes every input it
//! can read, a [`Setup`] (a deployment and a layer on it) whose `send` waits for announced
//! write-backs, request builders, and the shape every key must have.

use crate::app::{self, eventually, is_entry_key, key_factory, Redis, Reply, ALL_KEYS};
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderName, Method, StatusCode},
    response::Response,
    routing::post,
    Router,
};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tower_redis_cache::{CacheLayer, Entity, Policy, Variant};

/// The request-body limit of the routes under test.
pub const LIMIT: usize = 4096;
/// Headers that rewrite the host, URL or method a handler sees: requests carrying one bypass
/// the cache unless the route keys it.
pub const REWRITING: [&str; 9] = [
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
pub const ECHOED: [&str; 15] = [
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
pub const X_FOO: HeaderName = HeaderName::from_static("x-foo");
pub const GLOB: [char; 6] = ['*', '?', '[', ']', '\\', '^'];

/// The prediction route's policy, as in the original app.
pub fn pred() -> Policy {
    Policy::new("pred")
        .methods([Method::POST])
        .entity(Entity::path_segment(1).prefix("m_"))
        .max_request_body(LIMIT)
}

/// A GET route's policy on the same entities.
pub fn markets() -> Policy {
    Policy::new("markets").entity(Entity::path_segment(1).prefix("m_"))
}

/// Echoes every input a handler could read: `METHOD URI`, the [`ECHOED`] headers, a blank
/// line, then the body bytes exactly as received.
pub async fn echo(req: Request) -> Response {
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

/// A deployment and a layer on it (the suite's key factory, a lookup timeout generous enough
/// for debug builds).
pub struct Setup {
    pub redis: Redis,
    pub cache: CacheLayer,
    /// Responses announced as stored so far; `send` waits for their write-backs.
    stored: AtomicU64,
}

pub async fn setup(redis: Redis) -> Setup {
    let cache = app::cache(&redis).await;
    Setup {
        redis,
        cache,
        stored: AtomicU64::new(0),
    }
}

impl Setup {
    /// The prediction route with `policy`, in front of [`echo`].
    pub fn pred_app(&self, policy: Policy) -> Router {
        Router::new().route(
            "/matches/{id}/prediction",
            post(echo).route_layer(self.cache.policy(policy)),
        )
    }

    /// Sends `req` through `app` (the shared [`app::send`]), and waits until a response that
    /// announced `stored` has been written, so the next request sees it.
    pub async fn send(&self, app: &Router, req: Request<Body>) -> Reply {
        let what = format!("{} {}", req.method(), short(&req.uri().to_string()));
        let reply = self.send_unwaited(app, req).await;
        if reply.is_stored() {
            let stored = self.stored.fetch_add(1, Relaxed) + 1;
            eventually(&format!("{what}: the write-back"), || {
                let stats = self.cache.stats();
                stats.writes + stats.write_errors >= stored
            })
            .await;
            assert_eq!(
                self.cache.stats().write_errors,
                0,
                "{what}: write-back failed"
            );
        }
        reply
    }

    /// Like [`send`](Self::send), for a response announced `stored` that will not be (its body
    /// turns out over the response limit): does not wait for a write. Never a 500.
    pub async fn send_unwaited(&self, app: &Router, req: Request<Body>) -> Reply {
        let what = format!("{} {}", req.method(), short(&req.uri().to_string()));
        let reply = app::send(app, req).await;
        assert_ne!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: {}",
            reply.cache_status()
        );
        reply
    }

    /// Every entry key of the test's deployment, each checked for the shape every key must
    /// have (indexes, leases and fences, `{prefix}#…`, have their own shape).
    pub fn all_keys(&self) -> Vec<String> {
        let mut all = self.redis.keys(ALL_KEYS);
        all.retain(|key| is_entry_key(key));
        all.iter().for_each(|k| assert_key_shape(k));
        all
    }

    /// Asserts that the cache stored nothing: no key at all (entry, index, lease or fence)
    /// under the test's prefix. (Keys the test does not own, if any, do not count.)
    #[track_caller]
    pub fn assert_nothing_in_redis(&self, what: &str) {
        assert_eq!(self.redis.keys(ALL_KEYS), Vec::<String>::new(), "{what}");
    }
}

/// What the [`echo`] handler reports, read back from a [`Reply`].
pub trait Echoed {
    /// The request line the handler saw (`METHOD URI`).
    fn echoed_request_line(&self) -> String;
    /// The request body the handler received.
    fn echoed_body(&self) -> &[u8];
}

impl Echoed for Reply {
    fn echoed_request_line(&self) -> String {
        self.text_lossy().lines().next().unwrap_or("").to_owned()
    }

    fn echoed_body(&self) -> &[u8] {
        let at = self
            .body
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("an echo");
        &self.body[at + 2..]
    }
}

pub fn short(s: &str) -> String {
    if s.len() > 80 {
        let start: String = s.chars().take(80).collect();
        format!("{start}…({} bytes)", s.len())
    } else {
        s.to_owned()
    }
}

/// The variant of a [`json_req`] body: the canonical body and its media type.
pub fn json_variant(body: &[u8]) -> Variant {
    Variant::new()
        .json_body(body)
        .header(&header::CONTENT_TYPE, "application/json")
}

pub fn json_req(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("valid request")
}

/// Deterministic bytes that are not JSON.
pub fn noise(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A path segment as axum's `Path` reads it: `%XX` decoded, a lone `%` kept.
pub fn decoded(segment: &str) -> String {
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
pub fn tag(key: &str) -> &str {
    key.split(':').nth(4).expect("a fifth field")
}

/// The hash tag the key factory gives `entity`.
pub fn tag_of(entity: &str) -> String {
    tag(key_factory().key("n", entity, &Variant::new()).as_str()).to_owned()
}

/// Six `:`-separated fields, one `{` and one `}` enclosing exactly the fifth, no glob
/// character anywhere, a non-empty tag, a `default` or 16-hex-digit variant.
pub fn assert_key_shape(key: &str) {
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
