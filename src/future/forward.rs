//! Finishing a response of the inner service: its `Cache-Status`, and recording its body for
//! the store when the route may store it.

use crate::{
    body::ResponseBody,
    policy::Policy,
    rules::response::response_storable,
    runtime::Runtime,
    status::{CacheStatus, CACHE_STATUS},
    write_back::WritePlan,
};
use bytes::Bytes;
use http::Response;
use http_body::Body;
use std::sync::Arc;

/// How to finish a forwarded response of a cached route.
pub(crate) struct Finish {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) status: CacheStatus,
    /// Where to store the response, when it was looked up (and so has a key).
    pub(crate) store: Option<(Arc<Policy>, WritePlan)>,
}

impl Finish {
    /// Adds `Cache-Status` to the inner response and, when it may be stored, records its body.
    pub(crate) fn finish<B: Body<Data = Bytes>>(
        self,
        response: Response<B>,
    ) -> Response<ResponseBody<B>> {
        let (mut parts, body) = response.into_parts();
        let write = match self.store {
            Some((policy, plan)) if response_storable(&policy, &parts) => {
                plan.start(&parts, body.size_hint())
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
