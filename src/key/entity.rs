//! How a route finds the entity a request is about.

use super::encode::{encoded_len, push_encoded};
use http::request::Parts;
use std::{borrow::Cow, fmt, sync::Arc};

/// The longest encoded entity the cache keys; a longer one makes the request bypass the cache,
/// so no request can blow up key length (and Redis memory) through its id.
pub const MAX_ENTITY_LEN: usize = 256;

/// How a route takes the entity (the Redis Cluster hash tag of the key) from a request.
///
/// Every variant of one entity lands in one hash slot, so invalidating an entity touches one
/// node. The id taken from the request is percent-encoded (see [`KeyFactory`](crate::KeyFactory)),
/// so it can never leave the braces, add a field or put a glob character into a pattern.
///
/// ```
/// use tower_redis_cache::Entity;
///
/// // `/matches/12345/prediction` -> `{m_12345}`
/// let by_match = Entity::path_segment(1).prefix("m_");
/// // Anything computed from the request head.
/// let by_tenant = Entity::from_fn(|parts| {
///     parts.headers.get("x-tenant")?.to_str().ok().map(str::to_owned)
/// });
/// # let _ = (by_match, by_tenant);
/// ```
#[derive(Clone)]
pub struct Entity {
    source: Source,
    prefix: String,
}

type ExtractFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

#[derive(Clone)]
enum Source {
    None,
    Path,
    PathSegment(usize),
    Fn(Arc<ExtractFn>),
}

impl Entity {
    /// One entity for the whole route: the hash tag is `{_}`.
    pub fn none() -> Self {
        Self {
            source: Source::None,
            prefix: String::new(),
        }
    }

    /// The whole path the client asked for (the default): every path is an entity of its own.
    ///
    /// Each segment is percent-decoded as axum decodes path parameters, so every spelling of one
    /// path is one entity (an encoded `/` inside a segment stays apart from a separator); a
    /// path that does not decode to UTF-8 makes the request bypass the cache.
    ///
    /// Inside an axum `Router::nest` this is the full path, prefix included (with the `axum`
    /// feature).
    pub fn path() -> Self {
        Self {
            source: Source::Path,
            prefix: String::new(),
        }
    }

    /// The `index`-th segment of the path, counting from 0 after the leading `/`
    /// (`/matches/12345/prediction`: 0 is `matches`, 1 is `12345`).
    ///
    /// The segment is percent-decoded as axum's `Path` decodes it, so every spelling of one id
    /// (`12345`, `%31%32345`) is one entity and one invalidation drops them all; a segment that
    /// does not decode to UTF-8 makes the request bypass the cache. It is counted in the URI
    /// the route sees (inside axum's `Router::nest`, without the nest prefix).
    pub fn path_segment(index: usize) -> Self {
        Self {
            source: Source::PathSegment(index),
            prefix: String::new(),
        }
    }

    /// Any function of the request head; `None` makes the request bypass the cache.
    pub fn from_fn<F>(extract: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self {
            source: Source::Fn(Arc::new(extract)),
            prefix: String::new(),
        }
    }

    /// Puts `prefix` in front of the extracted id (`m_` turns `12345` into `m_12345`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Appends the encoded entity of `parts` to `out`; `false` (with `out` unchanged in meaning)
    /// when the request has no usable entity: missing, empty or longer than [`MAX_ENTITY_LEN`].
    pub(crate) fn push_encoded(&self, parts: &Parts, out: &mut String) -> bool {
        match &self.source {
            Source::None => {
                out.push('_');
                true
            }
            Source::Path => {
                decoded_path(super::request_path(parts)).is_some_and(|id| self.push_id(&id, out))
            }
            Source::PathSegment(index) => {
                let segment = parts.uri.path().split('/').skip(1).nth(*index);
                segment
                    .and_then(decoded_segment)
                    .is_some_and(|id| self.push_id(&id, out))
            }
            Source::Fn(extract) => extract(parts).is_some_and(|id| self.push_id(&id, out)),
        }
    }

    fn push_id(&self, id: &str, out: &mut String) -> bool {
        if id.is_empty() {
            return false;
        }
        let len = encoded_len(self.prefix.as_bytes()) + encoded_len(id.as_bytes());
        if len > MAX_ENTITY_LEN {
            return false;
        }
        push_encoded(out, self.prefix.as_bytes());
        push_encoded(out, id.as_bytes());
        true
    }
}

/// A path segment percent-decoded as axum's `Path` does it (a `%` not followed by two hex
/// digits stays as it is); `None` if the result is not UTF-8.
fn decoded_segment(segment: &str) -> Option<Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// The path with each segment decoded; a `/` or `%` decoded inside a segment is written back
/// as `%2F` or `%25`, so `/a%2Fb` (one segment) stays apart from `/a/b` (two).
fn decoded_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.contains('%') {
        return Some(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        for c in decoded_segment(segment)?.chars() {
            match c {
                '/' => out.push_str("%2F"),
                '%' => out.push_str("%25"),
                c => out.push(c),
            }
        }
    }
    Some(Cow::Owned(out))
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

impl Default for Entity {
    fn default() -> Self {
        Self::path()
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::None => "none".to_owned(),
            Source::Path => "path".to_owned(),
            Source::PathSegment(i) => format!("path_segment({i})"),
            Source::Fn(_) => "from_fn(..)".to_owned(),
        };
        f.debug_struct("Entity")
            .field("source", &source)
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn entity_of(entity: &Entity, uri: &str) -> Option<String> {
        let (parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
        let mut out = String::new();
        entity.push_encoded(&parts, &mut out).then_some(out)
    }

    #[test]
    fn path_segment_with_prefix() {
        let e = Entity::path_segment(1).prefix("m_");
        assert_eq!(
            entity_of(&e, "/matches/12345/prediction").as_deref(),
            Some("m_12345")
        );
        assert_eq!(
            entity_of(&e, "/matches/a%7Db/x").as_deref(),
            Some("m_a%7Db"),
            "decoded, then encoded for the key"
        );
        assert_eq!(entity_of(&e, "/matches"), None);
        assert_eq!(entity_of(&e, "/matches//x"), None);
    }

    #[test]
    fn the_whole_path_by_default() {
        let e = Entity::default();
        assert_eq!(
            entity_of(&e, "/items/1?x=2").as_deref(),
            Some("%2Fitems%2F1")
        );
        assert_eq!(entity_of(&e, "/").as_deref(), Some("%2F"));
    }

    #[test]
    fn every_spelling_of_an_id_is_one_entity() {
        let e = Entity::path_segment(1).prefix("m_");
        for uri in [
            "/matches/12345/x",
            "/matches/%31%32%33%34%35/x",
            "/matches/1%3234%35/x",
        ] {
            assert_eq!(entity_of(&e, uri).as_deref(), Some("m_12345"), "{uri}");
        }
        assert_eq!(entity_of(&e, "/matches/%e9/x"), None, "not UTF-8: bypass");
        assert_eq!(
            entity_of(&e, "/matches/%C3%A9/x").as_deref(),
            Some("m_%C3%A9")
        );
        // As axum does: a `%` without two hex digits is kept, so `%zz` and `%25zz` are one id.
        assert_eq!(
            entity_of(&e, "/matches/%zz/x"),
            entity_of(&e, "/matches/%25zz/x")
        );
        assert_eq!(entity_of(&e, "/matches/a%2/x").as_deref(), Some("m_a%252"));
    }

    #[test]
    fn whole_paths_are_decoded_per_segment() {
        let e = Entity::path();
        assert_eq!(entity_of(&e, "/items/%41b"), entity_of(&e, "/items/Ab"));
        assert_ne!(entity_of(&e, "/a%2Fb"), entity_of(&e, "/a/b"));
        assert_ne!(entity_of(&e, "/a%252Fb"), entity_of(&e, "/a%2Fb"));
        assert_eq!(entity_of(&e, "/a%2fb"), entity_of(&e, "/a%2Fb"));
        assert_eq!(entity_of(&e, "/%ff"), None);
    }

    #[test]
    fn none_is_one_tag() {
        assert_eq!(entity_of(&Entity::none(), "/health").as_deref(), Some("_"));
    }

    #[test]
    fn overlong_ids_are_refused() {
        let e = Entity::path_segment(0);
        assert_eq!(
            entity_of(&e, &format!("/{}", "a".repeat(MAX_ENTITY_LEN))).map(|s| s.len()),
            Some(MAX_ENTITY_LEN)
        );
        assert_eq!(
            entity_of(&e, &format!("/{}", "a".repeat(MAX_ENTITY_LEN + 1))),
            None
        );
    }
}
