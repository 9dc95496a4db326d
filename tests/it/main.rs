//! The integration tests of `tower-redis-cache`, in one test binary so that `cargo test` compiles
//! and links the shared harness once (as fred's `tests/integration` does).
//!
//! Every module starts its own `redis-server` processes (standalone, a three-master cluster, the
//! `compose.yaml` settings) on free loopback ports; none touches a server on 6379. Run one area
//! with a filter: `cargo test --test it faults::`.
//!
//! - [`support`]: the process harness (Redis servers and clusters, the fault proxy, the load
//!   generator of the fault scenarios); [`cache_support`]: HTTP helpers and `redis_test!`.
//! - [`cache`]: misses and hits, keys, TTLs, HEAD, bodies, paths, topologies.
//! - [`storability`]: what is never stored.
//! - [`coalescing`]: concurrent misses for one key make one inner call.
//! - [`stale`]: stale-while-revalidate and stale-if-error.
//! - [`compression`]: large bodies stored compressed, served as given.
//! - [`conditional`]: `ETag`, `If-None-Match`, `If-Modified-Since` and `304` on hits.
//! - [`cluster_nodes`]: a cluster master down, with and without replicas.
//! - [`faults`]: Redis killed, paused, slow, cut, full, corrupt, absent, under load.
//! - [`invalidation`]: invalidation by entity, namespace and tag; races, bounds, spellings.
//! - [`hostile`]: hostile input. [`security`]: TLS, credentials, logs.
//! - [`keys`]: canonical keys against the reference canonicaliser.
//! - [`metrics`]: what the `metrics` facade reports, through a debugging recorder.
//! - [`near_cache`]: the near cache's coherence across instances, its TTL and byte bounds, and
//!   its flush on every fault.
//! - [`request_path`]: any request body, hyper and tower-http interop, the builder, the breaker
//!   before body work, write-backs bounded by bytes.
//! - [`compose`]: `compose.yaml`'s settings on a live server.
//! - [`example_app`]: the predictions example's `/stats` and `/metrics`, and the load generator.
//! - [`support_selftest`]: the harness itself.

mod support;
#[macro_use]
mod cache_support;

mod cache;
mod cluster_nodes;
mod coalescing;
mod compose;
mod compression;
mod conditional;
mod example_app;
mod faults;
mod hostile;
mod invalidation;
mod keys;
mod metrics;
mod near_cache;
mod request_path;
mod security;
mod stale;
mod storability;
mod support_selftest;
