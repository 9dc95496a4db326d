//! The inner service of the hit benches: answers every request with its body as JSON, at once.
//! Shared by `benches/hit.rs` and `benches/metrics.rs` through `#[path]`.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use std::{
    convert::Infallible,
    future::{ready, Ready},
    task::{Context, Poll},
};
use tower::Service;

/// A named `service_fn`: the cache clones its inner service on every call, so a cheap clone
/// (one `Bytes`) keeps the figures about the cache rather than about boxing.
#[derive(Clone)]
pub struct Handler {
    pub body: Bytes,
}

impl<B> Service<Request<B>> for Handler {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        let mut response = Response::new(Full::new(self.body.clone()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        ready(Ok(response))
    }
}
