//! [`VariantBound`]: at most so many variants of one key are stored, so that a client cycling
//! through header values cannot grow the store without bound.

use moka::sync::Cache;
use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

/// How many keys' variants are remembered; past it the least used keys are forgotten (and
/// their variants counted afresh).
const KEYS: u64 = 65_536;

/// One key's variants: each variant's id and when its entry expires.
type Variants = Arc<Mutex<Vec<(u64, Instant)>>>;

/// The variants stored lately per key (the key without the learned headers), each until its
/// entry expires.
pub(crate) struct VariantBound {
    keys: Cache<String, Variants>,
}

impl Default for VariantBound {
    fn default() -> Self {
        Self {
            keys: Cache::new(KEYS),
        }
    }
}

impl fmt::Debug for VariantBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VariantBound")
            .field("keys", &self.keys.entry_count())
            .finish()
    }
}

impl VariantBound {
    /// Whether variant `id` of `key` may be stored until `until`: it is stored already, or the
    /// key has fewer than `max` live variants (then it is counted).
    pub(crate) fn admit(&self, key: &str, id: u64, until: Instant, max: usize) -> bool {
        if max == 0 {
            return false;
        }
        let variants = self.keys.get_with_by_ref(key, Arc::default);
        let mut variants = variants.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        variants.retain(|&(_, expires)| expires > now);
        if let Some(seen) = variants.iter_mut().find(|(seen, _)| *seen == id) {
            seen.1 = seen.1.max(until);
            return true;
        }
        if variants.len() >= max {
            return false;
        }
        variants.push((id, until));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn at_most_max_live_variants_per_key() {
        let bound = VariantBound::default();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(bound.admit("k", 1, later, 2));
        assert!(bound.admit("k", 2, later, 2));
        assert!(!bound.admit("k", 3, later, 2), "a third variant");
        assert!(bound.admit("k", 1, later, 2), "a stored one again");
        assert!(bound.admit("other", 3, later, 2), "another key");
        assert!(!bound.admit("k", 1, later, 0), "zero stores none");
    }

    #[test]
    fn expired_variants_make_room() {
        let bound = VariantBound::default();
        let past = Instant::now();
        assert!(bound.admit("k", 1, past, 1));
        assert!(bound.admit("k", 2, Instant::now() + Duration::from_secs(60), 1));
    }
}
