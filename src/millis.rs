//! The one conversion of durations to milliseconds: the unit of the entry encoding, of Redis
//! expiries and of the clocks kept in atomics.

use std::time::Duration;

/// `duration` in whole milliseconds (rounded down), `u64::MAX` past that.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `duration` as a Redis expiry (`PX`, `PEXPIRE`) in milliseconds: at least 1, as Redis refuses
/// 0 (and a shorter one rounded down would be 0), at most `i64::MAX`.
pub(crate) fn expiry_millis(duration: Duration) -> i64 {
    i64::try_from(millis(duration)).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_and_never_makes_a_zero_expiry() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(expiry_millis(Duration::ZERO), 1);
        assert_eq!(expiry_millis(Duration::from_micros(500)), 1);
        assert_eq!(expiry_millis(Duration::from_secs(2)), 2_000);
        assert_eq!(expiry_millis(Duration::MAX), i64::MAX);
    }
}
