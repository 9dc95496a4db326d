//! [`HotKeys`]: which entities take the most hits, from a bounded sketch that a hit touches
//! only once in [`SAMPLE`] (a thread-local countdown otherwise).
//!
//! The sketch is Space-Saving (Metwally, Agrawal and El Abbadi, *Efficient Computation of
//! Frequent and Top-k Elements in Data Streams*, ICDT 2005) over a sample of the hits: at most
//! [`CAPACITY`] counters, each for one namespace and entity; a sampled hit on an entity without
//! a counter takes over the smallest one. Counts are estimates (samples times [`SAMPLE`]); an
//! entity with a large share of the hits is always among them. Never full keys or bodies.

use std::{
    cell::Cell,
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

/// One hit in this many is counted.
pub(crate) const SAMPLE: u32 = 16;
/// The counters the sketch keeps: the most entities [`HotKeys::top`] can name.
pub(crate) const CAPACITY: usize = 64;

/// An entity that takes many hits, as [`CacheLayer::hot_keys`](crate::CacheLayer::hot_keys)
/// reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HotKey {
    /// The route's namespace.
    pub namespace: String,
    /// The entity (the key's hash tag), as the key encodes it.
    pub entity: String,
    /// Hits on it, estimated from a sample (one hit in 16), since the layer was built.
    pub hits: u64,
}

struct Counter {
    namespace: Arc<str>,
    entity: Box<str>,
    count: u64,
}

/// The sketch of one layer.
#[derive(Default)]
pub(crate) struct HotKeys {
    counters: Mutex<HashMap<u64, Counter>>,
    hasher: std::collections::hash_map::RandomState,
}

thread_local! {
    /// Hits until this thread counts one; starts at a thread-dependent point so that threads
    /// do not sample in step.
    static COUNTDOWN: Cell<u32> = Cell::new(thread_offset());
}

fn thread_offset() -> u32 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut hasher);
    (hasher.finish() % u64::from(SAMPLE)) as u32
}

impl HotKeys {
    /// Counts a hit on the entry under `key`, of `namespace` (one in [`SAMPLE`] reaches the
    /// sketch).
    pub(crate) fn hit(&self, namespace: &Arc<str>, key: &str) {
        let sampled = COUNTDOWN.with(|countdown| match countdown.get() {
            0 => {
                countdown.set(SAMPLE - 1);
                true
            }
            n => {
                countdown.set(n - 1);
                false
            }
        });
        if let Some(entity) = sampled.then(|| entity_of(key)).flatten() {
            self.count(namespace, entity);
        }
    }

    fn count(&self, namespace: &Arc<str>, entity: &str) {
        let id = {
            let mut hasher = self.hasher.build_hasher();
            namespace.hash(&mut hasher);
            entity.hash(&mut hasher);
            hasher.finish()
        };
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counter) = counters.get_mut(&id) {
            counter.count += 1;
            return;
        }
        let mut count = 1;
        if counters.len() >= CAPACITY {
            // Space-Saving: the newcomer takes over the smallest counter, and its count.
            let smallest = counters
                .iter()
                .min_by_key(|(_, c)| c.count)
                .map(|(id, c)| (*id, c.count));
            if let Some((smallest, at)) = smallest {
                counters.remove(&smallest);
                count = at + 1;
            }
        }
        counters.insert(
            id,
            Counter {
                namespace: namespace.clone(),
                entity: entity.into(),
                count,
            },
        );
    }

    /// The `k` entities with the most hits, most first (at most [`CAPACITY`]).
    pub(crate) fn top(&self, k: usize) -> Vec<HotKey> {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut top: Vec<HotKey> = counters
            .values()
            .map(|c| HotKey {
                namespace: c.namespace.to_string(),
                entity: c.entity.to_string(),
                hits: c.count * u64::from(SAMPLE),
            })
            .collect();
        top.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.entity.cmp(&b.entity)));
        top.truncate(k);
        top
    }
}

impl std::fmt::Debug for HotKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("HotKeys")
            .field("counters", &counters.len())
            .finish()
    }
}

/// The entity of a cache key: between its first `{` and the `}` that ends it.
pub(crate) fn entity_of(key: &str) -> Option<&str> {
    let start = key.find('{')? + 1;
    let end = key.rfind("}:")?;
    (start <= end).then(|| &key[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heaviest_entities_come_first_and_the_sketch_stays_bounded() {
        let hot = HotKeys::default();
        let ns: Arc<str> = Arc::from("markets");
        // 10 000 cold entities seen a few times each, interleaved with three hot ones.
        let key = |entity: &str| format!("a:b:c:markets:{{{entity}}}:default");
        for round in 0..16 * 200 {
            hot.hit(&ns, &key("m_1"));
            if round % 2 == 0 {
                hot.hit(&ns, &key("m_2"));
            }
            if round % 4 == 0 {
                hot.hit(&ns, &key("m_3"));
            }
            hot.hit(&ns, &key(&format!("cold_{}", round % 10_000)));
        }
        let top = hot.top(3);
        let names: Vec<&str> = top.iter().map(|k| k.entity.as_str()).collect();
        assert_eq!(names, ["m_1", "m_2", "m_3"], "{top:?}");
        assert!(top[0].hits > top[1].hits && top[1].hits > top[2].hits);
        assert!(hot.counters.lock().unwrap().len() <= CAPACITY);
        assert!(hot.top(1000).len() <= CAPACITY);
    }

    #[test]
    fn entities_come_out_of_keys() {
        assert_eq!(entity_of("a:b:c:ns:{m_1}:default"), Some("m_1"));
        assert_eq!(entity_of("a:b:c:ns:{_}:00ff"), Some("_"));
        assert_eq!(entity_of("no entity"), None);
    }
}
