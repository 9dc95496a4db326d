//! Which responses may be stored, and which of their headers are kept.

use crate::policy::{Freshness, Policy};
use http::{
    header::{self, HeaderMap, HeaderName},
    response,
};
use std::time::Duration;

/// Whether the response head allows storing: a listed status, no `Set-Cookie`, no
/// `Cache-Control: private | no-store | no-cache` and a `Content-Length` (when given) within
/// the limit. (What its `Vary` allows is `negotiate/vary.rs`'s to say.)
pub(crate) fn response_storable(policy: &Policy, parts: &response::Parts) -> bool {
    let headers = &parts.headers;
    policy.statuses.contains(&parts.status)
        && !headers.contains_key(header::SET_COOKIE)
        && !cache_control_forbids(headers)
        && content_length(headers).is_none_or(|len| len <= policy.max_response_body as u64)
}

/// The entry's TTL and stale windows: the route's, or with `freshness_from_response` what
/// the response's `Cache-Control` says, each capped by the route's TTL. `None` when the
/// response says it is stale at once (`s-maxage=0`, `max-age=0`): not stored.
pub(crate) fn freshness(policy: &Policy, headers: &HeaderMap) -> Option<Freshness> {
    let mut freshness = policy.freshness();
    if !policy.freshness_from_response {
        return Some(freshness);
    }
    let seconds = |name: &str| {
        directives(headers, header::CACHE_CONTROL).find_map(|d| {
            let (key, value) = d.split_once('=')?;
            if !key.trim().eq_ignore_ascii_case(name) {
                return None;
            }
            let value = value.trim().trim_matches('"');
            // RFC 9111 section 1.2.2: a delta-seconds too large to parse is as good as forever.
            let secs = match value.parse::<u64>() {
                Ok(secs) => secs,
                Err(_) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    u64::MAX
                }
                Err(_) => return None,
            };
            Some(Duration::from_secs(secs.min(u64::from(u32::MAX))).min(policy.ttl))
        })
    };
    if let Some(ttl) = seconds("s-maxage").or_else(|| seconds("max-age")) {
        if ttl.is_zero() {
            return None;
        }
        freshness.ttl = ttl;
    }
    if let Some(window) = seconds("stale-while-revalidate") {
        freshness.stale_while_revalidate = window;
    }
    if let Some(window) = seconds("stale-if-error") {
        freshness.stale_if_error = window;
    }
    Some(freshness)
}

fn cache_control_forbids(headers: &HeaderMap) -> bool {
    directives(headers, header::CACHE_CONTROL).any(|d| {
        let name = d.split('=').next().unwrap_or("").trim();
        ["private", "no-store", "no-cache"]
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f))
    })
}

/// The comma-separated items of every value of `name`; a value that is not visible ASCII
/// yields one item that matches nothing, so it counts against storing.
fn directives(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
}

/// The declared `Content-Length`, if valid.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether a response header is kept in a stored entry: hop-by-hop headers, `Set-Cookie` and
/// the headers the cache sets itself on a hit are dropped.
pub(crate) fn header_is_stored(name: &HeaderName, connection_tokens: &[HeaderName]) -> bool {
    const DROPPED: [&str; 6] = [
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "age",
        "cache-status",
    ];
    !(name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::SET_COOKIE
        || DROPPED.contains(&name.as_str())
        || connection_tokens.contains(name))
}

/// The headers named by `Connection`, which are hop-by-hop too.
pub(crate) fn connection_tokens(headers: &HeaderMap) -> Vec<HeaderName> {
    directives(headers, header::CONNECTION)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Response, StatusCode};

    fn response(
        build: impl FnOnce(http::response::Builder) -> http::response::Builder,
    ) -> response::Parts {
        build(Response::builder()).body(()).unwrap().into_parts().0
    }

    #[test]
    fn storable_rules() {
        let p = Policy::new("n").max_response_body(10);
        assert!(response_storable(&p, &response(|b| b)));
        assert!(response_storable(
            &p,
            &response(|b| b.header("cache-control", "public, max-age=60"))
        ));
        assert!(!response_storable(
            &p,
            &response(|b| b.status(StatusCode::NOT_FOUND))
        ));
        assert!(!response_storable(
            &p,
            &response(|b| b.header("set-cookie", "a=b"))
        ));
        assert!(!response_storable(
            &p,
            &response(|b| b.header("cache-control", "max-age=5, Private"))
        ));
        assert!(!response_storable(
            &p,
            &response(|b| b.header("cache-control", "no-store"))
        ));
        assert!(!response_storable(
            &p,
            &response(|b| b.header("content-length", "11"))
        ));
        assert!(response_storable(
            &p,
            &response(|b| b.header("content-length", "10"))
        ));
    }

    #[test]
    fn hop_by_hop_headers_are_not_stored() {
        let headers: HeaderMap = [(header::CONNECTION, "x-hop".parse().unwrap())]
            .into_iter()
            .collect();
        let tokens = connection_tokens(&headers);
        assert!(!header_is_stored(
            &HeaderName::from_static("x-hop"),
            &tokens
        ));
        assert!(!header_is_stored(&header::TRANSFER_ENCODING, &tokens));
        assert!(!header_is_stored(&header::SET_COOKIE, &tokens));
        assert!(header_is_stored(&header::CONTENT_TYPE, &tokens));
    }
}

#[cfg(test)]
mod freshness_tests {
    use super::*;

    fn of(policy: &Policy, cache_control: &str) -> Option<Freshness> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, cache_control.parse().unwrap());
        freshness(policy, &headers)
    }

    #[test]
    fn cache_control_sets_ttl_and_windows_within_the_policy_ttl() {
        let secs = Duration::from_secs;
        let policy = Policy::new("n")
            .ttl(secs(60))
            .stale_if_error(secs(5))
            .freshness_from_response(true);
        let f = of(&policy, "public, max-age=10, stale-while-revalidate=30").unwrap();
        assert_eq!(
            (f.ttl, f.stale_while_revalidate, f.stale_if_error),
            (secs(10), secs(30), secs(5))
        );
        assert_eq!(
            of(&policy, "s-maxage=20, max-age=10").unwrap().ttl,
            secs(20)
        );
        assert_eq!(
            of(&policy, "max-age=3600, stale-if-error=86400")
                .unwrap()
                .ttl,
            secs(60)
        );
        assert_eq!(
            of(&policy, "stale-if-error=86400").unwrap().stale_if_error,
            secs(60)
        );
        assert_eq!(of(&policy, "max-age=\"7\"").unwrap().ttl, secs(7));
        assert_eq!(
            of(&policy, "max-age=99999999999999999999999").unwrap().ttl,
            secs(60)
        );
        assert_eq!(of(&policy, "max-age=0"), None, "stale at once: not stored");
        assert_eq!(
            of(&policy, "max-age=abc").unwrap().ttl,
            secs(60),
            "malformed: ignored"
        );
        assert_eq!(of(&policy, "max-age=-5").unwrap().ttl, secs(60));
        let off = Policy::new("n").ttl(secs(60));
        assert_eq!(of(&off, "max-age=1").unwrap().ttl, secs(60), "not opted in");
    }
}
