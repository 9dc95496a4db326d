//! [`ResponseFuture`]: a small dispatcher over the steps of one request.
//!
//! A keyed request reads its body ([`read_body`]), is keyed (`keying.rs`) and looked up
//! ([`lookup`]); a hit is answered (`respond.rs`), anything else is forwarded to the inner
//! service and finished ([`forward`]): `Cache-Status`, and recording for the store.

mod forward;
mod lookup;
mod read_body;
mod refresh;

use crate::{
    body::ResponseBody,
    breaker::Admission,
    coalesce::{outcome, Flight, Outcome, Role},
    conditional,
    entry::Entry,
    event::{Bypass, Event},
    invalidation::Invalidation,
    invalidator,
    key::CacheKey,
    keying::{request_key, Identity},
    miss_lease::{self, Leased, MissLease},
    policy::Policy,
    request_body::RequestBody,
    respond,
    runtime::Runtime,
    stats::Counters,
    status::CacheStatus,
    write_back::WritePlan,
};
use bytes::Bytes;
use forward::Finish;
use http::{request, Method, Request, Response};
use http_body::Body;
use lookup::{resolve, Lookup, Resolution};
use pin_project_lite::pin_project;
use read_body::{BodyRead, ReadBody};
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::SystemTime,
};
use tower_service::Service;

pin_project! {
    /// Response future for [`Cache`](crate::Cache).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<RequestBody<ReqBody>>>,
        ReqBody: Body,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
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
        // A flight's leader taking its key's cross-instance lease, or waiting on its holder.
        Leasing {
            leased: Pin<Box<dyn Future<Output = Leased> + Send>>,
            pending: Option<(Pending<S, ReqBody>, CacheStatus, Flight)>,
        },
        // A miss waiting for the leader of its key's flight (bounded).
        Waiting {
            outcome: Pin<Box<dyn Future<Output = Option<Outcome>> + Send>>,
            pending: Option<(Pending<S, ReqBody>, CacheStatus)>,
        },
        // An unsafe request whose success invalidates its entity: waiting for the inner service.
        Unsafe {
            #[pin]
            future: S::Future,
            invalidation: Option<(Arc<Runtime>, Invalidation)>,
        },
        // Its response waits for the invalidation (bounded).
        Invalidating {
            running: Pin<Box<dyn Future<Output = ()> + Send>>,
            response: Option<S::Response>,
        },
    }
}

/// A request on a cached route that is to be keyed: what `call` hands its future.
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

/// A stale entry a forwarded request falls back on if the inner service fails.
struct StaleIfError {
    entry: Entry,
    head: bool,
    /// The counters of the route's namespace.
    namespace: Arc<Counters>,
}

/// A keyed request waiting for its lookup.
struct Pending<S, ReqBody: Body> {
    service: S,
    runtime: Arc<Runtime>,
    policy: Arc<Policy>,
    request: Request<RequestBody<ReqBody>>,
    key: CacheKey,
    identity: Identity,
    admission: Admission,
    /// A stale entry within the stale-if-error window, to serve if the inner service fails.
    stale: Option<Entry>,
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<RequestBody<ReqBody>>>,
    ReqBody: Body,
{
    /// A request the route does not cache: the inner future, untouched.
    pub(crate) fn passthrough(future: S::Future) -> Self {
        Self::from(State::Forward {
            future,
            finish: None,
            stale: None,
        })
    }

    /// An unsafe request the route does not cache: its success invalidates `invalidation`
    /// before the response goes out.
    pub(crate) fn invalidating(
        future: S::Future,
        runtime: Arc<Runtime>,
        invalidation: Invalidation,
    ) -> Self {
        Self::from(State::Unsafe {
            future,
            invalidation: Some((runtime, invalidation)),
        })
    }

    /// A request on a cached route forwarded without a lookup, reported with `status`.
    pub(crate) fn forwarded(future: S::Future, runtime: Arc<Runtime>, status: CacheStatus) -> Self {
        Self::from(State::forwarded(future, runtime, status))
    }

    /// A request to key: reads its body if it has one, then looks it up.
    pub(crate) fn keyed(keyed: Keyed<S>, body: ReqBody, read_body: bool) -> Self {
        if read_body {
            let limit = keyed.policy.max_request_body;
            return Self::from(State::ReadBody {
                read: ReadBody::new(body, limit),
                keyed: Some(keyed),
            });
        }
        Self::from(State::look_up(keyed, RequestBody::untouched(body), &[]))
    }

    fn from(state: State<S, ReqBody>) -> Self {
        Self { state }
    }
}

impl<S, ReqBody> State<S, ReqBody>
where
    S: Service<Request<RequestBody<ReqBody>>>,
    ReqBody: Body,
{
    fn forwarded(future: S::Future, runtime: Arc<Runtime>, status: CacheStatus) -> Self {
        State::Forward {
            future,
            finish: Some(Finish {
                runtime,
                status,
                store: None,
            }),
            stale: None,
        }
    }

    /// Keys the request (`body_bytes` is its whole body) and starts its lookup, unless the
    /// circuit breaker says to skip the store: then no key work is done at all.
    fn look_up(keyed: Keyed<S>, body: RequestBody<ReqBody>, body_bytes: &[u8]) -> Self {
        let Keyed {
            mut service,
            runtime,
            policy,
            stored_method,
            key_start,
            parts,
        } = keyed;
        let admission = runtime.breaker.admit();
        if admission == Admission::Denied {
            let status = runtime.circuit_open(&policy);
            let future = service.call(Request::from_parts(parts, body));
            return State::forwarded(future, runtime, status);
        }
        let (key, identity) = request_key(
            key_start,
            &policy,
            &stored_method,
            &parts,
            body_bytes,
            &runtime.bodies,
        );
        State::Lookup {
            lookup: Lookup::start(&runtime, &policy.namespace, &key),
            pending: Some(Pending {
                service,
                runtime,
                policy,
                request: Request::from_parts(parts, body),
                key,
                identity,
                admission,
                stale: None,
            }),
        }
    }

    /// A looked-up request that was not a hit: joins its key's flight (leads it, or waits for
    /// its leader) when coalescing is on, else forwards.
    fn miss(pending: Pending<S, ReqBody>, status: CacheStatus) -> Self {
        let runtime = &pending.runtime;
        let flights = runtime
            .flights
            .as_ref()
            .filter(|_| pending.request.method() != Method::HEAD);
        let Some(flights) = flights else {
            return State::forward(pending, status, None, None);
        };
        match flights.join(pending.key.as_str()) {
            Role::Leader(flight) => match pending.policy.lease {
                Some(bound) => State::Leasing {
                    leased: miss_lease::take(
                        pending.runtime.clone(),
                        pending.key.as_str().to_owned(),
                        bound,
                    ),
                    pending: Some((pending, status, flight)),
                },
                None => State::forward(pending, status, Some(flight), None),
            },
            Role::Waiter(receiver) => {
                let wait = tokio::time::timeout(runtime.coalescing_timeout, outcome(receiver));
                State::Waiting {
                    outcome: Box::pin(async move { wait.await.ok() }),
                    pending: Some((pending, status)),
                }
            }
        }
    }

    /// Calls the inner service for a looked-up request that was not a hit.
    fn forward(
        pending: Pending<S, ReqBody>,
        status: CacheStatus,
        flight: Option<Flight>,
        lease: Option<MissLease>,
    ) -> Self {
        let Pending {
            mut service,
            runtime,
            policy,
            request,
            key,
            identity,
            stale,
            ..
        } = pending;
        let head = request.method() == Method::HEAD;
        let stale = stale.map(|entry| StaleIfError {
            entry,
            head,
            namespace: policy.stats.clone(),
        });
        // HEAD is answered from GET entries but never stored: its response has no body.
        let store = (!head).then(|| {
            let plan = WritePlan::new(&runtime, &policy, key, identity, flight, lease);
            (policy, plan)
        });
        State::Forward {
            future: service.call(request),
            finish: Some(Finish {
                runtime,
                status,
                store,
            }),
            stale,
        }
    }
}

// `Send + 'static`: a stale entry's refresh runs in the background (stale-while-revalidate).
impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::ReadBody { read, keyed } => {
                    let read = ready!(read.poll_read(cx));
                    let keyed = keyed.take().expect("polled after completion");
                    match read {
                        BodyRead::Complete(bytes) => {
                            let body = RequestBody::replayed(bytes.clone(), None, None, None);
                            State::look_up(keyed, body, &bytes)
                        }
                        BodyRead::Unkeyable(body, reason) => unkeyable(keyed, body, reason),
                    }
                }
                StateProj::Lookup { lookup, pending } => {
                    let runtime = &pending.as_ref().expect("polled after completion").runtime;
                    let found = ready!(lookup.poll_lookup(cx, runtime));
                    let pending = pending.take().expect("polled after completion");
                    let runtime = &pending.runtime;
                    let now = SystemTime::now();
                    let (resolution, event) =
                        resolve(found, now, runtime, pending.admission, &pending.identity);
                    lookup.report(runtime, &pending.policy.stats, event);
                    match resolution {
                        Resolution::Fresh(entry) => {
                            let request = &pending.request;
                            let head = request.method() == Method::HEAD;
                            let not_modified = conditional::not_modified(
                                request.method(),
                                request.headers(),
                                entry.headers(),
                            );
                            let response =
                                respond::hit(entry, head, not_modified, now, &runtime.name);
                            return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                        }
                        Resolution::Stale(entry) => {
                            let head = pending.request.method() == Method::HEAD;
                            let ttl = entry.freshness(now);
                            let status = CacheStatus::Hit {
                                ttl,
                                detail: Some("stale-while-revalidate"),
                            };
                            let response =
                                respond::from_entry(entry, head, false, now, &runtime.name, status);
                            refresh::start(pending);
                            return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                        }
                        Resolution::Miss(status, stale) => {
                            let mut pending = pending;
                            pending.stale = stale;
                            State::miss(pending, status)
                        }
                    }
                }
                StateProj::Waiting { outcome, pending } => {
                    let outcome = ready!(outcome.as_mut().poll(cx));
                    let (pending, status) = pending.take().expect("polled after completion");
                    match outcome {
                        // The leader's response, if it answers this request's exact inputs.
                        Some(Outcome::Entry(entry))
                            if entry.identity().as_ref() == pending.identity.as_slice() =>
                        {
                            let entry = Entry::clone(&entry);
                            return Poll::Ready(Ok(collapsed(&pending, entry, status)));
                        }
                        // Nothing to share, or waited long enough: on its own, at once.
                        _ => State::forward(pending, status, None, None),
                    }
                }
                StateProj::Leasing { leased, pending } => {
                    let leased = ready!(leased.as_mut().poll(cx));
                    let (pending, status, flight) =
                        pending.take().expect("polled after completion");
                    match leased {
                        Leased::Holder(lease) => {
                            State::forward(pending, status, Some(flight), Some(lease))
                        }
                        Leased::Filled(bytes) => match Entry::decode(bytes) {
                            // Another instance stored it: served as a collapsed miss, and to
                            // this instance's waiters too.
                            Ok(entry)
                                if entry.identity().as_ref() == pending.identity.as_slice() =>
                            {
                                flight.publish(Outcome::Entry(Arc::new(entry.clone())));
                                return Poll::Ready(Ok(collapsed(&pending, entry, status)));
                            }
                            _ => State::forward(pending, status, Some(flight), None),
                        },
                        Leased::Forward => State::forward(pending, status, Some(flight), None),
                    }
                }
                StateProj::Forward {
                    future,
                    finish,
                    stale,
                } => {
                    let result = ready!(future.poll(cx));
                    let failed = match &result {
                        Err(_) => true,
                        Ok(response) => response.status().is_server_error(),
                    };
                    if let (true, Some(stale), Some(finish)) =
                        (failed, stale.take(), finish.as_ref())
                    {
                        // stale-if-error: the stale entry instead of the failure.
                        let runtime = &finish.runtime;
                        runtime
                            .counters
                            .count(&stale.namespace, Event::StaleIfError);
                        let now = SystemTime::now();
                        let status = CacheStatus::Hit {
                            ttl: stale.entry.freshness(now),
                            detail: Some("stale-if-error"),
                        };
                        let (entry, head) = (stale.entry, stale.head);
                        let response =
                            respond::from_entry(entry, head, false, now, &runtime.name, status);
                        return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                    }
                    let response = result?;
                    return Poll::Ready(Ok(match finish.take() {
                        Some(finish) => finish.finish(response),
                        None => response.map(ResponseBody::inner),
                    }));
                }
                StateProj::Unsafe {
                    future,
                    invalidation,
                } => {
                    let response = ready!(future.poll(cx))?;
                    let status = response.status();
                    match invalidation.take() {
                        Some((runtime, invalidation))
                            if status.is_success() || status.is_redirection() =>
                        {
                            State::Invalidating {
                                running: Box::pin(invalidate(runtime, invalidation)),
                                response: Some(response),
                            }
                        }
                        _ => return Poll::Ready(Ok(response.map(ResponseBody::inner))),
                    }
                }
                StateProj::Invalidating { running, response } => {
                    ready!(running.as_mut().poll(cx));
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
            };
            this.state.set(next);
        }
    }
}

/// The response of a miss answered with an entry another request fetched (coalesced).
fn collapsed<S, ReqBody, ResBody>(
    pending: &Pending<S, ReqBody>,
    entry: Entry,
    status: CacheStatus,
) -> Response<ResponseBody<ResBody>>
where
    ReqBody: Body,
{
    let runtime = &pending.runtime;
    runtime
        .counters
        .count(&pending.policy.stats, Event::Coalesced);
    let request = &pending.request;
    let not_modified =
        conditional::not_modified(request.method(), request.headers(), entry.headers());
    let now = SystemTime::now();
    let response = respond::from_entry(
        entry,
        false,
        not_modified,
        now,
        &runtime.name,
        status.collapsed(),
    );
    response.map(ResponseBody::cached)
}

/// The most an unsafe request's response waits for the invalidation it causes.
const UNSAFE_INVALIDATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the invalidation of a successful unsafe request; a failure is logged, not returned:
/// the request itself succeeded.
async fn invalidate(runtime: Arc<Runtime>, invalidation: Invalidation) {
    let running = invalidator::observed(&*runtime.store, &invalidation);
    let error = match tokio::time::timeout(UNSAFE_INVALIDATION_TIMEOUT, running).await {
        Ok(Ok(_)) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => {
            // Dropped before it ended: counted here as failed.
            crate::metrics::invalidation(invalidation.scope_label(), None);
            "timed out".to_owned()
        }
    };
    if let Some(suppressed) = runtime.unsafe_invalidation_warnings.admit() {
        tracing::warn!(%error, suppressed, "invalidation after an unsafe request failed");
    }
}

/// A request whose body cannot be keyed: forwarded with what was read and the rest.
fn unkeyable<S, ReqBody>(
    keyed: Keyed<S>,
    body: RequestBody<ReqBody>,
    reason: Bypass,
) -> State<S, ReqBody>
where
    S: Service<Request<RequestBody<ReqBody>>>,
    ReqBody: Body,
{
    let Keyed {
        mut service,
        runtime,
        policy,
        parts,
        ..
    } = keyed;
    let status = runtime.bypass(&policy, reason);
    let future = service.call(Request::from_parts(parts, body));
    State::forwarded(future, runtime, status)
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<RequestBody<ReqBody>>>,
    ReqBody: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::ReadBody { .. } => "reading the request body",
            State::Lookup { .. } => "looking up",
            State::Waiting { .. } => "waiting for a coalesced miss",
            State::Leasing { .. } => "taking or waiting on a miss lease",
            State::Forward { finish: None, .. } => "passing through",
            State::Forward { .. } | State::Unsafe { .. } => "waiting for the inner service",
            State::Invalidating { .. } => "invalidating",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
