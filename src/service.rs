//! [`Cache`]: decides per request whether to pass through, bypass, or key and look up.

use crate::{
    body::{RequestBody, ResponseBody},
    future::{keying::key_start, Keyed, ResponseFuture},
    hit::CacheStatus,
    invalidate::on_unsafe,
    layer::CacheLayer,
    observe::event::Bypass,
    policy::Policy,
    rules::request::{body_needs_reading, check_request},
    runtime::Runtime,
};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// Middleware that answers requests from a cache store and stores the inner service's
/// responses in it.
///
/// The inner service receives the request with a [`RequestBody`]: the client's body, or the
/// bytes the cache read to key it followed by the rest. See the [crate docs](crate) for the
/// request path and [`CacheLayer`] for configuration.
#[derive(Clone, Debug)]
pub struct Cache<S> {
    inner: S,
    runtime: Arc<Runtime>,
    policy: Arc<Policy>,
    /// `{app}:{env}:{version}:{namespace}:{`, made once for the route.
    key_prefix: Arc<str>,
}

impl<S> Cache<S> {
    /// Wraps `inner` with the store, keys and policy of `layer`.
    pub fn new(inner: S, layer: CacheLayer) -> Self {
        let key_prefix = layer.runtime.keys.start(&layer.policy.namespace).into();
        Self {
            inner,
            runtime: layer.runtime,
            policy: layer.policy,
            key_prefix,
        }
    }

    /// Returns a new [`Layer`](tower_layer::Layer) that wraps services with a `Cache` middleware.
    pub fn layer(store: impl crate::store::Store, keys: crate::KeyFactory) -> CacheLayer {
        CacheLayer::new(store, keys)
    }

    /// Gets a reference to the underlying service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the underlying service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the underlying service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// `Send + 'static` because a stale entry's refresh (stale-while-revalidate) calls the inner
/// service in the background, as `tower::buffer` does; axum and hyper services are.
impl<ReqBody, ResBody, S> Service<Request<ReqBody>> for Cache<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let policy = &self.policy;
        let Some(stored_method) = policy.lookup_method(req.method()).cloned() else {
            // Not a method this route caches: untouched, no Cache-Status.
            if !policy.invalidate_on_unsafe || req.method().is_safe() {
                let future = self.inner.call(req.map(RequestBody::untouched));
                return ResponseFuture::passthrough(future);
            }
            let (parts, body) = req.into_parts();
            let invalidation = on_unsafe::invalidation(&self.runtime, policy, &parts);
            let req = Request::from_parts(parts, RequestBody::untouched(body));
            let future = self.inner.call(req);
            return match invalidation {
                Some(invalidation) => {
                    ResponseFuture::invalidating(future, self.runtime.clone(), invalidation)
                }
                None => ResponseFuture::passthrough(future),
            };
        };
        let (parts, body) = req.into_parts();
        let runtime = &self.runtime;
        let checked = check_request(policy, &parts)
            .and_then(|()| key_start(&self.key_prefix, policy, &parts).ok_or(Bypass::NoEntity))
            .and_then(|start| Ok((start, body_needs_reading(&body, policy.max_request_body)?)));
        let (key_start, read_body) = match checked {
            Ok(checked) => checked,
            Err(reason) => {
                let status = runtime.bypass(policy, reason);
                return self.forward(Request::from_parts(parts, body), status);
            }
        };
        if runtime.breaker.is_denying() {
            // The store is known to be down: no body read, no canonicalisation, no round trip.
            let status = runtime.circuit_open(policy);
            return self.forward(Request::from_parts(parts, body), status);
        }
        // The service that passed `poll_ready` goes with the request; a clone stays here.
        let clone = self.inner.clone();
        let keyed = Keyed {
            service: std::mem::replace(&mut self.inner, clone),
            runtime: runtime.clone(),
            policy: policy.clone(),
            stored_method,
            key_start,
            parts,
        };
        ResponseFuture::keyed(keyed, body, read_body)
    }
}

impl<S> Cache<S> {
    /// Forwards a request on a cached route without a lookup, reported with `status`.
    fn forward<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
        status: CacheStatus,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
        ReqBody: Body,
    {
        let future = self.inner.call(req.map(RequestBody::untouched));
        ResponseFuture::forwarded(future, self.runtime.clone(), status)
    }
}
