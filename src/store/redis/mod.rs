//! The Redis store, on fred: standalone, Cluster, Sentinel and TLS from one URL.
//!
//! - `store.rs`: [`RedisStore`], the [`Store`](crate::store::Store) where Redis is spoken to;
//!   `builder.rs` makes it from a URL, `settings.rs` configures every fred client alike, `tls.rs`
//!   reads TLS files.
//! - `routing.rs`: which client a command goes through: the server's, or on Cluster the client
//!   of the primary serving the key's slot (`cluster.rs`, with a breaker per node).
//! - `protocol.rs`: the invalidation protocol and miss leases, made of the Lua scripts in
//!   `scripts/`.
//! - `error.rs`: fred's errors as [`StoreError`](crate::store::StoreError)s.

mod builder;
mod cluster;
pub(crate) mod durability;
pub(crate) mod error;
mod protocol;
pub(crate) mod routing;
mod scripts;
pub(crate) mod settings;
mod store;
#[cfg(test)]
mod test_server;
#[cfg(feature = "tls")]
mod tls;

pub use self::builder::RedisStoreBuilder;
pub use self::durability::Durability;
pub use self::store::RedisStore;
