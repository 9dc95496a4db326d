//! [`StoreError`]: why a store call failed, with a kind to act on and the underlying error.

use crate::config_error::ConfigError;
use std::{borrow::Cow, error::Error, fmt, sync::Arc};

/// Why a store call failed: a [`kind`](Self::kind) to act on, a message, and the underlying
/// error (fred's, for [`RedisStore`](crate::RedisStore)) as [`source`](Error::source).
///
/// ```
/// use std::error::Error;
/// use tower_redis_cache::{StoreError, StoreErrorKind};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
/// let error = StoreError::new(StoreErrorKind::Unavailable, "GET failed").with_source(io);
/// assert_eq!(error.kind(), StoreErrorKind::Unavailable);
/// assert_eq!(error.source().unwrap().to_string(), "reset by peer");
/// ```
#[derive(Clone, Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: Cow<'static, str>,
    /// The failure concerns one node of several (a cluster node): the store is up otherwise.
    node_scoped: bool,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

/// The kind of a [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The call did not finish in time.
    Timeout,
    /// The store could not be reached, or refused the connection.
    Unavailable,
    /// The store answered with an error (out of memory, wrong type, ...).
    Rejected,
    /// The store was configured wrongly (bad URL, bad TLS files, ...); the source is a
    /// [`ConfigError`].
    Config,
}

impl StoreError {
    /// Creates an error of `kind`. `message` must not contain credentials.
    pub fn new(kind: StoreErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            node_scoped: false,
            source: None,
        }
    }

    /// The same error, caused by `source` (which must not hold credentials either).
    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Marks the failure as one node's of several (a Redis Cluster node): the layer's circuit
    /// breaker does not count it, as the store's other nodes still answer.
    pub fn node_scoped(mut self) -> Self {
        self.node_scoped = true;
        self
    }

    /// Whether the failure is one node's of several; see [`node_scoped`](Self::node_scoped).
    pub fn is_node_scoped(&self) -> bool {
        self.node_scoped
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether the failure says the store is unreachable or too slow (what the circuit breaker
    /// counts), rather than that it answered with an error (a wrong-type value, out of memory).
    pub(crate) fn is_outage(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Timeout | StoreErrorKind::Unavailable
        )
    }

    /// The RFC 9211 `detail` token for this failure.
    pub(crate) fn detail(&self) -> &'static str {
        match self.kind {
            StoreErrorKind::Timeout => "store-timeout",
            StoreErrorKind::Unavailable => "store-unavailable",
            StoreErrorKind::Rejected | StoreErrorKind::Config => "store-error",
        }
    }
}

impl From<ConfigError> for StoreError {
    fn from(error: ConfigError) -> Self {
        Self::new(StoreErrorKind::Config, error.to_string()).with_source(error)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}
