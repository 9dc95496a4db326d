//! [`Runs`]: how many times a handler ran.

use std::sync::{
    atomic::{AtomicUsize, Ordering::SeqCst},
    Arc,
};

/// How many times a handler ran.
#[derive(Clone, Debug, Default)]
pub struct Runs(Arc<AtomicUsize>);

impl Runs {
    /// Counts one run; returns its number (1 for the first).
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, SeqCst) + 1
    }

    pub fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}
