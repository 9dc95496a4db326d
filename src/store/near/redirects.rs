//! The Cluster slots whose keys a near cache's tracking connection was redirected for lately:
//! while a slot migrates, its keys are read through the store instead.
//!
//! fred answers an `ASK` redirection on its Cluster client by writing `ASKING` on the shared
//! connection and taking the next frame read as the reply; with other replies in flight that
//! fails, and fred restarts its connections. So a tracked read that fails with a redirection
//! turns the near cache off until tracking is back (like any reconnect), and for a while the
//! lookups of that slot go to the `RedisStore`, which follows `ASK` itself, without filling.

use fred::util::redis_keyslot;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

/// How long a slot's keys are read through the store after a redirection: a migration moves
/// keys for a while, and each redirection while tracking would flush the near cache again.
const REDIRECTED_FOR: Duration = Duration::from_secs(10);

/// Slots redirected lately, and when.
#[derive(Debug, Default)]
pub(super) struct Redirects {
    /// Whether `slots` may hold anything: a lookup reads this alone when nothing migrates.
    any: AtomicBool,
    slots: Mutex<HashMap<u16, Instant>>,
}

impl Redirects {
    /// A tracked read of `key` was redirected.
    pub(super) fn note(&self, key: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.insert(redis_keyslot(key.as_bytes()), Instant::now());
        self.any.store(true, Ordering::Release);
    }

    /// Whether `key`'s slot was redirected within [`REDIRECTED_FOR`].
    pub(super) fn recent(&self, key: &str) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|_, at| at.elapsed() < REDIRECTED_FOR);
        if slots.is_empty() {
            self.any.store(false, Ordering::Release);
        }
        slots.contains_key(&redis_keyslot(key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirected_slot_is_remembered_and_others_are_not() {
        let redirects = Redirects::default();
        assert!(!redirects.recent("{a}:1"));
        redirects.note("{a}:1");
        assert!(redirects.recent("{a}:2"), "the same slot");
        assert!(!redirects.recent("{b}:1"));
    }
}
