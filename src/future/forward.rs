//! Finishing a response of the inner service: its `Cache-Status`, and recording its body for
//! the store when the route may store it.

use crate::{
    body::ResponseBody,
    policy::Policy,
    rules::response::{freshness, response_storable},
    runtime::Runtime,
    status::{CacheStatus, CACHE_STATUS},
    tags::response_tags,
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
        // The tag header goes whether or not the response is stored.
        let tag_fn = self
            .store
            .as_ref()
            .and_then(|(policy, _)| policy.tags.as_ref());
        let tags = match (&self.runtime.tag_header, tag_fn) {
            (None, None) => Some(Vec::new()),
            (header, tag_fn) => response_tags(header.as_ref(), &mut parts, tag_fn),
        };
        let write = match (self.store, tags) {
            (Some((policy, mut plan)), Some(tags)) if response_storable(&policy, &parts) => {
                match freshness(&policy, &parts.headers) {
                    Some(freshness) => {
                        plan.tags = tags;
                        plan.freshness = freshness;
                        plan.start(&parts, body.size_hint())
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
