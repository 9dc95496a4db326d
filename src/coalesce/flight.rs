//! In-process request coalescing: concurrent misses for one key make one inner call.
//!
//! The first miss for a key leads: it forwards, and its [`Flight`] publishes what came of it.
//! Later misses for the key wait (bounded) for that outcome: the leader's entry when its
//! response was storable and complete, served to each waiter whose request it answers; else
//! (not storable, failed, cancelled, client gone) the waiters forward on their own at once,
//! never queued behind each other. Misses arriving once the leader's entry is on its way to the
//! store start a flight of their own: by the time the store has it, an invalidation may have
//! dropped it, and a request that began after that invalidation must not get it.

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
    map: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
}

/// A miss's part in a flight.
pub(crate) enum Role {
    /// Forward, and publish the outcome through this.
    Leader(Flight),
    /// Wait for the leader's outcome.
    Waiter(watch::Receiver<Option<Outcome>>),
}

/// A leader's handle: publishes its outcome, and on drop ends the flight (publishing
/// [`Outcome::Forward`] if nothing was published).
pub(crate) struct Flight {
    flights: Arc<Flights>,
    key: String,
    sender: watch::Sender<Option<Outcome>>,
}

impl Flights {
    /// Joins the flight for `key`, or starts one.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(receiver) = map.get(key) {
            return Role::Waiter(receiver.clone());
        }
        let (sender, receiver) = watch::channel(None);
        map.insert(key.to_owned(), receiver);
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

    /// Takes no more waiters: called as the leader's entry is sent to the store. Every waiter
    /// joined before the store accepted the entry, so no invalidation acknowledged before its
    /// request began can have dropped it since (one that started before the leader's request
    /// began makes the store refuse the entry, and nothing is published).
    pub(crate) fn seal(&self) {
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only this flight's registration: a later flight for the key may have replaced it.
        if map
            .get(&self.key)
            .is_some_and(|receiver| receiver.same_channel(&self.sender.subscribe()))
        {
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
        self.seal();
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
    async fn one_leader_then_waiters_then_it_ends() {
        let flights = Arc::new(Flights::default());
        let Role::Leader(flight) = flights.join("k") else {
            panic!("the first is the leader")
        };
        let Role::Waiter(waiter) = flights.join("k") else {
            panic!("the second waits")
        };
        assert!(matches!(flights.join("other"), Role::Leader(_)));
        // Sealed as its entry goes to the store: a later miss leads a flight of its own
        // (the entry may be invalidated by the time the store has it).
        flight.seal();
        assert_eq!(flights.len(), 0, "unregistered");
        let Role::Leader(late) = flights.join("k") else {
            panic!("a sealed flight takes no more waiters")
        };
        let entry = Entry::new(http::StatusCode::OK, Default::default(), "b".into());
        flight.publish(Outcome::Entry(Arc::new(entry)));
        assert!(matches!(outcome(waiter).await, Outcome::Entry(_)));
        drop(flight);
        assert_eq!(flights.len(), 1, "the late leader's flight is untouched");
        drop(late);
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
