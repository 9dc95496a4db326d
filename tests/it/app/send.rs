//! [`send`]: a request through an axum `Router`, the whole response read into a [`Reply`], and
//! the readers of its `Cache-Status`.

use super::layer::NAME;
use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    Router,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A whole response: status, headers and the body read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The `Cache-Status` header, `""` when absent.
    pub fn cache_status(&self) -> &str {
        self.header("cache-status")
    }

    /// A header as text, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is text"))
            .unwrap_or("")
    }

    /// The body as text; panics if it is not UTF-8 (see [`text_lossy`](Self::text_lossy)).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    /// The body as text, any invalid UTF-8 replaced (for bodies that echo arbitrary bytes).
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response was served from the cache.
    pub fn is_hit(&self) -> bool {
        self.cache_status().contains("; hit")
    }

    /// Whether the response was announced as stored (its write-back may still be under way).
    pub fn is_stored(&self) -> bool {
        self.cache_status().contains("; stored")
    }

    /// Whether the request bypassed the cache for `detail` (`fwd=bypass; detail={detail}`).
    pub fn is_bypass(&self, detail: &str) -> bool {
        let status = self.cache_status();
        status.contains("fwd=bypass") && status.contains(&format!("detail={detail}"))
    }

    /// The `ttl` of a hit's `Cache-Status`.
    pub fn hit_ttl(&self) -> u64 {
        let status = self.cache_status();
        let ttl = status
            .strip_prefix(&format!("{NAME}; hit; ttl="))
            .unwrap_or_else(|| panic!("not a hit: {status:?}"));
        ttl.parse()
            .unwrap_or_else(|_| panic!("bad ttl in {status:?}"))
    }
}

/// Sends `req` through `app` and reads the whole response body.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("response body ends cleanly")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

pub fn post_req(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).body(body.into()).expect("request")
}

/// `Cache-Status` of a forwarded request: `fwd` and the parameters after it, e.g.
/// `fwd("uri-miss; stored")`.
pub fn fwd(rest: &str) -> String {
    format!("{NAME}; fwd={rest}")
}
