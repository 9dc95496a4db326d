//! A miss answered with the entry another request for its key fetched: the leader of its
//! flight in this process, or another instance holding the key's lease.

use super::pending::Pending;
use crate::{
    coalesce::flight::Outcome,
    entry::Entry,
    hit::{self, CacheStatus, Cached},
    key::Identity,
    observe::event::Event,
};
use bytes::Bytes;
use http_body::Body;
use std::time::SystemTime;

/// The leader's entry, if its flight ended with one that answers a request of `identity`.
pub(super) fn shared_entry(outcome: Option<Outcome>, identity: &Identity) -> Option<Entry> {
    match outcome {
        Some(Outcome::Entry(entry)) if entry.identity().as_ref() == identity.as_slice() => {
            Some(Entry::clone(&entry))
        }
        _ => None,
    }
}

/// The entry another instance stored, if it decodes and answers a request of `identity`.
pub(super) fn stored_entry(bytes: Bytes, identity: &Identity) -> Option<Entry> {
    Entry::decode(bytes)
        .ok()
        .filter(|entry| entry.identity().as_ref() == identity.as_slice())
}

/// The response of `pending`, a miss reported as `status`, answered with `entry`; counted as
/// coalesced.
pub(super) fn respond<S, ReqBody>(
    pending: &Pending<S, ReqBody>,
    entry: Entry,
    status: CacheStatus,
) -> Cached
where
    ReqBody: Body,
{
    let runtime = &pending.runtime;
    runtime
        .counters
        .count(&pending.policy.stats, Event::Coalesced);
    let request = &pending.request;
    let (method, headers) = (request.method(), request.headers());
    let now = SystemTime::now();
    hit::collapsed(entry, method, headers, status, now, &runtime.name)
}
