//! Where a command goes: the connection of a standalone or Sentinel server, or on Cluster the
//! client of the primary serving the key's slot, whose breaker hears how the command went.

use super::{
    cluster::{ClusterClients, Node},
    error::store_error,
};
use crate::store::{guard::breaker::Admission, StoreError};
use fred::{
    clients::{Client, Pool, WithOptions},
    error::Error as FredError,
    interfaces::ClientLike,
    types::config::Options,
};
use std::{sync::Arc, time::Duration};

/// The clients the store's commands go through.
#[derive(Clone)]
pub(crate) struct Routes {
    /// The connections of a standalone or Sentinel server; on Cluster, a fred cluster pool that
    /// only [`RedisStore::pool`](crate::RedisStore::pool) hands out.
    pub(crate) pool: Pool,
    /// On Cluster: a client per primary, which the store's own commands use.
    pub(crate) cluster: Option<ClusterClients>,
}

/// Where one command goes: a client, and on Cluster the node to report the outcome to.
pub(crate) struct Route {
    pub(crate) client: WithOptions<Client>,
    node: Option<(ClusterClients, Arc<Node>, Admission)>,
}

impl Routes {
    /// The client for a command on `key`, with `options`.
    pub(crate) fn route(&self, key: &str, options: &Options) -> Result<Route, StoreError> {
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

    /// Stops every client's reconnect loop, without making the caller wait.
    pub(crate) fn quit_in_background(&self) {
        let pool = self.pool.clone();
        let clients = self.cluster.as_ref().map(ClusterClients::clients);
        tokio::spawn(async move {
            let _ = pool.quit().await;
            for client in clients.into_iter().flatten() {
                let _ = client.quit().await;
            }
        });
    }
}

impl Route {
    /// The command's result, reported to its node's breaker on Cluster.
    pub(crate) fn finish<T>(self, result: Result<T, FredError>) -> Result<T, StoreError> {
        match self.node {
            Some((cluster, node, admission)) => cluster.report(&node, admission, result),
            None => result.map_err(store_error),
        }
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
