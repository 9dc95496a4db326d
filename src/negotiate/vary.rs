//! What a response's `Vary` means for storing it: covered by the request's key, covered once
//! the namespace learns the headers it names, or not storable.

use crate::policy::Policy;
use http::{header, HeaderMap, HeaderName};
use std::sync::Arc;

/// The verdict of [`check`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VaryCheck {
    /// Every header the response varies on is in the request's key.
    Covered,
    /// The response varies on headers the key did not cover; the namespace learned them, and
    /// this is every header it varies on now: key the request again with these.
    Learned(Arc<[HeaderName]>),
    /// `Vary: *`, a credential the route does not key, a name that is not a header, or more
    /// headers than a namespace learns: not stored.
    Refused,
}

/// The credentials a response may vary on only when the route keys them itself.
const CREDENTIALS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// Checks `response`'s `Vary` against what keyed its request: the route's `vary_headers` and
/// the headers the namespace had learned then (`keyed_with`).
pub(crate) fn check(
    policy: &Policy,
    response: &HeaderMap,
    keyed_with: Option<&[HeaderName]>,
) -> VaryCheck {
    let mut uncovered: Vec<HeaderName> = Vec::new();
    let names = response
        .get_all(header::VARY)
        .iter()
        .flat_map(|line| line.to_str().map_or(vec!["\0"], |l| l.split(',').collect()))
        .map(str::trim)
        .filter(|name| !name.is_empty());
    for name in names {
        // `*` is a token, so a header name, but means "anything".
        let name = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) if name != "*" => name,
            _ => return VaryCheck::Refused,
        };
        if policy.varies_on_header(&name) || keyed_with.is_some_and(|k| k.contains(&name)) {
            continue;
        }
        if CREDENTIALS.contains(&name) {
            return VaryCheck::Refused;
        }
        if !uncovered.contains(&name) {
            uncovered.push(name);
        }
    }
    if uncovered.is_empty() {
        return VaryCheck::Covered;
    }
    match policy.negotiation.learn(&uncovered) {
        Some(learned) => VaryCheck::Learned(learned),
        None => VaryCheck::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn vary(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append(header::VARY, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn what_the_key_covers_is_covered() {
        let policy = Policy::new("n").vary_headers([header::ACCEPT_LANGUAGE]);
        assert_eq!(check(&policy, &HeaderMap::new(), None), VaryCheck::Covered);
        assert_eq!(
            check(&policy, &vary("Accept-Language"), None),
            VaryCheck::Covered
        );
        let keyed = [header::ORIGIN];
        assert_eq!(
            check(&policy, &vary("origin , accept-language"), Some(&keyed)),
            VaryCheck::Covered
        );
        assert!(policy.negotiation.learned().is_none(), "nothing learned");
    }

    #[test]
    fn uncovered_headers_are_learned() {
        let policy = Policy::new("n");
        let VaryCheck::Learned(set) = check(&policy, &vary("Origin, Accept-Encoding"), None) else {
            panic!("learned");
        };
        assert_eq!(&set[..], &[header::ACCEPT_ENCODING, header::ORIGIN]);
        assert_eq!(policy.negotiation.learned().as_deref(), Some(&set[..]));
    }

    #[test]
    fn star_credentials_and_junk_are_refused() {
        let policy = Policy::new("n");
        for value in ["*", "accept, *", "cookie", "Authorization", "a b", "x\u{1}"] {
            let headers = match HeaderValue::from_str(value) {
                Ok(v) => HeaderMap::from_iter([(header::VARY, v)]),
                Err(_) => continue,
            };
            assert_eq!(
                check(&policy, &headers, None),
                VaryCheck::Refused,
                "{value}"
            );
        }
        let keyed = Policy::new("n").vary_headers([header::COOKIE]);
        assert_eq!(check(&keyed, &vary("cookie"), None), VaryCheck::Covered);
    }
}
