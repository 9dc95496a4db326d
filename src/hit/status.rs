//! The RFC 9211 `Cache-Status` response header.

use http::HeaderValue;
use std::io::Write;

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
        // Written on the stack, then copied once into the value: one allocation. (A `String`
        // handed to `HeaderValue` costs a second one, unless its capacity is exactly its length.)
        let mut stack = [0u8; 128];
        let mut cursor = std::io::Cursor::new(&mut stack[..]);
        let value = match self.write(name, &mut cursor) {
            Ok(()) => {
                let len = usize::try_from(cursor.position()).unwrap_or(0);
                HeaderValue::from_bytes(&stack[..len])
            }
            // A name longer than the stack buffer.
            Err(_) => {
                let mut long = Vec::new();
                let _ = self.write(name, &mut long);
                HeaderValue::from_bytes(&long)
            }
        };
        // `name` is checked to be a token when the layer is built; details are tokens.
        value.unwrap_or_else(|_| HeaderValue::from_static("cache"))
    }

    /// Writes the header value for a cache called `name` to `out`.
    fn write(self, name: &str, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(name.as_bytes())?;
        match self {
            CacheStatus::Hit { ttl, detail } => {
                out.write_all(b"; hit; ttl=")?;
                out.write_all(itoa::Buffer::new().format(ttl).as_bytes())?;
                if let Some(detail) = detail {
                    out.write_all(b"; detail=")?;
                    out.write_all(detail.as_bytes())?;
                }
            }
            CacheStatus::Forward {
                fwd,
                stored,
                collapsed,
                detail,
            } => {
                out.write_all(match fwd {
                    Fwd::Bypass => b"; fwd=bypass",
                    Fwd::UriMiss => b"; fwd=uri-miss",
                    Fwd::VaryMiss => b"; fwd=vary-miss",
                    Fwd::Miss => b"; fwd=miss",
                    Fwd::Stale => b"; fwd=stale",
                })?;
                if stored {
                    out.write_all(b"; stored")?;
                }
                if collapsed {
                    out.write_all(b"; collapsed")?;
                }
                if let Some(detail) = detail {
                    out.write_all(b"; detail=")?;
                    out.write_all(detail.as_bytes())?;
                }
            }
        }
        Ok(())
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
