//! Which responses may be stored, and which of their headers are kept.

use crate::policy::Policy;
use http::{
    header::{self, HeaderMap, HeaderName},
    response,
};

/// Whether the response head allows storing: a listed status, no `Set-Cookie`, no
/// `Cache-Control: private | no-store | no-cache`, no `Vary` on a header the key does not cover,
/// and a `Content-Length` (when given) within the limit.
pub(crate) fn response_storable(policy: &Policy, parts: &response::Parts) -> bool {
    let headers = &parts.headers;
    policy.statuses.contains(&parts.status)
        && !headers.contains_key(header::SET_COOKIE)
        && !cache_control_forbids(headers)
        && vary_is_keyed(policy, headers)
        && content_length(headers).is_none_or(|len| len <= policy.max_response_body as u64)
}

fn cache_control_forbids(headers: &HeaderMap) -> bool {
    directives(headers, header::CACHE_CONTROL).any(|d| {
        let name = d.split('=').next().unwrap_or("").trim();
        ["private", "no-store", "no-cache"]
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f))
    })
}

fn vary_is_keyed(policy: &Policy, headers: &HeaderMap) -> bool {
    directives(headers, header::VARY).all(|name| {
        name != "*"
            && HeaderName::from_bytes(name.as_bytes())
                .is_ok_and(|name| policy.varies_on_header(&name))
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
        assert!(!response_storable(&p, &response(|b| b.header("vary", "*"))));
        assert!(!response_storable(
            &p,
            &response(|b| b.header("vary", "accept-language"))
        ));
        assert!(response_storable(
            &p.clone().vary_headers([header::ACCEPT_LANGUAGE]),
            &response(|b| b.header("vary", "Accept-Language"))
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
