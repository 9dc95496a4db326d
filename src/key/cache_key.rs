//! [`CacheKey`]: one key, `{app}:{env}:{version}:{namespace}:{{entity}}:{variant}`.

use super::Variant;
use std::fmt;

/// One cache key, as stored in Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// Wraps `key` after [`KeyFactory::start`](super::KeyFactory) and the encoded entity have
    /// been written: closes the hash tag and appends the variant id.
    pub(crate) fn finish(mut key: String, variant: &Variant, encoded: &[u8]) -> Self {
        key.push_str("}:");
        variant.push_id(&mut key, encoded);
        Self(key)
    }

    /// The key of an entry whose fields (as [`EntryAddress`](super::EntryAddress) splits
    /// them) are already encoded.
    pub(crate) fn from_encoded(prefix: &str, namespace: &str, entity: &str, variant: &str) -> Self {
        let mut key = String::with_capacity(
            prefix.len() + namespace.len() + entity.len() + variant.len() + 4,
        );
        for part in [prefix, namespace, ":{", entity, "}:", variant] {
            key.push_str(part);
        }
        Self(key)
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<CacheKey> for String {
    fn from(key: CacheKey) -> Self {
        key.0
    }
}

impl AsRef<str> for CacheKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
