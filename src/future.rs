//! [`ResponseFuture`]: read the body (when keyed), look up, then answer or forward.

use crate::{
    body::ResponseBody,
    breaker::Admission,
    entry::Entry,
    key::CacheKey,
    layer::Shared,
    policy::Policy,
    service::Lookup,
    stats::Counters,
    status::{CacheStatus, Fwd, CACHE_STATUS},
    storable::{response_storable, Bypass},
    store::{StoreError, StoreFuture},
    write_back::WritePlan,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{header, request, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::SystemTime,
};
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// Response future for [`Cache`](crate::Cache).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // Reading the request body (bounded) to key it.
        ReadBody {
            #[pin]
            body: ReqBody,
            buf: BytesMut,
            pending: Option<(Lookup<S>, request::Parts)>,
        },
        // Waiting for the store, at most until the deadline.
        Lookup {
            lookup: StoreFuture<Option<Bytes>>,
            #[pin]
            deadline: Sleep,
            pending: Option<Pending<S, ReqBody>>,
        },
        // Waiting for the inner service; `forward` is `None` for requests the route does not cache.
        Forward {
            #[pin]
            future: S::Future,
            forward: Option<Forward>,
        },
        // Answered without the inner service: a hit.
        Answered {
            answer: Option<Answer>,
        },
    }
}

/// A request whose key is known, waiting for its lookup.
struct Pending<S, ReqBody> {
    lookup: Lookup<S>,
    admission: Admission,
    request: Request<ReqBody>,
    key: CacheKey,
    identity: Bytes,
}

/// How to finish a forwarded response: its `Cache-Status`, and where to store it.
struct Forward {
    shared: Arc<Shared>,
    policy: Option<Arc<Policy>>,
    status: CacheStatus,
    plan: Option<WritePlan>,
}

/// A response made by the cache itself.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
    ReqBody: Body,
{
    /// A request the route does not cache: the inner future, untouched.
    pub(crate) fn passthrough(future: S::Future) -> Self {
        Self::state(State::Forward {
            future,
            forward: None,
        })
    }

    /// A request the route caches, forwarded without a lookup.
    pub(crate) fn bypass(future: S::Future, shared: &Arc<Shared>, reason: Bypass) -> Self {
        Self::state(State::Forward {
            future,
            forward: Some(Forward {
                shared: shared.clone(),
                policy: None,
                status: CacheStatus::forward(Fwd::Bypass).with_detail(reason.detail()),
                plan: None,
            }),
        })
    }

    /// Reads the body, then looks up.
    pub(crate) fn read_body(lookup: Lookup<S>, parts: request::Parts, body: ReqBody) -> Self {
        let capacity = body.size_hint().lower().min(64 * 1024) as usize;
        Self::state(State::ReadBody {
            body,
            buf: BytesMut::with_capacity(capacity),
            pending: Some((lookup, parts)),
        })
    }

    /// Looks up at once: the body (if any) is already in `body_bytes`.
    pub(crate) fn lookup(
        lookup: Lookup<S>,
        parts: request::Parts,
        body: ReqBody,
        body_bytes: Bytes,
    ) -> Self {
        Self::state(State::lookup(lookup, parts, body, &body_bytes))
    }

    fn state(state: State<S, ReqBody>) -> Self {
        Self { state }
    }
}

impl<S, ReqBody> State<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Starts the lookup, unless the circuit breaker says to skip the store.
    fn lookup(
        mut lookup: Lookup<S>,
        parts: request::Parts,
        body: ReqBody,
        body_bytes: &[u8],
    ) -> Self {
        let (key, identity) = lookup.key(&parts, body_bytes);
        let admission = lookup.shared.breaker.admit();
        let pending = Pending {
            admission,
            request: Request::from_parts(parts, body),
            key,
            identity,
            lookup,
        };
        if admission == Admission::Denied {
            let counters = &pending.lookup.shared.counters;
            Counters::bump(&counters.misses);
            Counters::bump(&counters.circuit_open);
            let status = CacheStatus::forward(Fwd::Miss).with_detail("circuit-open");
            return Self::forward(pending, status);
        }
        State::Lookup {
            lookup: pending
                .lookup
                .shared
                .settings
                .store
                .get(pending.key.as_str()),
            deadline: tokio::time::sleep(pending.lookup.shared.settings.lookup_timeout),
            pending: Some(pending),
        }
    }

    /// Calls the inner service for a looked-up request that was not a hit.
    fn forward(pending: Pending<S, ReqBody>, status: CacheStatus) -> Self {
        let Pending {
            mut lookup,
            request,
            key,
            identity,
            ..
        } = pending;
        let plan = (request.method() != Method::HEAD).then(|| WritePlan {
            shared: lookup.shared.clone(),
            key,
            identity,
            ttl: lookup.policy.ttl,
            max_body: lookup.policy.max_response_body,
        });
        State::Forward {
            future: lookup.service.call(request),
            forward: Some(Forward {
                shared: lookup.shared,
                policy: Some(lookup.policy),
                status,
                plan,
            }),
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + From<Bytes>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::ReadBody {
                    mut body,
                    buf,
                    pending,
                } => {
                    let limit = pending
                        .as_ref()
                        .map_or(0, |(l, _)| l.policy.max_request_body);
                    let read = ready!(poll_read_body(body.as_mut(), buf, limit, cx));
                    let (lookup, parts) = pending.take().expect("polled after completion");
                    let next = match read {
                        Ok(()) => {
                            let bytes = std::mem::take(buf).freeze();
                            State::lookup(lookup, parts, ReqBody::from(bytes.clone()), &bytes)
                        }
                        // The body is gone, so the inner service cannot have it: answer as a
                        // server that failed to read the request would.
                        Err(()) => {
                            Counters::bump(&lookup.shared.counters.bypasses);
                            let status = CacheStatus::forward(Fwd::Bypass)
                                .with_detail(Bypass::BodyError.detail());
                            let mut headers = HeaderMap::new();
                            headers.insert(
                                CACHE_STATUS,
                                status.header_value(&lookup.shared.settings.name),
                            );
                            State::Answered {
                                answer: Some(Answer {
                                    status: StatusCode::BAD_REQUEST,
                                    headers,
                                    body: None,
                                }),
                            }
                        }
                    };
                    this.state.set(next);
                }
                StateProj::Lookup {
                    lookup,
                    deadline,
                    pending,
                } => {
                    let found = match lookup.as_mut().poll(cx) {
                        Poll::Ready(found) => found,
                        Poll::Pending => {
                            ready!(deadline.poll(cx));
                            Err(StoreError::new(
                                crate::StoreErrorKind::Timeout,
                                "lookup timed out",
                            ))
                        }
                    };
                    let pending = pending.take().expect("polled after completion");
                    let breaker = &pending.lookup.shared.breaker;
                    match &found {
                        Err(error) if error.is_outage() => breaker.on_failure(pending.admission),
                        // The store answered (perhaps with an error about this one key, such as
                        // a wrong-type value that the write-back will overwrite): it is up.
                        _ => breaker.on_success(),
                    }
                    let next = match decide(found, &pending) {
                        Decision::Hit(answer) => State::Answered {
                            answer: Some(answer),
                        },
                        Decision::Forward(status) => State::forward(pending, status),
                    };
                    this.state.set(next);
                }
                StateProj::Forward { future, forward } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(match forward.take() {
                        Some(forward) => forward.finish(response),
                        None => response.map(ResponseBody::inner),
                    }));
                }
                StateProj::Answered { answer } => {
                    let answer = answer.take().expect("polled after completion");
                    let mut response = Response::new(ResponseBody::cached(answer.body));
                    *response.status_mut() = answer.status;
                    *response.headers_mut() = answer.headers;
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// Reads `body` to its end into `buf`; `Err` if it fails or grows past `limit`.
fn poll_read_body<B: Body>(
    mut body: Pin<&mut B>,
    buf: &mut BytesMut,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<(), ()>> {
    loop {
        match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.remaining() > limit {
                        return Poll::Ready(Err(()));
                    }
                    buf.put(data);
                }
                if body.is_end_stream() {
                    return Poll::Ready(Ok(()));
                }
            }
            Some(Err(_)) => return Poll::Ready(Err(())),
            None => return Poll::Ready(Ok(())),
        }
    }
}

enum Decision {
    Hit(Answer),
    Forward(CacheStatus),
}

/// Turns a lookup's outcome into a hit, or the `Cache-Status` of a forwarded miss.
fn decide<S, B>(found: Result<Option<Bytes>, StoreError>, pending: &Pending<S, B>) -> Decision {
    let shared = &pending.lookup.shared;
    let counters = &shared.counters;
    let miss = |status: CacheStatus| {
        Counters::bump(&counters.misses);
        Decision::Forward(status)
    };
    let bytes = match found {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return miss(CacheStatus::forward(Fwd::UriMiss)),
        Err(error) => {
            Counters::bump(&counters.lookup_errors);
            tracing::debug!(key = %pending.key, %error, "cache lookup failed; treated as a miss");
            return miss(CacheStatus::forward(Fwd::Miss).with_detail(error.detail()));
        }
    };
    let entry = match Entry::decode(bytes) {
        Ok(entry) => entry,
        Err(error) => {
            Counters::bump(&counters.bad_entries);
            tracing::debug!(key = %pending.key, %error, "unreadable cache entry; overwriting");
            return miss(CacheStatus::forward(Fwd::Miss).with_detail("bad-entry"));
        }
    };
    if entry.identity != pending.identity {
        return miss(CacheStatus::forward(Fwd::VaryMiss));
    }
    Counters::bump(&counters.hits);
    let now = SystemTime::now();
    let age = entry.age(now).as_secs();
    let ttl = entry.remaining_ttl(now).as_secs();
    let mut headers = entry.headers;
    headers.reserve(3);
    // The stored body is complete, so its length is exact (and right for HEAD, which has none).
    headers.insert(header::CONTENT_LENGTH, number(entry.body.len() as u64));
    headers.insert(header::AGE, number(age));
    headers.append(
        CACHE_STATUS,
        CacheStatus::Hit { ttl }.header_value(&shared.settings.name),
    );
    let head = pending.request.method() == Method::HEAD;
    Decision::Hit(Answer {
        status: entry.status,
        headers,
        body: (!head).then_some(entry.body),
    })
}

/// A header value holding `n`, formatted without a heap allocation of its own.
fn number(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n)).expect("digits are a valid header value")
}

impl Forward {
    /// Adds `Cache-Status` to the inner response and, when it may be stored, records its body.
    fn finish<B: Body<Data = Bytes>>(self, response: Response<B>) -> Response<ResponseBody<B>> {
        let (mut parts, body) = response.into_parts();
        let write = match (self.plan, &self.policy) {
            (Some(plan), Some(policy)) if response_storable(policy, &parts) => plan.start(&parts),
            _ => None,
        };
        let status = if write.is_some() {
            self.status.stored()
        } else {
            self.status
        };
        parts.headers.append(
            CACHE_STATUS,
            status.header_value(&self.shared.settings.name),
        );
        let body = match write {
            Some(write) => ResponseBody::recorded(body, write),
            None => ResponseBody::inner(body),
        };
        Response::from_parts(parts, body)
    }
}
