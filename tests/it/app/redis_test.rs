//! [`redis_test!`]: one test body, run on a standalone server and on a three-master cluster (as
//! fred's `centralized_test!`/`cluster_test!` do), and the runtimes the bodies run on.

use crate::servers::Redis;
use std::{future::Future, time::Duration};

/// Runs one test body on a standalone server (`<name>::standalone`) and on a three-master
/// cluster (`<name>::cluster`).
///
/// `redis_test!(name, |redis| async move { ... })`: `redis` is a [`Redis`], owned by the test.
/// Attributes before the name (`#[ignore = "..."]`) go on both tests. Two options may follow
/// the name, in this order:
///
/// * `start = f`: `f(Topology)` starts the deployment the body gets (default [`Redis::start`]),
///   e.g. `start = |t| Redis::with_password(t, PASSWORD)`; `start = identity` hands the body
///   the [`Topology`](crate::servers::Topology) itself, for a test that starts a deployment
///   the harness cannot start beforehand (one with TLS certificates made in the test);
/// * `run = r`: the runner (default [`run`]), e.g. `run = run_current_thread`.
macro_rules! redis_test {
    ($(#[$attr:meta])* $name:ident, start = $start:expr, run = $run:path, $test:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            #[test]
            fn standalone() {
                let start = $start;
                $run(start($crate::servers::Topology::Standalone), $test);
            }

            $(#[$attr])*
            #[test]
            fn cluster() {
                let start = $start;
                $run(start($crate::servers::Topology::Cluster), $test);
            }
        }
    };
    ($(#[$attr:meta])* $name:ident, start = $start:expr, $test:expr) => {
        redis_test!($(#[$attr])* $name, start = $start, run = $crate::app::run, $test);
    };
    ($(#[$attr:meta])* $name:ident, run = $run:path, $test:expr) => {
        redis_test!(
            $(#[$attr])* $name,
            start = $crate::servers::Redis::start,
            run = $run,
            $test
        );
    };
    ($(#[$attr:meta])* $name:ident, $test:expr) => {
        redis_test!(
            $(#[$attr])* $name,
            start = $crate::servers::Redis::start,
            run = $crate::app::run,
            $test
        );
    };
}

/// The longest one test body may run before it is failed as hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(40);

/// Runs `test` with `redis` (usually a [`Redis`]) on its own multi-threaded runtime (two
/// workers), failing it if it runs past [`TEST_TIMEOUT`].
pub fn run<R, F, Fut>(redis: R, test: F)
where
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    within_timeout(&runtime, test(redis));
}

/// Like [`run`] on a current-thread runtime: every task the test spawns (fred's connection
/// tasks, write-backs) runs on the test's thread, e.g. to log into a thread-scoped `tracing`
/// subscriber.
pub fn run_current_thread<R, F, Fut>(redis: R, test: F)
where
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    within_timeout(&runtime, test(redis));
}

fn within_timeout(runtime: &tokio::runtime::Runtime, test: impl Future<Output = ()>) {
    runtime.block_on(async {
        if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
            panic!("test still running after {TEST_TIMEOUT:?}: hung");
        }
    });
}
