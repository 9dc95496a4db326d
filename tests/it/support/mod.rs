//! Shared integration-test harness: real Redis processes and network faults.
//!
//! Every module of `tests/it` uses only parts of it, hence the
//! crate-wide `allow`s below.
//!
//! * [`RedisServer`] — a `redis-server` child process on a free loopback port, with a raw RESP
//!   client ([`RedisServer::command`], [`RedisServer::keys`], …), `kill`/`restart`/`pause`/`resume`.
//! * [`RedisCluster`] — three masters formed into a cluster without `redis-cli`; [`key_slot`].
//! * [`TcpProxy`] — a tokio TCP proxy with switchable faults ([`ProxyMode`], latency, cut all).
//! * [`Load`] / [`serve_app`] — a bounded HTTP load generator against an axum app with the cache
//!   layer, and the [`Report`] of a fault scenario.
//! * [`compose_redis_args`] / [`RedisServer::start_compose`] — the production settings from
//!   `compose.yaml`.
//!
//! The tests need `redis-server` on `PATH` and never skip without it: they panic with
//! installation instructions.

#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod compose;
pub mod load;
pub mod proxy;
pub mod resp;
pub mod server;
pub mod tls;

pub use cluster::{crc16_xmodem, key_slot, RedisCluster, RedisClusterBuilder, SLOT_RANGES};
pub use compose::{compose_redis_args, parse_service_command};
pub use load::{serve_app, App, Load, LoadConfig, Outcome, Report, Sample};
pub use proxy::{ProxyMode, TcpProxy};
pub use resp::{Reply, RespConnection};
pub use server::{RedisServer, RedisServerBuilder, TempDir};
