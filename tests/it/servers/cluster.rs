//! [`RedisCluster`]: three real `redis-server` masters (no replicas) formed into a Redis Cluster
//! without `redis-cli`: each node gets a third of the slots with `CLUSTER ADDSLOTSRANGE`
//! (Redis ≥ 7.0), a distinct config epoch, then node 0 `CLUSTER MEET`s the others and the
//! harness waits (bounded) until every node reports `cluster_state:ok` and sees three masters.
//!
//! Also [`key_slot`]: Redis' CRC16 (XMODEM) key → slot mapping with `{hash tag}` rules.

use std::thread;
use std::time::{Duration, Instant};

use super::resp::Reply;
use super::server::{cluster_port_pair, percent_encode, PortChoice, RedisServer};

/// Number of hash slots in Redis Cluster.
pub const SLOTS: u16 = 16384;
/// How long the cluster may take to converge before the test panics.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// The slot ranges given to nodes 0, 1 and 2 (the same split `redis-cli --cluster create` makes).
pub const SLOT_RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// A running three-master cluster on loopback. Nodes are killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// With [`RedisClusterBuilder::tls`]: node `i`'s TLS port.
    tls_ports: Vec<u16>,
    /// With [`RedisClusterBuilder::replicas`]: replica `i` follows node `i`.
    replicas: Vec<RedisServer>,
    password: Option<String>,
}

/// Builder for a [`RedisCluster`] with extra per-node arguments and/or a password.
#[derive(Default)]
pub struct RedisClusterBuilder {
    args: Vec<String>,
    password: Option<String>,
    replicas: bool,
    tls: Option<Vec<String>>,
}

impl RedisClusterBuilder {
    /// Appends one extra `redis-server` argument for every node.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// `--requirepass` (and `--masterauth`) on every node.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// One replica per master (six nodes): a killed master's replica takes over after the
    /// node timeout (2 s).
    pub fn replicas(mut self) -> Self {
        self.replicas = true;
        self
    }

    /// Clients and the cluster bus over TLS: every node gets a TLS port of its own besides
    /// its plain one (which stays for the harness), `--tls-cluster yes`, and `tls_args` (the
    /// certificate and key files, `--tls-auth-clients`; see `TlsRedis`). The cluster then
    /// announces the TLS ports to TLS clients, and [`RedisCluster::url`] is `rediss-cluster://`.
    pub fn tls(mut self, tls_args: Vec<String>) -> Self {
        self.tls = Some(tls_args);
        self
    }

    /// One node and its TLS port (0 without TLS). With TLS the bus port follows the TLS port
    /// (`tls_port + 10000`), so that is the pair that must be free.
    fn start_node(&self) -> (RedisServer, u16) {
        let (choice, tls_port) = match &self.tls {
            Some(_) => (PortChoice::Ephemeral, cluster_port_pair()),
            None => (PortChoice::ClusterPair, 0),
        };
        let mut builder = RedisServer::builder()
            .port_choice(choice)
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "2000"])
            .args(self.args.iter().cloned());
        if let Some(pw) = &self.password {
            builder = builder.args(["--masterauth", pw]).password(pw.clone());
        }
        if let Some(tls_args) = &self.tls {
            builder = builder
                .args(["--tls-port".to_owned(), tls_port.to_string()])
                .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                .args(tls_args.iter().cloned());
        }
        (builder.start(), tls_port)
    }

    /// Starts the three nodes, forms the cluster and waits until it is healthy.
    pub fn start(self) -> RedisCluster {
        let (nodes, tls_ports): (Vec<RedisServer>, Vec<u16>) =
            SLOT_RANGES.iter().map(|_| self.start_node()).unzip();
        // The port a node is met on: the one its bus port follows.
        let meet_port = |node: &RedisServer, tls_port: u16| match self.tls {
            Some(_) => tls_port,
            None => node.port(),
        };

        for (i, (node, (lo, hi))) in nodes.iter().zip(SLOT_RANGES).enumerate() {
            let epoch = (i + 1).to_string();
            expect_ok(node, &["CLUSTER", "SET-CONFIG-EPOCH", &epoch]);
            expect_ok(
                node,
                &["CLUSTER", "ADDSLOTSRANGE", &lo.to_string(), &hi.to_string()],
            );
        }
        for (other, &tls_port) in nodes[1..].iter().zip(&tls_ports[1..]) {
            let port = meet_port(other, tls_port).to_string();
            expect_ok(&nodes[0], &["CLUSTER", "MEET", "127.0.0.1", &port]);
        }
        let mut replicas = Vec::new();
        if self.replicas {
            for _ in &nodes {
                let (replica, tls_port) = self.start_node();
                let port = meet_port(&replica, tls_port).to_string();
                expect_ok(&nodes[0], &["CLUSTER", "MEET", "127.0.0.1", &port]);
                replicas.push(replica);
            }
        }
        let cluster = RedisCluster {
            nodes,
            tls_ports: if self.tls.is_some() {
                tls_ports
            } else {
                Vec::new()
            },
            replicas,
            password: self.password,
        };
        cluster.wait_healthy();
        for (master, replica) in cluster.nodes.iter().zip(&cluster.replicas) {
            let id = master.command(&["CLUSTER", "MYID"]);
            // The replica must know the master first: retry until gossip has told it.
            let deadline = Instant::now() + CLUSTER_TIMEOUT;
            while replica.query(&["CLUSTER", "REPLICATE", &id]) != Reply::Simple("OK".into()) {
                assert!(
                    Instant::now() < deadline,
                    "replica never accepted its master"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        for replica in &cluster.replicas {
            let deadline = Instant::now() + CLUSTER_TIMEOUT;
            while !replica
                .command(&["INFO", "replication"])
                .contains("master_link_status:up")
            {
                assert!(Instant::now() < deadline, "replica never synced");
                thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }
}

fn expect_ok(node: &RedisServer, args: &[&str]) {
    let reply = node.query(args);
    assert_eq!(
        reply,
        Reply::Simple("OK".into()),
        "{args:?} on port {}",
        node.port()
    );
}

impl RedisCluster {
    /// Starts a plain three-master cluster.
    pub fn start() -> RedisCluster {
        RedisCluster::builder().start()
    }

    /// A builder for extra arguments and a password.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    /// Waits (up to [`CLUSTER_TIMEOUT`]) until every running node reports `cluster_state:ok`, all
    /// 16384 slots ok, and knows exactly three healthy masters that all own slots. Panics with
    /// every node's `CLUSTER INFO` / `CLUSTER NODES` otherwise. Call again after restarting a node.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while !self.nodes.iter().all(node_healthy) {
            if Instant::now() > deadline {
                let state: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| {
                        let probe = |args: &[&str]| match n.try_query(args, Duration::from_secs(1))
                        {
                            Ok(reply) => reply.text(),
                            Err(e) => format!("<{e}>"),
                        };
                        format!(
                            "node :{} (pid {:?})\n{}\n{}\n{}",
                            n.port(),
                            n.pid(),
                            probe(&["CLUSTER", "INFO"]),
                            probe(&["CLUSTER", "NODES"]),
                            n.log_tail()
                        )
                    })
                    .collect();
                panic!(
                    "cluster not healthy within {CLUSTER_TIMEOUT:?}:\n{}",
                    state.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=127.0.0.1:P3` (fred's URL form), with
    /// `:PASSWORD@` when a password is set; `rediss-cluster://` and the TLS ports with
    /// [`RedisClusterBuilder::tls`].
    pub fn url(&self) -> String {
        let auth = self
            .password
            .as_deref()
            .map(|pw| format!(":{}@", percent_encode(pw)))
            .unwrap_or_default();
        match self.tls_ports.is_empty() {
            true => cluster_url("redis-cluster", &auth, &self.ports()),
            false => cluster_url("rediss-cluster", &auth, &self.tls_ports),
        }
    }

    /// The TLS ports, in node order (empty without [`RedisClusterBuilder::tls`]).
    pub fn tls_ports(&self) -> &[u16] {
        &self.tls_ports
    }

    /// The nodes; node `i` owns [`SLOT_RANGES`]`[i]`.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The replicas (with [`RedisClusterBuilder::replicas`]); replica `i` follows node `i`.
    pub fn replicas(&self) -> &[RedisServer] {
        &self.replicas
    }

    /// Mutable nodes, to [`RedisServer::kill`] / [`RedisServer::restart`] / pause one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The server listening on `port`, a node or a replica (roles change with failovers).
    pub fn server(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .chain(&self.replicas)
            .find(|server| server.port() == port)
            .unwrap_or_else(|| panic!("no server on port {port}"))
    }

    /// Mutable [`server`](Self::server), to kill or restart it.
    pub fn server_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .chain(&mut self.replicas)
            .find(|server| server.port() == port)
            .unwrap_or_else(|| panic!("no server on port {port}"))
    }

    /// The node ports, in node order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Index of the node that owns `key`'s slot.
    pub fn node_for_key(&self, key: impl AsRef<[u8]>) -> usize {
        node_for_slot(key_slot(key))
    }

    /// The node that owns `key`'s slot.
    pub fn server_for_key(&self, key: impl AsRef<[u8]>) -> &RedisServer {
        &self.nodes[self.node_for_key(key)]
    }

    /// Keys matching `pattern` on all nodes (SCAN on each), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.nodes.iter().flat_map(|n| n.keys(pattern)).collect();
        keys.sort();
        keys
    }

    /// `GET key` on the owning node.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.server_for_key(key).get(key)
    }

    /// `SET key bytes` on the owning node.
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        self.server_for_key(key).set_raw(key, value)
    }

    /// `PTTL key` on the owning node.
    pub fn ttl_ms(&self, key: &str) -> i64 {
        self.server_for_key(key).ttl_ms(key)
    }

    /// `FLUSHALL` on every node.
    pub fn flushall(&self) {
        self.nodes.iter().for_each(RedisServer::flushall);
    }
}

/// `{scheme}://{auth}127.0.0.1:P1?node=127.0.0.1:P2&node=…`: fred's URL form of a cluster, its
/// seed nodes on `ports`; `auth` is `user:password@` or empty.
pub fn cluster_url(scheme: &str, auth: &str, ports: &[u16]) -> String {
    let others: Vec<String> = ports[1..]
        .iter()
        .map(|port| format!("node=127.0.0.1:{port}"))
        .collect();
    format!(
        "{scheme}://{auth}127.0.0.1:{}?{}",
        ports[0],
        others.join("&")
    )
}

/// Whether one node (if reachable) reports a healthy three-master cluster.
fn node_healthy(node: &RedisServer) -> bool {
    let timeout = Duration::from_secs(1);
    let Ok(info) = node.try_query(&["CLUSTER", "INFO"], timeout) else {
        return false;
    };
    let info = info.text();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("cluster_state") != Some("ok") || field("cluster_slots_ok") != Some("16384") {
        return false;
    }
    let Ok(nodes) = node.try_query(&["CLUSTER", "NODES"], timeout) else {
        return false;
    };
    let healthy_masters_with_slots = nodes
        .text()
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2).copied().unwrap_or("");
            let flagged = |f: &str| flags.split(',').any(|x| x == f);
            flagged("master")
                && !["fail", "fail?", "handshake", "noaddr"]
                    .iter()
                    .any(|f| flagged(f))
                && fields.get(7) == Some(&"connected")
                && fields.len() > 8
        })
        .count();
    healthy_masters_with_slots == 3
}

/// The node index owning `slot` under [`SLOT_RANGES`].
pub fn node_for_slot(slot: u16) -> usize {
    SLOT_RANGES
        .iter()
        .position(|&(lo, hi)| (lo..=hi).contains(&slot))
        .unwrap_or_else(|| panic!("slot {slot} out of range"))
}

/// The Redis Cluster hash slot of `key`: CRC16-XMODEM of the key (or of the first non-empty
/// `{hash tag}`) modulo 16384.
pub fn key_slot(key: impl AsRef<[u8]>) -> u16 {
    let key = key.as_ref();
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % SLOTS
}

/// CRC16-CCITT in the XMODEM variant (polynomial 0x1021, initial value 0), as in Redis' `crc16.c`.
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}
