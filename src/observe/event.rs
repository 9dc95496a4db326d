//! What the cache counts: the events of a request or a write-back and their reasons, shared by
//! the counters (`stats.rs`), the metrics (`metrics/`) and the spans (`trace.rs`).

/// One thing the cache did for a request or a write-back, counted by
/// [`CacheCounters::count`](super::stats::CacheCounters::count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A fresh entry served.
    Hit,
    /// A stale entry served while it is refreshed in the background (a hit too).
    StaleHit,
    /// A stale entry served instead of the inner service's failure (the request was a miss).
    StaleIfError,
    /// Looked up and forwarded (or coalesced), for this reason.
    Miss(Miss),
    /// A miss answered with the response another request for its key fetched.
    Coalesced,
    /// Forwarded without a lookup, for this reason.
    Bypass(Bypass),
    /// A write-back the store accepted.
    Stored,
    /// A write-back the store refused: an invalidation covering it ran since its request began.
    WriteInvalidated,
    /// A write-back that failed or timed out.
    WriteFailed,
    /// A storable response not written: no room in the write budget, or the breaker open.
    WriteDropped,
    /// A varying response not written: its key has as many variants as the route allows.
    VariantRefused,
}

/// Why a looked-up request was forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No entry for the key.
    Absent,
    /// An entry for other request inputs (another variant, or a hash collision).
    Variant,
    /// An entry past its TTL and its stale-while-revalidate window.
    Expired,
    /// The lookup failed or timed out.
    LookupError,
    /// The circuit breaker was open: no lookup was made.
    CircuitOpen,
    /// The entry was unreadable.
    BadEntry,
}

impl Miss {
    /// Every reason, in the order of their discriminants.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [Miss; 6] = [
        Miss::Absent,
        Miss::Variant,
        Miss::Expired,
        Miss::LookupError,
        Miss::CircuitOpen,
        Miss::BadEntry,
    ];

    /// The reason as a metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Miss::Absent => "absent",
            Miss::Variant => "variant",
            Miss::Expired => "expired",
            Miss::LookupError => "lookup-error",
            Miss::CircuitOpen => "circuit-open",
            Miss::BadEntry => "bad-entry",
        }
    }
}

impl Event {
    /// The event as a span's `outcome` field.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Event::Hit => "hit",
            Event::StaleHit => "stale-hit",
            Event::StaleIfError => "stale-if-error",
            Event::Miss(miss) => miss.label(),
            Event::Coalesced => "coalesced",
            Event::Bypass(bypass) => bypass.detail(),
            Event::Stored => "stored",
            Event::WriteInvalidated => "invalidated",
            Event::WriteFailed => "failed",
            Event::WriteDropped => "dropped",
            Event::VariantRefused => "too-many-variants",
        }
    }
}

/// Why a request the route would cache is forwarded without the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bypass {
    /// `Authorization`, `Proxy-Authorization` or `Cookie` that the policy does not key on.
    Credentials,
    /// A query parameter the policy neither keys nor ignores.
    UnkeyedQuery,
    /// A header that rewrites what the request means (host, URL, method) and that the policy
    /// does not key.
    UnkeyedHeader,
    /// No usable entity in the request.
    NoEntity,
    /// A body larger than the policy's limit (declared, or found while reading it).
    BodyTooLarge,
    /// The body failed while it was being read; the inner service gets what was read, then
    /// the same error.
    BodyError,
    /// The body ended with trailers, which the key does not cover.
    RequestTrailers,
}

impl Bypass {
    /// Every reason, in the order of their discriminants.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [Bypass; 7] = [
        Bypass::Credentials,
        Bypass::UnkeyedQuery,
        Bypass::UnkeyedHeader,
        Bypass::NoEntity,
        Bypass::BodyTooLarge,
        Bypass::BodyError,
        Bypass::RequestTrailers,
    ];

    /// The RFC 9211 `detail` parameter naming the reason.
    pub(crate) fn detail(self) -> &'static str {
        match self {
            Bypass::Credentials => "credentials",
            Bypass::UnkeyedQuery => "unkeyed-query",
            Bypass::UnkeyedHeader => "unkeyed-header",
            Bypass::NoEntity => "no-entity",
            Bypass::BodyTooLarge => "body-too-large",
            Bypass::BodyError => "body-error",
            Bypass::RequestTrailers => "request-trailers",
        }
    }
}
