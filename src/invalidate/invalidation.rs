//! [`Invalidation`]: what an invalidation drops, as the store receives it.

use crate::key::{encoded, EntryAddress, KeyFactory};

/// What to drop from the store: every entry of an entity, of an entity in one namespace, of a
/// namespace, or carrying a tag, within one deployment (`{app}:{env}:{version}`).
///
/// Made from a [`KeyFactory`]; the names given are raw (unencoded) and encoded as keys are, so
/// no name can widen what is dropped. Stores implement
/// [`Store::invalidate`](crate::store::Store::invalidate) with it; most code calls an
/// [`Invalidator`](crate::Invalidator) instead.
///
/// ```
/// use tower_redis_cache::{store::{Invalidation, InvalidationScope}, KeyFactory};
///
/// let keys = KeyFactory::new("monps", "prod", "v1");
/// let drop = Invalidation::entity(&keys, "m_12345");
/// assert_eq!(drop.prefix(), "monps:prod:v1:");
/// assert_eq!(drop.scope(), InvalidationScope::Entity { entity: "m_12345" });
/// let sneaky = Invalidation::namespace(&keys, "*");
/// assert_eq!(sneaky.scope(), InvalidationScope::Namespace { namespace: "%2A" });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalidation {
    prefix: String,
    scope: Scope,
    soft: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    Entity(String),
    EntityIn(String, String),
    Namespace(String),
    Tag(String),
}

/// What an [`Invalidation`] drops; every name is encoded as in keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidationScope<'a> {
    /// Every entry of the entity, in every namespace.
    Entity {
        /// The encoded entity.
        entity: &'a str,
    },
    /// Every entry of the entity in one namespace.
    EntityInNamespace {
        /// The encoded namespace.
        namespace: &'a str,
        /// The encoded entity.
        entity: &'a str,
    },
    /// Every entry of the namespace.
    Namespace {
        /// The encoded namespace.
        namespace: &'a str,
    },
    /// Every entry stored with the tag.
    Tag {
        /// The encoded tag.
        tag: &'a str,
    },
}

impl Invalidation {
    /// Every entry of `entity` (such as `m_12345`, the id with the route's prefix), in every
    /// namespace.
    pub fn entity(keys: &KeyFactory, entity: &str) -> Self {
        Self::new(keys, Scope::Entity(encoded(entity)))
    }

    /// Every entry of `entity` in `namespace`.
    pub fn entity_in(keys: &KeyFactory, namespace: &str, entity: &str) -> Self {
        Self::new(keys, Scope::EntityIn(encoded(namespace), encoded(entity)))
    }

    /// Every entry of `namespace`.
    pub fn namespace(keys: &KeyFactory, namespace: &str) -> Self {
        Self::new(keys, Scope::Namespace(encoded(namespace)))
    }

    /// Every entry stored with `tag`.
    pub fn tag(keys: &KeyFactory, tag: &str) -> Self {
        Self::new(keys, Scope::Tag(encoded(tag)))
    }

    /// Every entry of an entity already encoded, as the cache takes it from a request.
    pub(crate) fn encoded_entity(keys: &KeyFactory, entity: String) -> Self {
        Self::new(keys, Scope::Entity(entity))
    }

    fn new(keys: &KeyFactory, scope: Scope) -> Self {
        Self {
            prefix: keys.prefix().to_owned(),
            scope,
            soft: false,
        }
    }

    /// The soft form (a soft purge): the entries are marked stale as of now instead of
    /// dropped, so each is served stale once, within its stale-while-revalidate window, while
    /// one refresh renews it (without such a window the next request misses, as after a hard
    /// invalidation). Fenced and acknowledged like the hard form: no write-back of a request
    /// that began before it is stored.
    pub fn soft(mut self) -> Self {
        self.soft = true;
        self
    }

    /// Whether this is a soft purge ([`soft`](Self::soft)).
    pub fn is_soft(&self) -> bool {
        self.soft
    }

    /// The deployment's key prefix, `{app}:{env}:{version}:` (encoded).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What is dropped.
    pub fn scope(&self) -> InvalidationScope<'_> {
        match &self.scope {
            Scope::Entity(entity) => InvalidationScope::Entity { entity },
            Scope::EntityIn(namespace, entity) => {
                InvalidationScope::EntityInNamespace { namespace, entity }
            }
            Scope::Namespace(namespace) => InvalidationScope::Namespace { namespace },
            Scope::Tag(tag) => InvalidationScope::Tag { tag },
        }
    }

    /// The scope's kind, as a metric label and span field.
    pub(crate) fn scope_label(&self) -> &'static str {
        match &self.scope {
            Scope::Entity(_) => "entity",
            Scope::EntityIn(..) => "entity-in-namespace",
            Scope::Namespace(_) => "namespace",
            Scope::Tag(_) => "tag",
        }
    }

    /// Whether the entry under `key` with `tags` (encoded, as
    /// [`EntryWrite::tag_names`](crate::store::EntryWrite::tag_names) gives them) is dropped; a key
    /// that is not this deployment's never is.
    ///
    /// ```
    /// use tower_redis_cache::{store::Invalidation, KeyFactory, Variant};
    ///
    /// let keys = KeyFactory::new("monps", "prod", "v1");
    /// let key = keys.key("pred", "m_1", &Variant::new());
    /// assert!(Invalidation::entity(&keys, "m_1").covers(key.as_str(), []));
    /// assert!(Invalidation::tag(&keys, "team-7").covers(key.as_str(), ["team-7"]));
    /// assert!(!Invalidation::namespace(&keys, "markets").covers(key.as_str(), []));
    /// ```
    pub fn covers<'t>(&self, key: &str, tags: impl IntoIterator<Item = &'t str>) -> bool {
        let Some(address) = EntryAddress::parse_str(key) else {
            return false;
        };
        if address.prefix != self.prefix {
            return false;
        }
        let (namespace, entity) = (address.namespace, address.entity);
        match self.scope() {
            InvalidationScope::Entity { entity: e } => e == entity,
            InvalidationScope::EntityInNamespace {
                namespace: n,
                entity: e,
            } => n == namespace && e == entity,
            InvalidationScope::Namespace { namespace: n } => n == namespace,
            InvalidationScope::Tag { tag } => tags.into_iter().any(|t| t == tag),
        }
    }
}
