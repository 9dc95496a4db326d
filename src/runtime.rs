//! What every route of one [`CacheLayer`](crate::CacheLayer) shares at run time: the store, the
//! key factory, the lookup timeout and deadlines, the circuit breaker, the write budget, the counters and the
//! memo of request-body digests.
//! Built once by [`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build).

use crate::{
    coalesce::flight::Flights,
    entry::Compression,
    hit::{CacheStatus, Fwd},
    key::{BodyMemo, KeyFactory},
    negotiate::Negotiation,
    observe::{
        event::{Bypass, Event, Miss},
        hot_keys::HotKeys,
        stats::CacheCounters,
        trace::RateLimited,
    },
    policy::Policy,
    store::{
        guard::{breaker::CircuitBreaker, budget::WriteBudget, deadline::Deadlines},
        Store,
    },
};
use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

/// The shared state of one layer and every copy of it made by `policy(..)`.
pub(crate) struct Runtime {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: KeyFactory,
    /// The cache's name in `Cache-Status`, an RFC 8941 token.
    pub(crate) name: String,
    /// The lookups' deadlines, the lookup timeout after each starts.
    pub(crate) deadlines: Deadlines,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) writes: Arc<WriteBudget>,
    pub(crate) counters: CacheCounters,
    /// The entities that take the most hits.
    pub(crate) hot_keys: HotKeys,
    /// The digests of request bodies seen lately.
    pub(crate) bodies: BodyMemo,
    /// The response header naming an entry's tags, removed before the client sees it.
    pub(crate) tag_header: Option<http::HeaderName>,
    /// The misses in flight, for coalescing; `None` when coalescing is off.
    pub(crate) flights: Option<Arc<Flights>>,
    /// The stale entries being refreshed in the background, by key.
    pub(crate) refreshes: Arc<Flights>,
    /// The counters of each namespace.
    pub(crate) namespaces: Mutex<BTreeMap<String, Arc<CacheCounters>>>,
    /// What each namespace learned from `Vary`.
    pub(crate) negotiations: Mutex<BTreeMap<String, Arc<Negotiation>>>,
    /// The longest a coalesced miss waits for its leader.
    pub(crate) coalescing_timeout: Duration,
    /// How stored bodies are compressed.
    pub(crate) compression: Compression,
    /// Failed invalidations after unsafe requests, logged at most once per period.
    pub(crate) unsafe_invalidation_warnings: RateLimited,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("keys", &self.keys)
            .field("name", &self.name)
            .field("lookup_timeout", &self.deadlines.timeout())
            .field("breaker", &self.breaker)
            .field("writes", &self.writes)
            .field("tag_header", &self.tag_header)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The counters of `namespace`, made on first use.
    pub(crate) fn namespace_counters(&self, namespace: &str) -> Arc<CacheCounters> {
        let mut namespaces = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        namespaces
            .entry(namespace.to_owned())
            .or_insert_with(|| Arc::new(CacheCounters::for_namespace(namespace)))
            .clone()
    }

    /// What `namespace` learned from `Vary`, made on first use.
    pub(crate) fn negotiation(&self, namespace: &str) -> Arc<Negotiation> {
        let mut negotiations = self
            .negotiations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        negotiations
            .entry(namespace.to_owned())
            .or_default()
            .clone()
    }

    /// Counts a request on a cached route forwarded without a lookup for `reason`, and gives
    /// its `Cache-Status`.
    pub(crate) fn bypass(&self, policy: &Policy, reason: Bypass) -> CacheStatus {
        self.counters.count(&policy.stats, Event::Bypass(reason));
        CacheStatus::forward(Fwd::Bypass).with_detail(reason.detail())
    }

    /// Counts a request that skipped the store because the circuit breaker is open (a miss),
    /// and gives its `Cache-Status`.
    pub(crate) fn circuit_open(&self, policy: &Policy) -> CacheStatus {
        self.counters
            .count(&policy.stats, Event::Miss(Miss::CircuitOpen));
        CacheStatus::forward(Fwd::Miss).with_detail("circuit-open")
    }
}
