//! A private `redis-server` for the benches: started on a free loopback port with
//! `--save "" --appendonly no` (as compose.yaml runs it), never the shared one on 6379, and
//! killed when dropped, panics included. Included by `benches/hit.rs` and `benches/load.rs` with
//! `#[path]`; each uses part of it.
#![allow(dead_code)]

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Read, Write as _},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Three `redis-server` masters forming a Redis Cluster (made by `redis-cli --cluster create`).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: std::path::PathBuf,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A cluster whose nodes get `extra` arguments too.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("trc-bench-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let config = format!("{}/nodes-{{port}}.conf", dir.display());
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let mut args = vec!["--cluster-enabled", "yes", "--cluster-config-file", &config];
                args.extend_from_slice(extra);
                RedisServer::start_with(&args)
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli (comes with redis-server)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes
            .iter()
            .all(|n| n.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { nodes, _dir: dir }
    }

    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", node.port));
        }
        url
    }
}

/// A private `redis-server` child process on a free loopback port, killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server started with `extra` arguments too; `{port}` in one is replaced by its port.
    pub fn start_with(extra: &[&str]) -> Self {
        // A port freed by the kernel can be taken again before redis binds it: retry.
        for _ in 0..5 {
            let port = free_port();
            let extra: Vec<String> = extra
                .iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(&extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "redis-server not found on PATH: install it with `apt-get install redis-server`"
                ),
                Err(e) => panic!("cannot start redis-server: {e}"),
            };
            let mut server = Self { child, port };
            if server.wait_until_ready() {
                return server;
            }
        }
        panic!("redis-server did not start on a free loopback port (5 attempts)");
    }

    /// Waits until the server answers PING; `false` if it exited (port taken) or never answered.
    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.answers_ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command on a fresh connection; the reply (a bulk string's contents, or an
    /// integer or status line as is). An error reply panics.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|line| panic!("redis-server: {args:?}: {line}"))
    }

    /// Like [`command`](Self::command), with an error reply as `Err`.
    pub fn try_command(&self, args: &[&str]) -> Result<String, String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            let _ = write!(request, "${}\r\n{arg}\r\n", arg.len());
        }
        stream
            .write_all(request.as_bytes())
            .expect("send a command");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        match line.as_bytes().first() {
            Some(b'$') => {
                let len: i64 = line[1..].trim().parse().expect("a bulk length");
                let Ok(len) = usize::try_from(len) else {
                    return Ok(String::new()); // `$-1`: a nil reply
                };
                let mut bulk = vec![0; len + 2];
                reader.read_exact(&mut bulk).expect("a bulk reply");
                bulk.truncate(len);
                Ok(String::from_utf8_lossy(&bulk).into_owned())
            }
            Some(b'-') => Err(line),
            _ => Ok(line.trim_end().to_owned()),
        }
    }

    /// `total_commands_processed` from `INFO stats`.
    pub fn total_commands(&self) -> u64 {
        let info = self.command(&["INFO", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("total_commands_processed in INFO stats")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
