//! The states of a [`ResponseFuture`](super::ResponseFuture): what one request waits for.

use super::{
    forward::Finish,
    lookup::Lookup,
    pending::{Keyed, Pending, StaleIfError},
    read_body::ReadBody,
};
use crate::{
    body::RequestBody,
    coalesce::{
        flight::{Flight, Outcome},
        lease::Leased,
    },
    hit::CacheStatus,
    invalidate::Invalidation,
    runtime::Runtime,
};
use http::Request;
use http_body::Body;
use pin_project_lite::pin_project;
use std::{future::Future, pin::Pin, sync::Arc};
use tower_service::Service;

/// A boxed future of a step that cannot be named (a store call, a timer).
pub(super) type Step<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    #[project = StateProj]
    pub(super) enum State<S, ReqBody>
    where
        S: Service<Request<RequestBody<ReqBody>>>,
        ReqBody: Body,
    {
        // Reading the request body (bounded) to key it.
        ReadBody {
            read: ReadBody<ReqBody>,
            keyed: Option<Keyed<S>>,
        },
        // Waiting for the store, at most until the lookup timeout.
        Lookup {
            lookup: Lookup,
            pending: Option<Pending<S, ReqBody>>,
        },
        // Waiting for the inner service; `finish` is `None` for requests the route does not cache.
        Forward {
            #[pin]
            future: S::Future,
            finish: Option<Finish>,
            // A stale entry to serve instead if the inner service fails (stale-if-error).
            stale: Option<StaleIfError>,
        },
        // A miss that joined its key's flight late, looking the key up again once the
        // leader's write-back ended.
        LookAgain {
            lookup: Lookup,
            pending: Option<(Pending<S, ReqBody>, CacheStatus)>,
        },
        // A flight's leader taking its key's cross-instance lease, or waiting on its holder.
        Leasing {
            leased: Step<Leased>,
            pending: Option<(Pending<S, ReqBody>, CacheStatus, Flight)>,
        },
        // A miss waiting for the leader of its key's flight (bounded); a late one (joined
        // once the leader's entry went to the store) looks the key up again after it.
        Waiting {
            outcome: Step<Option<Outcome>>,
            pending: Option<(Pending<S, ReqBody>, CacheStatus)>,
            late: bool,
        },
        // An unsafe request whose success invalidates its entity: waiting for the inner service.
        Unsafe {
            #[pin]
            future: S::Future,
            invalidation: Option<(Arc<Runtime>, Invalidation)>,
        },
        // Its response waits for the invalidation (bounded).
        Invalidating {
            running: Step<()>,
            response: Option<S::Response>,
        },
    }
}

impl<S, ReqBody> State<S, ReqBody>
where
    S: Service<Request<RequestBody<ReqBody>>>,
    ReqBody: Body,
{
    /// What the state waits for, for `Debug`.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            State::ReadBody { .. } => "reading the request body",
            State::Lookup { .. } => "looking up",
            State::LookAgain { .. } => "looking up again after a coalesced miss",
            State::Waiting { .. } => "waiting for a coalesced miss",
            State::Leasing { .. } => "taking or waiting on a miss lease",
            State::Forward { finish: None, .. } => "passing through",
            State::Forward { .. } | State::Unsafe { .. } => "waiting for the inner service",
            State::Invalidating { .. } => "invalidating",
        }
    }
}
