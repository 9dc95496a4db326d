//! The bound on write-backs in flight: a count and a byte budget shared by every route.

use crate::observe::metrics::WriteGauges;
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

/// How many write-backs may be in flight at once and how many bytes (recorded bodies and
/// encoded entries) they may hold between them. Lock-free: starting a write-back costs one
/// atomic update, recording a chunk another.
#[derive(Debug)]
pub(crate) struct WriteBudget {
    max_writes: usize,
    max_bytes: usize,
    writes: AtomicUsize,
    bytes: AtomicUsize,
    /// The in-flight figures as `metrics` gauges.
    gauges: WriteGauges,
}

/// One write-back's share of the budget: a slot and the bytes it holds, returned on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<WriteBudget>,
    bytes: usize,
}

impl WriteBudget {
    pub(crate) fn new(max_writes: usize, max_bytes: usize) -> Self {
        Self {
            max_writes,
            max_bytes,
            writes: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            gauges: WriteGauges::default(),
        }
    }

    /// A slot for one more write-back holding `bytes`, if both are free.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        take(&self.writes, 1, self.max_writes)?;
        if take(&self.bytes, bytes, self.max_bytes).is_none() {
            self.writes.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.gauges.add(1, signed(bytes));
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Write-backs in flight, and the bytes they hold.
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        (
            self.writes.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }
}

impl Reservation {
    /// The bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `more` bytes; `false` (holding what it held) when the budget has no room.
    pub(crate) fn grow(&mut self, more: usize) -> bool {
        let ok = take(&self.budget.bytes, more, self.budget.max_bytes).is_some();
        if ok {
            self.bytes += more;
            self.budget.gauges.add(0, signed(more));
        }
        ok
    }

    /// Gives `less` bytes back (what a write-back no longer holds).
    pub(crate) fn shrink(&mut self, less: usize) {
        let less = less.min(self.bytes);
        self.budget.bytes.fetch_sub(less, Ordering::AcqRel);
        self.bytes -= less;
        self.budget.gauges.add(0, -signed(less));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.writes.fetch_sub(1, Ordering::AcqRel);
        self.budget.gauges.add(-1, -signed(self.bytes));
    }
}

fn signed(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

/// Adds `n` to `counter` unless that would pass `max`.
fn take(counter: &AtomicUsize, n: usize, max: usize) -> Option<usize> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(n).filter(|&total| total <= max)
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_count_and_bytes_and_returns_them_on_drop() {
        let budget = Arc::new(WriteBudget::new(2, 100));
        let mut a = budget.reserve(10).expect("room");
        let b = budget.reserve(10).expect("room");
        assert!(budget.reserve(0).is_none(), "two writes at most");
        assert!(a.grow(80));
        assert!(!a.grow(1), "100 bytes at most");
        assert_eq!(budget.in_flight(), (2, 100));
        a.shrink(50);
        assert_eq!(budget.in_flight(), (2, 50));
        drop(b);
        assert!(budget.reserve(61).is_none(), "over the byte budget");
        assert_eq!(
            budget.in_flight(),
            (1, 40),
            "a refused reservation holds nothing"
        );
        drop(a);
        assert_eq!(budget.in_flight(), (0, 0));
    }
}
