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
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, OnceLock, RwLock,
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
    server: Server,
    pub(crate) client: Client,
    breaker: CircuitBreaker,
    /// How many replicas the slot map lists for it.
    replicas: AtomicU32,
    /// The connection invalidations that wait for its replicas run on, made when first needed.
    waiting: OnceLock<Client>,
}

impl Node {
    /// How many replicas the slot map lists for this primary.
    pub(crate) fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed)
    }
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

    /// The primary an `ASK` redirection (`ASK <slot> <host>:<port>`) names: the node importing
    /// the slot, if it is a primary this store knows (it serves other slots).
    pub(crate) fn asked_node(&self, redirection: &str) -> Option<Arc<Node>> {
        let address = redirection.split_ascii_whitespace().nth(2)?;
        let (host, port) = address.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let topology = self.topology();
        let found = topology
            .nodes
            .iter()
            .find(|(server, _)| server.host == host && server.port == port)
            .map(|(_, node)| node.clone());
        found
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
                if moved || error.is_outage() || error.kind() == StoreErrorKind::Busy {
                    self.refresh_soon();
                }
                Err(error.node_scoped())
            }
        }
    }

    /// The connection of `node` that invalidations waiting for its replicas run on (see
    /// `durability.rs`): not the one that serves hits, which a `WAIT` would hold up.
    pub(crate) fn waiting_client(&self, node: &Node) -> Result<Client, StoreError> {
        if let Some(client) = node.waiting.get() {
            return Ok(client.clone());
        }
        let client = (self.inner.make)(&node.server).map_err(store_error)?;
        let client = node.waiting.get_or_init(|| {
            client.connect();
            client
        });
        Ok(client.clone())
    }

    /// Every client, for quitting.
    pub(crate) fn clients(&self) -> Vec<Client> {
        let topology = self.topology();
        let waiting = topology.nodes.values().filter_map(|n| n.waiting.get());
        topology
            .nodes
            .values()
            .map(|n| &n.client)
            .chain(waiting)
            .cloned()
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
    pub(crate) fn refresh_soon(&self) {
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
        let mut replicas = HashMap::new();
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
                        let views = cluster_views(client, &server.host, &candidates).await;
                        replicas = replica_counts(&views);
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
                        server: server.clone(),
                        client,
                        breaker: CircuitBreaker::new(NODE_FAILURES, NODE_COOLDOWN, NODE_COOLDOWN)
                            .quiet(),
                        replicas: AtomicU32::new(0),
                        waiting: OnceLock::new(),
                    })
                }
            };
            let listed = replicas.get(&(server.host.to_string(), server.port));
            node.replicas
                .store(listed.copied().unwrap_or(0), Ordering::Relaxed);
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
                if let Some(waiting) = node.waiting.get() {
                    quit(waiting);
                }
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

/// `CLUSTER NODES` as `client` (whose host is `queried`) and every other connected node of
/// `others` see it: each text with the host that fills an address it leaves empty. The first
/// is `client`'s; a node that does not answer within a second is left out.
async fn cluster_views(
    client: &Client,
    queried: &str,
    others: &[(Server, Client)],
) -> Vec<(String, String)> {
    let ask = |client: Client, host: String| async move {
        let command = CustomCommand::new_static("CLUSTER", ClusterHash::FirstKey, false);
        let nodes = client.custom::<String, Value>(command, vec![Value::from("NODES")]);
        match tokio::time::timeout(Duration::from_secs(1), nodes).await {
            Ok(Ok(text)) => Some((text, host)),
            _ => None,
        }
    };
    let others = others
        .iter()
        .filter(|(_, other)| other.id() != client.id() && other.is_connected())
        .map(|(server, other)| ask(other.clone(), server.host.to_string()));
    let (first, others) = futures_util::future::join(
        ask(client.clone(), queried.to_owned()),
        futures_util::future::join_all(others),
    )
    .await;
    first
        .into_iter()
        .chain(others.into_iter().flatten())
        .collect()
}

/// How many replicas each primary (`host`, `port`) the first of the `CLUSTER NODES` views
/// lists has (see [`cluster_views`]): the replicas that view lists for it, not counting one
/// that any view has marked failed (a node that was paused or partitioned can take a while to see that
/// a dead replica failed: the others agreed on it), whether or not it has caught up yet
/// (`CLUSTER SLOTS` leaves out a replica until it reports a replication offset). Empty when no
/// view was given.
fn replica_counts(views: &[(String, String)]) -> HashMap<(String, u16), u32> {
    // Each line: `<id> <ip:port@bus> <flags> <master> ...`.
    let parse = |line: &str| -> Option<(String, String, Vec<String>, String)> {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [id, address, flags, master, ..] = fields[..] else {
            return None;
        };
        let flags = flags.split(',').map(str::to_owned).collect();
        Some((id.to_owned(), address.to_owned(), flags, master.to_owned()))
    };
    let failed_here = |flags: &[String]| {
        flags
            .iter()
            .any(|f| matches!(f.as_str(), "fail" | "noaddr" | "handshake"))
    };
    let failed: HashSet<String> = views
        .iter()
        .flat_map(|(text, _)| text.lines().filter_map(parse))
        .filter(|(_, _, flags, _)| failed_here(flags))
        .map(|(id, ..)| id)
        .collect();
    let Some((text, queried)) = views.first() else {
        return HashMap::new();
    };
    let mut primaries = HashMap::new();
    let mut replicas: HashMap<String, u32> = HashMap::new();
    for (id, address, flags, master) in text.lines().filter_map(parse) {
        // A primary the first view lists is counted for (its replicas are what matters).
        if flags.iter().any(|f| f == "master") && !failed_here(&flags) {
            let address = address.split(['@', ',']).next().unwrap_or_default();
            let Some((host, port)) = address.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let host = if host.is_empty() { queried } else { host };
            primaries.insert(id, (host.to_owned(), port));
        } else if flags.iter().any(|f| f == "slave") && master != "-" && !failed.contains(&id) {
            *replicas.entry(master).or_default() += 1;
        }
    }
    primaries
        .into_iter()
        .map(|(id, server)| (server, replicas.get(&id).copied().unwrap_or(0)))
        .collect()
}

fn quit(client: &Client) {
    let client = client.clone();
    tokio::spawn(async move {
        let _ = client.quit().await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_counted_per_primary_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 :7003@17003 master - 0 0 3 connected 10923-16383
r1 127.0.0.1:7004@17004 slave a1 0 0 1 connected
r2 127.0.0.1:7005@17005 slave,fail a2 0 0 2 disconnected
r3 127.0.0.1:7006@17006 slave a1 0 0 1 connected
r4 127.0.0.1:7007@17007 slave,fail? a3 0 0 3 connected
";
        let counts = replica_counts(&[(nodes.to_owned(), "10.0.0.9".to_owned())]);
        assert_eq!(counts[&("127.0.0.1".to_owned(), 7001)], 2);
        assert_eq!(
            counts[&("127.0.0.1".to_owned(), 7002)],
            0,
            "a failed replica"
        );
        assert_eq!(
            counts[&("10.0.0.9".to_owned(), 7003)],
            1,
            "suspected, not failed"
        );
        assert_eq!(counts.len(), 3);
    }

    #[test]
    fn a_replica_any_view_has_failed_is_not_counted() {
        // A replica just promoted, which was paused while the others agreed that its old
        // master failed, still lists that dead node as its connected replica.
        let promoted = "\
b1 127.0.0.1:7004@17004 myself,master - 0 0 4 connected 0-5460
a1 127.0.0.1:7001@17001 slave b1 0 0 4 connected
";
        let other = "\
a2 127.0.0.1:7002@17002 myself,master - 0 0 2 connected 5461-10922
b1 127.0.0.1:7004@17004 master - 0 0 4 connected 0-5460
a1 127.0.0.1:7001@17001 master,fail - 0 0 1 disconnected
";
        let views = |texts: &[&str]| -> Vec<(String, String)> {
            texts
                .iter()
                .map(|t| (t.to_string(), "127.0.0.1".to_owned()))
                .collect()
        };
        let b1 = ("127.0.0.1".to_owned(), 7004);
        assert_eq!(replica_counts(&views(&[promoted]))[&b1], 1);
        assert_eq!(replica_counts(&views(&[promoted, other]))[&b1], 0);
        assert!(replica_counts(&[]).is_empty());
        // A view that has not yet seen a primary recover does not make its replicas go
        // uncounted.
        let first = "\
p1 127.0.0.1:7002@17002 myself,master - 0 0 2 connected 5461-10922
r1 127.0.0.1:7005@17005 slave p1 0 0 2 connected
";
        let stale = "\
p1 127.0.0.1:7002@17002 master,fail - 0 0 2 disconnected 5461-10922
r1 127.0.0.1:7005@17005 slave p1 0 0 2 connected
";
        let p1 = ("127.0.0.1".to_owned(), 7002);
        assert_eq!(replica_counts(&views(&[first, stale]))[&p1], 1);
    }
}
