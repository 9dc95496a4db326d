//! [`StoreError`]: why a store call failed, with a kind to act on and the underlying error.

use crate::config_error::ConfigError;
use std::{error::Error, fmt, sync::Arc};

/// Why a store call failed: a [`kind`](Self::kind) to act on, a message, and the underlying
/// error as [`source`](Error::source), to downcast and act on (for
/// [`RedisStore`](crate::RedisStore): fred's `Error`, or the `StoreError` a retry or a
/// connection attempt ended with). The message already tells what the source says, for logs
/// that print only `Display`.
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
    message: String,
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
    /// The store was configured wrongly (bad URL, bad TLS files, ...); the source is the
    /// [`ConfigError`] when a builder refused the settings, else the store's own error (such as
    /// fred's, for a cluster URL pointing at a server without cluster support).
    Config,
    /// The store is up but cannot do this now: a Redis Cluster slot being migrated (`TRYAGAIN`,
    /// `ASK`) or moved (`MOVED`), a failover under way (`CLUSTERDOWN`, `READONLY`,
    /// `MASTERDOWN`), a server loading its data (`LOADING`) or running a long script (`BUSY`).
    /// Retry shortly.
    Busy,
    /// A write ran on the master, but fewer replicas than required acknowledged it in time
    /// (Redis replicates asynchronously): it may or may not survive a failover. Retry it.
    NotReplicated,
}

impl StoreError {
    /// Creates an error of `kind`. `message` must not contain credentials.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
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

    /// Whether calling again may succeed: the store was slow, unreachable or busy, or a write
    /// was not acknowledged by enough replicas. `false` for a store that answered with an error
    /// about the call itself (`Rejected`) or a wrong configuration (`Config`).
    ///
    /// ```
    /// use tower_redis_cache::{StoreError, StoreErrorKind};
    ///
    /// assert!(StoreError::new(StoreErrorKind::Busy, "TRYAGAIN").is_retryable());
    /// assert!(!StoreError::new(StoreErrorKind::Rejected, "WRONGTYPE").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            StoreErrorKind::Timeout
            | StoreErrorKind::Unavailable
            | StoreErrorKind::Busy
            | StoreErrorKind::NotReplicated => true,
            StoreErrorKind::Rejected | StoreErrorKind::Config => false,
        }
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
            StoreErrorKind::Unavailable | StoreErrorKind::Busy => "store-unavailable",
            StoreErrorKind::Rejected | StoreErrorKind::Config | StoreErrorKind::NotReplicated => {
                "store-error"
            }
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
