//! What the cache reports through the [`metrics`](https://docs.rs/metrics) facade: the names
//! (`names.rs`, listed with their labels in the crate docs' table), and the handles, which do
//! something with the feature `metrics` (`enabled.rs`) and nothing without it (`disabled.rs`,
//! the same items). With the feature but no recorder installed, nothing is recorded either.

mod names;

#[cfg(feature = "metrics")]
mod enabled;
#[cfg(feature = "metrics")]
pub(crate) use self::enabled::*;

#[cfg(not(feature = "metrics"))]
mod disabled;
#[cfg(not(feature = "metrics"))]
pub(crate) use self::disabled::*;

#[cfg(feature = "metrics")]
pub use self::enabled::describe_metrics;
