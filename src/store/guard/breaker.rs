//! A circuit breaker around store lookups: after repeated failures, skip the store for a
//! cool-down, then let one probe through.

use crate::{millis::millis, observe::metrics};
use std::{
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::Duration,
};
use tokio::time::Instant;

/// Shared breaker state; lock-free, so a request costs two atomic loads when the store is healthy.
///
/// - **Closed**: every lookup goes to the store. `threshold` consecutive failures open it.
/// - **Open**: no lookup or write goes to the store until `cooldown` has passed.
/// - **Half-open**: one request at a time probes the store; success closes the breaker,
///   failure opens it for another cool-down. A probe that never reports (its request was
///   dropped) is replaced after `probe_timeout`.
///
/// Opening is logged once as a warning and closing once as info; failures while open are not
/// logged at all, so an outage cannot flood the logs.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    probe_timeout: Duration,
    epoch: Instant,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; `0` means closed.
    open_until: AtomicU64,
    /// Milliseconds since `epoch` when the current probe started; `0` means none.
    probe_started: AtomicU64,
    /// Whether opening and closing are logged at warn and info level (else debug).
    loud: bool,
}

/// Whether a lookup may go to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: go ahead.
    Allowed,
    /// Half-open: this request is the probe.
    Probe,
    /// Open: skip the store.
    Denied,
}

impl CircuitBreaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration, probe_timeout: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            probe_timeout,
            epoch: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probe_started: AtomicU64::new(0),
            loud: true,
        }
    }

    /// A breaker that logs only at debug level: one of many (a cluster node's), whose state
    /// the layer's own breaker and counters already report.
    pub(crate) fn quiet(mut self) -> Self {
        self.loud = false;
        self
    }

    /// Decides whether one lookup may go to the store.
    pub(crate) fn admit(&self) -> Admission {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return Admission::Allowed;
        }
        let now = self.now_ms();
        if now < open_until {
            return Admission::Denied;
        }
        let started = self.probe_started.load(Ordering::Acquire);
        let stale = started != 0 && now.saturating_sub(started) >= millis(self.probe_timeout);
        if (started == 0 || stale)
            && self
                .probe_started
                .compare_exchange(started, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            Admission::Probe
        } else {
            Admission::Denied
        }
    }

    /// Whether a lookup now would be denied: open and cooling down, or half-open with the
    /// probe out. Unlike [`admit`](Self::admit) it never takes the probe, so it can be asked
    /// before any work.
    pub(crate) fn is_denying(&self) -> bool {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return false;
        }
        let now = self.now_ms();
        if now < open_until {
            return true;
        }
        let started = self.probe_started.load(Ordering::Acquire);
        started != 0 && now.saturating_sub(started) < millis(self.probe_timeout)
    }

    /// Whether writes should skip the store (it is open or half-open).
    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// A lookup reached the store and got an answer.
    pub(crate) fn on_success(&self) {
        // Loads first: a healthy store costs no writes to these shared cache lines.
        if self.consecutive_failures.load(Ordering::Acquire) != 0 {
            self.consecutive_failures.store(0, Ordering::Release);
        }
        if self.open_until.load(Ordering::Acquire) != 0
            && self.open_until.swap(0, Ordering::AcqRel) != 0
        {
            self.probe_started.store(0, Ordering::Release);
            if self.loud {
                metrics::breaker_open(false);
                tracing::info!(
                    "cache store answered again: circuit breaker closed, caching resumed"
                );
            } else {
                tracing::debug!("store node answered again: its circuit breaker closed");
            }
        }
    }

    /// A lookup failed or timed out.
    pub(crate) fn on_failure(&self, admission: Admission) {
        let now = self.now_ms();
        let until = now.saturating_add(millis(self.cooldown).max(1));
        if admission == Admission::Probe {
            // Reopened: another lookup's success may have closed it since the probe began.
            let was_closed = self.open_until.swap(until, Ordering::AcqRel) == 0;
            self.probe_started.store(0, Ordering::Release);
            if was_closed && self.loud {
                metrics::breaker_open(true);
            }
            tracing::debug!("cache store probe failed: circuit breaker stays open");
            return;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.threshold
            && self
                .open_until
                .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            if self.loud {
                metrics::breaker_open(true);
                tracing::warn!(
                    failures,
                    cooldown_ms = millis(self.cooldown),
                    "cache store failing: circuit breaker open, requests skip the store (served by the handler)"
                );
            } else {
                tracing::debug!(failures, "store node failing: its circuit breaker open");
            }
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 so that "now" is never the reserved 0.
        millis(self.epoch.elapsed()) + 1
    }
}

impl Drop for CircuitBreaker {
    fn drop(&mut self) {
        // A layer gone with its breaker open is no longer an open breaker.
        if self.loud && self.is_open() {
            metrics::breaker_open(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(3, Duration::from_secs(1), Duration::from_millis(100))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_and_probes_after_cooldown() {
        let b = breaker();
        for _ in 0..2 {
            assert_eq!(b.admit(), Admission::Allowed);
            b.on_failure(Admission::Allowed);
        }
        assert!(!b.is_open());
        b.on_failure(Admission::Allowed);
        assert!(b.is_open());
        assert!(b.is_denying());
        assert_eq!(b.admit(), Admission::Denied);

        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(!b.is_denying(), "cooled down: a probe may go");
        assert!(!b.is_denying(), "asking does not take the probe");
        assert_eq!(b.admit(), Admission::Probe);
        assert!(b.is_denying(), "the probe is out");
        assert_eq!(b.admit(), Admission::Denied, "one probe at a time");
        b.on_failure(Admission::Probe);
        assert_eq!(b.admit(), Admission::Denied, "failed probe reopens");

        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(b.admit(), Admission::Probe);
        b.on_success();
        assert!(!b.is_open());
        assert_eq!(b.admit(), Admission::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_count() {
        let b = breaker();
        b.on_failure(Admission::Allowed);
        b.on_failure(Admission::Allowed);
        b.on_success();
        b.on_failure(Admission::Allowed);
        b.on_failure(Admission::Allowed);
        assert!(!b.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_probe_is_replaced() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure(Admission::Allowed);
        }
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(b.admit(), Admission::Probe);
        // The probe's request is dropped and never reports.
        assert_eq!(b.admit(), Admission::Denied);
        tokio::time::advance(Duration::from_millis(101)).await;
        assert_eq!(b.admit(), Admission::Probe);
    }
}
