//! [`ResponseFuture`]: one request on a cached route, step by step.
//!
//! `response_future.rs` is the poll over the states of `state.rs`; each step lives in a file
//! of its own. A keyed request reads its body (`read_body.rs`), is keyed (`keying.rs`) and
//! looked up (`lookup.rs`); a hit is answered (`hit/`), a stale one refreshed in the background
//! (`refresh.rs`); a miss is coalesced with the others for its key (`coalesced.rs`) or
//! forwarded to the inner service and finished (`forward.rs`): `Cache-Status`, and recording
//! for the store. `pending.rs` holds what a request carries between the steps.

mod coalesced;
mod forward;
pub(crate) mod keying;
mod lookup;
mod pending;
mod read_body;
mod refresh;
mod response_future;
mod state;

pub(crate) use self::pending::Keyed;
pub use self::response_future::ResponseFuture;
