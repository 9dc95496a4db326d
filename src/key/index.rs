//! The keys that index entries for invalidation, next to the entries they index.
//!
//! Every key here starts with the deployment prefix (`{app}:{env}:{version}:`) and then `#`,
//! which no encoded namespace contains, so index keys never collide with entry keys. The keys
//! of one entity share its hash tag with its entries (one Redis Cluster slot); a namespace's
//! and a tag's keys share the namespace's or tag's own hash tag.
//!
//! | key                      | type       | holds                                                   |
//! |--------------------------|------------|---------------------------------------------------------|
//! | `{p}#e:{E}`              | sorted set | `{namespace}:{variant}` of every entry of E, by expiry  |
//! | `{p}#l:{E}`              | hash       | write leases in flight: `{namespace}:{variant}` → token |
//! | `{p}#f:{E}`              | hash       | invalidation times of E: `*` (all) or a namespace       |
//! | `{p}#n:{N}`              | sorted set | entities with entries in namespace N, by expiry         |
//! | `{p}#nf:{N}`             | string     | the last invalidation time of namespace N               |
//! | `{p}#t:{T}`              | sorted set | `{namespace}:{E}:{variant}` of entries tagged T         |
//! | `{p}#tf:{T}`             | string     | the last invalidation time of tag T                     |
//! | `{p}#m:{E}:{N}:{V}`      | string     | the miss lease of one entry (cross-instance coalescing) |
//!
//! Every one expires: sorted sets when their last member does, leases and fences after a fixed
//! window.

use super::CacheKey;

/// The parts of an entry key: `{prefix}{namespace}:{{entity}}:{variant}`, each still encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryAddress<'a> {
    /// `{app}:{env}:{version}:`
    pub(crate) prefix: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) entity: &'a str,
    pub(crate) variant: &'a str,
}

impl<'a> EntryAddress<'a> {
    /// Splits a key made by [`KeyFactory`](super::KeyFactory). Encoded fields hold no `:`,
    /// `{` or `}`, so the split is unambiguous.
    pub(crate) fn parse(key: &'a CacheKey) -> Option<Self> {
        Self::parse_str(key.as_str())
    }

    pub(crate) fn parse_str(key: &'a str) -> Option<Self> {
        let mut fields = key.splitn(6, ':');
        let (app, env, version) = (fields.next()?, fields.next()?, fields.next()?);
        let namespace = fields.next()?;
        let entity = fields.next()?.strip_prefix('{')?.strip_suffix('}')?;
        let variant = fields.next()?;
        let prefix_len = app.len() + env.len() + version.len() + 3;
        Some(Self {
            prefix: &key[..prefix_len],
            namespace,
            entity,
            variant,
        })
    }

    /// `{namespace}:{variant}`: the entry's member in its entity's index and lease hash.
    pub(crate) fn entity_member(&self) -> String {
        format!("{}:{}", self.namespace, self.variant)
    }

    /// `{namespace}:{{entity}}:{variant}`: the entry's member in a tag index.
    pub(crate) fn tag_member(&self) -> String {
        format!("{}:{{{}}}:{}", self.namespace, self.entity, self.variant)
    }
}

/// The entry key of `member` (`{namespace}:{variant}`) of `entity`'s index; `None` for a member
/// no entry key of this crate has (its key could fall in another slot than the entity's).
pub(crate) fn entity_member_key(prefix: &str, entity: &str, member: &str) -> Option<CacheKey> {
    let (namespace, variant) = member.split_once(':')?;
    if [namespace, variant]
        .iter()
        .any(|field| field.contains(['{', '}', ':']))
    {
        return None;
    }
    Some(CacheKey::from_encoded(prefix, namespace, entity, variant))
}

/// The miss lease of the entry at `address`.
pub(crate) fn miss_lease(address: &EntryAddress<'_>) -> String {
    format!(
        "{}#m:{{{}}}:{}:{}",
        address.prefix, address.entity, address.namespace, address.variant
    )
}

/// The entity index of `entity` (encoded).
pub(crate) fn entity_index(prefix: &str, entity: &str) -> String {
    format!("{prefix}#e:{{{entity}}}")
}

/// The write leases of `entity`.
pub(crate) fn entity_leases(prefix: &str, entity: &str) -> String {
    format!("{prefix}#l:{{{entity}}}")
}

/// The invalidation times of `entity`.
pub(crate) fn entity_fences(prefix: &str, entity: &str) -> String {
    format!("{prefix}#f:{{{entity}}}")
}

/// The index of `namespace` (encoded).
pub(crate) fn namespace_index(prefix: &str, namespace: &str) -> String {
    format!("{prefix}#n:{{{namespace}}}")
}

/// The invalidation time of `namespace`.
pub(crate) fn namespace_fence(prefix: &str, namespace: &str) -> String {
    format!("{prefix}#nf:{{{namespace}}}")
}

/// The index of `tag` (encoded).
pub(crate) fn tag_index(prefix: &str, tag: &str) -> String {
    format!("{prefix}#t:{{{tag}}}")
}

/// The invalidation time of `tag`.
pub(crate) fn tag_fence(prefix: &str, tag: &str) -> String {
    format!("{prefix}#tf:{{{tag}}}")
}

/// The entry key of a tag index member (`{namespace}:{{entity}}:{variant}`), its entity, and its
/// member in the entity's index; `None` for a member no entry key of this crate has.
pub(crate) fn tag_member_key<'m>(
    prefix: &str,
    member: &'m str,
) -> Option<(String, &'m str, String)> {
    let key = format!("{prefix}{member}");
    let entity = member
        .split(':')
        .nth(1)?
        .strip_prefix('{')?
        .strip_suffix('}')?;
    let address = EntryAddress::parse_str(&key)?;
    if [address.namespace, address.variant]
        .iter()
        .any(|field| field.contains(['{', '}', ':']))
    {
        return None;
    }
    let entity_member = address.entity_member();
    Some((key, entity, entity_member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyFactory, Variant};

    #[test]
    fn an_entry_key_splits_into_its_fields() {
        let keys = KeyFactory::new("monps", "prod", "v1");
        let key = keys.key("pred", "m_1", &Variant::new());
        let address = EntryAddress::parse(&key).unwrap();
        assert_eq!(
            address,
            EntryAddress {
                prefix: "monps:prod:v1:",
                namespace: "pred",
                entity: "m_1",
                variant: "default"
            }
        );
        assert_eq!(address.tag_member(), "pred:{m_1}:default");
        assert_eq!(
            tag_member_key(address.prefix, &address.tag_member()),
            Some((key.as_str().to_owned(), "m_1", "pred:default".to_owned()))
        );
        assert_eq!(
            tag_member_key("p:", "n:{e}:v{x}"),
            None,
            "a brace moves the slot"
        );
        assert_eq!(tag_member_key("p:", "x"), None);
        assert_eq!(
            entity_member_key(address.prefix, address.entity, &address.entity_member()),
            Some(key)
        );
        assert_eq!(entity_member_key("p:", "e", "no-separator"), None);
        assert_eq!(
            entity_member_key("p:", "e", "n{x}:v"),
            None,
            "a brace moves the slot"
        );
        assert_eq!(entity_member_key("p:", "e", "n:v:w"), None);
    }

    #[test]
    fn index_keys_share_the_entity_tag_and_never_an_entry_key() {
        let keys = KeyFactory::new("a", "b", "c");
        let entry = keys.key("n", "E", &Variant::new());
        for index in [entity_index("a:b:c:", "E"), entity_leases("a:b:c:", "E")] {
            assert!(index.ends_with(":{E}"), "{index}");
            assert_ne!(EntryAddress::parse_str(&index), EntryAddress::parse(&entry));
        }
    }
}
