//! Stale-while-revalidate: the background refresh of a stale entry that was just served. One
//! per key in this process (and across instances with the route's lease); the request that
//! found the entry stale is replayed to the inner service, its response recorded and stored
//! as any miss's is.

use super::{forward::Finish, Pending};
use crate::{
    body::ResponseBody,
    coalesce::Role,
    miss_lease,
    request_body::RequestBody,
    status::{CacheStatus, Fwd},
    write_back::WritePlan,
};
use bytes::Bytes;
use http::{Method, Request, Response};
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
    if pending.request.method() == Method::HEAD {
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
                match miss_lease::try_take(pending.runtime.clone(), key, bound).await {
                    Some(lease) => Some(lease),
                    // Another instance is refreshing it.
                    None => return,
                }
            }
            None => None,
        };
        let Pending {
            mut service,
            runtime,
            policy,
            request,
            key,
            identity,
            ..
        } = pending;
        let flight = Some(flight);
        let plan = WritePlan::new(&runtime, &policy, key, identity, flight, lease);
        let finish = Finish {
            runtime,
            status: CacheStatus::forward(Fwd::Stale),
            store: Some((policy, plan)),
        };
        let Ok(response) = service.call(request).await else {
            return;
        };
        drain(finish.finish(response).into_body()).await;
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
