//! How a route finds the entity a request is about.

use super::encode::{encoded_len, push_encoded};
use http::request::Parts;
use std::{fmt, sync::Arc};

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
    /// The segment is taken as it appears in the URI, still percent-encoded, and counted in
    /// the URI the route sees (inside axum's `Router::nest`, without the nest prefix).
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
            Source::Path => self.push_id(super::request_path(parts), out),
            Source::PathSegment(index) => {
                let segment = parts.uri.path().split('/').skip(1).nth(*index);
                segment.is_some_and(|id| self.push_id(id, out))
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
            Some("m_a%257Db")
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
