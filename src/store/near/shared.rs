//! The state a near cache's lookups and its tracking task share: the entries, whether they may
//! be served, and the numbering of changes that keeps a read from filling what changed since.

use super::{
    redirects::Redirects,
    stats::{NearCacheStats, NearCounters},
};
use crate::{millis::millis, observe::metrics::NearMetrics, store::memory::MemoryStore};
use bytes::Bytes;
use fred::{clients::Client, interfaces::ClientInterface, types::config::Server};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

/// Why the near cache was flushed: the `reason` label of its flush counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flush {
    /// The tracking connection failed.
    Disconnect,
    /// The tracking connection was replaced; the new one does not track.
    Reconnect,
    /// The cluster's topology changed: slots may be served by connections that do not track.
    Topology,
    /// A tracked read was redirected (a slot migrating): fred restarts its connections.
    Redirected,
    /// Tracking messages were lost (too many waited to be handled).
    Missed,
    /// No heartbeat came back within `max_silence`.
    Silence,
    /// A canary key is gone: Redis was flushed (or restarted empty).
    Emptied,
}

impl Flush {
    fn label(self) -> &'static str {
        match self {
            Self::Disconnect => "disconnect",
            Self::Reconnect => "reconnect",
            Self::Topology => "topology",
            Self::Redirected => "redirected",
            Self::Missed => "missed-message",
            Self::Silence => "silence",
            Self::Emptied => "emptied",
        }
    }
}

/// The state the lookups and the tracking task share.
pub(super) struct Shared {
    entries: MemoryStore,
    pub(super) client: Client,
    /// Tracking is on (and the entries may be served).
    tracking: AtomicBool,
    /// When the newest heartbeat that came back was sent, in ms since `clock`.
    confirmed: AtomicU64,
    clock: Instant,
    max_silence: Duration,
    pub(super) heartbeat: Duration,
    /// Changes of keys (tracking messages, flushes) are numbered; a read fills only if none for
    /// its key came after the read began. Guarded by `pending`.
    changes: AtomicU64,
    pending: Mutex<Pending>,
    pub(super) counters: NearCounters,
    pub(super) metrics: NearMetrics,
    /// Slots whose keys are read through the store for now.
    pub(super) redirects: Redirects,
}

#[derive(Default)]
struct Pending {
    /// Keys read now: how many reads, and the number of the newest change of the key.
    reads: HashMap<String, (u32, u64)>,
    /// The number of the newest flush.
    flushed: u64,
    /// The connections tracking was turned on for.
    tracked: HashMap<Server, i64>,
}

impl Shared {
    /// The state of a near cache of at most `max_bytes` tracking through `client`.
    pub(super) fn new(
        client: Client,
        max_bytes: u64,
        heartbeat: Duration,
        max_silence: Duration,
    ) -> Self {
        Self {
            entries: MemoryStore::with_max_bytes(max_bytes),
            client,
            tracking: AtomicBool::new(false),
            confirmed: AtomicU64::new(0),
            clock: Instant::now(),
            max_silence,
            heartbeat,
            changes: AtomicU64::new(0),
            pending: Mutex::default(),
            counters: NearCounters::default(),
            metrics: NearMetrics::default(),
            redirects: Redirects::default(),
        }
    }

    /// What the near cache did since it was built, and holds now.
    pub(super) fn stats(&self) -> NearCacheStats {
        self.counters.snapshot(
            self.entries.len() as u64,
            self.entries.weighted_bytes(),
            self.serving(),
        )
    }

    /// The value held for `key`, whether or not it may be served.
    pub(super) fn cached(&self, key: &str) -> Option<Bytes> {
        self.entries.peek(key)
    }

    /// Whether tracking is on (entries are served while heartbeats also come back).
    pub(super) fn is_tracking(&self) -> bool {
        self.tracking.load(Ordering::Acquire)
    }

    /// Whether entries may be served now.
    pub(super) fn serving(&self) -> bool {
        self.tracking.load(Ordering::Acquire)
            && self.now_ms() <= self.confirmed.load(Ordering::Acquire) + millis(self.max_silence)
    }

    pub(super) fn max_silence(&self) -> Duration {
        self.max_silence
    }

    fn now_ms(&self) -> u64 {
        millis(self.clock.elapsed())
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tracking is on for the connections `tracked`, as of a command sent at `sent`.
    pub(super) fn resume(&self, tracked: HashMap<Server, i64>, sent: Instant) {
        let mut pending = self.lock();
        pending.tracked = tracked;
        self.confirmed
            .store(millis(sent.duration_since(self.clock)), Ordering::Release);
        self.tracking.store(true, Ordering::Release);
        drop(pending);
        tracing::info!("near cache: client tracking is on; serving from process memory");
    }

    /// A heartbeat sent at `sent` came back after every message sent before it was handled.
    pub(super) fn confirm(&self, sent: Instant) {
        self.confirmed
            .store(millis(sent.duration_since(self.clock)), Ordering::Release);
    }

    /// The connections tracking was turned on for.
    pub(super) fn tracked(&self) -> HashMap<Server, i64> {
        self.lock().tracked.clone()
    }

    /// Empties the near cache and turns it off until tracking is back.
    pub(super) fn flush(&self, reason: Flush) {
        let mut pending = self.lock();
        let was_on = self.tracking.swap(false, Ordering::AcqRel);
        pending.flushed = self.changes.fetch_add(1, Ordering::Relaxed) + 1;
        pending.tracked.clear();
        self.entries.clear();
        drop(pending);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.metrics.flushed(reason.label());
        if was_on {
            tracing::warn!(
                reason = reason.label(),
                "near cache flushed: passing lookups to Redis until client tracking is back"
            );
        }
    }

    /// Redis reported a change of `keys` (or this process changed them).
    pub(super) fn invalidated<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        let mut pending = self.lock();
        let mut dropped = 0;
        for key in keys {
            let Ok(key) = std::str::from_utf8(key) else {
                continue;
            };
            if let Some((_, changed)) = pending.reads.get_mut(key) {
                *changed = self.changes.fetch_add(1, Ordering::Relaxed) + 1;
            }
            dropped += u64::from(self.entries.remove(key));
        }
        drop(pending);
        if dropped > 0 {
            self.counters
                .invalidations
                .fetch_add(dropped, Ordering::Relaxed);
            self.metrics.invalidated(dropped);
        }
    }

    /// Registers a read of `key` that is about to be sent on the tracking connection.
    pub(super) fn begin_read(self: &Arc<Self>, key: &str) -> PendingRead {
        let mut pending = self.lock();
        let began = self.changes.load(Ordering::Relaxed);
        pending.reads.entry(key.to_owned()).or_default().0 += 1;
        PendingRead {
            shared: self.clone(),
            key: key.to_owned(),
            began,
            done: false,
        }
    }
}

/// A read on the tracking connection; it unregisters itself when dropped.
pub(super) struct PendingRead {
    shared: Arc<Shared>,
    key: String,
    /// The number of the newest change when the read began.
    began: u64,
    done: bool,
}

impl PendingRead {
    /// Ends the read and keeps `value` for `ttl`, unless its key changed (or the near cache was
    /// flushed, or its connection replaced) since the read began.
    pub(super) fn fill(mut self, value: Bytes, ttl: Duration) {
        let shared = self.shared.clone();
        let mut pending = shared.lock();
        let changed = self.finish(&mut pending);
        let current = pending.tracked == shared.client.connection_ids();
        if changed <= self.began
            && pending.flushed <= self.began
            && current
            && !ttl.is_zero()
            && shared.tracking.load(Ordering::Acquire)
        {
            shared.entries.insert(&self.key, value, ttl, Arc::default());
            shared.counters.fills.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Unregisters the read; the number of the newest change of its key.
    fn finish(&mut self, pending: &mut Pending) -> u64 {
        self.done = true;
        let Some((reads, changed)) = pending.reads.get_mut(&self.key) else {
            return u64::MAX;
        };
        let changed = *changed;
        *reads -= 1;
        if *reads == 0 {
            pending.reads.remove(&self.key);
        }
        changed
    }
}

impl Drop for PendingRead {
    fn drop(&mut self) {
        if !self.done {
            let shared = self.shared.clone();
            let mut pending = shared.lock();
            self.finish(&mut pending);
        }
    }
}
