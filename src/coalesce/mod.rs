//! Coalescing: concurrent misses for one key make one inner call, in the process ([`flight`]:
//! the first miss leads, the others wait for its entry) and across instances sharing the store
//! ([`lease`]: a short miss lease in the entry's slot, [`Policy::lease`](crate::Policy::lease)).

pub(crate) mod flight;
pub(crate) mod lease;
