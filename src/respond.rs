//! Responses the cache makes itself: a hit rebuilt from its entry, with `Age`, an exact
//! `Content-Length` and `Cache-Status`; or `304 Not Modified` when the client's validators
//! match.

use crate::{
    conditional::KEPT_BY_304,
    entry::Entry,
    status::{CacheStatus, CACHE_STATUS},
};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use std::time::SystemTime;

/// The response for a hit on `entry` at `now`, from the cache called `name`; without a body for
/// a `HEAD` request; `304 Not Modified` (no body) when `not_modified`.
pub(crate) fn hit(
    entry: Entry,
    head: bool,
    not_modified: bool,
    now: SystemTime,
    name: &str,
) -> Response<Option<Bytes>> {
    let ttl = entry.freshness(now);
    let status = CacheStatus::Hit { ttl, detail: None };
    from_entry(entry, head, not_modified, now, name, status)
}

/// The response rebuilt from `entry`, reported as `status`: a hit, or a miss answered with the
/// response another request for the key fetched (`collapsed`).
pub(crate) fn from_entry(
    entry: Entry,
    head: bool,
    not_modified: bool,
    now: SystemTime,
    name: &str,
    status: CacheStatus,
) -> Response<Option<Bytes>> {
    let cache_status = status;
    let age = entry.age(now).as_secs();
    let Entry {
        status,
        mut headers,
        body,
        ..
    } = entry;
    if not_modified {
        let mut kept = HeaderMap::with_capacity(KEPT_BY_304.len() + 2);
        for name in KEPT_BY_304 {
            for value in headers.get_all(&name) {
                kept.append(name.clone(), value.clone());
            }
        }
        kept.insert(header::AGE, HeaderValue::from(age));
        kept.append(CACHE_STATUS, cache_status.header_value(name));
        let mut response = Response::new(None);
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = kept;
        return response;
    }
    // `Entry::decode` leaves room for these three.
    // The stored body is complete, so its length is exact (and right for HEAD, which has none).
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(header::AGE, HeaderValue::from(age));
    headers.append(CACHE_STATUS, cache_status.header_value(name));
    let mut response = Response::new((!head).then_some(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
