//! Writing a forwarded response back to the store, bounded and off the response path.

use crate::{
    entry::Entry,
    key::CacheKey,
    layer::Shared,
    stats::Counters,
    storable::{connection_tokens, content_length, header_is_stored},
    store::{StoreError, StoreErrorKind},
};
use bytes::{Bytes, BytesMut};
use http::{response, HeaderMap};
use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::sync::OwnedSemaphorePermit;

/// The longest a write-back may hold its permit, whatever the store.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and for how long a miss's response is to be stored, decided before the inner call.
pub(crate) struct WritePlan {
    pub(crate) shared: Arc<Shared>,
    pub(crate) key: CacheKey,
    pub(crate) identity: Bytes,
    pub(crate) ttl: Duration,
    pub(crate) max_body: usize,
}

/// A response being recorded as it streams to the client. Holds one of the layer's write
/// permits from the response head until the store call ends; dropped before the body is
/// complete (a stream error, trailers, an oversized body, the client gone), it stores nothing.
pub(crate) struct WriteBack {
    plan: WritePlan,
    status: http::StatusCode,
    headers: HeaderMap,
    chunks: Vec<Bytes>,
    len: usize,
    /// The `Content-Length` the response declared, if any: a body that ends short of it is
    /// truncated and must not be stored as complete.
    declared_len: Option<u64>,
    permit: OwnedSemaphorePermit,
}

impl WritePlan {
    /// Starts recording a response with head `parts`, if a write permit is free and the store is
    /// not known to be down.
    pub(crate) fn start(self, parts: &response::Parts) -> Option<WriteBack> {
        let permit = match self.shared.breaker.is_open() {
            true => None,
            false => self.shared.writes.clone().try_acquire_owned().ok(),
        };
        let Some(permit) = permit else {
            Counters::bump(&self.shared.counters.writes_dropped);
            return None;
        };
        let hop = connection_tokens(&parts.headers);
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| header_is_stored(name, &hop))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Some(WriteBack {
            plan: self,
            status: parts.status,
            headers,
            chunks: Vec::new(),
            len: 0,
            declared_len: content_length(&parts.headers),
            permit,
        })
    }
}

impl WriteBack {
    /// Records one data frame; `false` once the body is over the limit (stop recording).
    pub(crate) fn push(&mut self, data: &Bytes) -> bool {
        self.len += data.len();
        if self.len > self.plan.max_body {
            return false;
        }
        if !data.is_empty() {
            self.chunks.push(data.clone());
        }
        true
    }

    /// The body is complete: encode the entry and store it in the background.
    pub(crate) fn finish(self) {
        if self
            .declared_len
            .is_some_and(|declared| declared != self.len as u64)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut body = BytesMut::with_capacity(self.len);
                self.chunks.iter().for_each(|c| body.extend_from_slice(c));
                body.freeze()
            }
        };
        let plan = self.plan;
        let entry = Entry {
            status: self.status,
            headers: self.headers,
            body,
            stored_at: SystemTime::now(),
            ttl: plan.ttl,
            identity: plan.identity,
        };
        let permit = self.permit;
        runtime.spawn(async move {
            let shared = plan.shared;
            let write = shared
                .settings
                .store
                .set(plan.key.as_str(), entry.encode(), plan.ttl);
            // A store that never answers must not hold its write permit forever.
            let result = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    "write-back timed out",
                )),
            };
            drop(permit);
            match result {
                Ok(()) => Counters::bump(&shared.counters.writes),
                Err(error) => {
                    Counters::bump(&shared.counters.write_errors);
                    tracing::debug!(key = %plan.key, %error, "cache write-back failed");
                }
            }
        });
    }
}
