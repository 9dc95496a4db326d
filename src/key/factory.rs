//! [`KeyFactory`]: the keys of one deployment.

use super::{encode::push_encoded, CacheKey, Variant};

/// Builds the cache keys of one deployment: `{app}:{env}:{version}:{namespace}:{{entity}}:{variant}`.
///
/// `app`, `env` and `version` are fixed per deployment (bump `version` to abandon every old entry);
/// `namespace` names a route; the entity is a Redis Cluster hash tag, so all variants of one entity
/// share a slot; the variant is `default` or the hex xxHash3 of the [`Variant`] inputs.
///
/// Every field is percent-encoded except `[A-Za-z0-9_.-]`, so no field can contain `:`, a brace
/// or a glob character: keys parse unambiguously and patterns match only what they name.
///
/// ```
/// use tower_redis_cache::{KeyFactory, Variant};
///
/// let keys = KeyFactory::new("monps", "prod", "v1");
/// assert_eq!(
///     keys.key("pred", "m_12345", &Variant::new()).as_str(),
///     "monps:prod:v1:pred:{m_12345}:default"
/// );
/// let config = Variant::new().json_body(br#"{"risk":"high","model":"v2"}"#);
/// assert!(keys.key("pred", "m_12345", &config).as_str().starts_with("monps:prod:v1:pred:{m_12345}:"));
/// assert_eq!(keys.entity_pattern("m_12345"), "monps:prod:v1:*:{m_12345}:*");
/// assert_eq!(keys.key("pred", "a:b}*", &Variant::new()).as_str(), "monps:prod:v1:pred:{a%3Ab%7D%2A}:default");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFactory {
    /// `{app}:{env}:{version}:`, encoded.
    prefix: String,
}

impl KeyFactory {
    /// Creates the key factory of one deployment.
    pub fn new(app: &str, env: &str, version: &str) -> Self {
        let mut prefix = String::new();
        for field in [app, env, version] {
            push_encoded(&mut prefix, field.as_bytes());
            prefix.push(':');
        }
        Self { prefix }
    }

    /// The key of one variant of `entity` (an unencoded id such as `m_12345`) in `namespace`.
    pub fn key(&self, namespace: &str, entity: &str, variant: &Variant) -> CacheKey {
        let mut key = self.start(namespace);
        push_encoded(&mut key, entity.as_bytes());
        CacheKey::finish(key, variant, &variant.encode())
    }

    /// A glob pattern matching every key of `entity`, in every namespace.
    pub fn entity_pattern(&self, entity: &str) -> String {
        let mut pattern = format!("{}*:{{", self.prefix);
        push_encoded(&mut pattern, entity.as_bytes());
        pattern.push_str("}:*");
        pattern
    }

    /// A glob pattern matching every key of `namespace`.
    pub fn namespace_pattern(&self, namespace: &str) -> String {
        let mut pattern = self.prefix.clone();
        push_encoded(&mut pattern, namespace.as_bytes());
        pattern.push_str(":*");
        pattern
    }

    /// `{app}:{env}:{version}:`, encoded.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}{namespace}:{`, ready for the encoded entity.
    pub(crate) fn start(&self, namespace: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + namespace.len() + 48);
        key.push_str(&self.prefix);
        push_encoded(&mut key, namespace.as_bytes());
        key.push_str(":{");
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_format() {
        let keys = KeyFactory::new("monps", "prod", "v1");
        let v = Variant::new().json_body(br#"{"risk":"high","model":"v2"}"#);
        let key = keys.key("pred", "m_12345", &v);
        let fields: Vec<&str> = key.as_str().split(':').collect();
        assert_eq!(fields[..5], ["monps", "prod", "v1", "pred", "{m_12345}"]);
        assert_eq!(fields[5].len(), 16);
        assert!(fields[5].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn deployment_fields_are_encoded_too() {
        let keys = KeyFactory::new("a:b", "{x}", "*");
        assert_eq!(keys.namespace_pattern("n?"), "a%3Ab:%7Bx%7D:%2A:n%3F:*");
    }
}
