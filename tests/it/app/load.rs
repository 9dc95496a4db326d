//! A bounded HTTP load generator for fault-injection tests: an axum app with the cache layer on
//! one route, served on a real loopback socket, and N client tasks sending requests to it over
//! real TCP (hyper-util's legacy client) while a test breaks Redis underneath.
//!
//! * [`serve_app`] starts the app: `GET /matches/{id}?lang=..` behind
//!   `layer.policy(Policy::new(NAMESPACE).entity(Entity::path_segment(1)).vary_query(["lang"]))`,
//!   answered by a handler that sleeps a fixed time and returns [`expected_body`] for the request.
//! * [`Load::start`] runs the clients. Every request records when it started, how long it took,
//!   its status, whether its body equals the handler's, and its `Cache-Status`. A request that
//!   takes longer than [`LoadConfig::request_timeout`] is abandoned and counted as an error (a
//!   hang). The run stops on its own after [`LoadConfig::max_duration`] or
//!   [`LoadConfig::max_requests`], or when [`Load::stop`] is called.
//! * [`Report`] summarises the samples around a fault window: requests, errors, wrong bodies,
//!   latency percentiles during the fault, hits before / during / after, time to recover.
//!
//! Request `k` (0-based, `k < keys`) is `/matches/{k / 2}?lang={en|fr}`: two variants per
//! entity, so a cross-variant mix-up shows as a wrong body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;
use tower_redis_cache::{CacheLayer, CacheStats, Entity, KeyFactory, Policy, Variant};

/// The cache namespace of the app's route.
pub const NAMESPACE: &str = "match";
/// The languages a request varies on (`?lang=`), one key per (entity, language).
pub const LANGS: [&str; 2] = ["en", "fr"];

/// The key factory the load tests use (`faults:test:v1:…`).
pub fn key_factory() -> KeyFactory {
    KeyFactory::new("faults", "test", "v1")
}

/// The entity id of request `k`.
pub fn entity(k: u32) -> String {
    (k / 2).to_string()
}

/// The language of request `k`.
pub fn lang(k: u32) -> &'static str {
    LANGS[(k % 2) as usize]
}

/// The path and query of request `k`.
pub fn path(k: u32) -> String {
    format!("/matches/{}?lang={}", entity(k), lang(k))
}

/// The Redis key the cache uses for request `k`.
pub fn redis_key(k: u32) -> String {
    key_factory()
        .key(
            NAMESPACE,
            &entity(k),
            &Variant::new().query("lang", lang(k)),
        )
        .as_str()
        .to_owned()
}

/// What the handler returns for entity `id` in language `lang`: a head naming the request and a
/// deterministic padding whose length depends on both, so truncation, a cross-entity or a
/// cross-variant mix-up all show as a different body.
pub fn expected_body(id: &str, lang: &str) -> String {
    let seed = id
        .bytes()
        .chain(lang.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let len = 64 + (seed % 512) as usize;
    let pad: String = (0..len)
        .map(|i| char::from(b'a' + ((seed >> (i % 56)) as u8 ^ i as u8) % 26))
        .collect();
    format!("match {id} lang {lang} v1\n{pad}\n")
}

/// The app under load.
pub struct App {
    addr: SocketAddr,
    /// The layer whose `stats()` the tests read.
    pub layer: CacheLayer,
    handler_calls: Arc<AtomicU64>,
    server: JoinHandle<()>,
}

impl App {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.layer.stats()
    }

    /// How many requests reached the handler.
    pub fn handler_calls(&self) -> u64 {
        self.handler_calls.load(Ordering::Relaxed)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves `GET /matches/{id}?lang=..` behind `layer` with a handler that sleeps `handler_delay`.
/// Must be called inside a multi-threaded tokio runtime.
pub async fn serve_app(layer: CacheLayer, ttl: Duration, handler_delay: Duration) -> App {
    let handler_calls = Arc::new(AtomicU64::new(0));
    let calls = handler_calls.clone();
    let handler = move |Path(id): Path<String>, Query(query): Query<HashMap<String, String>>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(handler_delay).await;
            expected_body(&id, query.get("lang").map_or("", String::as_str))
        }
    };
    let policy = Policy::new(NAMESPACE)
        .ttl(ttl)
        .entity(Entity::path_segment(1))
        .vary_query(["lang"]);
    let app = Router::new().route(
        "/matches/{id}",
        get(handler).route_layer(layer.policy(policy)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the app's port");
    let addr = listener.local_addr().expect("app address");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("axum::serve");
    });
    App {
        addr,
        layer,
        handler_calls,
        server,
    }
}

/// How the clients behave; every run is bounded in time and count.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Concurrent client tasks.
    pub clients: usize,
    /// Distinct requests (see [`path`]); clients pick uniformly among the first `keys`.
    pub keys: u32,
    /// How many of them are active from the first request on (`None`: all); see
    /// [`Load::set_active_keys`].
    pub initial_keys: Option<u32>,
    /// The longest a request may take before it counts as hung (an error).
    pub request_timeout: Duration,
    /// Each client starts a request at most once per `pace` (it never waits after a slow one).
    pub pace: Duration,
    /// The run stops on its own after this long...
    pub max_duration: Duration,
    /// ...or after this many requests.
    pub max_requests: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            clients: 16,
            keys: 50,
            initial_keys: None,
            request_timeout: Duration::from_secs(5),
            pace: Duration::from_millis(10),
            max_duration: Duration::from_secs(60),
            max_requests: 200_000,
        }
    }
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the handler's body.
    Ok,
    /// 200 with another body.
    WrongBody,
    /// Another status.
    Status(u16),
    /// A connection or protocol error.
    Transport(String),
    /// No complete response within the request timeout.
    Timeout,
}

/// One request.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Which request (see [`path`]).
    pub key: u32,
    /// When it was sent.
    pub start: Instant,
    /// Until the whole body was read (or the error / timeout).
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The `Cache-Status` header, empty when missing.
    pub cache_status: String,
}

impl Sample {
    /// When the response was complete.
    pub fn end(&self) -> Instant {
        self.start + self.latency
    }

    /// Served from the cache.
    pub fn is_hit(&self) -> bool {
        self.cache_status.contains("; hit")
    }

    /// A client-visible failure (wrong bodies are counted separately).
    pub fn is_error(&self) -> bool {
        !matches!(self.outcome, Outcome::Ok | Outcome::WrongBody)
    }

    /// Whether the request was in flight at some point of `[from, to]`.
    pub fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.start <= to && self.end() >= from
    }
}

/// Counters readable while the load runs (for polling a condition with a deadline).
#[derive(Debug, Default)]
pub struct Live {
    requests: AtomicU64,
    hits: AtomicU64,
    errors: AtomicU64,
    wrong: AtomicU64,
    /// Hits per request key.
    key_hits: Vec<AtomicU64>,
}

/// A snapshot of [`Live`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    pub requests: u64,
    pub hits: u64,
    pub errors: u64,
    pub wrong_bodies: u64,
}

/// A running load.
pub struct Load {
    started: Instant,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    active_keys: Arc<AtomicU32>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<JoinHandle<()>>,
    config: LoadConfig,
}

impl Load {
    /// Starts `config.clients` client tasks sending requests to `base_url` (`http://host:port`).
    pub fn start(base_url: &str, config: LoadConfig) -> Load {
        let mut builder = Client::builder(TokioExecutor::new());
        // Never retry behind the test's back: every failed request must show.
        builder.retry_canceled_requests(false);
        let client = builder.build_http::<Empty<Bytes>>();
        let started = Instant::now();
        let live = Arc::new(Live {
            key_hits: (0..config.keys.max(1)).map(|_| AtomicU64::new(0)).collect(),
            ..Live::default()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let initial = config
            .initial_keys
            .unwrap_or(config.keys)
            .clamp(1, config.keys.max(1));
        let active_keys = Arc::new(AtomicU32::new(initial));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..config.clients)
            .map(|i| {
                let worker = Worker {
                    client: client.clone(),
                    base_url: base_url.to_owned(),
                    config: config.clone(),
                    started,
                    live: live.clone(),
                    stop: stop.clone(),
                    active_keys: active_keys.clone(),
                    samples: samples.clone(),
                    rng: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        Load {
            started,
            live,
            stop,
            active_keys,
            samples,
            tasks,
            config,
        }
    }

    /// When the load started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Clients pick among the first `keys` requests from now on (at most `config.keys`).
    pub fn set_active_keys(&self, keys: u32) {
        let keys = keys.clamp(1, self.config.keys.max(1));
        self.active_keys.store(keys, Ordering::Relaxed);
    }

    /// The live counters.
    pub fn counts(&self) -> LiveCounts {
        LiveCounts {
            requests: self.live.requests.load(Ordering::Relaxed),
            hits: self.live.hits.load(Ordering::Relaxed),
            errors: self.live.errors.load(Ordering::Relaxed),
            wrong_bodies: self.live.wrong.load(Ordering::Relaxed),
        }
    }

    /// Hits so far, per request key (index `k` is request `k`, see [`path`]).
    pub fn key_hits(&self) -> Vec<u64> {
        self.live
            .key_hits
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .collect()
    }

    /// Whether the load is still running (not stopped, no bound reached).
    pub fn is_running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.tasks.iter().any(|t| !t.is_finished())
    }

    /// Polls `condition` every 20 ms until it holds (`Ok` with how long it took) or `within`
    /// passes (`Err` with the last live counts). Gives up early if the load has ended.
    pub async fn wait_for(
        &self,
        within: Duration,
        mut condition: impl FnMut(&LiveCounts) -> bool,
    ) -> Result<Duration, LiveCounts> {
        let begin = Instant::now();
        loop {
            let counts = self.counts();
            if condition(&counts) {
                return Ok(begin.elapsed());
            }
            if begin.elapsed() >= within || !self.is_running() {
                return Err(counts);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Keeps the load running for `duration` (a phase of the scenario).
    pub async fn run_for(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Stops the clients, waits for their requests in flight (each bounded by the request
    /// timeout) and returns every sample, ordered by start time.
    pub async fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.await.expect("load client task panicked");
        }
        let mut samples = std::mem::take(&mut *self.samples.lock().expect("samples lock"));
        samples.sort_by_key(|s| s.start);
        samples
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Worker {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    base_url: String,
    config: LoadConfig,
    started: Instant,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    active_keys: Arc<AtomicU32>,
    samples: Arc<Mutex<Vec<Sample>>>,
    rng: u64,
}

impl Worker {
    async fn run(mut self) {
        let mut local = Vec::new();
        let mut next = tokio::time::Instant::now();
        loop {
            if self.stop.load(Ordering::Relaxed)
                || self.started.elapsed() >= self.config.max_duration
                || self.live.requests.load(Ordering::Relaxed) >= self.config.max_requests
            {
                break;
            }
            let key =
                (self.next_random() % u64::from(self.active_keys.load(Ordering::Relaxed))) as u32;
            let sample = self.request(key).await;
            self.live.requests.fetch_add(1, Ordering::Relaxed);
            if sample.is_hit() {
                self.live.hits.fetch_add(1, Ordering::Relaxed);
                self.live.key_hits[key as usize].fetch_add(1, Ordering::Relaxed);
            }
            if sample.is_error() {
                self.live.errors.fetch_add(1, Ordering::Relaxed);
            }
            if sample.outcome == Outcome::WrongBody {
                self.live.wrong.fetch_add(1, Ordering::Relaxed);
            }
            local.push(sample);
            next += self.config.pace;
            let now = tokio::time::Instant::now();
            if next > now {
                tokio::time::sleep_until(next).await;
            } else {
                next = now;
            }
        }
        self.samples.lock().expect("samples lock").extend(local);
    }

    async fn request(&self, key: u32) -> Sample {
        let uri: Uri = format!("{}{}", self.base_url, path(key))
            .parse()
            .expect("request URI");
        let expected = expected_body(&entity(key), lang(key));
        let start = Instant::now();
        let exchange = async {
            let request = Request::get(uri)
                .body(Empty::<Bytes>::new())
                .expect("request");
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body: {e:?}"))?
                .to_bytes();
            Ok::<_, String>((parts, body))
        };
        let result = tokio::time::timeout(self.config.request_timeout, exchange).await;
        let latency = start.elapsed();
        let (outcome, cache_status) = match result {
            Err(_) => (Outcome::Timeout, String::new()),
            Ok(Err(error)) => (Outcome::Transport(error), String::new()),
            Ok(Ok((parts, body))) => {
                let cache_status = parts
                    .headers
                    .get("cache-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let outcome = if parts.status != StatusCode::OK {
                    Outcome::Status(parts.status.as_u16())
                } else if body != expected.as_bytes() {
                    Outcome::WrongBody
                } else {
                    Outcome::Ok
                };
                (outcome, cache_status)
            }
        };
        Sample {
            key,
            start,
            latency,
            outcome,
            cache_status,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The `q`-quantile (0..=1) of `latencies` (nearest rank); zero when empty.
pub fn quantile(latencies: &mut [Duration], q: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1]
}

/// A summary of one scenario's samples around its fault window `[fault_start, fault_end]`.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: String,
    pub requests: usize,
    /// Non-200, transport errors and timeouts.
    pub errors: usize,
    pub wrong_bodies: usize,
    /// Latency of the requests in flight during the fault.
    pub fault_requests: usize,
    pub fault_p50: Duration,
    pub fault_p99: Duration,
    pub fault_max: Duration,
    /// Latency of every request.
    pub max: Duration,
    /// Hits among requests that ended before the fault, that overlapped it, that started after it.
    pub hits_before: usize,
    pub hits_during: usize,
    pub hits_after: usize,
    /// Requests that started after the fault ended.
    pub requests_after: usize,
    /// From the fault's end until the first hit that started after it completed.
    pub time_to_recover: Option<Duration>,
    /// The cache's counters at the end.
    pub stats: CacheStats,
    /// A few error samples, for failure messages.
    pub error_examples: Vec<String>,
}

impl Report {
    /// Summarises `samples` for a fault from `fault_start` to `fault_end`.
    pub fn new(
        scenario: &str,
        samples: &[Sample],
        fault_start: Instant,
        fault_end: Instant,
        stats: CacheStats,
    ) -> Report {
        let errors: Vec<&Sample> = samples.iter().filter(|s| s.is_error()).collect();
        let wrong_bodies = samples
            .iter()
            .filter(|s| s.outcome == Outcome::WrongBody)
            .count();
        let mut fault: Vec<Duration> = samples
            .iter()
            .filter(|s| s.overlaps(fault_start, fault_end))
            .map(|s| s.latency)
            .collect();
        let after: Vec<&Sample> = samples.iter().filter(|s| s.start > fault_end).collect();
        let time_to_recover = after
            .iter()
            .filter(|s| s.is_hit())
            .map(|s| s.end().saturating_duration_since(fault_end))
            .min();
        Report {
            scenario: scenario.to_owned(),
            requests: samples.len(),
            errors: errors.len(),
            wrong_bodies,
            fault_requests: fault.len(),
            fault_p50: quantile(&mut fault, 0.50),
            fault_p99: quantile(&mut fault, 0.99),
            fault_max: fault.iter().copied().max().unwrap_or_default(),
            max: samples.iter().map(|s| s.latency).max().unwrap_or_default(),
            hits_before: samples
                .iter()
                .filter(|s| s.end() < fault_start && s.is_hit())
                .count(),
            hits_during: samples
                .iter()
                .filter(|s| s.overlaps(fault_start, fault_end) && s.is_hit())
                .count(),
            hits_after: after.iter().filter(|s| s.is_hit()).count(),
            requests_after: after.len(),
            time_to_recover,
            stats,
            error_examples: errors
                .iter()
                .take(5)
                .map(|s| {
                    format!(
                        "key {} after {:?}: {:?} ({:?})",
                        s.key, s.latency, s.outcome, s.cache_status
                    )
                })
                .collect(),
        }
    }

    /// Redefines the time to recover as: from `fault_end` until every request in `keys` has
    /// been a hit (a hit that started after `fault_end`); `None` if one never was.
    pub fn recovered_when_all_hit(
        mut self,
        samples: &[Sample],
        keys: Range<u32>,
        fault_end: Instant,
    ) -> Report {
        let mut first_hit: Vec<Option<Instant>> = vec![None; keys.len()];
        for s in samples {
            if s.start > fault_end && s.is_hit() && keys.contains(&s.key) {
                let slot = &mut first_hit[(s.key - keys.start) as usize];
                if slot.is_none_or(|t| s.end() < t) {
                    *slot = Some(s.end());
                }
            }
        }
        self.time_to_recover = first_hit
            .into_iter()
            .collect::<Option<Vec<Instant>>>()
            .and_then(|ends| ends.into_iter().max())
            .map(|last| last.saturating_duration_since(fault_end));
        self
    }

    /// The header of the markdown table [`row`](Self::row) fills.
    pub fn table_header() -> String {
        [
            "| Scenario | Requests | Errors | Wrong bodies | p50 / p99 / max during fault | Max overall \
             | Hits before / during / after | Time to recover | Lookup errors / breaker skips \
             / bad entries / write errors |",
            "|---|---:|---:|---:|---|---:|---|---:|---|",
        ]
        .join("\n")
    }

    /// One markdown table row (starts with `|`, so `grep '^|'` collects the table).
    pub fn row(&self) -> String {
        let s = &self.stats;
        format!(
            "| {} | {} | {} | {} | {} / {} / {} | {} | {} / {} / {} | {} | {} / {} / {} / {} |",
            self.scenario,
            self.requests,
            self.errors,
            self.wrong_bodies,
            ms(self.fault_p50),
            ms(self.fault_p99),
            ms(self.fault_max),
            ms(self.max),
            self.hits_before,
            self.hits_during,
            self.hits_after,
            self.time_to_recover.map_or("never".to_owned(), ms),
            s.lookup_errors,
            s.circuit_open,
            s.bad_entries,
            s.write_errors,
        )
    }
}

fn ms(d: Duration) -> String {
    let millis = d.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.1} ms")
    } else {
        format!("{millis:.0} ms")
    }
}
