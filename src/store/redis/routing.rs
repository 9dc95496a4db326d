//! Where a command goes: the connection of a standalone or Sentinel server, or on Cluster the
//! client of the primary serving the key's slot, whose breaker hears how the command went.

use super::{
    cluster::{ClusterClients, Node},
    durability::{Durability, Session},
    error::store_error,
};
use crate::store::{guard::breaker::Admission, StoreError};
use fred::{
    clients::{Client, Pool, WithOptions},
    error::Error as FredError,
    interfaces::ClientLike,
    types::config::Options,
};
use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

/// The clients the store's commands go through.
#[derive(Clone)]
pub(crate) struct Routes {
    /// The connections of a standalone or Sentinel server; on Cluster, a fred cluster pool that
    /// only [`RedisStore::pool`](crate::RedisStore::pool) hands out.
    pub(crate) pool: Pool,
    /// On Cluster: a client per primary, which the store's own commands use.
    pub(crate) cluster: Option<ClusterClients>,
    /// How many replicas an invalidation waits for, and how long at most.
    pub(crate) durability: (Durability, Duration),
    /// On a standalone or Sentinel server: the connection invalidations that wait for replicas
    /// run on, made when first needed.
    pub(crate) waiting: Arc<WaitingClient>,
    /// The invalidation these routes serve, when it waits for replicas.
    session: Option<Arc<Session>>,
}

/// A client made when first asked for.
pub(crate) struct WaitingClient {
    make: Box<dyn Fn() -> Result<Client, FredError> + Send + Sync>,
    client: OnceLock<Client>,
}

impl WaitingClient {
    /// A client `make` makes, and connects, when first asked for.
    pub(crate) fn new(
        make: impl Fn() -> Result<Client, FredError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            make: Box::new(make),
            client: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&Client, StoreError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = (self.make)().map_err(store_error)?;
        Ok(self.client.get_or_init(|| {
            client.connect();
            client
        }))
    }

    /// The client, if it was made.
    pub(crate) fn made(&self) -> Option<&Client> {
        self.client.get()
    }
}

/// Where one command goes: a client, and on Cluster the node to report the outcome to.
pub(crate) struct Route {
    pub(crate) client: WithOptions<Client>,
    node: Option<(ClusterClients, Arc<Node>, Admission)>,
    /// An invalidation's script: its session, the client, the acknowledgements it needs.
    waits: Option<(Arc<Session>, Client, u32)>,
}

impl Routes {
    /// Routes to the given clients, invalidations waiting for replicas as `durability` says.
    pub(crate) fn new(
        pool: Pool,
        cluster: Option<ClusterClients>,
        durability: (Durability, Duration),
        waiting: WaitingClient,
    ) -> Self {
        Self {
            pool,
            cluster,
            durability,
            waiting: Arc::new(waiting),
            session: None,
        }
    }

    /// The routes of one invalidation: where a script's writes must reach replicas, it runs on
    /// a connection of its own per primary, which [`wait_for_replicas`](Self::wait_for_replicas)
    /// then waits on.
    pub(crate) fn for_invalidation(&self) -> Self {
        let mut routes = self.clone();
        if routes.durability.0 != Durability::Master {
            routes.session = Some(Arc::default());
            // Replicas come and go: the next invalidation counts them again.
            if let Some(cluster) = &routes.cluster {
                cluster.refresh_soon();
            }
        }
        routes
    }

    /// Waits until the replicas hold every write of this invalidation (see [`Durability`]).
    pub(crate) async fn wait_for_replicas(&self) -> Result<(), StoreError> {
        match &self.session {
            Some(session) => session.wait(self.durability.1).await,
            None => Ok(()),
        }
    }

    /// The client for a command on `key`, with `options`.
    pub(crate) fn route(&self, key: &str, options: &Options) -> Result<Route, StoreError> {
        let (durability, _) = self.durability;
        match &self.cluster {
            None => {
                let required = durability.required(None);
                match &self.session {
                    Some(session) if required > 0 => {
                        let client = self.waiting.get()?.clone();
                        Ok(Route {
                            client: client.with_options(&waiting(options)),
                            node: None,
                            waits: Some((session.clone(), client, required)),
                        })
                    }
                    _ => Ok(Route {
                        client: self.pool.next_connected().with_options(options),
                        node: None,
                        waits: None,
                    }),
                }
            }
            Some(cluster) => {
                let (node, admission) = cluster.node_for(key)?;
                let required = durability.required(Some(node.replicas()));
                let waits = match &self.session {
                    Some(session) if required > 0 => {
                        let client = cluster.waiting_client(&node)?;
                        Some((session.clone(), client, required))
                    }
                    _ => None,
                };
                let client = match &waits {
                    Some((_, client, _)) => client.with_options(&waiting(options)),
                    None => node.client.with_options(options),
                };
                Ok(Route {
                    client,
                    node: Some((cluster.clone(), node, admission)),
                    waits,
                })
            }
        }
    }

    /// Stops every client's reconnect loop, without making the caller wait.
    pub(crate) fn quit_in_background(&self) {
        let pool = self.pool.clone();
        let clients = self.cluster.as_ref().map(ClusterClients::clients);
        let waiting = self.waiting.made().cloned();
        tokio::spawn(async move {
            let _ = pool.quit().await;
            if let Some(client) = waiting {
                let _ = client.quit().await;
            }
            for client in clients.into_iter().flatten() {
                let _ = client.quit().await;
            }
        });
    }
}

impl Route {
    /// The client of the node an `ASK` redirection in `error` names (on Cluster, while the
    /// key's slot migrates to it), once this node's answer is reported to its breaker.
    pub(crate) fn asked(self, error: &FredError) -> Option<Client> {
        let (cluster, node, admission) = self.node?;
        let asked = cluster.asked_node(error.details());
        // The node answered: it is up.
        let _ = cluster.report(&node, admission, Ok(()));
        asked.map(|node| node.client.clone())
    }

    /// The command's result, reported to its node's breaker on Cluster.
    pub(crate) fn finish<T>(self, result: Result<T, FredError>) -> Result<T, StoreError> {
        if let (Ok(_), Some((session, client, required))) = (&result, &self.waits) {
            session.ran_on(client, *required);
        }
        match self.node {
            Some((cluster, node, admission)) => cluster.report(&node, admission, result),
            None => result.map_err(store_error),
        }
    }
}

/// The options of a command on an invalidation's own connection: it waits for the connection
/// (made when first needed) within the command timeout, rather than failing at once.
fn waiting(options: &Options) -> Options {
    Options {
        fail_fast: false,
        ..options.clone()
    }
}

/// Per-command options: while a connection is down, fail at once (a miss) instead of queueing
/// behind the reconnect; `timeout` replaces the command timeout (zero: none at all).
pub(crate) fn fail_fast(timeout: Option<Duration>) -> Options {
    Options {
        fail_fast: true,
        timeout,
        ..Options::default()
    }
}
