//! [`Redis`]: one test's Redis deployment, a standalone [`RedisServer`] or a three-master
//! [`RedisCluster`], behind one set of methods, so that one test body runs on either
//! ([`Topology`] says which).
//!
//! Its methods are blocking (the harness speaks RESP over std sockets); they are quick
//! loopback round trips, fine on a multi-threaded runtime.

use super::cluster::{cluster_url, RedisCluster};
use super::resp::Reply;
use super::server::{percent_encode, RedisServer};

/// Which deployment a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    Cluster,
}

/// One Redis deployment of a test: a standalone server or a three-master cluster.
pub enum Redis {
    Standalone(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    /// A plain deployment (no password) of `topology`.
    pub fn start(topology: Topology) -> Self {
        match topology {
            Topology::Standalone => Self::standalone(),
            Topology::Cluster => Self::cluster(),
        }
    }

    /// A deployment of `topology` whose default user needs `password` (every node's
    /// `--requirepass`); [`url`](Self::url) carries it, and the harness authenticates with it.
    pub fn with_password(topology: Topology, password: &str) -> Self {
        match topology {
            Topology::Standalone => {
                Redis::Standalone(RedisServer::builder().password(password).start())
            }
            Topology::Cluster => Redis::Cluster(RedisCluster::builder().password(password).start()),
        }
    }

    pub fn standalone() -> Self {
        Redis::Standalone(RedisServer::start())
    }

    pub fn cluster() -> Self {
        Redis::Cluster(RedisCluster::start())
    }

    pub fn topology(&self) -> Topology {
        match self {
            Redis::Standalone(_) => Topology::Standalone,
            Redis::Cluster(_) => Topology::Cluster,
        }
    }

    /// The URL of the deployment, with its password if it has one.
    pub fn url(&self) -> String {
        match self {
            Redis::Standalone(s) => s.url(),
            Redis::Cluster(c) => c.url(),
        }
    }

    /// The URL of the deployment with `user` and `password` in it (percent-encoded), whatever
    /// the servers expect; with both empty, a URL without credentials.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        url(
            self.topology(),
            false,
            &userinfo(user, password),
            &self.ports(),
        )
    }

    /// Every server: the one server, or the cluster's masters in node order.
    pub fn nodes(&self) -> Vec<&RedisServer> {
        match self {
            Redis::Standalone(s) => vec![s],
            Redis::Cluster(c) => c.nodes().iter().collect(),
        }
    }

    /// The ports of [`nodes`](Self::nodes), in the same order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes().iter().map(|node| node.port()).collect()
    }

    /// The node that serves `key` (the server, when standalone).
    pub fn node_for(&self, key: &str) -> &RedisServer {
        match self {
            Redis::Standalone(s) => s,
            Redis::Cluster(c) => c.server_for_key(key),
        }
    }

    /// Keys matching `pattern` (on every node), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self {
            Redis::Standalone(s) => s.keys(pattern),
            Redis::Cluster(c) => c.keys(pattern),
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.node_for(key).get(key)
    }

    /// `SET key value` without expiry.
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        self.node_for(key).set_raw(key, value)
    }

    /// `EXISTS key`.
    pub fn exists(&self, key: &str) -> bool {
        self.node_for(key).exists(key)
    }

    /// `PTTL key`: `-2` when missing, `-1` without expiry.
    pub fn ttl_ms(&self, key: &str) -> i64 {
        self.node_for(key).ttl_ms(key)
    }

    /// Runs `args` on the node that serves `key` (the server, when standalone).
    pub fn query_for(&self, key: &str, args: &[&str]) -> Reply {
        self.node_for(key).query(args)
    }

    /// Runs `args` on every node; the replies in node order.
    pub fn query_all(&self, args: &[&str]) -> Vec<Reply> {
        self.nodes().iter().map(|node| node.query(args)).collect()
    }

    /// `FLUSHALL` on every node.
    pub fn flushall(&self) {
        match self {
            Redis::Standalone(s) => s.flushall(),
            Redis::Cluster(c) => c.flushall(),
        }
    }

    /// Kills every process (the URL then points at nothing).
    pub fn kill(&mut self) {
        match self {
            Redis::Standalone(s) => s.kill(),
            Redis::Cluster(c) => c.nodes_mut().iter_mut().for_each(RedisServer::kill),
        }
    }
}

/// `user:password@` (percent-encoded) for a URL, or nothing when both are empty.
pub fn userinfo(user: &str, password: &str) -> String {
    if user.is_empty() && password.is_empty() {
        String::new()
    } else {
        format!("{}:{}@", percent_encode(user), percent_encode(password))
    }
}

/// The URL of a deployment of `topology` on `ports` (the first one only, when standalone):
/// `redis://` or `redis-cluster://`, `rediss…` when `tls`, with `auth` (see [`userinfo`]).
pub fn url(topology: Topology, tls: bool, auth: &str, ports: &[u16]) -> String {
    let s = if tls { "s" } else { "" };
    match topology {
        Topology::Standalone => format!("redis{s}://{auth}127.0.0.1:{}", ports[0]),
        Topology::Cluster => cluster_url(&format!("redis{s}-cluster"), auth, ports),
    }
}
