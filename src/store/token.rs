//! Tokens unique to one call in the whole deployment: a write or miss lease's, a near cache's
//! canary keys'.

use std::sync::{
    atomic::{AtomicU64, Ordering::Relaxed},
    LazyLock,
};

/// A token unique to this call: this process's (a hash of its start time and id) and a counter.
pub(crate) fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: LazyLock<u64> = LazyLock::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(format!("{now:?}{}", std::process::id()).as_bytes())
    });
    format!("{:016x}{:x}", *PROCESS, NEXT.fetch_add(1, Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one process");
    }
}
