//! The responses the cache makes itself: a hit rebuilt from its entry, a `304 Not Modified`,
//! the RFC 9211 `Cache-Status` header every response of a cached route carries, and the
//! `ETag` a stored entry gets.

mod conditional;
mod etag;
mod response;
mod status;

pub(crate) use self::etag::{derived_etag, is_entity_tag};
pub(crate) use self::response::{collapsed, fresh, stale, Cached, StaleWindow};
pub(crate) use self::status::{is_token, CacheStatus, Fwd, CACHE_STATUS};
