//! Cross-instance coalescing ([`Policy::lease`](crate::Policy::lease)): a miss takes a short
//! lease in the entry's slot before it calls the inner service; a miss that finds the lease
//! held polls, cheaply, until the entry is stored (then serves it), the holder says its
//! response cannot be stored (then forwards at once), the lease expires (then takes it: a dead
//! holder blocks nobody past the lease's lifetime) or the bound passes (then forwards).

use crate::{runtime::Runtime, store::Lease};
use bytes::Bytes;
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

/// How often a miss waiting on another instance's lease asks again.
const POLL: Duration = Duration::from_millis(10);

/// What a leased miss is to do.
pub(crate) enum Leased {
    /// It holds the lease: forward, store, release.
    Holder(MissLease),
    /// Another instance stored the entry: these bytes.
    Filled(Bytes),
    /// Forward on its own (the holder's response cannot be shared, the bound passed, or the
    /// store failed).
    Forward,
}

/// Takes the lease of `key` for `bound`, or waits on its holder at most `bound`.
pub(crate) fn take(
    runtime: Arc<Runtime>,
    key: String,
    bound: Duration,
) -> Pin<Box<dyn Future<Output = Leased> + Send>> {
    Box::pin(async move {
        let deadline = tokio::time::Instant::now() + bound;
        let timeout = runtime.deadlines.timeout();
        loop {
            let asked = tokio::time::timeout(timeout, runtime.store.lease(&key, bound)).await;
            match asked {
                Ok(Ok(Lease::Taken(token))) => {
                    return Leased::Holder(MissLease::held(runtime, key, token, bound))
                }
                Ok(Ok(Lease::Filled(bytes))) => return Leased::Filled(bytes),
                Ok(Ok(Lease::Held)) => {}
                _ => return Leased::Forward,
            }
            if tokio::time::Instant::now() + POLL >= deadline {
                return Leased::Forward;
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// Takes the lease of `key` for `bound` if it is free; `None` when another holds it (or the
/// entry is there, or the store failed): a single attempt, never waiting.
pub(crate) async fn try_take(
    runtime: Arc<Runtime>,
    key: String,
    bound: Duration,
) -> Option<MissLease> {
    let asked = tokio::time::timeout(
        runtime.deadlines.timeout(),
        runtime.store.lease(&key, bound),
    );
    match asked.await {
        Ok(Ok(Lease::Taken(token))) => Some(MissLease::held(runtime, key, token, bound)),
        _ => None,
    }
}

/// A held miss lease; released when dropped: deleted once its entry is stored, else turned
/// into "forward on your own" for the instances waiting on it.
pub(crate) struct MissLease {
    runtime: Arc<Runtime>,
    key: String,
    token: String,
    ttl: Duration,
    stored: bool,
}

impl MissLease {
    /// The lease `token` of `key`, taken for `ttl`.
    fn held(runtime: Arc<Runtime>, key: String, token: String, ttl: Duration) -> Self {
        Self {
            runtime,
            key,
            token,
            ttl,
            stored: false,
        }
    }

    /// The entry was stored.
    pub(crate) fn stored(&mut self) {
        self.stored = true;
    }
}

impl Drop for MissLease {
    fn drop(&mut self) {
        let release = self
            .runtime
            .store
            .release(&self.key, &self.token, self.stored, self.ttl);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = release.await;
            });
        }
    }
}
