//! A miss answered with the entry another request for its key fetched: the leader of its
//! flight in this process, or another instance holding the key's lease.

use super::pending::Pending;
use crate::{
    coalesce::flight::Outcome,
    entry::Entry,
    hit::{self, CacheStatus, Cached},
    negotiate::coding::coding_accepted,
    observe::event::Event,
};
use bytes::Bytes;
use http_body::Body;
use std::time::SystemTime;

/// The leader's entry, if its flight ended with one that answers `pending`.
pub(super) fn shared_entry<S, ReqBody: Body>(
    outcome: Option<Outcome>,
    pending: &Pending<S, ReqBody>,
) -> Option<Entry> {
    match outcome {
        Some(Outcome::Entry(entry)) if answers(&entry, pending) => Some(Entry::clone(&entry)),
        _ => None,
    }
}

/// The entry another instance stored, if it decodes and answers `pending`.
pub(super) fn stored_entry<S, ReqBody: Body>(
    bytes: Bytes,
    pending: &Pending<S, ReqBody>,
) -> Option<Entry> {
    Entry::decode(bytes)
        .ok()
        .filter(|entry| answers(entry, pending))
}

/// Whether `entry` was stored for `pending`'s inputs, in a coding it accepts.
fn answers<S, ReqBody: Body>(entry: &Entry, pending: &Pending<S, ReqBody>) -> bool {
    entry.identity().as_ref() == pending.identity.as_slice()
        && pending
            .coding_check()
            .is_none_or(|request| coding_accepted(entry, request))
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
