//! The Redis store, on `fred`: standalone, Cluster, Sentinel and TLS from one URL.

use super::{
    cluster::{ClusterClients, Node},
    redis_index, EntryWrite, Lease, Store, StoreError, StoreErrorKind, StoreFuture,
};
use crate::{breaker::Admission, invalidation::Invalidation};
use bytes::Bytes;
use fred::{
    clients::{Client, Pool, WithOptions},
    error::{Error as FredError, ErrorKind},
    interfaces::{ClientLike, EventInterface, KeysInterface},
    types::{
        config::{Config, Options, ReconnectPolicy, ServerConfig},
        Builder, Expiration, RespVersion,
    },
};
use socket2::TcpKeepalive;
use std::{
    fmt,
    sync::{Arc, Once},
    time::Duration,
};

/// A [`Store`] on Redis (standalone or Cluster) through a small pool of `fred` clients.
///
/// Always configured so that no call waits forever: a command timeout (fred otherwise waits for
/// a reconnect without limit), a connection timeout, TCP keepalive and `TCP_USER_TIMEOUT` (so a
/// peer that vanished is noticed by the kernel and the connection rebuilt) and a reconnect
/// policy that never gives up. Values travel as [`Bytes`] both ways. A lookup through the cache
/// ([`Store::lookup`]) runs without a command timeout of its own: the cache bounds it with its
/// lookup timeout, without a timer per lookup.
///
/// URLs: `redis://[[user]:password@]host[:port][/db]`, `rediss://…` (TLS, with the `tls`
/// feature), `redis-cluster://[[user]:password@]host:port?node=host:port&node=…`,
/// `redis-sentinel://…`. Credentials never appear in this type's `Debug` output or errors.
///
/// ```no_run
/// use tower_redis_cache::RedisStore;
///
/// # async fn run() -> Result<(), tower_redis_cache::StoreError> {
/// // Waits for the first connection (bounded by the connection timeout).
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// // Or: connect in the background and treat Redis as down until it answers.
/// let store = RedisStore::builder("redis-cluster://127.0.0.1:7001?node=127.0.0.1:7002").build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    /// The connections of a standalone or Sentinel server; on Cluster, a fred cluster pool
    /// for [`pool`](Self::pool) only, connected when first asked for.
    pool: Pool,
    pool_started: Arc<Once>,
    /// On Cluster: a client per primary, which the store's own commands use.
    cluster: Option<ClusterClients>,
    description: String,
    /// The parsed configuration and the settings, for the near cache's tracking client.
    config: Arc<Config>,
    settings: Arc<RedisStoreBuilder>,
}

/// Where one command goes: a client, and on Cluster the node to report the outcome to.
pub(super) struct Route {
    pub(super) client: WithOptions<Client>,
    node: Option<(ClusterClients, Arc<Node>, Admission)>,
}

impl Route {
    /// The command's result, reported to its node's breaker on Cluster.
    pub(super) fn finish<T>(self, result: Result<T, FredError>) -> Result<T, StoreError> {
        match self.node {
            Some((cluster, node, admission)) => cluster.report(&node, admission, result),
            None => result.map_err(|e| map_error(&e)),
        }
    }
}

/// Builder for [`RedisStore`]: timeouts, pool size and reconnect pacing.
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    #[cfg(feature = "tls")]
    tls: super::tls::TlsFiles,
    command_timeout: Duration,
    connection_timeout: Duration,
    pool_size: usize,
}

impl RedisStore {
    /// Starts building a store for `url`.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            #[cfg(feature = "tls")]
            tls: Default::default(),
            command_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(2),
            pool_size: 1,
        }
    }

    /// Connects to `url` with the default settings and waits for the first connection.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// Stops the reconnect loop of a store nobody will use, without making the caller wait.
    fn quit_in_background(&self) {
        let pool = self.pool.clone();
        let clients = self.cluster.as_ref().map(ClusterClients::clients);
        tokio::spawn(async move {
            let _ = pool.quit().await;
            for client in clients.into_iter().flatten() {
                let _ = client.quit().await;
            }
        });
    }

    /// The `fred` pool, for commands of your own (inspection and the like).
    ///
    /// On Redis Cluster the store's own commands go through a client per primary (so that one
    /// node down fails only its slots); this pool is a fred cluster pool of its own, connected
    /// the first time it is asked for (which must be within a Tokio runtime).
    pub fn pool(&self) -> &Pool {
        if self.cluster.is_some() {
            self.pool_started.call_once(|| {
                self.pool.connect_pool();
            });
        }
        &self.pool
    }

    /// A new, unconnected RESP3 client to the same server (on Cluster, a fred cluster client
    /// reaching every primary) with the store's timeouts: the near cache's tracking client.
    /// Its event channels hold `events` messages before a slow reader loses some.
    pub(crate) fn tracking_client(&self, events: usize) -> Result<Client, StoreError> {
        let mut config = (*self.config).clone();
        config.version = RespVersion::RESP3;
        config.fail_fast = false;
        let mut builder = self.settings.fred_builder(config);
        builder.with_performance_config(|p| p.broadcast_channel_capacity = events);
        builder.build().map_err(|e| map_error(&e))
    }

    /// The client for a command on `key`, with `options`.
    pub(super) fn route(&self, key: &str, options: &Options) -> Result<Route, StoreError> {
        match &self.cluster {
            None => Ok(Route {
                client: self.pool.next_connected().with_options(options),
                node: None,
            }),
            Some(cluster) => {
                let (node, admission) = cluster.node_for(key)?;
                Ok(Route {
                    client: node.client.with_options(options),
                    node: Some((cluster.clone(), node, admission)),
                })
            }
        }
    }
}

impl RedisStoreBuilder {
    /// The longest any command may take, including waiting for a reconnect (default 1 s).
    ///
    /// Lookups on the request path are bounded more tightly by the layer's lookup timeout;
    /// this bounds everything else, such as write-backs.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The longest a connection attempt (TCP, TLS and handshake) may take (default 2 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
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
        self.pool_size = size.max(1);
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` (instead of the system's roots) for
    /// `rediss://` connections.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
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
        self.tls.client_auth = Some((cert.into(), key.into()));
        self
    }

    /// Builds the store and connects in the background; commands fail fast (and the cache
    /// serves misses) until Redis answers. Fails only on an invalid URL.
    ///
    /// Must be called within a Tokio runtime (it spawns the connection tasks).
    pub fn build(self) -> Result<RedisStore, StoreError> {
        super::require_runtime("RedisStoreBuilder::build")?;
        let store = self.build_pool(false)?;
        match &store.cluster {
            Some(cluster) => cluster.start(),
            None => {
                store.pool.connect_pool();
            }
        }
        Ok(store)
    }

    /// Builds the store and waits for its first connection, at most the connection timeout.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let timeout = self.connection_timeout;
        let store = self.build_pool(true)?;
        if let Some(cluster) = &store.cluster {
            cluster.start();
            return match cluster.wait_for_topology(timeout).await {
                Ok(()) => Ok(store),
                Err(error) => {
                    store.quit_in_background();
                    Err(StoreError::new(
                        error.kind(),
                        format!("no connection to {}: {error}", store.description),
                    ))
                }
            };
        }
        let mut errors = store.pool.clients().first().map(|c| c.error_rx());
        store.pool.connect_pool();
        match tokio::time::timeout(timeout, store.pool.wait_for_connect()).await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(error)) => {
                // Other clients of the pool may have connected: stop them too.
                store.quit_in_background();
                Err(map_error(&error))
            }
            Err(_) => {
                store.quit_in_background();
                let mut last = None;
                while let Some(Ok((error, _))) = errors.as_mut().map(|rx| rx.try_recv()) {
                    last = Some(map_error(&error));
                }
                let reason = last
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!(
                        "no connection to {} within {timeout:?}{reason}",
                        store.description
                    ),
                ))
            }
        }
    }

    fn build_pool(self, first_failure_is_final: bool) -> Result<RedisStore, StoreError> {
        check_scheme(&self.url)?;
        let mut config = Config::from_url(&self.url).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Config,
                format!("invalid Redis URL ({:?})", e.kind()),
            )
        })?;
        #[cfg(feature = "tls")]
        if !self.tls.is_empty() {
            if config.tls.is_none() {
                return Err(StoreError::new(
                    StoreErrorKind::Config,
                    "TLS files given for a URL without TLS: use rediss:// (or rediss-cluster://)",
                ));
            }
            config.tls = Some(self.tls.to_tls_config()?);
        }
        // With fail_fast, fred ends the connection task when the first attempt fails: right for
        // `connect` (the caller gets the error at once), wrong for `build`, whose store must keep
        // trying until Redis answers.
        config.fail_fast = first_failure_is_final;
        let description = describe(&config);
        let parsed = Arc::new(config.clone());
        let settings = self.clone();
        let builder = move |config: Config| settings.fred_builder(config);
        let cluster = match config.server {
            ServerConfig::Clustered { .. } => {
                // Each node's client reconnects on its own, whatever happened at first.
                let mut nodes = config.clone();
                nodes.fail_fast = false;
                Some(ClusterClients::new(&nodes, builder.clone())?)
            }
            _ => None,
        };
        let pool = builder(config)
            .build_pool(self.pool_size)
            .map_err(|e| map_error(&e))?;
        Ok(RedisStore {
            pool,
            pool_started: Arc::new(Once::new()),
            cluster,
            description,
            config: parsed,
            settings: Arc::new(self),
        })
    }

    /// A fred builder for `config` with the store's timeouts, socket options and reconnect
    /// policy.
    fn fred_builder(&self, config: Config) -> Builder {
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = self.connection_timeout;
                c.internal_command_timeout = self.connection_timeout;
                c.max_command_attempts = 2;
                c.tcp.nodelay = Some(true);
                // Dead peers are found by the kernel, at no cost per command. (fred's own
                // unresponsive check would do it too, but arms a new timer on every turn of
                // its router loop: a timer per command under load.)
                let keepalive = TcpKeepalive::new()
                    .with_time(Duration::from_secs(10))
                    .with_interval(Duration::from_secs(2));
                #[cfg(not(windows))]
                let keepalive = keepalive.with_retries(3);
                c.tcp.keepalive = Some(keepalive);
                // fred offers TCP_USER_TIMEOUT where the OS has it.
                #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
                {
                    c.tcp.user_timeout =
                        Some(self.command_timeout.max(Duration::from_millis(500)) * 2);
                }
            })
            .with_performance_config(|p| p.default_command_timeout = self.command_timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        builder
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

fn check_scheme(url: &str) -> Result<(), StoreError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    let Some(scheme) = scheme.filter(|s| SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(s))) else {
        return Err(StoreError::new(
            StoreErrorKind::Config,
            format!(
                "unsupported Redis URL scheme: expected one of {}",
                SCHEMES.join(", ")
            ),
        ));
    };
    let tls = scheme.to_ascii_lowercase().starts_with("rediss")
        || scheme.to_ascii_lowercase().starts_with("valkeys");
    if tls && !cfg!(feature = "tls") {
        return Err(StoreError::new(
            StoreErrorKind::Config,
            "a TLS URL needs the `tls` feature of tower-redis-cache",
        ));
    }
    Ok(())
}

/// Where the store connects, without credentials.
fn describe(config: &Config) -> String {
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

pub(super) fn map_error(error: &FredError) -> StoreError {
    let kind = match error.kind() {
        ErrorKind::Timeout => StoreErrorKind::Timeout,
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Backpressure => {
            StoreErrorKind::Unavailable
        }
        #[cfg(feature = "tls")]
        ErrorKind::Tls => StoreErrorKind::Unavailable,
        ErrorKind::Config | ErrorKind::Url => StoreErrorKind::Config,
        _ => StoreErrorKind::Rejected,
    };
    StoreError::new(kind, format!("{:?}: {}", error.kind(), error.details()))
}

/// Per-command options: while a connection is down, fail at once (a miss) instead of queueing
/// behind the reconnect; `timeout` replaces the command timeout.
pub(super) fn fail_fast(timeout: Option<Duration>) -> Options {
    Options {
        fail_fast: true,
        timeout,
        ..Options::default()
    }
}

impl RedisStore {
    fn get_with(&self, key: &str, timeout: Option<Duration>) -> StoreFuture<Option<Bytes>> {
        let route = match self.route(key, &fail_fast(timeout)) {
            Ok(route) => route,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let key = key.to_owned();
        Box::pin(async move {
            let result = route.client.get(key).await;
            route.finish(result)
        })
    }
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        self.get_with(key, None)
    }

    fn lookup(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        // The cache bounds its lookups itself: no command timeout (zero is none to fred), so no
        // timer per lookup.
        self.get_with(key, Some(Duration::ZERO))
    }

    fn set(&self, key: &str, value: Bytes, ttl: Duration) -> StoreFuture<()> {
        let route = match self.route(key, &fail_fast(None)) {
            Ok(route) => route,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let key = key.to_owned();
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        Box::pin(async move {
            let expiry = Some(Expiration::PX(millis));
            let result = route
                .client
                .set::<(), _, _>(key, value, expiry, None, false)
                .await;
            route.finish(result)
        })
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        let route = match self.route(key, &fail_fast(None)) {
            Ok(route) => route,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let key = key.to_owned();
        Box::pin(async move {
            let result = route.client.del::<i64, _>(key).await;
            route.finish(result).map(|n| n > 0)
        })
    }

    fn write(&self, write: EntryWrite) -> StoreFuture<bool> {
        redis_index::write(self.clone(), write)
    }

    fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
        redis_index::invalidate(self.clone(), invalidation)
    }

    fn lease(&self, key: &str, ttl: Duration) -> StoreFuture<Lease> {
        redis_index::lease(self.clone(), key.to_owned(), ttl)
    }

    fn release(&self, key: &str, token: &str, stored: bool, ttl: Duration) -> StoreFuture<()> {
        redis_index::release(self.clone(), key.to_owned(), token.to_owned(), stored, ttl)
    }
}

/// Per-command options for the store's own commands (see [`fail_fast`]).
pub(super) fn command_options() -> Options {
    fail_fast(None)
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.description)
            .field("pool_size", &self.pool.size())
            .field("client_per_cluster_node", &self.cluster.is_some())
            .finish()
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = Config::from_url(&self.url)
            .map(|c| describe(&c))
            .unwrap_or_else(|_| "<invalid URL>".to_owned());
        f.debug_struct("RedisStoreBuilder")
            .field("server", &server)
            .field("command_timeout", &self.command_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("pool_size", &self.pool_size)
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
        assert_eq!(error.kind(), StoreErrorKind::Config);
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
        assert_eq!(error.kind(), StoreErrorKind::Config);
        assert!(!error.to_string().contains("s3cret"));
    }
}
