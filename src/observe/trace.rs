//! The cache's `tracing` spans: `cache.lookup`, `cache.store` and `cache.invalidate`, at debug
//! level. They show the namespace, the outcome, sizes and a hash of the key, never the key
//! itself, request or response bodies, or credentials. The hash is a correlator, not a secret:
//! whoever can enumerate a deployment's ids can match them to their hashes.

use crate::millis::millis;
use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        LazyLock,
    },
    time::{Duration, Instant},
};
use tracing::{field::Empty, Span};

/// A lookup of `key` on a route of `namespace`; its `outcome` is recorded when it resolves.
pub(crate) fn lookup(namespace: &str, key: &str) -> Span {
    let span = tracing::debug_span!("cache.lookup", namespace, key_hash = Empty, outcome = Empty);
    record_key(span, key)
}

/// The write-back of an entry under `key`; its encoded `bytes` are recorded once known.
pub(crate) fn store(namespace: &str, key: &str) -> Span {
    let span = tracing::debug_span!(
        "cache.store",
        namespace,
        key_hash = Empty,
        bytes = Empty,
        outcome = Empty
    );
    record_key(span, key)
}

/// An invalidation of `scope` (entity, namespace, tag); `dropped` is recorded when it ends.
pub(crate) fn invalidate(scope: &'static str) -> Span {
    tracing::debug_span!("cache.invalidate", scope, dropped = Empty, outcome = Empty)
}

/// Records `outcome` on `span`.
pub(crate) fn outcome(span: &Span, outcome: &'static str) {
    span.record("outcome", outcome);
}

fn record_key(span: Span, key: &str) -> Span {
    if !span.is_disabled() {
        span.record("key_hash", tracing::field::display(KeyHash(key)));
    }
    span
}

/// A key shown as 16 hex digits of its xxh3 hash: enough to correlate log lines about one key
/// without printing it.
struct KeyHash<'a>(&'a str);

impl fmt::Display for KeyHash<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", xxhash_rust::xxh3::xxh3_64(self.0.as_bytes()))
    }
}

/// A warning logged at most once per [`RateLimited::PERIOD`], with the count of those held
/// back since: an outage that fails every request must not flood the logs.
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    /// When it was last logged, in milliseconds since the process's first use of a limit
    /// (monotonic: a clock stepped back cannot silence it); 0: never.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    /// The least time between two logged warnings.
    pub(crate) const PERIOD: Duration = Duration::from_secs(10);

    /// `Some(held back since the last one)` if this occurrence is to be logged now.
    pub(crate) fn admit(&self) -> Option<u64> {
        static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
        // +1 so that "now" is never the reserved 0.
        self.admit_at(millis(EPOCH.elapsed()).saturating_add(1))
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let last = self.last_ms.load(Relaxed);
        let period = millis(Self::PERIOD);
        if (last == 0 || now.saturating_sub(last) >= period)
            && self
                .last_ms
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period_with_the_count_held_back() {
        let limit = RateLimited::default();
        let period = millis(RateLimited::PERIOD);
        assert_eq!(limit.admit_at(5), Some(0));
        assert_eq!(limit.admit_at(6), None);
        assert_eq!(limit.admit_at(5 + period - 1), None);
        assert_eq!(limit.admit_at(5 + period), Some(2));
    }

    #[test]
    fn key_hashes_are_sixteen_hex_digits_and_hide_the_key() {
        let shown = KeyHash("monps:prod:v1:pred:{m_1}:default").to_string();
        assert_eq!(shown.len(), 16);
        assert!(shown.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            shown,
            KeyHash("monps:prod:v1:pred:{m_2}:default").to_string()
        );
    }
}
