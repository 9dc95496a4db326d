//! [`Monitor`]: the `MONITOR` feeds of one or more servers, read up to a sentinel, so that a test
//! sees exactly which commands reached them while it acted — and can assert on the commands
//! that concern what it owns (a key) instead of on server-wide counters that anything else
//! running (a heartbeat, a write-back, another instance) also moves.
//!
//! A server sends a command to its monitors once it has run it, in the order it runs them. So
//! once `ECHO <token>`, sent after the test acted, shows up on a feed, every command that server
//! ran before it has shown up too: an event to wait for, not a delay to guess.

use std::net::SocketAddr;

use super::resp::{Reply, RespConnection, DEFAULT_TIMEOUT};
use super::server::{random_u64, RedisServer};

/// Open `MONITOR` feeds, one per watched server.
pub struct Monitor {
    feeds: Vec<Feed>,
}

struct Feed {
    addr: SocketAddr,
    password: Option<String>,
    conn: RespConnection,
}

impl Monitor {
    /// Starts watching `nodes`: returns once every server has acknowledged `MONITOR`, so every
    /// command they run from then on is on a feed.
    pub fn start<'a>(nodes: impl IntoIterator<Item = &'a RedisServer>) -> Monitor {
        let feeds = nodes
            .into_iter()
            .map(|node| {
                let mut conn = node.connect();
                let reply = conn
                    .call(&["MONITOR"])
                    .unwrap_or_else(|e| panic!("MONITOR on port {}: {e}", node.port()));
                assert_eq!(reply, Reply::Simple("OK".into()), "MONITOR");
                Feed {
                    addr: node.addr(),
                    password: node.password().map(str::to_owned),
                    conn,
                }
            })
            .collect();
        Monitor { feeds }
    }

    /// Stops watching: sends a unique `ECHO` sentinel to every watched server on another
    /// connection and reads each feed up to it. Returns the feed lines before the sentinels
    /// (`<time> [<db> <client>] "CMD" "arg" …`), server after server: every command the
    /// servers ran since [`start`](Self::start) returned.
    pub fn stop(self) -> Vec<String> {
        let token = format!("monitor-sentinel-{:016x}", random_u64());
        let mut lines = Vec::new();
        for mut feed in self.feeds {
            let reply =
                RespConnection::connect_auth(feed.addr, feed.password.as_deref(), DEFAULT_TIMEOUT)
                    .and_then(|mut conn| conn.call(&["ECHO", &token]))
                    .unwrap_or_else(|e| panic!("ECHO sentinel to {}: {e}", feed.addr));
            assert_eq!(reply, Reply::Bulk(token.clone().into_bytes()), "ECHO");
            loop {
                let line = match feed.conn.read_reply() {
                    Ok(Reply::Simple(line)) => line,
                    Ok(other) => panic!("unexpected MONITOR reply from {}: {other:?}", feed.addr),
                    Err(e) => panic!(
                        "the ECHO sentinel never reached the MONITOR feed of {} \
                         ({e}); seen before: {lines:#?}",
                        feed.addr
                    ),
                };
                if line.contains(&token) {
                    break;
                }
                lines.push(line);
            }
        }
        lines
    }
}
