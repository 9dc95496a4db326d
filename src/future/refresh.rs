//! Background refreshes of an entry that was just served: stale within its
//! stale-while-revalidate window, or fresh but drawn for refresh-ahead ([`early`]). One per key
//! in this process (and across instances with the route's lease); the request that found the
//! entry is replayed to the inner service, its response recorded and stored as any miss's is.

use super::{forward::forward, pending::Pending};
use crate::{
    body::{RequestBody, ResponseBody},
    coalesce::{flight::Role, lease},
    hit::{CacheStatus, Fwd},
};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use std::{pin::Pin, time::Duration};
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

/// Whether a fresh hit on an entry with `left` to its TTL, whose inner service took `compute`,
/// refreshes it now: XFetch's test `-compute * beta * ln(u) >= left` for a uniform `u` in
/// (0, 1], so the chance `exp(-left / (compute * beta))` rises as expiry nears.
pub(crate) fn early(left: Duration, compute: Duration, beta: f64) -> bool {
    if compute.is_zero() {
        return false;
    }
    let u = uniform();
    -compute.as_secs_f64() * beta * u.ln() >= left.as_secs_f64()
}

/// A uniform draw in (0, 1] from a per-thread xorshift64* generator.
fn uniform() -> f64 {
    use std::{
        cell::Cell,
        hash::{BuildHasher, RandomState},
    };
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0u8) | 1);
    }
    let next = STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    });
    // The top 53 bits, as (0, 1].
    ((next >> 11) as f64 + 1.0) / (1u64 << 53) as f64
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
