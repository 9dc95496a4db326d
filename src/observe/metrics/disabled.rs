//! The metrics without the feature `metrics`: the items of `enabled.rs`, doing nothing.

use crate::observe::event::Event;
use std::{sync::Arc, time::Duration};

/// The metrics of one namespace: nothing to report.
#[derive(Debug, Default)]
pub(crate) struct NamespaceMetrics {}

impl NamespaceMetrics {
    pub(crate) fn new(_namespace: &Arc<str>) -> Self {
        Self {}
    }

    pub(crate) fn record(&self, _event: Event) {}

    pub(crate) fn lookup_took(&self, _took: Duration) {}

    pub(crate) fn write_took(&self, _took: Duration, _bytes: usize) {}
}

pub(crate) fn invalidation(_scope: &'static str, _dropped: Option<u64>) {}

pub(crate) fn breaker_open(_open: bool) {}

/// The write budget's gauges: nothing to report.
#[derive(Debug, Default)]
pub(crate) struct WriteGauges {}

impl WriteGauges {
    pub(crate) fn add(&self, _writes: i8, _bytes: isize) {}
}

/// The near cache's metrics: nothing to report.
#[derive(Debug, Default)]
pub(crate) struct NearMetrics {}

impl NearMetrics {
    pub(crate) fn hit(&self) {}

    pub(crate) fn invalidated(&self, _entries: u64) {}

    pub(crate) fn flushed(&self, _reason: &'static str) {}
}
