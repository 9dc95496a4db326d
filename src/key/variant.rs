//! The inputs that select one variant of an entity's cached response.

use super::{canonical::canonicalize, normalize::normalized};
use http::{HeaderMap, HeaderName, Method};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_64;

/// The inputs that select one variant of a response: the JSON body, allow-listed query
/// parameters, header values and, where a route caches several methods, the method.
///
/// A variant with no inputs is the `default` variant. Otherwise its id is the hex xxHash3 of an
/// unambiguous encoding of the inputs: the SHA-256 of the body's RFC 8785 canonical form (or,
/// when it is not valid JSON, of its raw bytes, in a separate domain), then query parameters and
/// headers sorted by name, each value kept in the order it was given. Equal inputs give equal ids whatever their
/// order, member order or whitespace; different inputs give different encodings, and every
/// stored entry carries a SHA-256 digest of the full encoding (with the method and path) that is
/// compared on every read, so a collision of the 64-bit id can never serve another variant's
/// response.
///
/// ```
/// use tower_redis_cache::Variant;
///
/// let a = Variant::new().json_body(br#"{"risk":"high","model":"v2"}"#);
/// let b = Variant::new().json_body(br#"{ "model": "v2", "risk": "high" }"#);
/// assert_eq!(a.id(), b.id());
/// assert_ne!(a.id(), Variant::new().json_body(br#"{"risk":"low","model":"v2"}"#).id());
/// assert_eq!(Variant::new().id(), "default");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variant {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Part {
    domain: Domain,
    name: Vec<u8>,
    value: Vec<u8>,
}

/// Each input lives in its own domain, so no body can spell a query parameter and no invalid
/// body can spell a valid one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Domain {
    Method = b'M',
    JsonBody = b'J',
    RawBody = b'R',
    Query = b'Q',
    Header = b'H',
    Negotiated = b'N',
}

impl Variant {
    /// Creates the `default` variant: nothing varies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a request body, canonicalised per RFC 8785 when it is JSON.
    ///
    /// For a request with a body the cache also adds its `Content-Type` (with
    /// [`header`](Self::header)), so rebuild a request's key with both.
    ///
    /// An empty body adds nothing. A body that is not valid JSON (or has duplicate member names,
    /// or numbers outside the IEEE 754 range) is keyed by its exact bytes in a separate domain.
    pub fn json_body(self, body: &[u8]) -> Self {
        if body.is_empty() {
            return self;
        }
        self.body_digest(BodyDigest::of(body))
    }

    /// Adds a request body by its [`BodyDigest`] (what [`json_body`](Self::json_body) computes).
    pub(crate) fn body_digest(mut self, body: BodyDigest) -> Self {
        let domain = match body.json {
            true => Domain::JsonBody,
            false => Domain::RawBody,
        };
        self.parts
            .push(Part::new(domain, Vec::new(), body.digest.to_vec()));
        self
    }

    /// Adds the request method.
    pub fn method(mut self, method: &Method) -> Self {
        let name = method.as_str().as_bytes().to_vec();
        self.parts.push(Part::new(Domain::Method, name, Vec::new()));
        self
    }

    /// Adds one query parameter value, as raw (still percent-encoded) bytes.
    pub fn query(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        let part = Part::new(
            Domain::Query,
            name.as_ref().to_vec(),
            value.as_ref().to_vec(),
        );
        self.parts.push(part);
        self
    }

    /// Adds one header value.
    pub fn header(mut self, name: &HeaderName, value: impl AsRef<[u8]>) -> Self {
        let part = Part::new(
            Domain::Header,
            name.as_str().as_bytes().to_vec(),
            value.as_ref().to_vec(),
        );
        self.parts.push(part);
        self
    }

    /// Adds request header `name` of `headers` as a response's `Vary` on it keys the request
    /// (for headers a namespace's responses were seen to vary on, which the route does not
    /// list in [`Policy::vary_headers`](crate::Policy::vary_headers)): its value normalised
    /// (`Accept-Encoding` to the coding a server would pick, `Accept`-like lists to their
    /// members by weight, other headers trimmed), or its absence.
    ///
    /// ```
    /// use http::{header, HeaderMap, HeaderValue};
    /// use tower_redis_cache::Variant;
    ///
    /// let mut a = HeaderMap::new();
    /// a.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br"));
    /// let mut b = HeaderMap::new();
    /// b.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br;q=1, gzip;q=0.8"));
    /// let key = |h| Variant::new().negotiated(&header::ACCEPT_ENCODING, h).id();
    /// assert_eq!(key(&a), key(&b), "both get br");
    /// ```
    pub fn negotiated(mut self, name: &HeaderName, headers: &HeaderMap) -> Self {
        let value = match normalized(name, headers) {
            Some(mut value) => {
                value.insert(0, 1);
                value
            }
            None => vec![0],
        };
        let part = Part::new(Domain::Negotiated, name.as_str().as_bytes().to_vec(), value);
        self.parts.push(part);
        self
    }

    /// This variant without what [`negotiated`](Self::negotiated) added.
    pub(crate) fn without_negotiated(&self) -> Variant {
        let parts = self.parts.iter().filter(|p| p.domain != Domain::Negotiated);
        Variant {
            parts: parts.cloned().collect(),
        }
    }

    /// Whether nothing varies: the key's variant field is then `default`.
    pub fn is_default(&self) -> bool {
        self.parts.is_empty()
    }

    /// The variant field of the key: `default`, or 16 hex digits of xxHash3-64.
    pub fn id(&self) -> String {
        let mut id = String::with_capacity(16);
        self.push_id(&mut id, &self.encode());
        id
    }

    /// Appends the id for `encoded` (this variant's [`encode`](Self::encode)) to `out`.
    pub(crate) fn push_id(&self, out: &mut String, encoded: &[u8]) {
        use std::fmt::Write;
        if self.is_default() {
            out.push_str("default");
        } else {
            let _ = write!(out, "{:016x}", xxh3_64(encoded));
        }
    }

    /// The unambiguous byte encoding of every input, sorted; what the id hashes and what a
    /// stored entry is checked against on every read.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut sorted: Vec<&Part> = self.parts.iter().collect();
        // Stable: the values of one name keep the order they were given in.
        sorted.sort_by(|a, b| (a.domain, &a.name).cmp(&(b.domain, &b.name)));
        let len = sorted
            .iter()
            .map(|p| 9 + p.name.len() + p.value.len())
            .sum();
        let mut out = Vec::with_capacity(len);
        for part in sorted {
            out.push(part.domain as u8);
            push_len_prefixed(&mut out, &part.name);
            push_len_prefixed(&mut out, &part.value);
        }
        out
    }
}

/// What a request body enters its variant as: the SHA-256 of its RFC 8785 canonical form, or of
/// its raw bytes when it is not such a document. A digest rather than the bytes, so that the
/// variant's encoding stays small whatever the body, and so that the canonical form of a body
/// seen before can be looked up by the digest of its raw bytes instead of being recomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyDigest {
    json: bool,
    digest: [u8; 32],
}

impl BodyDigest {
    /// The digest of `body`.
    pub(crate) fn of(body: &[u8]) -> Self {
        Self::with_raw_digest(body, Sha256::digest(body).into())
    }

    /// The digest of `body`, whose raw bytes' SHA-256 is `raw` already.
    pub(crate) fn with_raw_digest(body: &[u8], raw: [u8; 32]) -> Self {
        match canonicalize(body) {
            Some(canonical) => Self {
                json: true,
                digest: Sha256::digest(&canonical).into(),
            },
            None => Self {
                json: false,
                digest: raw,
            },
        }
    }
}

impl Part {
    fn new(domain: Domain, name: Vec<u8>, value: Vec<u8>) -> Self {
        Self {
            domain,
            name,
            value,
        }
    }
}

fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Inputs are bounded by the policy's limits, far below 4 GiB; saturate rather than wrap.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::ACCEPT_LANGUAGE;

    #[test]
    fn order_of_query_and_headers_does_not_matter() {
        let a = Variant::new()
            .query("b", "2")
            .query("a", "1")
            .header(&ACCEPT_LANGUAGE, "fr");
        let b = Variant::new()
            .header(&ACCEPT_LANGUAGE, "fr")
            .query("a", "1")
            .query("b", "2");
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn repeated_values_keep_their_order() {
        let a = Variant::new().query("a", "1").query("a", "2");
        let b = Variant::new().query("a", "2").query("a", "1");
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn domains_are_separate() {
        let json = Variant::new().json_body(b"{}");
        let raw = Variant::new().json_body(b"{ ");
        assert_ne!(json.id(), raw.id());
        assert_ne!(
            Variant::new().query("a", "").id(),
            Variant::new()
                .header(&HeaderName::from_static("a"), "")
                .id()
        );
        // The split between name and value is part of the encoding.
        assert_ne!(
            Variant::new().query("ab", "c").id(),
            Variant::new().query("a", "bc").id()
        );
    }

    #[test]
    fn invalid_bodies_do_not_share_a_key() {
        let a = Variant::new().json_body(b"not json");
        let b = Variant::new().json_body(b"not json either");
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id(), "default");
    }

    #[test]
    fn empty_body_is_default() {
        assert!(Variant::new().json_body(b"").is_default());
    }
}
