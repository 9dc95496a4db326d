//! A `redis-server` of a unit test's own, for the tests of the scripts and the protocol.

use super::{
    durability::Durability,
    routing::{Routes, WaitingClient},
    settings::Settings,
};
use fred::{
    clients::Pool,
    error::{Error, ErrorKind},
    interfaces::ClientLike,
    types::{config::Config, ClusterHash, CustomCommand, Value},
};
use std::{
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A `redis-server` of this test's own on a free loopback port, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pool: Pool,
}

impl Server {
    pub(crate) async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        // REDIS_SERVER: another server binary (Valkey, another Redis version), as the
        // integration tests take it.
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start redis-server ({error}): these tests need it on PATH \
                     (Debian: apt-get install redis-server)"
                )
            });
        let mut child = ChildGuard(Some(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut config = Config::from_url(&format!("redis://127.0.0.1:{port}")).unwrap();
        config.fail_fast = false;
        let pool = Settings::default()
            .fred_builder(config)
            .build_pool(1)
            .unwrap();
        pool.connect_pool();
        tokio::time::timeout(Duration::from_secs(10), pool.wait_for_connect())
            .await
            .expect("redis-server did not answer")
            .unwrap();
        let child = child.0.take().expect("started");
        Self { child, pool }
    }

    pub(crate) fn routes(&self) -> Routes {
        let no_waits = (Durability::Master, Duration::ZERO);
        let unused = WaitingClient::new(|| Err(Error::new(ErrorKind::Config, "not needed")));
        Routes::new(self.pool.clone(), None, no_waits, unused)
    }

    pub(crate) async fn command(&self, args: &[&str]) -> Value {
        let (name, rest) = args.split_first().unwrap();
        let command = CustomCommand::new(name.to_string(), ClusterHash::FirstKey, false);
        let args: Vec<Value> = rest.iter().map(|a| Value::from(*a)).collect();
        self.pool.custom(command, args).await.unwrap()
    }

    pub(crate) async fn text(&self, args: &[&str]) -> Option<String> {
        self.command(args).await.into_string()
    }

    pub(crate) async fn integer(&self, args: &[&str]) -> i64 {
        self.command(args).await.as_i64().unwrap()
    }

    pub(crate) async fn strings(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = match self.command(args).await {
            Value::Array(items) => items.into_iter().filter_map(Value::into_string).collect(),
            other => panic!("not an array: {other:?}"),
        };
        all.sort();
        all
    }
}

/// Kills the server if starting it fails half-way.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
