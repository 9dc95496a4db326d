//! [`ResponseFuture`]: one request's way through the cache, a small poll over its states.

use super::{
    coalesced,
    forward::{finished, forward, Finish, Forwarded},
    keying::request_key,
    lookup::{resolve, Lookup, Resolution},
    pending::{Keyed, Pending},
    read_body::{BodyRead, ReadBody},
    refresh,
    state::{State, StateProj},
};
use crate::{
    body::{RequestBody, ResponseBody},
    coalesce::{
        flight::{outcome, Flight, Outcome, Role},
        lease::{self, Leased, MissLease},
    },
    hit::{self, CacheStatus, StaleWindow},
    invalidate::{on_unsafe, Invalidation},
    observe::event::Bypass,
    runtime::Runtime,
    store::guard::breaker::Admission,
};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
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
        let bodies = &runtime.bodies;
        let (key, identity, inputs) = request_key(
            key_start,
            &policy,
            &stored_method,
            &parts,
            body_bytes,
            bodies,
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
                inputs,
                admission,
                stale: None,
            }),
        }
    }

    /// A request whose body cannot be keyed: forwarded with what was read and the rest.
    fn unkeyable(keyed: Keyed<S>, body: RequestBody<ReqBody>, reason: Bypass) -> Self {
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

    /// A looked-up request that was not a hit: joins its key's flight (leads it, or waits for
    /// its leader) when coalescing is on, else forwards.
    fn miss(pending: Pending<S, ReqBody>, status: CacheStatus) -> Self {
        let runtime = &pending.runtime;
        let flights = runtime.flights.as_ref().filter(|_| !pending.is_head());
        let Some(flights) = flights else {
            return State::forward(pending, status, None, None);
        };
        match flights.join(pending.key.as_str()) {
            Role::Leader(flight) => match pending.policy.lease {
                Some(bound) => State::Leasing {
                    leased: lease::take(runtime.clone(), pending.key.as_str().to_owned(), bound),
                    pending: Some((pending, status, flight)),
                },
                None => State::forward(pending, status, Some(flight), None),
            },
            Role::Waiter(receiver) => State::waiting(pending, status, receiver, false),
            Role::Late(receiver) => State::waiting(pending, status, receiver, true),
        }
    }

    /// Waits (bounded) for the outcome of the flight `receiver` follows.
    fn waiting(
        pending: Pending<S, ReqBody>,
        status: CacheStatus,
        receiver: tokio::sync::watch::Receiver<Option<Outcome>>,
        late: bool,
    ) -> Self {
        let timeout = pending.runtime.coalescing_timeout;
        let wait = tokio::time::timeout(timeout, outcome(receiver));
        State::Waiting {
            outcome: Box::pin(async move { wait.await.ok() }),
            pending: Some((pending, status)),
            late,
        }
    }

    /// Looks `pending` (a miss reported as `status`) up again, after the flight it joined
    /// late: the store has the leader's entry, or it was invalidated since, and then the
    /// request forwards.
    fn look_again(pending: Pending<S, ReqBody>, status: CacheStatus) -> Self {
        let runtime = &pending.runtime;
        State::LookAgain {
            lookup: Lookup::start(runtime, &pending.policy.namespace, &pending.key),
            pending: Some((pending, status)),
        }
    }

    /// Calls the inner service for a looked-up request that was not a hit.
    fn forward(
        pending: Pending<S, ReqBody>,
        status: CacheStatus,
        flight: Option<Flight>,
        lease: Option<MissLease>,
    ) -> Self {
        let Forwarded {
            future,
            finish,
            stale,
        } = forward(pending, status, flight, lease);
        State::Forward {
            future,
            finish: Some(finish),
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
        const DONE: &str = "polled after completion";
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::ReadBody { read, keyed } => {
                    let read = ready!(read.poll_read(cx));
                    let keyed = keyed.take().expect(DONE);
                    match read {
                        BodyRead::Complete(bytes) => {
                            let body = RequestBody::replayed(bytes.clone(), None, None, None);
                            State::look_up(keyed, body, &bytes)
                        }
                        BodyRead::Unkeyable(body, reason) => State::unkeyable(keyed, body, reason),
                    }
                }
                StateProj::Lookup { lookup, pending } => {
                    let runtime = &pending.as_ref().expect(DONE).runtime;
                    let found = ready!(lookup.poll_lookup(cx, runtime));
                    let mut pending = pending.take().expect(DONE);
                    let (runtime, now) = (&pending.runtime, SystemTime::now());
                    let (resolution, event) = resolve(
                        found,
                        now,
                        runtime,
                        pending.admission,
                        &pending.identity,
                        pending.coding_check(),
                    );
                    lookup.report(runtime, &pending.policy.stats, event);
                    let name = &runtime.name;
                    if let Resolution::Fresh(_) | Resolution::Stale(_) = resolution {
                        let namespace = &pending.policy.stats.namespace;
                        runtime.hot_keys.hit(namespace, pending.key.as_str());
                    }
                    match resolution {
                        Resolution::Fresh(entry) => {
                            let refresh = pending.policy.refresh_ahead.is_some_and(|beta| {
                                let left = entry.remaining_ttl(now);
                                refresh::early(left, entry.compute_time(), beta)
                            });
                            let request = &pending.request;
                            let (method, headers) = (request.method(), request.headers());
                            let response = hit::fresh(entry, method, headers, now, name);
                            if refresh {
                                refresh::start(pending);
                            }
                            return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                        }
                        Resolution::Stale(entry) => {
                            let window = StaleWindow::WhileRevalidate;
                            let response = hit::stale(entry, pending.is_head(), window, now, name);
                            refresh::start(pending);
                            return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                        }
                        Resolution::Miss(status, stale) => {
                            pending.stale = stale;
                            State::miss(pending, status)
                        }
                    }
                }
                StateProj::LookAgain { lookup, pending } => {
                    let runtime = &pending.as_ref().expect(DONE).0.runtime;
                    let found = ready!(lookup.poll_lookup(cx, runtime));
                    let (pending, status) = pending.take().expect(DONE);
                    let (runtime, now) = (&pending.runtime, SystemTime::now());
                    let admission = pending.admission;
                    let checks = (&pending.identity, pending.coding_check());
                    let (resolution, _) =
                        resolve(found, now, runtime, admission, checks.0, checks.1);
                    // Counted once, as the miss it is: answered with the entry the leader
                    // stored, as a coalesced miss, or forwarded.
                    match resolution {
                        Resolution::Fresh(entry) => {
                            let response = coalesced::respond(&pending, entry, status);
                            return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                        }
                        Resolution::Stale(_) | Resolution::Miss(..) => {
                            State::forward(pending, status, None, None)
                        }
                    }
                }
                StateProj::Waiting {
                    outcome,
                    pending,
                    late,
                } => {
                    let outcome = ready!(outcome.as_mut().poll(cx));
                    let (pending, status) = pending.take().expect(DONE);
                    if *late {
                        // The store has the leader's entry, or an invalidation dropped it.
                        match outcome {
                            Some(Outcome::Entry(_)) => State::look_again(pending, status),
                            _ => State::forward(pending, status, None, None),
                        }
                    } else {
                        match coalesced::shared_entry(outcome, &pending) {
                            Some(entry) => {
                                let response = coalesced::respond(&pending, entry, status);
                                return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                            }
                            // Nothing to share, or waited long enough: on its own, at once.
                            None => State::forward(pending, status, None, None),
                        }
                    }
                }
                StateProj::Leasing { leased, pending } => {
                    let leased = ready!(leased.as_mut().poll(cx));
                    let (pending, status, flight) = pending.take().expect(DONE);
                    let (stored, lease) = match leased {
                        Leased::Holder(lease) => (None, Some(lease)),
                        Leased::Filled(bytes) => (coalesced::stored_entry(bytes, &pending), None),
                        Leased::Forward => (None, None),
                    };
                    match stored {
                        // Another instance stored it: served as a collapsed miss, and to this
                        // instance's waiters too.
                        Some(entry) => {
                            flight.publish(Outcome::Entry(Arc::new(entry.clone())));
                            let response = coalesced::respond(&pending, entry, status);
                            return Poll::Ready(Ok(response.map(ResponseBody::cached)));
                        }
                        None => State::forward(pending, status, Some(flight), lease),
                    }
                }
                StateProj::Forward {
                    future,
                    finish,
                    stale,
                } => {
                    let result = ready!(future.poll(cx));
                    return Poll::Ready(finished(result, finish.take(), stale.take()));
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
                                running: Box::pin(on_unsafe::run(runtime, invalidation)),
                                response: Some(response),
                            }
                        }
                        _ => return Poll::Ready(Ok(response.map(ResponseBody::inner))),
                    }
                }
                StateProj::Invalidating { running, response } => {
                    ready!(running.as_mut().poll(cx));
                    let response = response.take().expect(DONE);
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
            };
            this.state.set(next);
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<RequestBody<ReqBody>>>,
    ReqBody: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("state", &self.state.describe())
            .finish()
    }
}
