//! What a request on a cached route carries from one step of its future to the next.

use super::keying::KeyInputs;
use crate::{
    body::RequestBody, entry::Entry, key::CacheKey, key::Identity, observe::stats::CacheCounters,
    policy::Policy, runtime::Runtime, store::guard::breaker::Admission,
};
use http::{request, Method, Request};
use http_body::Body;
use std::sync::Arc;

/// A request on a cached route that is to be keyed: what `Cache::call` hands its future.
pub(crate) struct Keyed<S> {
    /// The service that passed `poll_ready`.
    pub(crate) service: S,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) policy: Arc<Policy>,
    /// The method the request's entry is stored under (`GET` for `HEAD`).
    pub(crate) stored_method: Method,
    /// The key up to and including the encoded entity.
    pub(crate) key_start: String,
    pub(crate) parts: request::Parts,
}

/// A keyed request: looked up, or about to be forwarded.
pub(super) struct Pending<S, ReqBody: Body> {
    pub(super) service: S,
    pub(super) runtime: Arc<Runtime>,
    pub(super) policy: Arc<Policy>,
    pub(super) request: Request<RequestBody<ReqBody>>,
    pub(super) key: CacheKey,
    pub(super) identity: Identity,
    /// What keyed it besides the key: for a response that varies on more.
    pub(super) inputs: KeyInputs,
    pub(super) admission: Admission,
    /// A stale entry within the stale-if-error window, to serve if the inner service fails.
    pub(super) stale: Option<Entry>,
}

impl<S, ReqBody: Body> Pending<S, ReqBody> {
    /// Whether the request is a `HEAD` (answered from `GET` entries, never stored).
    pub(super) fn is_head(&self) -> bool {
        self.request.method() == Method::HEAD
    }

    /// The request's headers when an entry must be in a content coding they accept (the key
    /// holds the coding a server would pick, not the header itself).
    pub(super) fn coding_check(&self) -> Option<&http::HeaderMap> {
        self.inputs
            .negotiates_coding()
            .then(|| self.request.headers())
    }
}

/// A stale entry a forwarded request falls back on if the inner service fails.
pub(super) struct StaleIfError {
    pub(super) entry: Entry,
    pub(super) head: bool,
    /// The counters of the route's namespace.
    pub(super) namespace: Arc<CacheCounters>,
}
