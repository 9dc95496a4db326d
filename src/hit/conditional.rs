//! Conditional requests on hits (RFC 9110 section 13): `If-None-Match` against the entry's
//! `ETag` (weak comparison, lists, `*`), else `If-Modified-Since` against its `Last-Modified`.

use super::etag::opaque_tag;
use http::{header, HeaderMap, Method};
use std::time::SystemTime;

/// Whether a `GET` or `HEAD` hit on an entry with `stored` headers may be answered
/// `304 Not Modified`. A malformed validator is ignored, as RFC 9110 says: the full response.
pub(crate) fn not_modified(method: &Method, request: &HeaderMap, stored: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if request.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored
            .get(header::ETAG)
            .and_then(|v| opaque_tag(v.as_bytes()))
        else {
            return false;
        };
        return if_none_match(request)
            .is_some_and(|tags| tags.iter().any(|t| t.is_none() || *t == Some(etag)));
    }
    let Some(since) = date(request, header::IF_MODIFIED_SINCE) else {
        return false;
    };
    date(stored, header::LAST_MODIFIED).is_some_and(|modified| modified <= since)
}

/// The tags of every `If-None-Match` value: `None` for `*`, else the opaque tag (weak
/// comparison ignores `W/`). `None` overall when any value is malformed.
fn if_none_match(request: &HeaderMap) -> Option<Vec<Option<&[u8]>>> {
    let mut tags = Vec::new();
    for value in request.get_all(header::IF_NONE_MATCH) {
        let value = value.as_bytes();
        if value.trim_ascii() == b"*" {
            tags.push(None);
            continue;
        }
        for item in split_tags(value)? {
            tags.push(Some(opaque_tag(item)?));
        }
    }
    Some(tags)
}

/// Splits a list of entity-tags on the commas between them (a comma may sit inside quotes).
fn split_tags(value: &[u8]) -> Option<Vec<&[u8]>> {
    let mut items = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, &b) in value.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    items.push(&value[start..]);
    Some(
        items
            .into_iter()
            .map(<[u8]>::trim_ascii)
            .filter(|item| !item.is_empty())
            .collect(),
    )
}

/// The `name` header as an HTTP-date; `None` when absent, repeated or malformed.
fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

/// The headers a `304` keeps from the stored response (RFC 9110 section 15.4.5), besides the
/// ones the cache adds (`Age`, `Cache-Status`).
pub(crate) const KEPT_BY_304: [header::HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
];

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn check(request: &[(&str, &str)], stored: &[(&str, &str)]) -> bool {
        let map = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            headers
        };
        not_modified(&Method::GET, &map(request), &map(stored))
    }

    #[test]
    fn if_none_match_uses_weak_comparison_lists_and_star() {
        let stored = [("etag", "\"v1\"")];
        for inm in [
            "\"v1\"",
            "W/\"v1\"",
            "\"x\", \"v1\"",
            "*",
            " \"a,b\" , W/\"v1\"",
        ] {
            assert!(check(&[("if-none-match", inm)], &stored), "{inm}");
        }
        for inm in ["\"v2\"", "v1", "\"v1", "W/v1", "\"a\" \"v1\"", ""] {
            assert!(!check(&[("if-none-match", inm)], &stored), "{inm}");
        }
        assert!(check(
            &[("if-none-match", "\"v1\"")],
            &[("etag", "W/\"v1\"")]
        ));
        assert!(!check(&[("if-none-match", "*")], &[]), "no ETag, no 304");
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let stored = [
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ("etag", "\"v1\""),
        ];
        let ims = |date: &str| ("if-modified-since", date.to_owned());
        let same = ims("Tue, 01 Dec 2026 10:00:00 GMT");
        assert!(check(&[(same.0, &same.1)], &stored));
        let later = ims("Wed, 02 Dec 2026 10:00:00 GMT");
        assert!(check(&[(later.0, &later.1)], &stored));
        let earlier = ims("Mon, 30 Nov 2026 10:00:00 GMT");
        assert!(!check(&[(earlier.0, &earlier.1)], &stored));
        assert!(!check(&[("if-modified-since", "yesterday")], &stored));
        // If-None-Match decides when present, even if it does not match.
        assert!(!check(
            &[("if-none-match", "\"v2\""), (same.0, &same.1)],
            &stored
        ));
    }
}
