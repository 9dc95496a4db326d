//! Invalidation: what one invalidation covers ([`Invalidation`], as stores receive it), the
//! [`Invalidator`] apps call, and the invalidation an unsafe request's success causes on a
//! route with [`Policy::invalidate_on_unsafe`](crate::Policy::invalidate_on_unsafe). The
//! race-free protocol itself is the store's: `store/redis/protocol.rs` and `store/memory.rs`.

mod invalidation;
mod invalidator;
pub(crate) mod on_unsafe;

pub use self::invalidation::{Invalidation, InvalidationScope};
pub use self::invalidator::Invalidator;
