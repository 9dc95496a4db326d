//! Forwarding to the inner service and finishing its response: `Cache-Status`, recording the
//! body for the store when the route may store it, and stale-if-error when it failed.

use super::{
    keying::{Rekey, Rekeyed},
    pending::{Pending, StaleIfError},
};
use crate::{
    body::{RequestBody, ResponseBody},
    coalesce::{flight::Flight, lease::MissLease},
    hit::{self, CacheStatus, StaleWindow, CACHE_STATUS},
    observe::event::Event,
    policy::Policy,
    rules::{
        response::{freshness, response_storable},
        tags::response_tags,
    },
    runtime::Runtime,
    write_back::WritePlan,
};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use std::{sync::Arc, time::SystemTime};
use tower_service::Service;

/// How to finish a forwarded response of a cached route.
pub(super) struct Finish {
    pub(super) runtime: Arc<Runtime>,
    pub(super) status: CacheStatus,
    /// Where to store the response, when it was looked up (and so has a key), and what keyed
    /// it, for a response that varies on more than its key covered.
    pub(super) store: Option<(Arc<Policy>, WritePlan, Rekey)>,
}

/// A looked-up request on its way to the inner service.
pub(super) struct Forwarded<F> {
    pub(super) future: F,
    pub(super) finish: Finish,
    /// A stale entry to serve instead if the inner service fails (stale-if-error).
    pub(super) stale: Option<StaleIfError>,
}

/// Calls the inner service for a looked-up request that was not a hit, reported with `status`;
/// the response will be stored (unless it is a `HEAD`'s), and published to `flight`'s waiters.
pub(super) fn forward<S, ReqBody>(
    pending: Pending<S, ReqBody>,
    status: CacheStatus,
    flight: Option<Flight>,
    lease: Option<MissLease>,
) -> Forwarded<S::Future>
where
    S: Service<Request<RequestBody<ReqBody>>>,
    ReqBody: Body,
{
    let head = pending.is_head();
    let Pending {
        mut service,
        runtime,
        policy,
        request,
        key,
        identity,
        inputs,
        stale,
        ..
    } = pending;
    let stale = stale.map(|entry| StaleIfError {
        entry,
        head,
        namespace: policy.stats.clone(),
    });
    // HEAD is answered from GET entries but never stored: its response has no body.
    let store = (!head).then(|| {
        let plan = WritePlan::new(&runtime, &policy, key, identity, flight, lease);
        let rekey = Rekey::new(inputs, &request);
        (policy, plan, rekey)
    });
    Forwarded {
        future: service.call(request),
        finish: Finish {
            runtime,
            status,
            store,
        },
        stale,
    }
}

/// The inner service's `result`, finished; a failure (an error or a 5xx) is replaced by the
/// `stale` entry when there is one.
pub(super) fn finished<ResBody, E>(
    result: Result<Response<ResBody>, E>,
    finish: Option<Finish>,
    stale: Option<StaleIfError>,
) -> Result<Response<ResponseBody<ResBody>>, E>
where
    ResBody: Body<Data = Bytes>,
{
    let failed = match &result {
        Err(_) => true,
        Ok(response) => response.status().is_server_error(),
    };
    if let (true, Some(stale), Some(finish)) = (failed, stale, finish.as_ref()) {
        let runtime = &finish.runtime;
        runtime
            .counters
            .count(&stale.namespace, Event::StaleIfError);
        let window = StaleWindow::IfError;
        let now = SystemTime::now();
        let response = hit::stale(stale.entry, stale.head, window, now, &runtime.name);
        return Ok(response.map(ResponseBody::cached));
    }
    let response = result?;
    Ok(match finish {
        Some(finish) => finish.finish(response),
        None => response.map(ResponseBody::inner),
    })
}

impl Finish {
    /// Adds `Cache-Status` to the inner response and, when it may be stored, records its body.
    pub(super) fn finish<B: Body<Data = Bytes>>(
        self,
        response: Response<B>,
    ) -> Response<ResponseBody<B>> {
        let (mut parts, body) = response.into_parts();
        // The tag header goes whether or not the response is stored.
        let tag_fn = self
            .store
            .as_ref()
            .and_then(|(policy, _, _)| policy.tags.as_ref());
        let tags = match (&self.runtime.tag_header, tag_fn) {
            (None, None) => Some(Vec::new()),
            (header, tag_fn) => response_tags(header.as_ref(), &mut parts, tag_fn),
        };
        let write = match (self.store, tags) {
            (Some((policy, mut plan, rekey)), Some(tags)) if response_storable(&policy, &parts) => {
                match freshness(&policy, &parts.headers) {
                    Some(freshness) => {
                        match rekey.key(&policy, &parts.headers, &mut plan, freshness.retention()) {
                            Rekeyed::Store => {
                                plan.tags = tags;
                                plan.freshness = freshness;
                                plan.start(&parts, body.size_hint())
                            }
                            Rekeyed::Refused => None,
                            Rekeyed::TooManyVariants => {
                                let event = Event::VariantRefused;
                                self.runtime.counters.count(&policy.stats, event);
                                None
                            }
                        }
                    }
                    None => None,
                }
            }
            _ => None,
        };
        let status = match write {
            Some(_) => self.status.stored(),
            None => self.status,
        };
        parts
            .headers
            .append(CACHE_STATUS, status.header_value(&self.runtime.name));
        let body = match write {
            Some(write) => ResponseBody::recorded(body, write),
            None => ResponseBody::inner(body),
        };
        Response::from_parts(parts, body)
    }
}
