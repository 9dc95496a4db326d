//! [`Invalidator`]: dropping cached entries from the app's own code.

use super::Invalidation;
use crate::{
    key::KeyFactory,
    observe::{metrics, trace},
    store::{Store, StoreError},
};
use std::{fmt, sync::Arc};

/// Drops cached entries: every entry of an entity, of an entity in one namespace, of a
/// namespace, or carrying a tag. Cheap to clone; get one from
/// [`CacheLayer::invalidator`](crate::CacheLayer::invalidator).
///
/// Each method returns how many entries went. When it returns, no response computed before it
/// was called is served afterwards, even one whose write-back lands later: the store refuses
/// write-backs of requests that began before an invalidation covering them (see
/// `docs/guarantees.md`); on Redis it returns once the master's replicas hold it (see
/// [`Durability`](crate::Durability)). When it fails, [`StoreError::is_retryable`] says
/// whether calling it again may help, which is always safe.
///
/// ```
/// use tower_redis_cache::{CacheLayer, KeyFactory, MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cache = CacheLayer::new(MemoryStore::default(), KeyFactory::new("monps", "prod", "v1"));
/// let invalidator = cache.invalidator();
/// // In a handler, after match 12345 changed:
/// let dropped = invalidator.entity("m_12345").await?;
/// assert_eq!(dropped, 0, "nothing was cached yet");
/// # Ok::<_, tower_redis_cache::StoreError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Invalidator {
    store: Arc<dyn Store>,
    keys: KeyFactory,
    soft: bool,
}

impl Invalidator {
    /// An invalidator for the entries `keys` made in `store`.
    pub fn new(store: Arc<dyn Store>, keys: KeyFactory) -> Self {
        Self {
            store,
            keys,
            soft: false,
        }
    }

    /// This invalidator's soft form: each scope below marks its entries stale instead of
    /// dropping them (a soft purge, [`Invalidation::soft`]); the next request is served the
    /// stale entry while one refresh renews it, on routes with a stale-while-revalidate
    /// window; elsewhere it misses, as after a hard invalidation. The count is of the entries
    /// marked.
    ///
    /// ```
    /// # use tower_redis_cache::{CacheLayer, KeyFactory, MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cache = CacheLayer::new(MemoryStore::default(), KeyFactory::new("monps", "prod", "v1"));
    /// let marked = cache.invalidator().soft().entity("m_12345").await?;
    /// assert_eq!(marked, 0, "nothing was cached yet");
    /// # Ok::<_, tower_redis_cache::StoreError>(()) }).unwrap();
    /// ```
    pub fn soft(mut self) -> Self {
        self.soft = true;
        self
    }

    /// Drops every entry of `entity` (the id as the route keys it, prefix included, such as
    /// `m_12345`), in every namespace.
    pub async fn entity(&self, entity: &str) -> Result<u64, StoreError> {
        self.run(Invalidation::entity(&self.keys, entity)).await
    }

    /// Drops every entry of `entity` in `namespace`.
    pub async fn entity_in(&self, namespace: &str, entity: &str) -> Result<u64, StoreError> {
        self.run(Invalidation::entity_in(&self.keys, namespace, entity))
            .await
    }

    /// Drops every entry of `namespace`.
    pub async fn namespace(&self, namespace: &str) -> Result<u64, StoreError> {
        self.run(Invalidation::namespace(&self.keys, namespace))
            .await
    }

    /// Drops every entry stored with `tag`.
    pub async fn tag(&self, tag: &str) -> Result<u64, StoreError> {
        self.run(Invalidation::tag(&self.keys, tag)).await
    }

    /// Runs `invalidation` on the store (its soft form when this invalidator is soft).
    pub async fn run(&self, invalidation: Invalidation) -> Result<u64, StoreError> {
        let invalidation = match self.soft {
            true => invalidation.soft(),
            false => invalidation,
        };
        observed(&*self.store, &invalidation).await
    }
}

/// Runs `invalidation` on `store` in a `cache.invalidate` span, and counts it.
pub(crate) async fn observed(
    store: &dyn Store,
    invalidation: &Invalidation,
) -> Result<u64, StoreError> {
    let scope = invalidation.scope_label();
    let span = trace::invalidate(scope);
    let result =
        tracing::Instrument::instrument(store.invalidate(invalidation), span.clone()).await;
    metrics::invalidation(scope, result.as_ref().ok().copied());
    match &result {
        Ok(dropped) => {
            span.record("dropped", dropped);
            trace::outcome(&span, "ok");
        }
        Err(_) => trace::outcome(&span, "error"),
    }
    result
}

impl fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidator")
            .field("keys", &self.keys)
            .field("soft", &self.soft)
            .finish_non_exhaustive()
    }
}
