//! Which requests on a cached route may be keyed and looked up, and why the others bypass.

use crate::{observe::event::Bypass, policy::Policy};
use http::{header, request, HeaderName};
use http_body::Body;

/// Request headers that frameworks and proxies use to rewrite the host, URL or method a handler
/// sees: classic cache-poisoning vectors, so a request carrying one is not cached unless the
/// route keys it. (`X-Forwarded-For` and `-Proto` are left alone: every proxy sets them.)
const REWRITING_HEADERS: [HeaderName; 9] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-original-method"),
];

/// Credentials: a request carrying one is answered for one user only.
const CREDENTIALS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// Checks the request head for inputs the key would not cover. A credential is reported before
/// a rewriting header, and both before an unkeyed query parameter.
pub(crate) fn check_request(policy: &Policy, parts: &request::Parts) -> Result<(), Bypass> {
    // One pass over the request's header names (a handful) rather than a map lookup for each
    // of the twelve names checked.
    let mut rewriting = false;
    for name in parts.headers.keys() {
        if CREDENTIALS.contains(name) {
            if !policy.varies_on_header(name) {
                return Err(Bypass::Credentials);
            }
        } else if !rewriting && REWRITING_HEADERS.contains(name) {
            rewriting = !policy.varies_on_header(name);
        }
    }
    if rewriting {
        return Err(Bypass::UnkeyedHeader);
    }
    let unkeyed = query_pairs(parts.uri.query()).any(|(name, _)| {
        !policy.vary_query.iter().any(|n| n.as_bytes() == name)
            && !policy.ignore_query.iter().any(|n| n.as_bytes() == name)
    });
    if unkeyed {
        return Err(Bypass::UnkeyedQuery);
    }
    Ok(())
}

/// Whether the request body must be read to key the request: not when it is already at its
/// end, a bypass when its declared size is over `limit` (it then reaches the service unread).
/// A body of unknown size is read, up to `limit`.
pub(crate) fn body_needs_reading<B: Body>(body: &B, limit: usize) -> Result<bool, Bypass> {
    if body.is_end_stream() {
        return Ok(false);
    }
    if body.size_hint().lower() > limit as u64 {
        return Err(Bypass::BodyTooLarge);
    }
    Ok(true)
}

/// The `name=value` pairs of a raw query string, undecoded; empty pieces are skipped.
pub(crate) fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.as_bytes(), value.as_bytes()),
            None => (pair.as_bytes(), &b""[..]),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn credentials_and_unknown_query_bypass() {
        let p = Policy::new("n").vary_query(["lang"]).ignore_query(["utm"]);
        let check =
            |req: http::request::Builder| check_request(&p, &req.body(()).unwrap().into_parts().0);
        assert_eq!(check(Request::get("/x?lang=fr&utm=1")), Ok(()));
        assert_eq!(check(Request::get("/x?other=1")), Err(Bypass::UnkeyedQuery));
        assert_eq!(
            check(Request::get("/x?l%61ng=1")),
            Err(Bypass::UnkeyedQuery)
        );
        assert_eq!(
            check(Request::get("/x").header("authorization", "t")),
            Err(Bypass::Credentials)
        );
        assert_eq!(
            check(Request::get("/x").header("cookie", "a=b")),
            Err(Bypass::Credentials)
        );
        let keyed = Policy::new("n").vary_headers([header::AUTHORIZATION]);
        let parts = Request::get("/x")
            .header("authorization", "t")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(check_request(&keyed, &parts), Ok(()));
    }

    #[test]
    fn credentials_are_reported_before_rewriting_headers_whatever_their_order() {
        let p = Policy::new("n");
        for (first, second) in [
            ("x-forwarded-host", "authorization"),
            ("authorization", "x-forwarded-host"),
        ] {
            let parts = Request::get("/x?other=1")
                .header(first, "a")
                .header(second, "b")
                .body(())
                .unwrap()
                .into_parts()
                .0;
            assert_eq!(check_request(&p, &parts), Err(Bypass::Credentials));
        }
        let parts = Request::get("/x?other=1")
            .header("x-http-method-override", "DELETE")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(check_request(&p, &parts), Err(Bypass::UnkeyedHeader));
        let keyed = Policy::new("n")
            .vary_headers([HeaderName::from_static("x-http-method-override")])
            .vary_query(["other"]);
        assert_eq!(check_request(&keyed, &parts), Ok(()));
    }
}
