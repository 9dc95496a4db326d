//! Where entries live: the [`Store`] trait and what a store implementor needs, the stores of the
//! crate, and the guards around store calls.
//!
//! - [`Store`], [`StoreFuture`], [`Lease`] (`interface.rs`); [`StoreError`] (`error.rs`);
//!   [`EntryWrite`] (`write.rs`); [`Invalidation`] and [`Entry`] are what stores receive.
//! - `memory.rs`: [`MemoryStore`](crate::MemoryStore), in process.
//! - `redis/`: [`RedisStore`](crate::RedisStore) on fred: the store, its builder, routing to a
//!   client per cluster primary, the Lua scripts and the invalidation protocol they make.
//! - `near/`: [`NearCache`](crate::NearCache), hot entries in process memory kept coherent with
//!   Redis by client tracking.
//! - `guard/`: the circuit breaker, the lookup deadlines and the write budget that keep a slow
//!   or failing store from taking the app down with it.
//!
//! ```
//! use tower_redis_cache::{
//!     store::{Entry, EntryWrite, Invalidation, Store},
//!     KeyFactory, MemoryStore, Variant,
//! };
//! use http::{HeaderMap, StatusCode};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let keys = KeyFactory::new("monps", "prod", "v1");
//! let store = MemoryStore::default();
//! let entry = Entry::new(StatusCode::OK, HeaderMap::new(), "{}".into());
//! let key = keys.key("pred", "m_1", &Variant::new());
//! let write = EntryWrite::new(key.clone(), entry.encode(), Duration::from_secs(60));
//! assert!(store.write(write).await.unwrap());
//! assert_eq!(store.invalidate(&Invalidation::entity(&keys, "m_1")).await.unwrap(), 1);
//! assert_eq!(store.get(key.as_str()).await.unwrap(), None);
//! # });
//! ```

mod error;
pub(crate) mod guard;
mod interface;
pub(crate) mod memory;
pub(crate) mod near;
pub(crate) mod redis;
mod token;
mod write;

pub use self::error::{StoreError, StoreErrorKind};
pub use self::interface::{Lease, Store, StoreFuture};
pub use self::write::EntryWrite;
pub use crate::entry::{Entry, EntryError};
pub use crate::invalidate::{Invalidation, InvalidationScope};
