//! The responses the cache makes from a stored entry: a fresh hit, a stale entry served within
//! one of its windows, and a miss answered with the entry another request fetched; each
//! `304 Not Modified` where the client's validators match. All carry `Age`, an exact
//! `Content-Length` and `Cache-Status`.

use super::{
    conditional::{not_modified, KEPT_BY_304},
    status::{CacheStatus, CACHE_STATUS},
};
use crate::entry::Entry;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use std::time::SystemTime;

/// A response made from an entry: its body, or none (`HEAD`, `304`). The future wraps it in a
/// `ResponseBody` only as it returns it: that type is large, and moving it costs a copy.
pub(crate) type Cached = Response<Option<Bytes>>;

/// The window within which a stale entry is served (RFC 5861).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StaleWindow {
    /// Served at once while a refresh runs in the background.
    WhileRevalidate,
    /// Served instead of the inner service's failure.
    IfError,
}

/// A fresh hit on `entry` at `now` for a request with `method` and `headers`, from the cache
/// called `name`: `304` when the request's validators match, else the stored response (without
/// its body for `HEAD`).
pub(crate) fn fresh(
    entry: Entry,
    method: &Method,
    headers: &HeaderMap,
    now: SystemTime,
    name: &str,
) -> Cached {
    let status = CacheStatus::Hit {
        ttl: entry.freshness(now),
        detail: None,
    };
    let not_modified = not_modified(method, headers, entry.headers());
    from_entry(
        entry,
        *method == Method::HEAD,
        not_modified,
        now,
        name,
        status,
    )
}

/// A stale `entry` served within `window` (never as a `304`).
pub(crate) fn stale(
    entry: Entry,
    head: bool,
    window: StaleWindow,
    now: SystemTime,
    name: &str,
) -> Cached {
    let detail = match window {
        StaleWindow::WhileRevalidate => "stale-while-revalidate",
        StaleWindow::IfError => "stale-if-error",
    };
    let status = CacheStatus::Hit {
        ttl: entry.freshness(now),
        detail: Some(detail),
    };
    from_entry(entry, head, false, now, name, status)
}

/// A miss (reported as `status`) answered with `entry`, which another request for its key
/// fetched (`collapsed`); `304` when the request's validators match.
pub(crate) fn collapsed(
    entry: Entry,
    method: &Method,
    headers: &HeaderMap,
    status: CacheStatus,
    now: SystemTime,
    name: &str,
) -> Cached {
    let not_modified = not_modified(method, headers, entry.headers());
    let head = *method == Method::HEAD;
    from_entry(entry, head, not_modified, now, name, status.collapsed())
}

/// `n` as a header value, in one allocation (`HeaderValue::from(n)` makes two).
fn decimal<N: itoa::Integer + Into<HeaderValue> + Copy>(n: N) -> HeaderValue {
    HeaderValue::from_bytes(itoa::Buffer::new().format(n).as_bytes()).unwrap_or_else(|_| n.into())
}

/// The response rebuilt from `entry`, reported as `cache_status`.
fn from_entry(
    entry: Entry,
    head: bool,
    not_modified: bool,
    now: SystemTime,
    name: &str,
    cache_status: CacheStatus,
) -> Cached {
    let age = entry.age(now).as_secs();
    let (status, mut headers, body) = entry.into_response_parts();
    if not_modified {
        let mut kept = HeaderMap::with_capacity(KEPT_BY_304.len() + 2);
        for name in KEPT_BY_304 {
            for value in headers.get_all(&name) {
                kept.append(name.clone(), value.clone());
            }
        }
        kept.insert(header::AGE, decimal(age));
        kept.append(CACHE_STATUS, cache_status.header_value(name));
        let mut response = Response::new(None);
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = kept;
        return response;
    }
    // `Entry::decode` leaves room for these three.
    // The stored body is complete, so its length is exact (and right for HEAD, which has none).
    headers.insert(header::CONTENT_LENGTH, decimal(body.len()));
    headers.insert(header::AGE, decimal(age));
    headers.append(CACHE_STATUS, cache_status.header_value(name));
    let mut response = Response::new((!head).then_some(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
