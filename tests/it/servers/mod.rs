//! Real Redis processes and what stands between them and the cache: the Redis half of the
//! harness. Nothing here knows about HTTP or the crate under test, so the benches include this
//! folder too (`#[path = "../tests/it/servers/mod.rs"] mod servers;`): one harness for both.
//!
//! Every test module and bench uses only parts of it, hence the `allow`s below.
//!
//! * [`RedisServer`] — a `redis-server` child process on a free loopback port, with a raw RESP
//!   client ([`RedisServer::command`], [`RedisServer::keys`], …), `kill`/`restart`/`pause`/`resume`.
//! * [`RedisCluster`] — three masters formed into a cluster without `redis-cli`; [`key_slot`].
//! * [`Redis`] / [`Topology`] — one test's deployment, a standalone server or a cluster, behind
//!   one set of methods (what `redis_test!` hands each test body).
//! * [`TcpProxy`] — a tokio TCP proxy with switchable faults ([`ProxyMode`], latency, cut all).
//! * [`RespConnection`] / [`Reply`] — the raw RESP2 client; [`Monitor`] — `MONITOR` feeds read
//!   up to a sentinel, to see exactly which commands reached a server.
//! * [`TestPki`] / [`TlsRedis`] — certificates and a server with a TLS port.
//! * [`compose_redis_args`] / [`RedisServer::start_compose`] — the production settings from
//!   `compose.yaml`.
//!
//! The tests need `redis-server` on `PATH` and never skip without it: they panic with
//! installation instructions.

#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod compose;
pub mod monitor;
pub mod proxy;
pub mod resp;
pub mod server;
pub mod tls;
pub mod topology;

pub use cluster::{crc16_xmodem, key_slot, RedisCluster, RedisClusterBuilder, SLOT_RANGES};
pub use compose::{compose_redis_args, parse_service_command};
pub use monitor::Monitor;
pub use proxy::{ProxyMode, TcpProxy};
pub use resp::{Reply, RespConnection};
pub use server::{RedisServer, RedisServerBuilder, TempDir};
pub use tls::{TestPki, TlsRedis};
pub use topology::{Redis, Topology};
