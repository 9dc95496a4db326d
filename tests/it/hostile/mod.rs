//! Hostile requests and hostile store contents, through a real axum `Router` and a real Redis
//! (each test that reaches Redis runs on a standalone server and on a three-master cluster).
//!
//! Every test drives the layer the way an app does (`route_layer` on a `MethodRouter`) in front
//! of handlers that echo every input they can read, so a response served to the wrong request
//! shows. Each one proves that a hostile input does not panic, does not turn into a 500 caused
//! by the cache, does not read or overwrite another entity's entry, does not widen an
//! invalidation pattern, and is not served to a request that lacks it.
//!
//! Several of these tests began as reports of defects in `src/` (the fuzz targets in `fuzz/`
//! found one of them); they stay as regression tests.
//!
//! - [`bodies`]: request bodies over the limit, streamed, lying, failing; chunked over HTTP/1.1.
//! - [`json`]: JSON bodies that cannot be canonicalised, and numbers at a double's limits.
//! - [`ids`]: entity ids against hash tags, patterns and the length bound.
//! - [`poisoning`]: unkeyed query parameters, credentials and headers; `HEAD`; media types.
//! - [`store_contents`]: garbage and foreign values under a request's key.
//! - [`fixture`]: the echo app, [`fixture::Setup`] and the key-shape check they share.

mod bodies;
mod fixture;
mod ids;
mod json;
mod poisoning;
mod store_contents;
