//! Stale-while-revalidate: the background refresh of a stale entry that was just served. One
//! per key in this process (and across instances with the route's lease); the request that
//! found the entry stale is replayed to the inner service, its response recorded and stored
//! as any miss's is.

use super::{forward::forward, pending::Pending};
use crate::{
    body::{RequestBody, ResponseBody},
    coalesce::{flight::Role, lease},
    hit::{CacheStatus, Fwd},
};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use std::pin::Pin;
use tower_service::Service;

/// Starts the refresh of `pending`'s key, unless one is under way.
pub(super) fn start<S, ReqBody, ResBody>(pending: Pending<S, ReqBody>)
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    if pending.is_head() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Role::Leader(flight) = pending.runtime.refreshes.join(pending.key.as_str()) else {
        return;
    };
    handle.spawn(async move {
        let lease = match pending.policy.lease {
            Some(bound) => {
                let key = pending.key.as_str().to_owned();
                match lease::try_take(pending.runtime.clone(), key, bound).await {
                    Some(lease) => Some(lease),
                    // Another instance is refreshing it.
                    None => return,
                }
            }
            None => None,
        };
        let status = CacheStatus::forward(Fwd::Stale);
        let forwarded = forward(pending, status, Some(flight), lease);
        let Ok(response) = forwarded.future.await else {
            return;
        };
        drain(forwarded.finish.finish(response).into_body()).await;
    });
}

/// Reads `body` to its end (recording it for the store), dropping the frames.
async fn drain<B: Body<Data = Bytes>>(body: ResponseBody<B>) {
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|cx| Pin::as_mut(&mut body).poll_frame(cx)).await {
        if frame.is_err() {
            return;
        }
    }
}
