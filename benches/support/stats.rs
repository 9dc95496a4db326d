//! The order statistics the benches print: one definition, so every figure in BENCHMARKS.md is
//! computed the same way. Included by the benches with `#[path]`; each uses part of it.
//!
//! A quantile is the nearest-rank element of the sorted values at `(len - 1) * q`, rounded: the
//! median of an even count is the upper middle value.
#![allow(dead_code)]

use std::time::Duration;

/// The element at quantile `q` (0.0 to 1.0) of `sorted`, which must be sorted and non-empty.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The 25th, 50th and 75th percentiles of `values`.
pub fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q| quantile(&values, q);
    (at(0.25), at(0.5), at(0.75))
}

/// The median of `values`.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    quartiles(values.into_iter().collect()).1
}

/// The median of `durations`.
pub fn median_duration(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    quantile(&durations, 0.5)
}

/// `durations` sorted, for several [`quantile`]s of one sample.
pub fn sorted_durations(mut durations: Vec<Duration>) -> Vec<Duration> {
    durations.sort();
    durations
}
