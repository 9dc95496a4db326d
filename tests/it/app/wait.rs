//! Bounded waits for what the cache does in the background: polling a condition until it holds,
//! and the layer's write-backs.

use std::time::{Duration, Instant};
use tower_redis_cache::CacheLayer;

/// The longest [`eventually`] waits.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `condition` every 5 ms until it holds; fails the test after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the layer has written `n` entries in total.
pub async fn wait_writes(layer: &CacheLayer, n: u64) {
    eventually(&format!("{n} write(s); stats {:?}", layer.stats()), || {
        layer.stats().writes >= n
    })
    .await;
    assert_eq!(layer.stats().writes, n, "more writes than expected");
}
