//! Cache keys, `{app}:{env}:{version}:{namespace}:{{entity}}:{variant}`, and what a key is made
//! of: the field encoding, the entity, the variant (with the RFC 8785 canonical form of a JSON
//! body, and a memo of the body digests seen lately), the identity an entry must match, and the
//! index, lease and fence keys stored next to the entries.
//!
//! A leaf: nothing here knows of policies, request rules or stores. `future/keying.rs` is the
//! glue that turns a request on a route into its key.

mod cache_key;
mod canonical;
mod encode;
mod entity;
mod factory;
mod identity;
pub(crate) mod index;
mod memo;
pub(crate) mod normalize;
mod path;
mod variant;

pub use self::cache_key::CacheKey;
pub(crate) use self::encode::encoded;
pub use self::entity::{Entity, MAX_ENTITY_LEN};
pub use self::factory::KeyFactory;
pub(crate) use self::identity::{identity, Identity};
pub(crate) use self::index::EntryAddress;
pub(crate) use self::memo::BodyMemo;
pub(crate) use self::path::{path_of, request_path};
pub(crate) use self::variant::BodyDigest;
pub use self::variant::Variant;
