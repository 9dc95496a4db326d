//! [`Cache`]: decides per request whether to pass through, bypass, or look up.

use crate::{
    body::ResponseBody,
    future::ResponseFuture,
    key::request_key,
    layer::{CacheLayer, Shared},
    policy::Policy,
    stats::Counters,
    storable::{check_request, Bypass},
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
/// See the [crate docs](crate) for the request path and [`CacheLayer`] for configuration.
#[derive(Clone, Debug)]
pub struct Cache<S> {
    inner: S,
    shared: Arc<Shared>,
    policy: Arc<Policy>,
}

impl<S> Cache<S> {
    /// Wraps `inner` with the store, keys and policy of `layer`.
    pub fn new(inner: S, layer: CacheLayer) -> Self {
        Self {
            inner,
            shared: layer.shared,
            policy: layer.policy,
        }
    }

    /// Returns a new [`Layer`](tower_layer::Layer) that wraps services with a `Cache` middleware.
    pub fn layer(store: impl crate::Store, keys: crate::KeyFactory) -> CacheLayer {
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

impl<ReqBody, ResBody, S> Service<Request<ReqBody>> for Cache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body<Data = Bytes>,
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
            return ResponseFuture::passthrough(self.inner.call(req));
        };
        let (parts, body) = req.into_parts();
        let mut key = self.shared.settings.keys.start(&policy.namespace);
        let checked = check_request(policy, &parts).and_then(|()| {
            if policy.entity.push_encoded(&parts, &mut key) {
                Ok(())
            } else {
                Err(Bypass::NoEntity)
            }
        });
        let body_len = body_to_read(&body, policy.max_request_body);
        if let Err(reason) = checked.and(body_len.map(|_| ())) {
            Counters::bump(&self.shared.counters.bypasses);
            let req = Request::from_parts(parts, body);
            return ResponseFuture::bypass(self.inner.call(req), &self.shared, reason);
        }
        // The service that passed `poll_ready` goes with the request; a clone stays here.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let lookup = Lookup {
            service,
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            stored_method,
            key_start: key,
        };
        match body_len {
            Ok(0) => ResponseFuture::lookup(lookup, parts, body, Bytes::new()),
            _ => ResponseFuture::read_body(lookup, parts, body),
        }
    }
}

/// What a request that is looked up carries from `call` into its future.
pub(crate) struct Lookup<S> {
    pub(crate) service: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) stored_method: http::Method,
    /// The key up to and including the encoded entity.
    pub(crate) key_start: String,
}

impl<S> Lookup<S> {
    /// The key and request identity for the request head and its (fully read) body.
    pub(crate) fn key(
        &mut self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> (crate::CacheKey, Bytes) {
        let start = std::mem::take(&mut self.key_start);
        request_key(start, &self.policy, &self.stored_method, parts, body)
    }
}

/// How many body bytes must be read to key the request: 0 when it has none, its size when that
/// is known and within `limit`, else a bypass (the body then reaches the service unread).
fn body_to_read<B: Body>(body: &B, limit: usize) -> Result<u64, Bypass> {
    if body.is_end_stream() {
        return Ok(0);
    }
    match body.size_hint().upper() {
        Some(upper) if upper <= limit as u64 => Ok(upper),
        Some(_) => Err(Bypass::BodyTooLarge),
        None => Err(Bypass::BodySizeUnknown),
    }
}
