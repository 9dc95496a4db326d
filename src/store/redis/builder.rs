//! [`RedisStoreBuilder`]: how a [`RedisStore`] is made from a URL and its settings.

use super::{
    cluster::ClusterClients,
    durability::Durability,
    error::store_error,
    routing::{Routes, WaitingClient},
    settings::Settings,
    RedisStore,
};
use crate::{
    config_error::ConfigError,
    store::{StoreError, StoreErrorKind},
};
use fred::{
    interfaces::{ClientLike, EventInterface},
    types::config::{Config, ServerConfig},
};
use std::{
    fmt,
    sync::{Arc, Once},
    time::Duration,
};

/// Builder for [`RedisStore`]: timeouts, pool size and reconnect pacing.
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    settings: Settings,
}

impl RedisStore {
    /// Starts building a store for `url`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            settings: Settings::default(),
        }
    }

    /// Connects to `url` with the default settings and waits for the first connection.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }
}

impl RedisStoreBuilder {
    /// The longest any command may take, including waiting for a reconnect (default 1 s).
    ///
    /// Lookups on the request path are bounded more tightly by the layer's lookup timeout;
    /// this bounds everything else, such as write-backs.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.settings.command_timeout = timeout;
        self
    }

    /// The longest a connection attempt (TCP, TLS and handshake) may take (default 2 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connection_timeout = timeout;
        self
    }

    /// How many connections (per server) share the load (default 1).
    ///
    /// One connection is the fastest under load: fred pipelines every concurrent command onto
    /// it, so Redis reads many commands per system call; commands spread over more connections
    /// are pipelined less deeply and cost Redis (and the app) more CPU per command
    /// (BENCHMARKS.md, "Under load"). More connections help only when single commands are very
    /// large.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.settings.pool_size = size.max(1);
        self
    }

    /// How many replicas must hold an invalidation before it returns (default
    /// [`Durability::Replicas(0)`](Durability::Replicas): every replica a Cluster master has),
    /// and the longest it waits for them (default 500 ms). When fewer acknowledge in time the
    /// invalidation fails with [`StoreErrorKind::NotReplicated`] (retryable): its drop may or
    /// may not survive a failover.
    pub fn durability(mut self, durability: Durability, timeout: Duration) -> Self {
        self.settings.durability = durability;
        self.settings.durability_timeout = timeout;
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` (instead of the system's roots) for
    /// `rediss://` connections.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.settings.tls.ca_file = Some(path.into());
        self
    }

    /// Presents the client certificate chain in `cert` with the private key in `key` (PEM
    /// files) for `rediss://` servers that require client authentication.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_client_auth(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.settings.tls.client_auth = Some((cert.into(), key.into()));
        self
    }

    /// Builds the store and connects in the background; commands fail fast (and the cache
    /// serves misses) until Redis answers. Fails only on an invalid URL or TLS file.
    ///
    /// Must be called within a Tokio runtime (it spawns the connection tasks).
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        ConfigError::require_runtime("RedisStoreBuilder::build")?;
        let store = self.build_pool(false)?;
        match &store.routes.cluster {
            Some(cluster) => cluster.start(),
            None => {
                store.routes.pool.connect_pool();
            }
        }
        Ok(store)
    }

    /// Builds the store and waits for its first connection, at most the connection timeout.
    /// A configuration the builder refuses is an error of kind
    /// [`Config`](StoreErrorKind::Config) whose source is the [`ConfigError`].
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let timeout = self.settings.connection_timeout;
        let store = self.build_pool(true)?;
        let routes = &store.routes;
        if let Some(cluster) = &routes.cluster {
            cluster.start();
            return match cluster.wait_for_topology(timeout).await {
                Ok(()) => Ok(store),
                Err(error) => {
                    routes.quit_in_background();
                    let message = format!("no connection to {}: {error}", store.description);
                    Err(StoreError::new(error.kind(), message).with_source(error))
                }
            };
        }
        let mut errors = routes.pool.clients().first().map(|c| c.error_rx());
        routes.pool.connect_pool();
        match tokio::time::timeout(timeout, routes.pool.wait_for_connect()).await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(error)) => {
                // Other clients of the pool may have connected: stop them too.
                routes.quit_in_background();
                Err(store_error(error))
            }
            Err(_) => {
                routes.quit_in_background();
                let mut last = None;
                while let Some(Ok((error, _))) = errors.as_mut().map(|rx| rx.try_recv()) {
                    last = Some(store_error(error));
                }
                let reason = last
                    .as_ref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                let message = format!(
                    "no connection to {} within {timeout:?}{reason}",
                    store.description
                );
                let error = StoreError::new(StoreErrorKind::Unavailable, message);
                Err(match last {
                    Some(last) => error.with_source(last),
                    None => error,
                })
            }
        }
    }

    fn build_pool(self, first_failure_is_final: bool) -> Result<RedisStore, ConfigError> {
        check_scheme(&self.url)?;
        // fred's error may quote the URL: only its kind is kept.
        let mut config = Config::from_url(&self.url)
            .map_err(|e| ConfigError::new(format!("invalid Redis URL ({:?})", e.kind())))?;
        #[cfg(feature = "tls")]
        if !self.settings.tls.is_empty() {
            if config.tls.is_none() {
                return Err(ConfigError::new(
                    "TLS files given for a URL without TLS: use rediss:// (or rediss-cluster://)",
                ));
            }
            config.tls = Some(self.settings.tls.to_tls_config()?);
        }
        // With fail_fast, fred ends the connection task when the first attempt fails: right for
        // `connect` (the caller gets the error at once), wrong for `build`, whose store must keep
        // trying until Redis answers.
        config.fail_fast = first_failure_is_final;
        let description = describe(&config);
        let parsed = Arc::new(config.clone());
        let settings = Arc::new(self.settings);
        let fred_builder = {
            let settings = settings.clone();
            move |config: Config| settings.fred_builder(config)
        };
        let cluster = match config.server {
            ServerConfig::Clustered { .. } => {
                // Each node's client reconnects on its own, whatever happened at first.
                let mut nodes = config.clone();
                nodes.fail_fast = false;
                Some(ClusterClients::new(&nodes, fred_builder.clone())?)
            }
            _ => None,
        };
        let waiting = {
            let (config, fred_builder) = (config.clone(), fred_builder.clone());
            WaitingClient::new(move || {
                let mut config = config.clone();
                config.fail_fast = false;
                fred_builder(config).build()
            })
        };
        let pool = fred_builder(config)
            .build_pool(settings.pool_size)
            .map_err(|e| {
                ConfigError::new(format!("{:?}: {}", e.kind(), e.details())).caused_by(e)
            })?;
        let durability = (settings.durability, settings.durability_timeout);
        Ok(RedisStore {
            routes: Routes::new(pool, cluster, durability, waiting),
            pool_started: Arc::new(Once::new()),
            description,
            config: parsed,
            settings,
        })
    }
}

/// The URL schemes fred understands. fred reads any other scheme as plain `redis://`, which
/// would send the password of a mistyped `rediss+tls://` URL in clear text: refuse it instead.
const SCHEMES: [&str; 12] = [
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
    "rediss-sentinel",
    "valkey",
    "valkeys",
    "valkey-cluster",
    "valkeys-cluster",
    "valkey-sentinel",
    "valkeys-sentinel",
];

fn check_scheme(url: &str) -> Result<(), ConfigError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    let Some(scheme) = scheme.filter(|s| SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(s))) else {
        return Err(ConfigError::new(format!(
            "unsupported Redis URL scheme: expected one of {}",
            SCHEMES.join(", ")
        )));
    };
    let tls = scheme.to_ascii_lowercase().starts_with("rediss")
        || scheme.to_ascii_lowercase().starts_with("valkeys");
    if tls && !cfg!(feature = "tls") {
        return Err(ConfigError::new(
            "a TLS URL needs the `tls` feature of tower-redis-cache",
        ));
    }
    Ok(())
}

/// Where the store connects, without credentials.
pub(super) fn describe(config: &Config) -> String {
    let kind = match config.server {
        ServerConfig::Centralized { .. } => "redis",
        ServerConfig::Clustered { .. } => "redis-cluster",
        ServerConfig::Sentinel { .. } => "redis-sentinel",
    };
    let hosts: Vec<String> = config
        .server
        .hosts()
        .iter()
        .map(|s| s.to_string())
        .collect();
    format!("{kind}://{}", hosts.join(","))
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = Config::from_url(&self.url)
            .map(|c| describe(&c))
            .unwrap_or_else(|_| "<invalid URL>".to_owned());
        f.debug_struct("RedisStoreBuilder")
            .field("server", &server)
            .field("command_timeout", &self.settings.command_timeout)
            .field("connection_timeout", &self.settings.connection_timeout)
            .field("pool_size", &self.settings.pool_size)
            .field("durability", &self.settings.durability)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_schemes_are_accepted() {
        for url in [
            "redis://h:1",
            "REDIS://h:1",
            "rediss://h:1",
            "redis-cluster://h:1?node=h:2",
        ] {
            assert!(check_scheme(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn build_outside_a_runtime_is_an_error_not_a_panic() {
        let error = RedisStore::builder("redis://127.0.0.1:1")
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("Tokio runtime"), "{error}");
    }

    #[test]
    fn debug_output_hides_credentials() {
        let builder = RedisStore::builder("redis://alice:s3cret-pw@127.0.0.1:6390/0");
        let debug = format!("{builder:?}");
        assert!(
            !debug.contains("s3cret-pw") && !debug.contains("alice"),
            "{debug}"
        );
        assert!(debug.contains("127.0.0.1:6390"), "{debug}");
    }

    #[test]
    fn invalid_url_is_a_config_error_without_the_url() {
        let error = RedisStore::builder("notredis://u:s3cret@h")
            .build()
            .unwrap_err();
        assert!(!error.to_string().contains("s3cret"));
    }

    #[tokio::test]
    async fn connect_reports_a_bad_url_as_a_config_error_with_its_cause() {
        use std::error::Error;
        let error = RedisStore::connect("notredis://u:s3cret@h")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Config);
        let cause = error.source().and_then(|e| e.downcast_ref::<ConfigError>());
        assert!(cause.is_some(), "{error:?}");
        assert!(!format!("{error:?}").contains("s3cret"));
    }
}
