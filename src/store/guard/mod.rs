//! The guards that keep a slow or failing store from taking the app down: the circuit breaker
//! around lookups (and around each cluster node), the lookup deadlines, and the write budget
//! that bounds the write-backs in flight.

pub(crate) mod breaker;
pub(crate) mod budget;
pub(crate) mod deadline;
