//! Lookup deadlines without a timer per lookup.
//!
//! Every lookup of a layer has the same timeout, so their deadlines come due in the order the
//! lookups started: a queue suffices, and one sweeper task per layer, waking at most once per
//! [`slack`](Deadlines::slack), expires whatever has come due. A lookup pays for an `Arc` and a
//! push under one short lock shared by the layer's lookups, where a Tokio timer per lookup (or
//! fred's per-command timeout) cost a few percent of the CPU of a hit under load
//! (BENCHMARKS.md). A lookup that
//! the store answers at once (an in-process store) pays nothing.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, Weak,
    },
    task::{Context, Waker},
    time::Duration,
};
use tokio::{sync::Notify, time::Instant};

/// The deadlines of one layer's lookups.
pub(crate) struct Deadlines {
    shared: Arc<Shared>,
    /// Wakes the sweeper: the queue was empty and is not, or the layer is gone.
    wake: Arc<Notify>,
}

struct Shared {
    timeout: Duration,
    slack: Duration,
    queue: Mutex<VecDeque<(Instant, Arc<Expiry>)>>,
    /// Whether a sweeper task is running.
    sweeping: AtomicBool,
}

/// The deadline of one lookup: expired once it has come due.
#[derive(Default)]
pub(crate) struct Expiry {
    expired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Deadlines {
    /// Deadlines `timeout` after each lookup starts, expired at most `slack` late: a tenth of
    /// the timeout, between 1 and 10 ms.
    pub(crate) fn new(timeout: Duration) -> Self {
        let slack = (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(10));
        Self {
            shared: Arc::new(Shared {
                timeout,
                slack,
                queue: Mutex::new(VecDeque::new()),
                sweeping: AtomicBool::new(false),
            }),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The timeout each deadline is set at.
    pub(crate) fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// How late a deadline may be noticed.
    #[cfg(test)]
    pub(crate) fn slack(&self) -> Duration {
        self.shared.slack
    }

    /// Starts the deadline of a lookup that is starting now.
    pub(crate) fn start(&self) -> Arc<Expiry> {
        let expiry = Arc::new(Expiry::default());
        let now = Instant::now();
        // A timeout too large to add (`Duration::MAX` for "none") is as good as a year.
        let due = now
            .checked_add(self.shared.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let was_empty = {
            let mut queue = lock(&self.shared.queue);
            queue.push_back((due, expiry.clone()));
            queue.len() == 1
        };
        if !self.shared.sweeping.swap(true, Ordering::AcqRel) {
            self.spawn_sweeper();
        } else if was_empty {
            self.wake.notify_one();
        }
        expiry
    }

    fn spawn_sweeper(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside Tokio nothing can sweep: lookups are then bounded only by the store.
            self.shared.sweeping.store(false, Ordering::Release);
            return;
        };
        // Made before spawning: a task the runtime drops before polling it still clears it.
        let running = Running(Arc::downgrade(&self.shared));
        let (shared, wake) = (Arc::downgrade(&self.shared), self.wake.clone());
        runtime.spawn(async move {
            let _running = running;
            sweep(shared, wake).await;
        });
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        // Lets the sweeper find the layer gone and end.
        self.wake.notify_one();
    }
}

/// Marks the sweeper gone however its task ends (the runtime may drop it, even unpolled), so
/// the next lookup starts another.
struct Running(Weak<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.sweeping.store(false, Ordering::Release);
        }
    }
}

/// Expires lookups as their deadlines come due, until the layer is dropped.
async fn sweep(shared: Weak<Shared>, wake: Arc<Notify>) {
    let mut last_sweep = Instant::now();
    loop {
        let notified = wake.notified();
        let next = match shared.upgrade() {
            Some(shared) => lock(&shared.queue)
                .front()
                .map(|(due, _)| (*due).max(last_sweep + shared.slack)),
            None => return,
        };
        match next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => notified.await,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        last_sweep = Instant::now();
        let mut due = Vec::new();
        {
            let mut queue = lock(&shared.queue);
            while queue.front().is_some_and(|(at, _)| *at <= last_sweep) {
                due.extend(queue.pop_front().map(|(_, expiry)| expiry));
            }
        }
        // Woken outside the queue's lock.
        due.iter().for_each(|expiry| expiry.expire());
    }
}

impl Expiry {
    /// Whether the deadline has passed; if not, `cx` is woken when it does.
    pub(crate) fn poll_expired(&self, cx: &mut Context<'_>) -> bool {
        if self.expired.load(Ordering::Acquire) {
            return true;
        }
        {
            let mut waker = lock(&self.waker);
            match &*waker {
                Some(registered) if registered.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        // Again, in case it expired while the waker was being registered.
        self.expired.load(Ordering::Acquire)
    }

    /// The lookup is over: its task need not be kept for the sweeper.
    pub(crate) fn finish(&self) {
        lock(&self.waker).take();
    }

    fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can leave the state half-changed: a poisoned lock is as good as any.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    /// Waits until `expiry` expires, as a lookup would.
    async fn expired(expiry: &Expiry) {
        poll_fn(|cx| {
            if expiry.poll_expired(cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn expires_after_the_timeout_within_the_slack() {
        let deadlines = Deadlines::new(Duration::from_millis(50));
        let started = Instant::now();
        let first = deadlines.start();
        tokio::time::advance(Duration::from_millis(20)).await;
        let second = deadlines.start();
        expired(&first).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(
            waited <= Duration::from_millis(50) + deadlines.slack(),
            "{waited:?}"
        );
        assert!(
            !second.expired.load(Ordering::Acquire),
            "the second has 20 ms left"
        );
        expired(&second).await;
        assert!(started.elapsed() >= Duration::from_millis(70));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_sweeper_wakes_for_the_next_lookup() {
        let deadlines = Deadlines::new(Duration::from_millis(10));
        expired(&deadlines.start()).await;
        tokio::time::advance(Duration::from_secs(5)).await;
        let started = Instant::now();
        expired(&deadlines.start()).await;
        assert!(started.elapsed() <= Duration::from_millis(10) + deadlines.slack());
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_ends_with_the_layer() {
        let deadlines = Deadlines::new(Duration::from_millis(10));
        let shared = Arc::downgrade(&deadlines.shared);
        expired(&deadlines.start()).await;
        drop(deadlines);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(shared.upgrade().is_none());
    }

    #[test]
    fn outside_tokio_nothing_is_spawned() {
        let deadlines = Deadlines::new(Duration::from_millis(10));
        let _expiry = deadlines.start();
        assert!(!deadlines.shared.sweeping.load(Ordering::Acquire));
    }
}
