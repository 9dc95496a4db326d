//! The [`Store`] trait: what the cache asks of a store, and what a store answers.

use super::{EntryWrite, StoreError, StoreErrorKind};
use crate::invalidate::Invalidation;
use bytes::Bytes;
use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

/// What [`Store::lease`] found for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lease {
    /// The lease is this caller's, under this token: it calls the inner service.
    Taken(String),
    /// Another caller holds it: poll again shortly.
    Held,
    /// The entry is there (another caller stored it): its bytes.
    Filled(Bytes),
    /// The holder's response could not be stored: call the inner service at once.
    Forward,
}

/// The future a [`Store`] returns.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// A key-value store with expiry that holds encoded entries.
///
/// Implementations must be cheap to call concurrently; the cache bounds every call it waits
/// for with its own lookup timeout, and treats every error as a miss.
///
/// The trait grows by provided methods only: what later versions ask of a store (such as
/// change tracking) comes with a default implementation, so a store written against this
/// version keeps compiling. [`write`](Self::write) and [`invalidate`](Self::invalidate) are
/// the invalidation protocol; [`RedisStore`](crate::RedisStore) and
/// [`MemoryStore`](crate::MemoryStore) implement it, and [`NearCache`](crate::NearCache)
/// passes it on to its `RedisStore`. `Arc<S>` and `Box<S>` of a store (`Arc<dyn Store>`
/// included) are stores too.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use bytes::Bytes;
/// use tower_redis_cache::{
///     store::{Store, StoreFuture},
///     MemoryStore,
/// };
///
/// /// A store that logs every lookup, around another store.
/// struct Logged<S>(S);
///
/// impl<S: Store> Store for Logged<S> {
///     fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
///         println!("GET {key}");
///         self.0.get(key)
///     }
///     fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
///         self.0.set(key, value, ttl)
///     }
///     fn delete(&self, key: &str) -> StoreFuture<bool> {
///         self.0.delete(key)
///     }
/// }
///
/// let chosen_at_run_time: Arc<dyn Store> = Arc::new(Logged(MemoryStore::default()));
/// # let _ = chosen_at_run_time;
/// ```
pub trait Store: Send + Sync + 'static {
    /// Reads the value under `key`; `Ok(None)` when there is none.
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>>;

    /// Reads the value under `key` for a cache lookup: like [`get`](Self::get), but the cache
    /// bounds the wait itself (with its lookup timeout), so the store need not arm a timer of
    /// its own for the call. The default is `get`.
    fn lookup(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        self.get(key)
    }

    /// Writes `value` under `key`, to expire after `ttl`.
    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()>;

    /// Removes `key`; `Ok(true)` when it existed.
    fn delete(&self, key: &str) -> StoreFuture<bool>;

    /// Writes a write-back's entry and indexes it for invalidation; `Ok(false)` when an
    /// invalidation covering it ran since its request began, so the entry was not stored.
    ///
    /// The default is [`set`](Self::set), with no index and no such check: a store that
    /// overrides [`invalidate`](Self::invalidate) must override this too.
    fn write(&self, write: EntryWrite) -> StoreFuture<bool> {
        let set = self.set(write.key().as_str(), write.value().clone(), write.ttl());
        Box::pin(async move { set.await.map(|()| true) })
    }

    /// Takes the miss lease of `key` for `ttl`, unless the entry is there or another caller
    /// holds the lease (cross-instance coalescing, [`Policy::lease`](crate::Policy::lease)).
    ///
    /// The default grants every lease: without it, each instance calls the inner service.
    fn lease(&self, key: &str, ttl: Duration) -> StoreFuture<Lease> {
        let _ = (key, ttl);
        Box::pin(std::future::ready(Ok(Lease::Taken(String::new()))))
    }

    /// Ends the lease `token` of `key`: `stored` when its entry was stored, else the callers
    /// waiting on it are told to call the inner service themselves (until `ttl` passes).
    fn release(&self, key: &str, token: &str, stored: bool, ttl: Duration) -> StoreFuture<()> {
        let _ = (key, token, stored, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Drops what `invalidation` names; `Ok(n)` with the number of entries dropped. After it
    /// returns `Ok`, [`write`](Self::write) refuses the entries of requests that began before
    /// it was called.
    ///
    /// The default refuses: the store cannot invalidate.
    fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
        let _ = invalidation;
        Box::pin(std::future::ready(Err(StoreError::new(
            StoreErrorKind::Rejected,
            "this store does not support invalidation",
        ))))
    }
}

/// A store behind a pointer is a store: `Arc<dyn Store>` chosen at run time, `Box<S>`, ...
macro_rules! forward_store {
    ($($pointer:ident),*) => {$(
        impl<S: Store + ?Sized> Store for $pointer<S> {
            fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
                (**self).get(key)
            }

            fn lookup(&self, key: &str) -> StoreFuture<Option<Bytes>> {
                (**self).lookup(key)
            }

            fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
                (**self).set(key, value, ttl)
            }

            fn delete(&self, key: &str) -> StoreFuture<bool> {
                (**self).delete(key)
            }

            fn write(&self, write: EntryWrite) -> StoreFuture<bool> {
                (**self).write(write)
            }

            fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
                (**self).invalidate(invalidation)
            }

            fn lease(&self, key: &str, ttl: Duration) -> StoreFuture<Lease> {
                (**self).lease(key, ttl)
            }

            fn release(&self, key: &str, token: &str, stored: bool, ttl: Duration) -> StoreFuture<()> {
                (**self).release(key, token, stored, ttl)
            }
        }
    )*};
}

forward_store!(Arc, Box);

impl fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Store")
    }
}
