//! Per-route caching policy: namespace, TTL, methods, entity, what varies, limits.

use crate::{key::Entity, negotiate::Negotiation, observe::stats::CacheCounters};
use http::{response, HeaderName, Method, StatusCode};
use std::{fmt, sync::Arc, time::Duration};

/// A function naming the tags of a response from its head.
pub(crate) type TagFn = Arc<dyn Fn(&response::Parts) -> Vec<String> + Send + Sync>;

/// What a route caches and how: its namespace and TTL, the methods it caches, where its entity
/// comes from, which request inputs vary the response, and its size limits.
///
/// Defaults: TTL 60 s; `GET` (and `HEAD`, served from `GET` entries); [`Entity::path`]; only
/// status 200 stored; request bodies keyed up to 64 KiB; responses stored up to 1 MiB.
///
/// Requests carrying an input the policy does not key are not cached: `Authorization` or
/// `Cookie` unless listed in [`vary_headers`](Self::vary_headers), and query parameters listed
/// in neither [`vary_query`](Self::vary_query) nor [`ignore_query`](Self::ignore_query).
///
/// ```
/// use std::time::Duration;
/// use http::Method;
/// use tower_redis_cache::{Entity, Policy};
///
/// let prediction = Policy::new("pred")
///     .ttl(Duration::from_secs(300))
///     .methods([Method::POST])
///     .entity(Entity::path_segment(1).prefix("m_"))
///     .vary_query(["lang"]);
/// # let _ = prediction;
/// ```
#[derive(Clone)]
pub struct Policy {
    pub(crate) namespace: String,
    pub(crate) ttl: Duration,
    pub(crate) methods: Vec<Method>,
    pub(crate) entity: Entity,
    pub(crate) vary_query: Vec<String>,
    pub(crate) ignore_query: Vec<String>,
    pub(crate) vary_headers: Vec<HeaderName>,
    pub(crate) statuses: Vec<StatusCode>,
    pub(crate) max_request_body: usize,
    pub(crate) max_response_body: usize,
    pub(crate) tags: Option<TagFn>,
    pub(crate) invalidate_on_unsafe: bool,
    pub(crate) lease: Option<Duration>,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) freshness_from_response: bool,
    /// XFetch's β, when fresh hits refresh their entry early.
    pub(crate) refresh_ahead: Option<f64>,
    /// The counters of this policy's namespace, shared by every route of the namespace in one
    /// layer (set by `CacheLayer::policy`).
    pub(crate) stats: Arc<CacheCounters>,
    pub(crate) max_variants: usize,
    /// What this policy's namespace learned from `Vary`, shared like `stats`.
    pub(crate) negotiation: Arc<Negotiation>,
}

/// How long an entry is fresh, and how long past that it may be served stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub(crate) ttl: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
}

impl Freshness {
    /// How long the store keeps the entry: its TTL and its longest stale window.
    pub(crate) fn retention(&self) -> Duration {
        let grace = self.stale_while_revalidate.max(self.stale_if_error);
        self.ttl.saturating_add(grace)
    }
}

impl Policy {
    /// Creates the default policy for routes in `namespace`.
    pub fn new(namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        Self {
            // Its own until `CacheLayer::policy` gives it the namespace's shared ones.
            stats: Arc::new(CacheCounters::for_namespace(&namespace)),
            negotiation: Arc::default(),
            max_variants: 16,
            namespace,
            ttl: Duration::from_secs(60),
            methods: vec![Method::GET],
            entity: Entity::path(),
            vary_query: Vec::new(),
            ignore_query: Vec::new(),
            vary_headers: Vec::new(),
            statuses: vec![StatusCode::OK],
            max_request_body: 64 * 1024,
            max_response_body: 1024 * 1024,
            tags: None,
            invalidate_on_unsafe: false,
            lease: None,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            freshness_from_response: false,
            refresh_ahead: None,
        }
    }

    /// How long entries live in the store (millisecond precision, at least 1 ms).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The methods whose responses are cached; `HEAD` is served from `GET` entries whenever `GET`
    /// is listed. Listing more than one method puts the method into the key.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods.clear();
        for method in methods {
            if method != Method::HEAD && !self.methods.contains(&method) {
                self.methods.push(method);
            }
        }
        self
    }

    /// Where the entity comes from.
    pub fn entity(mut self, entity: Entity) -> Self {
        self.entity = entity;
        self
    }

    /// Query parameters (matched by their raw name) whose values vary the response.
    pub fn vary_query<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.vary_query = names.into_iter().map(Into::into).collect();
        self
    }

    /// Query parameters that never change the response (tracking tags and the like). Any
    /// parameter in neither list makes the request bypass the cache.
    pub fn ignore_query<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.ignore_query = names.into_iter().map(Into::into).collect();
        self
    }

    /// Request headers whose values vary the response. Listing `Authorization` or `Cookie` keys
    /// each credential separately and lets such requests be cached.
    pub fn vary_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.vary_headers = names.into_iter().collect();
        self.vary_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        self.vary_headers.dedup();
        self
    }

    /// The most variants of one key stored at a time (default 16) when responses `Vary` on
    /// request headers the route does not list in [`vary_headers`](Self::vary_headers): the
    /// cache learns those headers from the responses and keys requests by their values from
    /// then on. Past the bound, responses are passed on and not stored (counted in
    /// [`CacheStats::variants_refused`](crate::CacheStats::variants_refused)); zero stores no
    /// such response.
    pub fn max_variants(mut self, variants: usize) -> Self {
        self.max_variants = variants;
        self
    }

    /// Response statuses that may be stored (default: 200 only).
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// The largest request body read to key a request. A body declared larger bypasses the
    /// cache unread; one of unknown size (chunked) is read up to the limit and keyed, and one
    /// that grows past it reaches the inner service whole and is not cached.
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// The largest response body stored; a larger one still reaches the client intact.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// Tags each stored response with what `tags` names from its head (besides the layer's tag
    /// header, see [`CacheLayerBuilder::tag_header`](crate::CacheLayerBuilder::tag_header)).
    /// [`Invalidator::tag`](crate::Invalidator::tag) drops every entry with a tag. A response
    /// with more than [`MAX_TAGS`](crate::MAX_TAGS) tags, or one longer than
    /// [`MAX_TAG_LEN`](crate::MAX_TAG_LEN), is passed on but not stored.
    ///
    /// ```
    /// use tower_redis_cache::Policy;
    ///
    /// let teams = Policy::new("teams").tags(|head| {
    ///     let team = head.headers.get("x-team").and_then(|v| v.to_str().ok());
    ///     team.map(|t| format!("team-{t}")).into_iter().collect()
    /// });
    /// # let _ = teams;
    /// ```
    pub fn tags<F>(mut self, tags: F) -> Self
    where
        F: Fn(&response::Parts) -> Vec<String> + Send + Sync + 'static,
    {
        self.tags = Some(Arc::new(tags));
        self
    }

    /// Invalidates the request's entity (every namespace) when an unsafe request (`POST`,
    /// `PUT`, `PATCH`, `DELETE`, ... that this route does not cache) succeeds (2xx or 3xx), as
    /// RFC 9111 section 4.4 describes; the response waits for the invalidation (bounded by one
    /// second; an invalidation that fails is logged and the response still goes out). Default:
    /// off.
    pub fn invalidate_on_unsafe(mut self, on: bool) -> Self {
        self.invalidate_on_unsafe = on;
        self
    }

    /// Coalesces misses across instances sharing the store: the first instance to miss a key
    /// takes a lease on it in Redis (in the entry's slot, `SET NX PX bound`) and calls the
    /// handler; the others poll every 10 ms until the entry is stored (and serve it), the
    /// holder's response turns out not storable (and forward at once), or `bound` passes (and
    /// forward). A holder that dies blocks nobody past `bound`. Costs nothing on a hit; one
    /// round trip before a miss is forwarded. Default: off (each instance coalesces its own
    /// misses only).
    pub fn lease(mut self, bound: Duration) -> Self {
        self.lease = Some(bound.max(Duration::from_millis(1)));
        self
    }

    /// Refreshes hot entries before they expire, so that a key under steady load never turns
    /// into a miss: each entry records how long the inner service took to make it (`δ`), and
    /// each fresh hit with `r` left to its TTL starts one background refresh (one per key, one
    /// across instances with [`lease`](Self::lease)) with probability `exp(-r / (δ β))`
    /// ("XFetch": Vattani, Chierichetti and Lowenstein, *Optimal Probabilistic Cache Stampede
    /// Prevention*, VLDB 2015). `beta` 1.0 is the paper's default; larger refreshes earlier; 0
    /// (or a value that is not a positive number) turns it off. The more hits a key takes, the
    /// earlier its refresh starts (the first of many draws wins): on one key at ~30 000 hits/s
    /// with a 2 s TTL and a 100 ms handler, β 1.0 refreshed 1.67 times per TTL and β 0.5 1.20
    /// times, both with no miss (`benches/refresh_ahead.rs`). A key that is rarely hit costs
    /// nothing extra; the refresh is a write-back like any other, refused if an invalidation
    /// raced it. Default: off.
    pub fn refresh_ahead(mut self, beta: f64) -> Self {
        self.refresh_ahead = (beta > 0.0 && beta.is_finite()).then_some(beta);
        self
    }

    /// Serves an entry up to `window` past its TTL at once (`Cache-Status: …; hit; ttl=-N`)
    /// while one background refresh (one across instances with [`lease`](Self::lease))
    /// renews it (RFC 5861 `stale-while-revalidate`). Redis keeps entries for the TTL plus the
    /// longest stale window. Default: none.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = window;
        self
    }

    /// When the inner service fails or answers 5xx, serves an entry up to `window` past its
    /// TTL instead (`Cache-Status: …; hit; ttl=-N; detail=stale-if-error`, RFC 5861
    /// `stale-if-error`). Default: none.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Takes each entry's TTL and stale windows from its response's `Cache-Control`
    /// (`s-maxage`, else `max-age`; `stale-while-revalidate`, `stale-if-error`), each capped by
    /// this policy's TTL; what the response does not say comes from the policy. A response
    /// with `max-age=0` (or `s-maxage=0`) is not stored; a malformed value is ignored. Default:
    /// off (the policy's TTL and windows for every entry).
    pub fn freshness_from_response(mut self, on: bool) -> Self {
        self.freshness_from_response = on;
        self
    }

    /// The TTL and stale windows of this route's entries, before any `Cache-Control`.
    pub(crate) fn freshness(&self) -> Freshness {
        Freshness {
            ttl: self.ttl,
            stale_while_revalidate: self.stale_while_revalidate,
            stale_if_error: self.stale_if_error,
        }
    }

    /// The namespace of this route.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether `method` is looked up, and with which method its entry was stored.
    pub(crate) fn lookup_method<'a>(&self, method: &'a Method) -> Option<&'a Method> {
        let stored_as = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.methods.contains(stored_as).then_some(stored_as)
    }

    /// Whether the method is part of the key (more than one method is cached).
    pub(crate) fn keys_method(&self) -> bool {
        self.methods.len() > 1
    }

    pub(crate) fn varies_on_header(&self, name: &HeaderName) -> bool {
        self.vary_headers.contains(name)
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("methods", &self.methods)
            .field("entity", &self.entity)
            .field("vary_query", &self.vary_query)
            .field("ignore_query", &self.ignore_query)
            .field("vary_headers", &self.vary_headers)
            .field("statuses", &self.statuses)
            .field("max_request_body", &self.max_request_body)
            .field("max_response_body", &self.max_response_body)
            .field("tags", &self.tags.as_ref().map(|_| "Fn(..)"))
            .field("invalidate_on_unsafe", &self.invalidate_on_unsafe)
            .field("lease", &self.lease)
            .field("stale_while_revalidate", &self.stale_while_revalidate)
            .field("stale_if_error", &self.stale_if_error)
            .field("freshness_from_response", &self.freshness_from_response)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("max_variants", &self.max_variants)
            .finish()
    }
}
