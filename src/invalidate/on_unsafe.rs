//! The invalidation a successful unsafe request causes on a route with
//! [`Policy::invalidate_on_unsafe`](crate::Policy::invalidate_on_unsafe): its entity, dropped
//! before its response goes out (bounded in time; a failure is logged, not returned).

use super::{invalidator::observed, Invalidation};
use crate::{observe::metrics, policy::Policy, runtime::Runtime};
use http::request;
use std::{sync::Arc, time::Duration};

/// The most an unsafe request's response waits for the invalidation it causes.
const TIMEOUT: Duration = Duration::from_secs(1);

/// What a successful unsafe request on `policy`'s route invalidates: its entity, if it has one.
pub(crate) fn invalidation(
    runtime: &Runtime,
    policy: &Policy,
    parts: &request::Parts,
) -> Option<Invalidation> {
    let mut entity = String::new();
    policy
        .entity
        .push_encoded(parts, &mut entity)
        .then(|| Invalidation::encoded_entity(&runtime.keys, entity))
}

/// Runs the invalidation of a successful unsafe request; a failure is logged, not returned:
/// the request itself succeeded.
pub(crate) async fn run(runtime: Arc<Runtime>, invalidation: Invalidation) {
    let running = observed(&*runtime.store, &invalidation);
    let error = match tokio::time::timeout(TIMEOUT, running).await {
        Ok(Ok(_)) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => {
            // Dropped before it ended: counted here as failed.
            metrics::invalidation(invalidation.scope_label(), None);
            "timed out".to_owned()
        }
    };
    if let Some(suppressed) = runtime.unsafe_invalidation_warnings.admit() {
        tracing::warn!(%error, suppressed, "invalidation after an unsafe request failed");
    }
}
