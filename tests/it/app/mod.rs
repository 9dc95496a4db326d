//! The HTTP half of the harness: a cached axum app driven the way an application drives it.
//!
//! * [`redis_test!`] runs one test body on a standalone server and on a three-master cluster;
//!   [`run`] / [`run_current_thread`] run a body under the hang deadline.
//! * [`layer`]: the test deployment's key factory, store and [`cache`] layer.
//! * [`send`](mod@send): a request through a `Router`, read into a [`Reply`].
//! * [`wait`]: bounded polling ([`eventually`]) and [`wait_writes`].
//! * [`nothing_stored`]: [`assert_nothing_stored`], by a sentinel route.
//! * [`Frames`] (scripted bodies) and [`Runs`] (handler run counts).
//! * [`items_app`]: `GET /items/{id}`, cached per item, the cluster tests' route.
//! * [`load`]: the HTTP load generator of the fault scenarios (real sockets, N clients).
//!
//! Declared in `main.rs` after [`crate::servers`], with `#[macro_use]`. Test modules take it
//! whole (`use crate::app::*;`), which brings [`Redis`] and [`Topology`] along.

#![allow(dead_code, unused_imports)]

#[macro_use]
mod redis_test;

pub mod frames;
pub mod items;
pub mod layer;
pub mod load;
pub mod nothing_stored;
pub mod runs;
pub mod send;
pub mod wait;

pub use crate::servers::{Redis, Topology};
pub use frames::Frames;
pub use items::items_app;
pub use layer::{
    cache, cache_builder, cache_one_write, connect, is_entry_key, key_factory, ALL_KEYS, NAME,
    PREFIX,
};
pub use nothing_stored::{assert_nothing_stored, sentinel_key, with_sentinel};
pub use redis_test::{run, run_current_thread, TEST_TIMEOUT};
pub use runs::Runs;
pub use send::{fwd, get_req, post_req, send, Reply};
pub use wait::{eventually, wait_writes, WAIT};
