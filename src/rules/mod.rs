//! The rules of what may be cached: which requests may be answered from the cache (and why
//! others bypass it), which responses may be stored and for how long, and which tags a response
//! carries. Pure functions over request and response heads; the rules live here and nowhere
//! else.

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod tags;
