//! The integration tests of `tower-redis-cache`, in one test binary so that `cargo test` compiles
//! and links the shared harness once (as fred's `tests/integration` does).
//!
//! Every module starts its own `redis-server` processes (standalone, a three-master cluster, the
//! `compose.yaml` settings) on free loopback ports; none touches a server on 6379. Run one area
//! with a filter: `cargo test --test it faults::`.
//!
//! The harness is in two folders, named for what they hold:
//!
//! - [`servers`]: Redis itself — `redis-server` processes, the three-master cluster, a test's
//!   deployment of either ([`servers::Redis`]), the fault TCP proxy, the raw RESP client and
//!   `MONITOR` feeds, TLS certificates, the `compose.yaml` settings. It knows nothing of HTTP,
//!   and the benches include it as it is.
//! - [`app`]: the cached axum app — the `redis_test!` macro (one body on standalone and on a
//!   cluster), the layer and store of a test, `send` and its `Reply`, bounded waits, the
//!   nothing-stored sentinel, and the HTTP load generator of the fault scenarios.
//!
//! The tests, by area:
//!
//! - [`cache`]: misses and hits, keys, TTLs, HEAD, bodies, paths, topologies.
//! - [`storability`]: what is never stored.
//! - [`coalescing`]: concurrent misses for one key make one inner call.
//! - [`stale`]: stale-while-revalidate and stale-if-error.
//! - [`compression`]: large bodies stored compressed, served as given.
//! - [`conditional`]: `ETag`, `If-None-Match`, `If-Modified-Since` and `304` on hits.
//! - [`cluster_nodes`]: a cluster master down, with and without replicas.
//! - [`durability`]: an acknowledged invalidation survives a failover (it waited for the
//!   replica); without durability, the failover undoes it.
//! - [`history`]: a history checker: readers, writers and a nemesis (failovers, a pause, a
//!   live migration, a master killed with its replication link cut) on two instances; no read
//!   sees what an acknowledged invalidation dropped.
//! - [`faults`]: Redis killed, paused, slow, cut, full, corrupt, absent, under load.
//! - [`invalidation`]: invalidation by entity, namespace and tag; races, bounds, spellings.
//! - [`hostile`]: hostile request bodies, entity ids, unkeyed inputs, store contents.
//! - [`security`]: passwords and ACL users, TLS, credentials never shown.
//! - [`keys`]: canonical keys against the reference canonicaliser.
//! - [`metrics`]: what the `metrics` facade reports, through a debugging recorder.
//! - [`near_cache`]: the near cache's coherence across instances, its TTL and byte bounds, and
//!   its flush on every fault.
//! - [`resharding`]: a live slot migration: hits follow `ASK`, a split invalidation fails
//!   retryably, and drops every entry once the migration ends.
//! - [`request_path`]: any request body, hyper and tower-http interop, the builder, the breaker
//!   before body work, write-backs bounded by bytes.
//! - [`compose`]: `compose.yaml`'s settings on a live server.
//! - [`example_app`]: the predictions example's `/stats` and `/metrics`, and the load generator.
//! - [`servers_selftest`]: the Redis harness itself.

mod servers;
#[macro_use]
mod app;

mod cache;
mod cluster_nodes;
mod coalescing;
mod compose;
mod compression;
mod conditional;
mod durability;
mod example_app;
mod faults;
mod freshness;
mod history;
mod hostile;
mod invalidation;
mod keys;
mod metrics;
mod near_cache;
mod negotiation;
mod request_path;
mod resharding;
mod security;
mod servers_selftest;
mod stale;
mod storability;
