//! Content codings: whether a request accepts the coding an entry is stored in, for routes
//! whose key holds the coding a server would pick rather than the request's `Accept-Encoding`.

use crate::{
    entry::Entry,
    key::normalize::{members, same_coding},
};
use http::{header, HeaderMap};

/// Whether a request with `headers` accepts a response in content coding `coding` (an entry's
/// `Content-Encoding`), by RFC 9110 section 12.5.3.
pub(crate) fn accepts_coding(headers: &HeaderMap, coding: &str) -> bool {
    let coding = coding.trim();
    if coding.is_empty() || coding.eq_ignore_ascii_case("identity") {
        // Identity is acceptable unless refused explicitly (or by `*;q=0` without it listed).
        let mut wildcard = None;
        for (token, q) in members(headers, &header::ACCEPT_ENCODING) {
            if token.eq_ignore_ascii_case("identity") {
                return q > 0;
            }
            if token == "*" {
                wildcard.get_or_insert(q);
            }
        }
        return wildcard.is_none_or(|q| q > 0);
    }
    let mut wildcard = None;
    for (token, q) in members(headers, &header::ACCEPT_ENCODING) {
        if same_coding(token, coding) {
            return q > 0;
        }
        if token == "*" {
            wildcard.get_or_insert(q);
        }
    }
    wildcard.is_some_and(|q| q > 0)
}

/// Whether `request` accepts `entry` in the content coding it is stored in.
pub(crate) fn coding_accepted(entry: &Entry, request: &HeaderMap) -> bool {
    let codings = entry.headers().get_all(header::CONTENT_ENCODING);
    codings
        .iter()
        .flat_map(|line| line.to_str().map_or(vec!["\0"], |l| l.split(',').collect()))
        .all(|coding| accepts_coding(request, coding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(line: &str) -> HeaderMap {
        HeaderMap::from_iter([(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(line).unwrap(),
        )])
    }

    #[test]
    fn accepted_codings_follow_rfc_9110() {
        let h = headers;
        assert!(accepts_coding(&HeaderMap::new(), "identity"));
        assert!(!accepts_coding(&HeaderMap::new(), "gzip"));
        assert!(accepts_coding(&h("gzip, br"), "br"));
        assert!(accepts_coding(&h("x-gzip"), "gzip"));
        assert!(!accepts_coding(&h("gzip;q=0, br"), "gzip"));
        assert!(accepts_coding(&h("*"), "zstd"));
        assert!(!accepts_coding(&h("*;q=0"), "identity"));
        assert!(!accepts_coding(&h("identity;q=0, gzip"), "identity"));
        assert!(accepts_coding(&h("gzip"), "identity"));
    }
}
