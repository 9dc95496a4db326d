//! [`ConfigError`]: settings a builder refused.

use std::{error::Error, fmt, sync::Arc};

/// Why a builder refused its settings: an invalid cache name, Redis URL or TLS file, or a
/// builder called outside a Tokio runtime. Returned by
/// [`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build),
/// [`RedisStoreBuilder::build`](crate::RedisStoreBuilder::build) and
/// [`NearCacheBuilder::build`](crate::NearCacheBuilder::build); the message never holds
/// credentials.
///
/// ```
/// use tower_redis_cache::RedisStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let error = RedisStore::builder("rediss+tls://u:s3cret@host").build().unwrap_err();
/// assert!(error.to_string().contains("unsupported Redis URL scheme"));
/// assert!(!error.to_string().contains("s3cret"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct ConfigError {
    message: String,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (which must not hold credentials either).
    pub(crate) fn caused_by(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// `Ok` within a Tokio runtime; else the error that `builder` (`"X::build"`) returns.
    pub(crate) fn require_runtime(builder: &str) -> Result<(), Self> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => Ok(()),
            Err(error) => Err(Self::new(format!(
                "{builder} must be called within a Tokio runtime"
            ))
            .caused_by(error)),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for ConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}
