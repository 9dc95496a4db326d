//! Redis Cluster through one fred client per primary and a circuit breaker per node, so that a
//! node that is down fails only the slots it serves.
//!
//! fred's own cluster client reconnects all its connections together when one node is lost:
//! until the lost node answers again, every command fails, also for slots on healthy nodes.
//! Here each primary has a client of its own; a command goes to the client of the primary that
//! serves its key's slot (`CLUSTER SLOTS`, refreshed when a node fails or answers `MOVED`), and
//! a node whose lookups keep failing is skipped for a cool-down, like the layer's breaker.
//! After a failover the refreshed map names the promoted replica, and its slots hit again.

use super::error::store_error;
use crate::config_error::ConfigError;
use crate::millis::millis;
use crate::store::{
    guard::breaker::{Admission, CircuitBreaker},
    StoreError, StoreErrorKind,
};
use fred::{
    clients::Client,
    error::Error as FredError,
    interfaces::ClientLike,
    types::{
        cluster::ClusterRouting,
        config::{Config, Server, ServerConfig},
        Builder, ClusterHash, CustomCommand, Value,
    },
    util::redis_keyslot,
};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

/// After this many consecutive outages a node is skipped for [`NODE_COOLDOWN`].
const NODE_FAILURES: u32 = 3;
const NODE_COOLDOWN: Duration = Duration::from_millis(500);
/// The slot map is fetched again at most this often.
const REFRESH_INTERVAL: Duration = Duration::from_millis(200);

/// The clients of a cluster's primaries and the slot map that routes to them.
#[derive(Clone)]
pub(crate) struct ClusterClients {
    inner: Arc<Inner>,
}

/// Makes a client for one node: the store's settings with that node as its only server.
type MakeClient = Box<dyn Fn(&Server) -> Result<Client, FredError> + Send + Sync>;

struct Inner {
    make: MakeClient,
    seeds: Vec<Server>,
    topology: RwLock<Arc<Topology>>,
    refreshing: AtomicBool,
    last_refresh: AtomicU64,
    epoch: Instant,
}

struct Topology {
    routing: ClusterRouting,
    nodes: HashMap<Server, Arc<Node>>,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            routing: ClusterRouting::new(),
            nodes: HashMap::new(),
        }
    }
}

/// One primary: its client and its breaker.
pub(crate) struct Node {
    pub(crate) client: Client,
    breaker: CircuitBreaker,
}

impl ClusterClients {
    /// Clients for the cluster `config` names (its seed nodes first), each built by `make`.
    pub(crate) fn new(
        config: &Config,
        builder: impl Fn(Config) -> Builder + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let ServerConfig::Clustered { hosts, .. } = &config.server else {
            return Err(ConfigError::new("not a cluster URL"));
        };
        let template = config.clone();
        let make = move |server: &Server| {
            let mut config = template.clone();
            config.server = ServerConfig::Centralized {
                server: server.clone(),
            };
            builder(config).build()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                make: Box::new(make),
                seeds: hosts.clone(),
                topology: RwLock::default(),
                refreshing: AtomicBool::new(false),
                last_refresh: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        })
    }

    /// Connects the seed nodes and learns the slot map from the first that answers; keeps
    /// trying in the background.
    pub(crate) fn start(&self) {
        self.refresh_now();
    }

    /// Waits until the slot map is known, at most `timeout`.
    pub(crate) async fn wait_for_topology(&self, timeout: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.topology().nodes.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("no cluster node answered CLUSTER SLOTS within {timeout:?}"),
                ));
            }
            self.refresh_soon();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The node serving `key`'s slot, unless it is known to be down (a node-scoped error).
    pub(crate) fn node_for(&self, key: &str) -> Result<(Arc<Node>, Admission), StoreError> {
        let slot = redis_keyslot(key.as_bytes());
        let topology = self.topology();
        let node = topology
            .routing
            .get_server(slot)
            .and_then(|server| topology.nodes.get(server))
            .cloned();
        let Some(node) = node else {
            self.refresh_soon();
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("no known primary serves slot {slot}"),
            )
            .node_scoped());
        };
        match node.breaker.admit() {
            Admission::Denied => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("the node serving slot {slot} is down"),
            )
            .node_scoped()),
            admission => Ok((node, admission)),
        }
    }

    /// Reports the outcome of a command sent to `node`; fetches the slot map again when the
    /// node failed or said the slot moved.
    pub(crate) fn report<T>(
        &self,
        node: &Node,
        admission: Admission,
        result: Result<T, FredError>,
    ) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                node.breaker.on_success();
                Ok(value)
            }
            Err(error) => {
                let moved = error.is_moved() || error.is_ask();
                let error = store_error(error);
                if error.is_outage() {
                    node.breaker.on_failure(admission);
                } else {
                    node.breaker.on_success();
                }
                if moved || error.is_outage() {
                    self.refresh_soon();
                }
                Err(error.node_scoped())
            }
        }
    }

    /// Every client, for quitting.
    pub(crate) fn clients(&self) -> Vec<Client> {
        self.topology()
            .nodes
            .values()
            .map(|n| n.client.clone())
            .collect()
    }

    fn topology(&self) -> Arc<Topology> {
        self.inner
            .topology
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches the slot map in the background, unless that happened within
    /// [`REFRESH_INTERVAL`] or is under way.
    fn refresh_soon(&self) {
        let now = millis(self.inner.epoch.elapsed());
        let last = self.inner.last_refresh.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < millis(REFRESH_INTERVAL) {
            return;
        }
        self.refresh_now();
    }

    fn refresh_now(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let now = millis(self.inner.epoch.elapsed());
        self.inner.last_refresh.store(now.max(1), Ordering::Release);
        let this = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.refreshing.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = this.refresh().await {
                tracing::debug!(%error, "cluster slot map not refreshed");
            }
            this.inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// Asks the known primaries, then the seeds, for `CLUSTER SLOTS`, and swaps in the new map
    /// with a client for every primary it names.
    async fn refresh(&self) -> Result<(), StoreError> {
        let current = self.topology();
        let mut candidates: Vec<(Server, Client)> = current
            .nodes
            .iter()
            .map(|(server, node)| (server.clone(), node.client.clone()))
            .collect();
        let mut seed_clients = HashMap::new();
        for seed in &self.inner.seeds {
            if !current.nodes.contains_key(seed) {
                let client = self.connect(seed)?;
                seed_clients.insert(seed.clone(), client.clone());
                candidates.push((seed.clone(), client));
            }
        }
        let mut routing = None;
        for (server, client) in &candidates {
            if !client.is_connected() {
                let _ = tokio::time::timeout(Duration::from_millis(500), client.wait_for_connect())
                    .await;
            }
            let command = CustomCommand::new_static("CLUSTER", ClusterHash::FirstKey, false);
            let slots = client.custom::<Value, Value>(command, vec![Value::from("SLOTS")]);
            if let Ok(Ok(value)) = tokio::time::timeout(Duration::from_secs(1), slots).await {
                if let Ok(parsed) = ClusterRouting::from_cluster_slots(value, server.host.clone()) {
                    if !parsed.slots().is_empty() {
                        routing = Some(parsed);
                        break;
                    }
                }
            }
        }
        let Some(routing) = routing else {
            for client in seed_clients.values() {
                quit(client);
            }
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "no cluster node answered CLUSTER SLOTS",
            ));
        };
        let mut nodes = HashMap::new();
        let mut new_clients = Vec::new();
        for server in routing.unique_primary_nodes() {
            let node = match current.nodes.get(&server) {
                Some(node) => node.clone(),
                None => {
                    let client = match seed_clients.remove(&server) {
                        Some(client) => client,
                        None => self.connect(&server)?,
                    };
                    new_clients.push(client.clone());
                    Arc::new(Node {
                        client,
                        breaker: CircuitBreaker::new(NODE_FAILURES, NODE_COOLDOWN, NODE_COOLDOWN)
                            .quiet(),
                    })
                }
            };
            nodes.insert(server, node);
        }
        // A new primary's client gets a moment to connect before commands are routed to it
        // (they would fail fast meanwhile); one that does not is routed to all the same, and
        // its breaker takes over.
        let connecting = new_clients
            .iter()
            .map(|client| tokio::time::timeout(Duration::from_secs(1), client.wait_for_connect()));
        futures_util::future::join_all(connecting).await;
        for (server, node) in &current.nodes {
            if !nodes.contains_key(server) {
                quit(&node.client);
            }
        }
        for client in seed_clients.values() {
            quit(client);
        }
        *self
            .inner
            .topology
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::new(Topology { routing, nodes });
        Ok(())
    }

    fn connect(&self, server: &Server) -> Result<Client, StoreError> {
        let client = (self.inner.make)(server).map_err(store_error)?;
        client.connect();
        Ok(client)
    }
}

fn quit(client: &Client) {
    let client = client.clone();
    tokio::spawn(async move {
        let _ = client.quit().await;
    });
}
