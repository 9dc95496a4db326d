//! The RFC 9211 `Cache-Status` response header.

use http::HeaderValue;

/// The header's name.
pub(crate) const CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");

/// What the cache did with one request, as RFC 9211 reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheStatus {
    /// Served from the store; `ttl` is the entry's remaining freshness in seconds, negative
    /// when stale (RFC 9211), with why a stale entry was served.
    Hit {
        ttl: i64,
        detail: Option<&'static str>,
    },
    /// Forwarded to the inner service.
    Forward {
        fwd: Fwd,
        stored: bool,
        /// Answered with the response of another request for the key (RFC 9211 `collapsed`).
        collapsed: bool,
        detail: Option<&'static str>,
    },
}

/// The `fwd` parameter: why the request went to the inner service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fwd {
    /// The cache was not used for this request.
    Bypass,
    /// No entry for the key.
    UriMiss,
    /// An entry for the key that answers another request (its identity differs).
    VaryMiss,
    /// The store failed or did not answer in time; treated as a miss.
    Miss,
    /// The entry was stale (past its TTL, beyond any stale-while-revalidate window).
    Stale,
}

impl CacheStatus {
    pub(crate) fn forward(fwd: Fwd) -> Self {
        CacheStatus::Forward {
            fwd,
            stored: false,
            collapsed: false,
            detail: None,
        }
    }

    /// The same, answered with another request's response for the key.
    pub(crate) fn collapsed(self) -> Self {
        match self {
            CacheStatus::Forward {
                fwd,
                stored,
                detail,
                ..
            } => CacheStatus::Forward {
                fwd,
                stored,
                collapsed: true,
                detail,
            },
            hit => hit,
        }
    }

    pub(crate) fn with_detail(self, detail: &'static str) -> Self {
        match self {
            CacheStatus::Forward {
                fwd,
                stored,
                collapsed,
                ..
            } => CacheStatus::Forward {
                fwd,
                stored,
                collapsed,
                detail: Some(detail),
            },
            hit => hit,
        }
    }

    pub(crate) fn stored(self) -> Self {
        match self {
            CacheStatus::Forward {
                fwd,
                collapsed,
                detail,
                ..
            } => CacheStatus::Forward {
                fwd,
                stored: true,
                collapsed,
                detail,
            },
            hit => hit,
        }
    }

    /// The header value for a cache called `name` (an RFC 8941 token).
    pub(crate) fn header_value(self, name: &str) -> HeaderValue {
        // One allocation, sized for the longest value.
        let mut value = String::with_capacity(name.len() + 48);
        value.push_str(name);
        match self {
            CacheStatus::Hit { ttl, detail } => {
                value.push_str("; hit; ttl=");
                value.push_str(itoa::Buffer::new().format(ttl));
                if let Some(detail) = detail {
                    value.push_str("; detail=");
                    value.push_str(detail);
                }
            }
            CacheStatus::Forward {
                fwd,
                stored,
                collapsed,
                detail,
            } => {
                value.push_str(match fwd {
                    Fwd::Bypass => "; fwd=bypass",
                    Fwd::UriMiss => "; fwd=uri-miss",
                    Fwd::VaryMiss => "; fwd=vary-miss",
                    Fwd::Miss => "; fwd=miss",
                    Fwd::Stale => "; fwd=stale",
                });
                if stored {
                    value.push_str("; stored");
                }
                if collapsed {
                    value.push_str("; collapsed");
                }
                if let Some(detail) = detail {
                    value.push_str("; detail=");
                    value.push_str(detail);
                }
            }
        }
        // `name` is checked to be a token when the layer is built; details are tokens.
        HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("cache"))
    }
}

/// Whether `name` is an RFC 8941 token, and so usable as the cache's name in the header.
pub(crate) fn is_token(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b":/!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9211_values() {
        let name = "tower-redis-cache";
        assert_eq!(
            CacheStatus::Hit {
                ttl: 42,
                detail: None
            }
            .header_value(name),
            "tower-redis-cache; hit; ttl=42"
        );
        assert_eq!(
            CacheStatus::forward(Fwd::UriMiss)
                .stored()
                .header_value(name),
            "tower-redis-cache; fwd=uri-miss; stored"
        );
        assert_eq!(
            CacheStatus::forward(Fwd::Miss)
                .with_detail("store-timeout")
                .header_value(name),
            "tower-redis-cache; fwd=miss; detail=store-timeout"
        );
        assert_eq!(
            CacheStatus::forward(Fwd::Bypass).header_value(name),
            "tower-redis-cache; fwd=bypass"
        );
    }

    #[test]
    fn names_must_be_tokens() {
        assert!(is_token("tower-redis-cache"));
        assert!(is_token("monps"));
        assert!(!is_token("two words"));
        assert!(!is_token("1abc"));
        assert!(!is_token(""));
    }
}
