//! Self-tests of the integration-test harness in `tests/it/servers/`: real `redis-server`
//! processes (standalone, cluster, compose settings), the RESP client, and the fault proxy.

use std::io;
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::servers::resp::{encode_command, read_reply};
use crate::servers::{
    compose_redis_args, crc16_xmodem, key_slot, parse_service_command, Monitor, ProxyMode,
    RedisCluster, RedisServer, Reply, RespConnection, TcpProxy,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Polls `condition` every 20 ms until it holds or `within` passes.
fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[test]
fn resp_encoding_and_parsing() {
    assert_eq!(
        encode_command(&["GET", "k"]),
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    );
    let input = b"*6\r\n+OK\r\n-ERR x\r\n:7\r\n$-1\r\n$3\r\na\r\n\r\n*-1\r\n";
    let reply = read_reply(&mut &input[..]).unwrap();
    assert_eq!(
        reply,
        Reply::Array(vec![
            Reply::Simple("OK".into()),
            Reply::Error("ERR x".into()),
            Reply::Integer(7),
            Reply::Nil,
            Reply::Bulk(b"a\r\n".to_vec()),
            Reply::Nil,
        ])
    );
    assert_eq!(
        read_reply(&mut &b"$5\r\nab"[..]).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    assert_eq!(
        read_reply(&mut &b"+PON"[..]).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    assert_eq!(
        read_reply(&mut &b"?x\r\n"[..]).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn standalone_set_get_kill_restart_on_same_port() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(redis.addr().to_string(), format!("127.0.0.1:{port}"));
    assert!(redis.dir().join("redis.log").exists());
    assert_eq!(redis.config_get("save"), "");
    assert_eq!(redis.config_get("appendonly"), "no");

    redis.set_raw("bin", b"\x00\xffbytes\r\n");
    assert_eq!(redis.get("bin").as_deref(), Some(&b"\x00\xffbytes\r\n"[..]));
    assert_eq!(redis.get("missing"), None);
    assert_eq!(redis.command(&["SET", "t", "v", "PX", "60000"]), "OK");
    let ttl = redis.ttl_ms("t");
    assert!(0 < ttl && ttl <= 60_000, "ttl {ttl}");
    assert_eq!(redis.ttl_ms("bin"), -1);
    assert_eq!(redis.ttl_ms("missing"), -2);
    assert!(redis
        .command(&["NOSUCHCMD"])
        .starts_with("ERR unknown command"));

    // Enough keys for SCAN to need several round trips.
    let mut conn = redis.connect();
    for i in 0..3000 {
        conn.send(&["SET", &format!("many:{i}"), "x"]).unwrap();
    }
    for _ in 0..3000 {
        assert_eq!(conn.read_reply().unwrap(), Reply::Simple("OK".into()));
    }
    assert_eq!(redis.keys("many:*").len(), 3000);
    assert_eq!(redis.keys("t"), vec!["t".to_owned()]);
    assert_eq!(redis.dbsize(), 3002);

    let old_pid = redis.pid().unwrap();
    redis.kill();
    assert!(!redis.is_running());
    assert!(!redis.ping(Duration::from_millis(300)));
    assert!(
        TcpStream::connect(redis.addr()).is_err(),
        "port still open after kill"
    );

    redis.restart();
    assert_eq!(redis.port(), port);
    assert_ne!(redis.pid().unwrap(), old_pid);
    assert!(redis.ping(TIMEOUT));
    assert_eq!(redis.dbsize(), 0, "no persistence across restarts");
    redis.set_raw("k", b"v");
    redis.flushall();
    assert_eq!(redis.dbsize(), 0);
}

#[test]
fn drop_kills_the_process_and_removes_the_dir() {
    let redis = RedisServer::start();
    let (addr, dir) = (redis.addr(), redis.dir().to_owned());
    drop(redis);
    assert!(!dir.exists());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn parallel_servers_get_distinct_ports() {
    let servers: Vec<RedisServer> = (0..8)
        .map(|_| thread::spawn(RedisServer::start))
        .map(|h| h.join().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        // Each port is answered by its own process.
        let pid = server.info_field("server", "process_id").unwrap();
        assert_eq!(pid, server.pid().unwrap().to_string());
    }
}

#[test]
fn builder_args_and_password() {
    let redis = RedisServer::builder()
        .arg("--maxmemory")
        .arg("1mb")
        .password("p w@x")
        .start();
    assert_eq!(
        redis.url(),
        format!("redis://:p%20w%40x@127.0.0.1:{}", redis.port())
    );
    assert_eq!(redis.password(), Some("p w@x"));
    assert_eq!(redis.config_get("maxmemory"), "1048576");
    assert_eq!(redis.command(&["PING"]), "PONG");
    let denied = redis.query_unauthenticated(&["GET", "k"]);
    assert!(
        denied.error().is_some_and(|e| e.starts_with("NOAUTH")),
        "{denied:?}"
    );
}

#[test]
fn start_with_args_picks_a_port_and_uses_requirepass() {
    let redis = RedisServer::start_with_args(vec![
        "--requirepass".into(),
        "pw".into(),
        "--save".into(),
        "".into(),
    ]);
    assert_eq!(redis.password(), Some("pw"));
    assert_eq!(redis.config_get("port"), redis.port().to_string());
    assert_eq!(
        redis.config_get("appendonly"),
        "no",
        "redis default, not added by start_with_args"
    );
}

#[test]
fn pause_makes_ping_time_out_and_resume_brings_it_back() {
    let redis = RedisServer::start();
    redis.pause();
    let err = redis
        .try_query(&["PING"], Duration::from_millis(300))
        .unwrap_err();
    assert!(is_timeout(&err), "expected a timeout, got {err:?}");
    redis.resume();
    eventually(TIMEOUT, "PONG after resume", || {
        redis.ping(Duration::from_millis(500))
    });
}

#[test]
fn dropping_a_paused_server_kills_it() {
    let redis = RedisServer::start();
    let addr = redis.addr();
    redis.pause();
    drop(redis);
    assert!(TcpStream::connect(addr).is_err());
}

/// Child half of `missing_redis_server_panics_with_install_hint`; a no-op unless that test runs
/// this binary with the marker variable set.
#[test]
fn start_without_redis_on_path_child() {
    if std::env::var_os("SERVERS_SELFTEST_NO_REDIS_CHILD").is_some() {
        RedisServer::start();
    }
}

#[test]
fn missing_redis_server_panics_with_install_hint() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "servers_selftest::start_without_redis_on_path_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PATH", "/nonexistent")
        .env_remove("REDIS_SERVER")
        .env("SERVERS_SELFTEST_NO_REDIS_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "child passed without redis-server:\n{text}"
    );
    assert!(
        text.contains(
            "redis-server not found (REDIS_SERVER, or redis-server on PATH): install it with \
             `apt-get install redis-server`"
        ),
        "{text}"
    );
}

#[test]
fn monitor_sees_every_command_up_to_its_sentinel_and_nothing_after() {
    let redis = RedisServer::builder().password("pw").start();
    redis.set_raw("before", b"1");
    let monitor = Monitor::start([&redis]);
    redis.set_raw("during", b"2");
    assert_eq!(redis.get("during"), Some(b"2".to_vec()));
    let lines = monitor.stop();
    redis.set_raw("after", b"3");
    let commands: Vec<&str> = lines
        .iter()
        .map(|line| line.split_once("] ").expect("a MONITOR line").1)
        // Every harness connection authenticates first.
        .filter(|command| *command != r#""AUTH" "(redacted)""#)
        .collect();
    assert_eq!(
        commands,
        [r#""SET" "during" "2""#, r#""GET" "during""#],
        "{lines:#?}"
    );
}

#[test]
fn crc16_and_key_slot_known_values() {
    // The CRC16 check value from the Redis Cluster specification.
    assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    assert_eq!(key_slot("123456789"), 12739);
    assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
    assert_eq!(key_slot("foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % 16384);
    assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
    assert_eq!(key_slot("foo{bar}{zap}"), key_slot("bar"));
}

#[test]
fn cluster_forms_and_node_for_key_matches_the_server() {
    let cluster = RedisCluster::start();
    let ports = cluster.ports();
    assert_eq!(
        cluster.url(),
        format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        )
    );
    assert_eq!(cluster.nodes().len(), 3);
    for node in cluster.nodes() {
        assert_eq!(
            node.info_field("cluster", "cluster_enabled").as_deref(),
            Some("1")
        );
    }

    let mut keys: Vec<String> = [
        "foo",
        "bar",
        "123456789",
        "{user1000}.following",
        "{user1000}.followers",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{}",
        "a{b",
        "a}b{",
        "trc:v1:GET:/items?id=7",
        "{trc:tenant-9}:GET:/x",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    keys.extend((0..200).map(|i| format!("key:{i}")));

    let mut used_nodes = [false; 3];
    for key in &keys {
        let server_slot = cluster.nodes()[0]
            .query(&["CLUSTER", "KEYSLOT", key])
            .as_int()
            .unwrap();
        assert_eq!(i64::from(key_slot(key)), server_slot, "slot of {key:?}");

        let owner = cluster.node_for_key(key);
        used_nodes[owner] = true;
        assert_eq!(
            cluster.nodes()[owner].command(&["SET", key, "v"]),
            "OK",
            "{key:?} on its predicted node"
        );
        let other = &cluster.nodes()[(owner + 1) % 3];
        let moved = other.command(&["SET", key, "v"]);
        assert!(
            moved.starts_with(&format!("MOVED {server_slot} ")),
            "{key:?} elsewhere: {moved}"
        );
        assert_eq!(cluster.get(key).as_deref(), Some(&b"v"[..]));
        assert_eq!(cluster.ttl_ms(key), -1);
    }
    assert!(
        used_nodes.iter().all(|&u| u),
        "keys should spread over all nodes"
    );

    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(cluster.keys("*"), expected);
    cluster.flushall();
    assert!(cluster.keys("*").is_empty());
}

#[test]
fn cluster_with_password_and_node_restart() {
    let mut cluster = RedisCluster::builder().password("cluster-pw").start();
    assert!(cluster
        .url()
        .starts_with("redis-cluster://:cluster-pw@127.0.0.1:"));
    cluster.set_raw("{a}x", b"1");
    let owner = cluster.node_for_key("{a}x");
    let node = &mut cluster.nodes_mut()[owner];
    let port = node.port();
    node.kill();
    node.restart();
    assert_eq!(node.port(), port);
    cluster.wait_healthy();
    assert_eq!(cluster.get("{a}x"), None, "restarted master starts empty");
    cluster.set_raw("{a}x", b"2");
    assert_eq!(cluster.get("{a}x").as_deref(), Some(&b"2"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_forwards_and_adds_latency() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.addr());
    assert_eq!(proxy.url(), format!("redis://{}", proxy.addr()));
    assert_eq!(proxy.upstream(), redis.addr());

    let mut conn = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    assert_eq!(
        conn.call(&["SET", "via-proxy", "1"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(redis.get("via-proxy").as_deref(), Some(&b"1"[..]));
    assert_eq!(proxy.connections(), 1);

    let latency = Duration::from_millis(150);
    proxy.set_latency(latency);
    let started = Instant::now();
    assert_eq!(conn.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert!(
        started.elapsed() >= latency,
        "reply came back after {:?}",
        started.elapsed()
    );

    proxy.set_latency(Duration::ZERO);
    assert_eq!(
        conn.call(&["GET", "via-proxy"]).unwrap(),
        Reply::Bulk(b"1".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_cut_mid_reply_truncates_and_closes() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.addr());
    let mut conn = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    assert_eq!(conn.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));

    proxy.set_mode(ProxyMode::CutMidReply);
    conn.send(&["PING"]).unwrap();
    let (bytes, err) = conn.read_to_close();
    assert!(
        err.is_none() || !is_timeout(err.as_ref().unwrap()),
        "connection not closed: {err:?}"
    );
    assert!(
        b"+PONG\r\n".starts_with(&bytes) && bytes.len() < 7,
        "got {:?}",
        String::from_utf8_lossy(&bytes)
    );

    let mut conn = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    let err = conn.call(&["GET", "k"]).unwrap_err();
    assert!(!is_timeout(&err), "{err:?}");

    proxy.set_mode(ProxyMode::Forward);
    let mut conn = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    assert_eq!(conn.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_drop_new_connections_blackhole_and_cut_all() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.addr());
    let mut old = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    assert_eq!(old.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));

    proxy.set_mode(ProxyMode::DropNewConnections);
    let mut fresh = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    let err = fresh.call(&["PING"]).unwrap_err();
    assert!(
        !is_timeout(&err),
        "new connection should be closed, got {err:?}"
    );
    assert_eq!(
        old.call(&["PING"]).unwrap(),
        Reply::Simple("PONG".into()),
        "open connections keep working"
    );

    proxy.set_mode(ProxyMode::Blackhole);
    old.set_timeout(Duration::from_millis(300)).unwrap();
    let err = old.call(&["PING"]).unwrap_err();
    assert!(is_timeout(&err), "blackhole should time out, got {err:?}");

    proxy.set_mode(ProxyMode::Forward);
    let mut a = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    assert_eq!(a.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    proxy.cut_all();
    assert_eq!(proxy.connections(), 0);
    let err = a.call(&["PING"]).unwrap_err();
    assert!(
        !is_timeout(&err),
        "cut connection should be closed, got {err:?}"
    );
    let mut b = RespConnection::connect(proxy.addr(), TIMEOUT).unwrap();
    assert_eq!(
        b.call(&["PING"]).unwrap(),
        Reply::Simple("PONG".into()),
        "new connections after cut_all"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_proxy_closes_listener_and_connections() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.addr());
    let addr = proxy.addr();
    let mut conn = RespConnection::connect(addr, TIMEOUT).unwrap();
    assert_eq!(conn.call(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    drop(proxy);
    let (_, err) = conn.read_to_close();
    assert!(
        err.is_none() || !is_timeout(err.as_ref().unwrap()),
        "connection survived the proxy: {err:?}"
    );
    eventually(TIMEOUT, "proxy port closed", || {
        TcpStream::connect(addr).is_err()
    });
}

#[test]
fn compose_args_substitute_password_and_port() {
    let args = compose_redis_args("s3cret", 4242);
    assert_eq!(args[..2], ["--port", "4242"]);
    assert!(
        args.windows(2).any(|w| w == ["--requirepass", "s3cret"]),
        "{args:?}"
    );
    assert!(args.windows(2).any(|w| w == ["--save", ""]), "{args:?}");
    assert!(
        !args.iter().any(|a| a.contains('$') || a == "redis-server"),
        "{args:?}"
    );
}

#[test]
fn compose_parser_handles_quoting_and_fails_loudly() {
    let yaml = r#"
services:
  other:
    command: ["x"]
  redis: &anchor
    # comment
    command:
    - redis-server   # trailing comment
    - '--port'
    - "6379"
    - 'it''s'
    - "a \"q\" \\ b"
    - ""
    image: redis
"#;
    let cmd = parse_service_command(yaml, "redis").unwrap();
    assert_eq!(
        cmd,
        ["redis-server", "--port", "6379", "it's", "a \"q\" \\ b", ""]
    );

    assert!(parse_service_command("x:\n  redis:\n", "redis")
        .unwrap_err()
        .contains("services"));
    assert!(
        parse_service_command("services:\n  redis:\n    image: r\n", "redis")
            .unwrap_err()
            .contains("command")
    );
    assert!(parse_service_command("services:\n  redis:\n    command: [a]\n", "redis").is_err());
    assert!(
        parse_service_command("services:\n  redis-2:\n    command:\n      - a\n", "redis").is_err()
    );
}

#[test]
fn harness_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RedisServer>();
    assert_send_sync::<RedisCluster>();
    assert_send_sync::<TcpProxy>();
    assert_send_sync::<RespConnection>();
}
