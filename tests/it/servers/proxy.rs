//! [`TcpProxy`]: a loopback TCP proxy (tokio) in front of a Redis server with faults that can be
//! switched at runtime: latency on replies, refusing new connections, cutting replies in half,
//! swallowing traffic, and closing every open connection.
//!
//! The proxy runs on the tokio runtime current when [`TcpProxy::start`] is called (tests use
//! `#[tokio::test(flavor = "multi_thread")]`). Dropping it aborts the accept loop and every
//! connection task, which closes all sockets (as soon as the runtime processes the abort).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// How many bytes of a server reply [`ProxyMode::CutMidReply`] lets through (always fewer than
/// the chunk read, so the client never gets a complete reply).
pub const CUT_PREFIX: usize = 4;

/// What the proxy does with traffic. Checked per accepted connection / per chunk, so switching
/// takes effect immediately, also for open connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both directions (with the configured latency).
    Forward,
    /// Accept new connections and close them immediately; open connections keep forwarding.
    DropNewConnections,
    /// Forward only the first [`CUT_PREFIX`] bytes (at most all but one) of the next chunk from the
    /// server, then close both sides of that connection.
    CutMidReply,
    /// Keep connections open but forward nothing in either direction (an unresponsive server).
    Blackhole,
}

impl ProxyMode {
    fn from_u8(v: u8) -> ProxyMode {
        match v {
            0 => ProxyMode::Forward,
            1 => ProxyMode::DropNewConnections,
            2 => ProxyMode::CutMidReply,
            _ => ProxyMode::Blackhole,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ProxyMode::Forward => 0,
            ProxyMode::DropNewConnections => 1,
            ProxyMode::CutMidReply => 2,
            ProxyMode::Blackhole => 3,
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    mode: AtomicU8,
    latency_nanos: AtomicU64,
    conns: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    next_id: u64,
    /// Set on drop; no connection task is spawned afterwards.
    closed: bool,
    tasks: HashMap<u64, AbortHandle>,
}

impl Shared {
    fn mode(&self) -> ProxyMode {
        ProxyMode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::SeqCst))
    }

    /// Aborts every connection task; with `close`, also refuses to register new ones.
    fn abort_all(&self, close: bool) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.closed |= close;
        for (_, task) in conns.tasks.drain() {
            task.abort();
        }
    }
}

/// A fault-injecting TCP proxy on `127.0.0.1:<random port>`.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding a fresh loopback port to `upstream`. Must be called inside a tokio
    /// runtime.
    pub fn start(upstream: SocketAddr) -> TcpProxy {
        let runtime = tokio::runtime::Handle::try_current()
            .expect("TcpProxy::start must be called inside a tokio runtime (use #[tokio::test])");
        let std_listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy port");
        std_listener
            .set_nonblocking(true)
            .expect("set proxy listener non-blocking");
        let addr = std_listener.local_addr().expect("proxy local addr");
        let shared = Arc::new(Shared {
            upstream,
            mode: AtomicU8::new(ProxyMode::Forward.as_u8()),
            latency_nanos: AtomicU64::new(0),
            conns: Mutex::new(Connections::default()),
        });
        let accept_shared = shared.clone();
        let accept_task = runtime.spawn(async move {
            let listener =
                TcpListener::from_std(std_listener).expect("register proxy listener with tokio");
            accept_loop(listener, accept_shared).await;
        });
        TcpProxy {
            addr,
            shared,
            accept_task,
        }
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address being proxied.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT` of the proxy (for a password-protected upstream).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "redis://:{}@{}",
            super::server::percent_encode(password),
            self.addr
        )
    }

    /// Delays every chunk forwarded from the server to the client by `latency`
    /// (`Duration::ZERO` to turn off).
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Switches the fault mode (see [`ProxyMode`]).
    pub fn set_mode(&self, mode: ProxyMode) {
        self.shared.mode.store(mode.as_u8(), Ordering::SeqCst);
    }

    /// The current fault mode.
    pub fn mode(&self) -> ProxyMode {
        self.shared.mode()
    }

    /// Closes every currently open connection (both sides). New connections are still accepted.
    pub fn cut_all(&self) {
        self.shared.abort_all(false);
    }

    /// How many proxied connections are currently open.
    pub fn connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tasks
            .len()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.abort_all(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // E.g. EMFILE or a connection reset before accept: back off a little and go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.mode() == ProxyMode::DropNewConnections {
            drop(client);
            continue;
        }
        let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.closed {
            return;
        }
        let id = conns.next_id;
        conns.next_id += 1;
        // Spawned while holding the lock, so the task's own de-registration (which takes the lock)
        // can't run before it is registered.
        let task = tokio::spawn(run_connection(id, client, shared.clone()));
        conns.tasks.insert(id, task.abort_handle());
    }
}

async fn run_connection(id: u64, client: TcpStream, shared: Arc<Shared>) {
    let connect =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(shared.upstream)).await;
    if let Ok(Ok(upstream)) = connect {
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        // Either direction ending (EOF, error, cut) ends the connection: all halves are dropped.
        tokio::select! {
            _ = client_to_server(client_read, upstream_write, &shared) => {}
            _ = server_to_client(upstream_read, client_write, &shared) => {}
        }
    }
    let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    conns.tasks.remove(&id);
}

async fn client_to_server(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if shared.mode() == ProxyMode::Blackhole {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn server_to_client(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let latency = shared.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match shared.mode() {
            ProxyMode::Blackhole => continue,
            ProxyMode::CutMidReply => {
                let keep = CUT_PREFIX.min(n - 1);
                let _ = to.write_all(&buf[..keep]).await;
                let _ = to.flush().await;
                return;
            }
            ProxyMode::Forward | ProxyMode::DropNewConnections => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
