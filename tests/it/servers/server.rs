//! [`RedisServer`]: a real `redis-server` child process per test.
//!
//! Each server gets a free loopback port, its own temporary directory (`--dir`, log file,
//! cluster config), and is killed (and its directory removed) on drop. Port collisions between
//! tests running in parallel (threads under `cargo test`, processes under `cargo nextest`) are
//! handled by detecting a failed bind in the server log, or a PING answered by some other
//! process (checked through `INFO server`'s `process_id`), and retrying on another port.
//!
//! A tiny `sh` watchdog per server kills `redis-server` if the test process dies without running
//! destructors (e.g. a nextest timeout's `SIGKILL`), so no servers outlive the test run.
//!
//! All methods are blocking (std I/O with timeouts); see [`super::resp`] for the caveats.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hash, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::compose::compose_redis_args;
use super::resp::{Reply, RespConnection, DEFAULT_TIMEOUT};

/// How long a starting server may take to answer PING before the test panics.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports are tried before giving up on port collisions.
const PORT_ATTEMPTS: usize = 20;
/// Log file name inside the server's directory.
const LOG_FILE: &str = "redis.log";
/// Where the child's stdout/stderr go (errors before the log file is opened land here).
const STDIO_FILE: &str = "stdio.log";

const MISSING_REDIS: &str =
    "redis-server not found (REDIS_SERVER, or redis-server on PATH): install it with \
     `apt-get install redis-server` (Debian) — these tests need a real Redis and never skip";

/// The server binary: `REDIS_SERVER` (a path, to test Valkey or another Redis version), else
/// `redis-server` from `PATH`.
pub fn server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// How a server's port is chosen.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PortChoice {
    /// Let the kernel pick a free ephemeral port (bind `127.0.0.1:0`, then release).
    Ephemeral,
    /// A random port below the ephemeral range whose cluster bus port (`port + 10000`) is free too.
    ClusterPair,
    /// Exactly this port (no retry on another port).
    Fixed(u16),
}

/// Builds the complete `redis-server` argv (without the program) for a port and directory.
type ArgsFn = Box<dyn Fn(u16, &Path) -> Vec<String> + Send + Sync>;

/// A running (or killed, see [`RedisServer::kill`]) `redis-server` child process.
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    make_args: ArgsFn,
    dir: TempDir,
    child: Option<Child>,
    watchdog: Option<Child>,
}

/// Builder for a [`RedisServer`] with extra arguments and/or a password.
///
/// ```ignore
/// let redis = RedisServer::builder().arg("--maxmemory").arg("1mb").password("pw").start();
/// ```
#[derive(Default)]
pub struct RedisServerBuilder {
    args: Vec<String>,
    password: Option<String>,
    port: Option<PortChoice>,
}

impl RedisServerBuilder {
    /// Appends one extra `redis-server` argument (e.g. `"--maxmemory"`, then `"1mb"`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several extra arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Requires this password (`--requirepass`); the harness then authenticates with `AUTH` and
    /// [`RedisServer::url`] includes it.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    pub(crate) fn port_choice(mut self, choice: PortChoice) -> Self {
        self.port = Some(choice);
        self
    }

    /// Starts the server and waits until it answers PING.
    ///
    /// Arguments, in order: `--save "" --appendonly no`, the extra args, `--requirepass`, then the
    /// harness-owned `--port --bind 127.0.0.1 --dir --daemonize no --logfile` (last, so they win).
    pub fn start(self) -> RedisServer {
        let RedisServerBuilder {
            args,
            password,
            port,
        } = self;
        let requirepass = password.clone();
        let make_args: ArgsFn = Box::new(move |port, dir| {
            let mut argv = strings(&["--save", "", "--appendonly", "no"]);
            argv.extend(args.iter().cloned());
            if let Some(pw) = &requirepass {
                argv.extend(["--requirepass".to_owned(), pw.clone()]);
            }
            argv.extend(["--port".to_owned(), port.to_string()]);
            argv.extend(essential_args(dir));
            argv
        });
        RedisServer::launch(port.unwrap_or(PortChoice::Ephemeral), password, make_args)
    }
}

impl RedisServer {
    /// Starts a plain server (no password, no persistence) on a free loopback port.
    pub fn start() -> RedisServer {
        RedisServer::builder().start()
    }

    /// A builder for extra arguments and a password.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// Starts `redis-server` with exactly `args` plus `--bind 127.0.0.1 --dir <tmp> --daemonize no
    /// --logfile <tmp>/redis.log`. If `args` contain `--port N` the server uses that port
    /// (no retry elsewhere); otherwise a free port is picked and `--port` appended. If `args`
    /// contain `--requirepass PW` the harness authenticates with it.
    pub fn start_with_args(args: Vec<String>) -> RedisServer {
        let password = flag_value(&args, "--requirepass").map(str::to_owned);
        let choice = match flag_value(&args, "--port") {
            Some(port) => PortChoice::Fixed(
                port.parse()
                    .unwrap_or_else(|_| panic!("start_with_args: bad --port value {port:?}")),
            ),
            None => PortChoice::Ephemeral,
        };
        let has_port = matches!(choice, PortChoice::Fixed(_));
        let make_args: ArgsFn = Box::new(move |port, dir| {
            let mut argv = args.clone();
            if !has_port {
                argv.extend(["--port".to_owned(), port.to_string()]);
            }
            argv.extend(essential_args(dir));
            argv
        });
        RedisServer::launch(choice, password, make_args)
    }

    /// Starts `redis-server` with exactly the `command` of the `redis` service in `compose.yaml`
    /// (see [`compose_redis_args`]) for `password` and a free port, plus only
    /// `--bind 127.0.0.1 --dir <tmp> --daemonize no --logfile <tmp>/redis.log`.
    pub fn start_compose(password: &str) -> RedisServer {
        let pw = password.to_owned();
        // Parse once up front so a broken compose.yaml fails before any process is started.
        compose_redis_args(&pw, 0);
        let make_args: ArgsFn = Box::new(move |port, dir| {
            let mut argv = compose_redis_args(&pw, port);
            argv.extend(essential_args(dir));
            argv
        });
        RedisServer::launch(PortChoice::Ephemeral, Some(password.to_owned()), make_args)
    }

    fn launch(choice: PortChoice, password: Option<String>, mut make_args: ArgsFn) -> RedisServer {
        let attempts = if matches!(choice, PortChoice::Fixed(_)) {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last_failure = String::new();
        for _ in 0..attempts {
            let port = match choice {
                PortChoice::Ephemeral => ephemeral_port(),
                PortChoice::ClusterPair => cluster_port_pair(),
                PortChoice::Fixed(port) => port,
            };
            let mut server = RedisServer {
                port,
                password: password.clone(),
                make_args,
                dir: TempDir::new("redis"),
                child: None,
                watchdog: None,
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(PortTaken(log)) => {
                    last_failure = log;
                    // Take the closure back out (the server is dropped, killing the process).
                    make_args =
                        std::mem::replace(&mut server.make_args, Box::new(|_, _| Vec::new()));
                }
            }
        }
        panic!("could not start redis-server: port collisions on {attempts} attempt(s); last log:\n{last_failure}");
    }

    /// Spawns the process and waits until it answers PING. `Err` means "the port was taken"
    /// (worth retrying on another port); every other failure panics.
    fn spawn_and_wait(&mut self) -> Result<(), PortTaken> {
        self.kill();
        let argv = (self.make_args)(self.port, self.dir.path());
        let stdio = File::create(self.dir.path().join(STDIO_FILE)).expect("create stdio log");
        let child = Command::new(server_binary())
            .args(&argv)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdio.try_clone().expect("clone stdio log handle"))
            .stderr(stdio)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{MISSING_REDIS}"),
            Err(e) => panic!("failed to spawn redis-server: {e}"),
        };
        self.watchdog = spawn_watchdog(child.id(), self.dir.path());
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = self.log_tail();
                if log.contains("Address already in use") {
                    return Err(PortTaken(log));
                }
                if log.contains("TLS support") || log.contains("connection type tls") {
                    panic!(
                        "{} is built without TLS, and this test needs it: run the TLS tests on \
                         a TLS-capable server (Debian's redis-server), or leave them out \
                         (`--skip security::tls --skip logs_never_show_credentials`); log:\n{log}",
                        server_binary()
                    );
                }
                panic!(
                    "redis-server exited during startup ({status}) on port {}; args {argv:?}; log:\n{log}",
                    self.port
                );
            }
            match self.probe_identity() {
                Some(answer_pid) if answer_pid == pid => return Ok(()),
                // Someone else's server answers on this port; ours will fail to bind (or already
                // did): kill ours and let the caller pick another port.
                Some(_) => {
                    self.kill();
                    return Err(PortTaken(format!(
                        "port {} answered by another process",
                        self.port
                    )));
                }
                None => {}
            }
            if Instant::now() > deadline {
                let log = self.log_tail();
                self.kill();
                panic!(
                    "redis-server on port {} did not answer PING within {STARTUP_TIMEOUT:?}; args {argv:?}; log:\n{log}",
                    self.port
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// PING (after AUTH if needed) and `INFO server` → the answering process' pid.
    fn probe_identity(&self) -> Option<u32> {
        let timeout = Duration::from_millis(500);
        let mut conn =
            RespConnection::connect_auth(self.addr(), self.password.as_deref(), timeout).ok()?;
        match conn.call(&["PING"]).ok()? {
            Reply::Simple(pong) if pong == "PONG" => {}
            _ => return None,
        }
        let info = conn.call(&["INFO", "server"]).ok()?.text();
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse().ok())
    }

    /// `redis://127.0.0.1:PORT`, or `redis://:PASSWORD@127.0.0.1:PORT` with a password.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{}@127.0.0.1:{}", percent_encode(pw), self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The password given with `--requirepass`, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's private directory (`--dir`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the running process (`None` after [`kill`](Self::kill)).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (a paused process counts as alive).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the process with `SIGKILL` and reaps it. Idempotent.
    pub fn kill(&mut self) {
        // The watchdog first, so it never sees redis gone and acts on its own.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process (if running) and starts it again with the same arguments on the SAME
    /// port and directory, waiting for PING. Retries briefly if the port is momentarily taken.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(PortTaken(log)) if Instant::now() > deadline => {
                    panic!("restart: port {} stayed taken; last log:\n{log}", self.port)
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Freezes the process with `SIGSTOP`: connections are still accepted by the kernel but
    /// nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Continues a [`pause`](Self::pause)d process with `SIGCONT`.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().unwrap_or_else(|| {
            panic!(
                "SIG{signal}: redis-server on port {} is not running",
                self.port
            )
        });
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("running `kill -{signal} {pid}`: {e}"));
        assert!(status.success(), "`kill -{signal} {pid}` failed: {status}");
    }

    /// The last lines of the server's log file and stdout/stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in [STDIO_FILE, LOG_FILE] {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!("--- {name} ---\n{}\n", tail.join("\n")));
        }
        out
    }

    /// A new authenticated connection (default timeouts). Panics on failure.
    pub fn connect(&self) -> RespConnection {
        RespConnection::connect_auth(self.addr(), self.password.as_deref(), DEFAULT_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to redis on port {}: {e}", self.port))
    }

    /// Runs one command on a fresh authenticated connection; I/O errors are returned.
    pub fn try_query(&self, args: &[&str], timeout: Duration) -> io::Result<Reply> {
        RespConnection::connect_auth(self.addr(), self.password.as_deref(), timeout)?.call(args)
    }

    /// Runs one command on a fresh authenticated connection and returns the parsed reply.
    /// Panics on I/O errors; error replies are returned as [`Reply::Error`].
    pub fn query(&self, args: &[&str]) -> Reply {
        self.query_bytes(args)
    }

    fn query_bytes<A: AsRef<[u8]>>(&self, args: &[A]) -> Reply {
        self.connect().call(args).unwrap_or_else(|e| {
            let shown: Vec<_> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                .collect();
            panic!("redis command {shown:?} on port {}: {e}", self.port)
        })
    }

    /// Runs one command WITHOUT sending `AUTH` first (to check that a password is enforced).
    pub fn query_unauthenticated(&self, args: &[&str]) -> Reply {
        RespConnection::connect(self.addr(), DEFAULT_TIMEOUT)
            .and_then(|mut c| c.call(args))
            .unwrap_or_else(|e| panic!("redis command {args:?} on port {}: {e}", self.port))
    }

    /// Runs one command and returns the reply as text (see [`Reply`]'s `Display`: error replies
    /// become their message, e.g. `"NOAUTH Authentication required."`, nil becomes `"(nil)"`).
    pub fn command(&self, args: &[&str]) -> String {
        self.query(args).text()
    }

    /// `PING` with a timeout: `true` iff it answered `PONG` in time.
    pub fn ping(&self, timeout: Duration) -> bool {
        matches!(self.try_query(&["PING"], timeout), Ok(Reply::Simple(ref s)) if s == "PONG")
    }

    /// All keys matching `pattern`, found with a `SCAN` loop, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.connect();
        let mut cursor = "0".to_owned();
        let mut keys = Vec::new();
        loop {
            let reply = conn
                .call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])
                .unwrap_or_else(|e| panic!("SCAN on port {}: {e}", self.port));
            let (next, batch) = match reply.as_array() {
                Some([next, Reply::Array(batch)]) => (next.text(), batch.clone()),
                _ => panic!("unexpected SCAN reply on port {}: {reply:?}", self.port),
            };
            keys.extend(batch.iter().map(Reply::text));
            if next == "0" {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// `PTTL key`: milliseconds to live, `-1` without expiry, `-2` if missing.
    pub fn ttl_ms(&self, key: &str) -> i64 {
        let reply = self.query(&["PTTL", key]);
        reply
            .as_int()
            .unwrap_or_else(|| panic!("PTTL {key}: {reply:?}"))
    }

    /// `GET key` as raw bytes.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.query(&["GET", key]) {
            Reply::Bulk(bytes) => Some(bytes),
            Reply::Nil => None,
            other => panic!("GET {key}: {other:?}"),
        }
    }

    /// `SET key bytes` (no expiry).
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        let reply = self.query_bytes(&[b"SET".as_slice(), key.as_bytes(), value]);
        assert_eq!(reply, Reply::Simple("OK".into()), "SET {key}");
    }

    /// `EXISTS key`.
    pub fn exists(&self, key: &str) -> bool {
        self.query(&["EXISTS", key]).as_int() == Some(1)
    }

    /// `DBSIZE`.
    pub fn dbsize(&self) -> i64 {
        let reply = self.query(&["DBSIZE"]);
        reply
            .as_int()
            .unwrap_or_else(|| panic!("DBSIZE: {reply:?}"))
    }

    /// `FLUSHALL`.
    pub fn flushall(&self) {
        let reply = self.query(&["FLUSHALL"]);
        assert_eq!(reply, Reply::Simple("OK".into()), "FLUSHALL");
    }

    /// `CONFIG GET name` → the value (panics if the parameter doesn't exist).
    pub fn config_get(&self, name: &str) -> String {
        let reply = self.query(&["CONFIG", "GET", name]);
        match reply.as_array() {
            Some([_, value]) => value.text(),
            _ => panic!("CONFIG GET {name}: {reply:?}"),
        }
    }

    /// `INFO section` → the `field:value` of one field.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info = self.command(&["INFO", section]);
        let prefix = format!("{field}:");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// "The port was taken" (with the evidence), as opposed to failures that panic.
struct PortTaken(String);

/// The arguments the harness always owns: loopback only, foreground, files in `dir`.
fn essential_args(dir: &Path) -> Vec<String> {
    let dir_str = dir.to_str().expect("temp dir path is UTF-8").to_owned();
    let log = dir
        .join(LOG_FILE)
        .to_str()
        .expect("temp dir path is UTF-8")
        .to_owned();
    vec![
        "--bind".into(),
        "127.0.0.1".into(),
        "--dir".into(),
        dir_str,
        "--daemonize".into(),
        "no".into(),
        "--logfile".into(),
        log,
    ]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The value after the last occurrence of `flag` in an argv.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.windows(2)
        .rev()
        .find(|w| w[0] == flag)
        .map(|w| w[1].as_str())
}

/// Percent-encodes everything except RFC 3986 unreserved characters (for URL userinfo).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A free port chosen by the kernel (bound on `127.0.0.1:0`, then released).
pub fn ephemeral_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// A random port `p` in 12000..22000 with both `p` and `p + 10000` (the cluster bus port)
/// currently free. The range stays below Linux's default ephemeral range (32768+) so kernel-chosen
/// ports of other tests don't land on it.
pub fn cluster_port_pair() -> u16 {
    for _ in 0..1000 {
        let port = 12000 + (random_u64() % 10000) as u16;
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if free(port) && free(port + 10000) {
            return port;
        }
    }
    panic!("no free port pair (p, p+10000) found in 12000..22000");
}

/// A random number without a `rand` dependency (std's randomly keyed SipHash).
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .hash(&mut hasher);
    hasher.finish()
}

/// Spawns `sh` that, once this test process is gone (e.g. `SIGKILL`ed by a nextest timeout, so no
/// destructors ran), kills `redis_pid` and removes `dir`. It exits quietly when redis dies while
/// the test process lives, and [`RedisServer::kill`] kills it before the server. Best effort:
/// without `sh` there is simply no watchdog.
fn spawn_watchdog(redis_pid: u32, dir: &Path) -> Option<Child> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
        if ! kill -0 "$1" 2>/dev/null; then kill -9 "$2" 2>/dev/null; rm -rf "$3"; fi
    "#;
    Command::new("sh")
        .args(["-c", script, "redis-watchdog"])
        .arg(std::process::id().to_string())
        .arg(redis_pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A directory under the system temp dir, removed (recursively) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh, uniquely named directory.
    pub fn new(prefix: &str) -> TempDir {
        let base = std::env::temp_dir().join("tower-redis-cache-tests");
        loop {
            let path = base.join(format!(
                "{prefix}-{}-{:016x}",
                std::process::id(),
                random_u64()
            ));
            fs::create_dir_all(&base).expect("create temp base dir");
            match fs::create_dir(&path) {
                Ok(()) => return TempDir(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("creating temp dir {}: {e}", path.display()),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
