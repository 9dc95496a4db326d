//! In-process request coalescing: concurrent misses for one key make one inner call.
//!
//! The first miss for a key leads: it forwards, and its [`Flight`] publishes what came of it.
//! Later misses for the key wait (bounded) for that outcome: the leader's entry when its
//! response was storable and complete, served to each waiter whose request it answers; else
//! (not storable, failed, cancelled, client gone) the waiters forward on their own at once,
//! never queued behind each other. A miss flight is sealed as the leader's entry goes to the
//! store: by the time the store has it, an invalidation may have dropped it, and a request that
//! began after that invalidation must not get it. Misses joining a sealed flight are late: they
//! wait for the leader's write-back, then look the key up again, where the store's answer is
//! the truth (no second handler run, no entry from before an invalidation).

use crate::entry::Entry;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};
use tokio::sync::watch;

/// What came of a leader's inner call.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// Its response, stored (or being stored) as this entry.
    Entry(Arc<Entry>),
    /// Nothing to share: waiters forward on their own.
    Forward,
}

/// The flights in progress, by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Registration>>,
    /// Whether flights are sealed as their entry goes to the store (misses' flights; a
    /// refresh's waiters share nothing, so its flights need not be).
    sealing: bool,
}

#[derive(Debug)]
struct Registration {
    receiver: watch::Receiver<Option<Outcome>>,
    sealed: bool,
}

/// A miss's part in a flight.
pub(crate) enum Role {
    /// Forward, and publish the outcome through this.
    Leader(Flight),
    /// Wait for the leader's outcome.
    Waiter(watch::Receiver<Option<Outcome>>),
    /// Joined after the leader's entry went to the store: wait for its write-back to end, then
    /// look the key up again (never take the leader's entry).
    Late(watch::Receiver<Option<Outcome>>),
}

/// A leader's handle: publishes its outcome, and on drop ends the flight (publishing
/// [`Outcome::Forward`] if nothing was published).
pub(crate) struct Flight {
    flights: Arc<Flights>,
    key: String,
    sender: watch::Sender<Option<Outcome>>,
}

impl Flights {
    /// The flights of misses, sealed as their entry goes to the store.
    pub(crate) fn sealing() -> Self {
        Self {
            sealing: true,
            ..Self::default()
        }
    }

    /// Joins the flight for `key`, or starts one.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(registration) = map.get(key) {
            let receiver = registration.receiver.clone();
            return match registration.sealed {
                true => Role::Late(receiver),
                false => Role::Waiter(receiver),
            };
        }
        let (sender, receiver) = watch::channel(None);
        let registration = Registration {
            receiver,
            sealed: false,
        };
        map.insert(key.to_owned(), registration);
        Role::Leader(Flight {
            flights: self.clone(),
            key: key.to_owned(),
            sender,
        })
    }

    /// How many flights are in progress.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Flight {
    /// Publishes the outcome to the waiters.
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.sender.send_replace(Some(outcome));
    }

    /// Takes no more waiters, only late ones: called as the leader's entry is sent to the
    /// store. Every waiter joined before the store accepted the entry, so no invalidation
    /// acknowledged before its request began can have dropped it since (one that started
    /// before the leader's request began makes the store refuse the entry, and nothing is
    /// published).
    pub(crate) fn seal(&self) {
        if !self.flights.sealing {
            return;
        }
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(registration) = map.get_mut(&self.key) {
            if registration.receiver.same_channel(&self.sender.subscribe()) {
                registration.sealed = true;
            }
        }
    }

    /// Ends the flight's registration (a later flight for the key may have replaced it).
    fn unregister(&self) {
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only this flight's registration: a later flight for the key may have replaced it.
        if map.get(&self.key).is_some_and(|registration| {
            registration.receiver.same_channel(&self.sender.subscribe())
        }) {
            map.remove(&self.key);
        }
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.sender.send_if_modified(|outcome| {
            let unset = outcome.is_none();
            if unset {
                *outcome = Some(Outcome::Forward);
            }
            unset
        });
        self.unregister();
    }
}

/// Waits for the flight's outcome; `Outcome::Forward` if the leader vanished.
pub(crate) async fn outcome(mut receiver: watch::Receiver<Option<Outcome>>) -> Outcome {
    match receiver.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(Outcome::Forward),
        Err(_) => Outcome::Forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_then_waiters_then_late_ones_then_it_ends() {
        let flights = Arc::new(Flights::sealing());
        let Role::Leader(flight) = flights.join("k") else {
            panic!("the first is the leader")
        };
        let Role::Waiter(waiter) = flights.join("k") else {
            panic!("the second waits")
        };
        assert!(matches!(flights.join("other"), Role::Leader(_)));
        // Sealed as its entry goes to the store: a later miss is late (it will look the key
        // up again rather than take the entry, which may be invalidated by then).
        flight.seal();
        let Role::Late(late) = flights.join("k") else {
            panic!("a sealed flight takes late waiters only")
        };
        let entry = Entry::new(http::StatusCode::OK, Default::default(), "b".into());
        flight.publish(Outcome::Entry(Arc::new(entry)));
        assert!(matches!(outcome(waiter).await, Outcome::Entry(_)));
        drop(flight);
        assert!(
            matches!(outcome(late).await, Outcome::Entry(_)),
            "told it ended"
        );
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join("k"), Role::Leader(_)), "a new flight");
    }

    #[tokio::test]
    async fn refresh_flights_are_never_sealed() {
        let flights = Arc::new(Flights::default());
        let Role::Leader(flight) = flights.join("k") else {
            panic!()
        };
        flight.seal();
        assert!(matches!(flights.join("k"), Role::Waiter(_)));
    }

    #[tokio::test]
    async fn a_leader_dropped_unpublished_sends_waiters_forward() {
        let flights = Arc::new(Flights::default());
        let Role::Leader(flight) = flights.join("k") else {
            panic!()
        };
        let Role::Waiter(waiter) = flights.join("k") else {
            panic!()
        };
        drop(flight);
        assert!(matches!(outcome(waiter).await, Outcome::Forward));
        assert!(matches!(flights.join("k"), Role::Leader(_)), "a new flight");
    }
}
