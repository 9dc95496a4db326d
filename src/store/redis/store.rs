//! [`RedisStore`]: where Redis is spoken to, through fred; standalone, Cluster, Sentinel and
//! TLS from one URL.

use super::{
    error::store_error,
    protocol,
    routing::{fail_fast, Routes},
    settings::Settings,
};
use crate::{
    invalidate::Invalidation,
    millis::expiry_millis,
    store::{EntryWrite, Lease, Store, StoreError, StoreFuture},
};
use bytes::Bytes;
use fred::{
    clients::{Client, Pool},
    error::Error as FredError,
    interfaces::{ClientLike, KeysInterface},
    types::{config::Config, ClusterHash, CustomCommand, Expiration, RespVersion, Value},
};
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
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Waits for the first connection (bounded by the connection timeout).
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// // Or: connect in the background and treat Redis as down until it answers.
/// let store = RedisStore::builder("redis-cluster://127.0.0.1:7001?node=127.0.0.1:7002").build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    pub(super) routes: Routes,
    /// Whether the fred cluster pool of [`pool`](Self::pool) was connected (on Cluster).
    pub(super) pool_started: Arc<Once>,
    /// Where the store connects, without credentials.
    pub(super) description: String,
    /// The parsed configuration and the settings, for the near cache's tracking client.
    pub(super) config: Arc<Config>,
    pub(super) settings: Arc<Settings>,
}

impl RedisStore {
    /// The `fred` pool, for commands of your own (inspection and the like).
    ///
    /// On Redis Cluster the store's own commands go through a client per primary (so that one
    /// node down fails only its slots); this pool is a fred cluster pool of its own, connected
    /// the first time it is asked for (which must be within a Tokio runtime).
    pub fn pool(&self) -> &Pool {
        if self.routes.cluster.is_some() {
            self.pool_started.call_once(|| {
                self.routes.pool.connect_pool();
            });
        }
        &self.routes.pool
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
        builder.build().map_err(store_error)
    }

    fn get_with(&self, key: &str, timeout: Option<Duration>) -> StoreFuture<Option<Bytes>> {
        let route = match self.routes.route(key, &fail_fast(timeout)) {
            Ok(route) => route,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        // Shared, not copied, with the command (and with an `ASK` redirection's).
        let key = Bytes::copy_from_slice(key.as_bytes());
        Box::pin(async move {
            match route.client.get(key.clone()).await {
                // The slot is migrating and the key already moved: ask the importing node.
                Err(error) if error.is_ask() => match route.asked(&error) {
                    Some(client) => get_asking(&client, &key).await.map_err(store_error),
                    None => Err(store_error(error)),
                },
                result => route.finish(result),
            }
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
        let route = match self.routes.route(key, &fail_fast(None)) {
            Ok(route) => route,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let key = key.to_owned();
        let expiry = Some(Expiration::PX(expiry_millis(ttl)));
        Box::pin(async move {
            let result = route
                .client
                .set::<(), _, _>(key, value, expiry, None, false)
                .await;
            route.finish(result)
        })
    }

    fn delete(&self, key: &str) -> StoreFuture<bool> {
        let route = match self.routes.route(key, &fail_fast(None)) {
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
        Box::pin(protocol::write(self.routes.clone(), write))
    }

    fn invalidate(&self, invalidation: &Invalidation) -> StoreFuture<u64> {
        Box::pin(protocol::invalidate(
            self.routes.clone(),
            invalidation.clone(),
        ))
    }

    fn lease(&self, key: &str, ttl: Duration) -> StoreFuture<Lease> {
        Box::pin(protocol::lease(self.routes.clone(), key.to_owned(), ttl))
    }

    fn release(&self, key: &str, token: &str, stored: bool, ttl: Duration) -> StoreFuture<()> {
        let (key, token) = (key.to_owned(), token.to_owned());
        Box::pin(protocol::release(
            self.routes.clone(),
            key,
            token,
            stored,
            ttl,
        ))
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.description)
            .field("pool_size", &self.routes.pool.size())
            .field("client_per_cluster_node", &self.routes.cluster.is_some())
            .finish()
    }
}

/// `ASKING` then `GET key` on `client`, back to back on its connection (one pipeline), as the
/// cluster spec's `ASK` redirection asks: the node serves the key once, for this command only.
async fn get_asking(client: &Client, key: &Bytes) -> Result<Option<Bytes>, FredError> {
    let pipeline = client.pipeline();
    let asking = CustomCommand::new_static("ASKING", ClusterHash::FirstKey, false);
    pipeline.custom::<(), Value>(asking, Vec::new()).await?;
    pipeline.get::<(), _>(key.clone()).await?;
    pipeline.last().await
}
