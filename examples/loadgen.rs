//! A load generator for the `predictions` example: it drives the example's four cached routes with
//! a Zipf-skewed mix of keys, then reports throughput, the hit rate, hit and miss latencies, and
//! what the run cost the server according to its `GET /stats` (Redis memory, evictions, handler
//! runs).
//!
//! ```text
//! cargo run --release --example predictions &
//! cargo run --release --example loadgen -- --target http://127.0.0.1:3000 --duration 30s
//! ```
//!
//! Each of `--concurrency` workers sends one request at a time over HTTP/1.1 keep-alive. For each
//! request it draws a key index in `0..keys` from Zipf(`keys`, `zipf`), index 0 the most popular,
//! and maps the index to a request. Different indices always make different cache keys. Of every
//! eight consecutive indices, four are `POST /matches/{id}/prediction` with four different JSON
//! configs, two are `GET /matches/{id}/markets`, one is `GET /matches/{id}/goalscorers` and one
//! is `GET /teams/{team}/matches`.
//!
//! A response is a hit when its `cache-status` names `hit`. Anything else is a miss. A non-2xx
//! status, a connection error, or no whole body within 10 s is an error. Latency runs from sending
//! the request to reading the last byte of the body. Only requests that complete after the
//! warm-up are counted in the figures. The run stops by itself after `--duration`. Ctrl-C stops it
//! early and reports what it has. A live progress line is drawn on stderr when stderr is a
//! terminal. The report goes to stdout.
//!
//! Flags:
//!
//! - `--target URL` (default `http://127.0.0.1:3000`): the app's base URL, `http://` only.
//! - `--allow-remote`: allow a target that is not loopback (`127.0.0.0/8`, `::1`, `localhost`).
//! - `--duration D` (default `30s`, at most `24h`): `500ms`, `30s`, `2m`, `1h`, `1.5s`.
//! - `--warmup D` (default `5s`, shorter than `--duration`).
//! - `--keys N` (default 10000, 1..=10000000): how many distinct requests.
//! - `--zipf S` (default 1.1, 0..=5): the Zipf exponent. 0 draws the keys uniformly.
//! - `--concurrency N` (default 32, 1..=4096): workers, and so connections.
//! - `--rate R` (default 0, at most 10000000): requests per second in all, 0 for no limit. The
//!   limit holds on average. A slow server gets fewer requests, never a burst to catch up.
//! - `--body-bytes N` (default 0, at most 1048576): when above 0, each prediction config also
//!   carries `"detail": N`, and the app answers with a body of about N bytes.
//! - `--json`: also print the report as one JSON object, the last line of stdout.
//! - `-h`, `--help`.
//!
//! Before and after the run, the generator reads `GET {target}/stats`. When the app does not
//! serve it (404), or serves it without Redis figures (the in-process store), those figures are
//! reported as unknown (`null` in JSON).

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::SmallRng, Rng};
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Value};
use std::{
    cell::Cell,
    error::Error,
    ffi::OsString,
    fmt::Write as _,
    io::IsTerminal,
    net::IpAddr,
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};
use tokio::{
    sync::watch,
    task::JoinSet,
    time::{sleep_until, timeout, Instant},
};

const USAGE: &str = "usage: loadgen [--target URL] [--duration D] [--warmup D] [--keys N] \
                     [--zipf S] [--concurrency N] [--rate R] [--body-bytes N] [--json] \
                     [--allow-remote]";

const HELP: &str = "\
Drives the predictions example with a Zipf-skewed key mix and reports throughput, the hit rate,
hit and miss latencies, and the server's /stats (Redis memory, evictions, handler runs).

Options:
  --target URL       base URL of the app, http:// only     [default: http://127.0.0.1:3000]
  --allow-remote     allow a target that is not loopback (127.0.0.0/8, ::1, localhost)
  --duration D       how long to run, e.g. 500ms, 30s, 2m, at most 24h       [default: 30s]
  --warmup D         the first part of the run left out of the figures      [default: 5s]
  --keys N           distinct requests, 1..=10000000                        [default: 10000]
  --zipf S           Zipf exponent of the key popularity, 0..=5, 0 uniform  [default: 1.1]
  --concurrency N    workers, each with one request in flight, 1..=4096     [default: 32]
  --rate R           requests per second in all, 0 for no limit             [default: 0]
  --body-bytes N     ask predictions for a body of about N bytes, at most 1048576 [default: 0]
  --json             also print the report as one JSON object on the last line of stdout
  -h, --help         print this help";

/// How long one request may take, body included, before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each `GET /stats` may take.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the progress line is redrawn. Its rates are those of the last interval.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// The longest latency the histograms hold, in µs. Longer ones are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;

const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_KEYS: u64 = 10_000_000;
const MAX_ZIPF: f64 = 5.0;
const MAX_CONCURRENCY: usize = 4096;
const MAX_RATE: f64 = 10_000_000.0;
/// The lowest limit `--rate` takes: one request every 1000 s.
const MIN_RATE: f64 = 0.001;
const MAX_BODY_BYTES: u32 = 1 << 20;

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type BoxError = Box<dyn Error + Send + Sync>;

fn main() -> ExitCode {
    let settings = match Settings::parse(lexopt::Parser::from_env()) {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("loadgen: {error}\n{USAGE}\n(--help for more)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadgen: cannot start the Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The flags, checked.
#[derive(Clone, Debug, PartialEq)]
struct Settings {
    /// The target URL without a trailing `/`, to which paths are appended.
    target: String,
    duration: Duration,
    warmup: Duration,
    keys: u64,
    zipf: f64,
    concurrency: usize,
    /// Requests per second in all; 0 for no limit.
    rate: f64,
    body_bytes: u32,
    json: bool,
}

impl Settings {
    /// The settings from the command line, or `None` for `--help`.
    fn parse(mut parser: lexopt::Parser) -> Result<Option<Self>, String> {
        use lexopt::Arg::{Long, Short};

        let mut target = "http://127.0.0.1:3000".to_owned();
        let mut allow_remote = false;
        let mut settings = Settings {
            target: String::new(),
            duration: Duration::from_secs(30),
            warmup: Duration::from_secs(5),
            keys: 10_000,
            zipf: 1.1,
            concurrency: 32,
            rate: 0.0,
            body_bytes: 0,
            json: false,
        };
        while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
            match arg {
                Long("target") => target = flag_value(&mut parser, "--target", |s| Ok(s.into()))?,
                Long("allow-remote") => allow_remote = true,
                Long("duration") => {
                    settings.duration = flag_value(&mut parser, "--duration", parse_duration)?;
                    if settings.duration.is_zero() {
                        return Err("--duration must be longer than 0".into());
                    }
                }
                Long("warmup") => {
                    settings.warmup = flag_value(&mut parser, "--warmup", parse_duration)?;
                }
                Long("keys") => {
                    settings.keys = flag_value(&mut parser, "--keys", |s| {
                        parse_bounded(s, 1, MAX_KEYS, "an integer")
                    })?;
                }
                Long("zipf") => {
                    settings.zipf = flag_value(&mut parser, "--zipf", |s| {
                        parse_bounded(s, 0.0, MAX_ZIPF, "a number")
                    })?;
                }
                Long("concurrency") => {
                    settings.concurrency = flag_value(&mut parser, "--concurrency", |s| {
                        parse_bounded(s, 1, MAX_CONCURRENCY, "an integer")
                    })?;
                }
                Long("rate") => {
                    settings.rate = flag_value(&mut parser, "--rate", |s| {
                        let rate = parse_bounded(s, 0.0, MAX_RATE, "a number")?;
                        if rate > 0.0 && rate < MIN_RATE {
                            return Err(format!("0 for no limit, else at least {MIN_RATE}"));
                        }
                        Ok(rate)
                    })?;
                }
                Long("body-bytes") => {
                    settings.body_bytes = flag_value(&mut parser, "--body-bytes", |s| {
                        parse_bounded(s, 0, MAX_BODY_BYTES, "an integer")
                    })?;
                }
                Long("json") => settings.json = true,
                Short('h') | Long("help") => return Ok(None),
                _ => return Err(arg.unexpected().to_string()),
            }
        }
        if settings.warmup >= settings.duration {
            return Err(format!(
                "--warmup ({}) must be shorter than --duration ({})",
                seconds(settings.warmup),
                seconds(settings.duration),
            ));
        }
        settings.target = check_target(&target, allow_remote)?;
        Ok(Some(settings))
    }
}

/// The value of `flag`, parsed, or an error naming the flag and the value.
fn flag_value<T>(
    parser: &mut lexopt::Parser,
    flag: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    let value = parser.value().map_err(|error| error.to_string())?;
    let value = value
        .into_string()
        .map_err(|value: OsString| format!("{flag} {value:?}: not valid UTF-8"))?;
    parse(&value).map_err(|why| format!("{flag} {value:?}: {why}"))
}

/// A number of type `T` in `min..=max`.
fn parse_bounded<T>(value: &str, min: T, max: T, what: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match value.parse::<T>() {
        // NaN compares false both ways, and so is refused.
        Ok(number) if number >= min && number <= max => Ok(number),
        _ => Err(format!("expected {what} from {min} to {max}")),
    }
}

/// A duration such as `500ms`, `30s`, `1.5s`, `2m` or `1h`, at most [`MAX_DURATION`].
fn parse_duration(value: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as 500ms, 30s, 2m or 1h";
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or(expected)?;
    let (number, unit) = value.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(expected.into()),
    };
    let number: f64 = number.parse().map_err(|_| expected)?;
    let secs = number * scale;
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("at most {}h", MAX_DURATION.as_secs() / 3600));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The target without its trailing `/`, if it is an `http://` URL of a loopback host or
/// `allow_remote` is set.
fn check_target(target: &str, allow_remote: bool) -> Result<String, String> {
    let bad = |why: &str| format!("--target {target:?}: {why}");
    let uri: http::Uri = target
        .parse()
        .map_err(|error| bad(&format!("not a URL ({error})")))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// targets are supported"));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    if uri.query().is_some() {
        return Err(bad("a target has no query"));
    }
    if !allow_remote && !is_loopback(host) {
        return Err(bad(
            "not a loopback host (127.0.0.0/8, ::1, localhost); pass --allow-remote to load it",
        ));
    }
    Ok(target.trim_end_matches('/').to_owned())
}

/// Whether `host` (as in a URL: an IPv6 address in brackets) is `localhost` or a loopback
/// address.
fn is_loopback(host: &str) -> bool {
    let address = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || address
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Seconds for a message: `30s`, `0.5s`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// The prediction configs (`risk`, `model`), one for each of the first four of eight indices.
const CONFIGS: [(&str, &str); 4] = [
    ("high", "v2"),
    ("low", "v2"),
    ("high", "v1"),
    ("medium", "v3"),
];
/// The match id of key index 0.
const FIRST_MATCH_ID: u64 = 100_000;

/// One request of the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Route {
    /// `POST /matches/{id}/prediction` with `CONFIGS[config]`.
    Prediction {
        id: u64,
        config: usize,
    },
    Markets {
        id: u64,
    },
    Goalscorers {
        id: u64,
    },
    Teams {
        team: u64,
    },
}

impl Route {
    /// The request of key index `index`. Different indices give different cache keys: of each
    /// eight, four predictions of one match (its four configs), two markets, one goalscorers and
    /// one team, each with a match id or team of its own.
    fn of_index(index: u64) -> Self {
        let (group, slot) = (index / 8, index % 8);
        match slot {
            0..=3 => Route::Prediction {
                id: FIRST_MATCH_ID + group,
                config: slot as usize,
            },
            4 | 5 => Route::Markets {
                id: FIRST_MATCH_ID + 2 * group + (slot - 4),
            },
            6 => Route::Goalscorers {
                id: FIRST_MATCH_ID + group,
            },
            _ => Route::Teams { team: group },
        }
    }

    /// The request to `target` (a base URL without trailing `/`).
    fn request(self, target: &str, body_bytes: u32) -> Request<Full<Bytes>> {
        let builder = Request::builder();
        let (builder, body) = match self {
            Route::Prediction { id, config } => {
                let (risk, model) = CONFIGS[config];
                let mut body = format!(r#"{{"risk":"{risk}","model":"{model}""#);
                if body_bytes > 0 {
                    let _ = write!(body, r#","detail":{body_bytes}"#);
                }
                body.push('}');
                let builder = builder
                    .method(Method::POST)
                    .uri(format!("{target}/matches/{id}/prediction"))
                    .header(header::CONTENT_TYPE, "application/json");
                (builder, Bytes::from(body))
            }
            Route::Markets { id } => (
                builder.uri(format!("{target}/matches/{id}/markets")),
                Bytes::new(),
            ),
            Route::Goalscorers { id } => (
                builder.uri(format!("{target}/matches/{id}/goalscorers")),
                Bytes::new(),
            ),
            Route::Teams { team } => (
                builder.uri(format!("{target}/teams/club-{team}/matches")),
                Bytes::new(),
            ),
        };
        builder
            .body(Full::new(body))
            .expect("the target was checked to be a URL, and paths are ASCII")
    }
}

/// What became of one request.
#[derive(Debug)]
enum Outcome {
    Hit { body_bytes: u64 },
    Miss { body_bytes: u64 },
    Status(StatusCode),
    Failed(String),
    TimedOut,
}

/// Sends `request` and reads the whole response.
async fn exchange(client: &HttpClient, request: Request<Full<Bytes>>) -> Outcome {
    let exchange = async {
        let (parts, mut body) = client.request(request).await?.into_parts();
        let mut body_bytes = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                body_bytes += data.len() as u64;
            }
        }
        Ok::<_, BoxError>((parts, body_bytes))
    };
    match timeout(REQUEST_TIMEOUT, exchange).await {
        Err(_elapsed) => Outcome::TimedOut,
        Ok(Err(error)) => Outcome::Failed(error_chain(&*error)),
        Ok(Ok((parts, _))) if !parts.status.is_success() => Outcome::Status(parts.status),
        Ok(Ok((parts, body_bytes))) => {
            let hit = parts
                .headers
                .get("cache-status")
                .and_then(|value| value.to_str().ok())
                .is_some_and(is_hit);
            if hit {
                Outcome::Hit { body_bytes }
            } else {
                Outcome::Miss { body_bytes }
            }
        }
    }
}

/// Whether a `cache-status` value (`tower-redis-cache; hit; ttl=299`) says the response is a hit.
fn is_hit(cache_status: &str) -> bool {
    cache_status
        .split(';')
        .skip(1)
        .any(|param| param.trim() == "hit")
}

/// `error` and its sources, `: `-separated (the client's own message alone says little).
fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(message, ": {cause}");
        source = cause.source();
    }
    message
}

/// Spaces requests out to an average rate, without bursts after falling behind.
struct Pacer {
    period: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Option<Self> {
        (rate > 0.0).then(|| Pacer {
            period: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(Instant::now()),
        })
    }

    /// When the next request may be sent.
    fn next_slot(&self) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (*next).max(Instant::now());
        *next = slot + self.period;
        slot
    }
}

/// Counts for the progress line, over the whole run, warm-up included.
#[derive(Default)]
struct Live {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

impl Live {
    fn snapshot(&self) -> [u64; 3] {
        [&self.hits, &self.misses, &self.errors].map(|count| count.load(Relaxed))
    }
}

/// What the workers share.
struct Shared {
    client: HttpClient,
    settings: Settings,
    zipf: Zipf<f64>,
    pacer: Option<Pacer>,
    live: Live,
    /// When the warm-up ends: requests completed before are not measured.
    measure_from: Instant,
}

/// One worker's figures, merged into the report's at the end.
struct Tally {
    warmup_requests: u64,
    hits: u64,
    misses: u64,
    status_errors: u64,
    failed: u64,
    timed_out: u64,
    body_bytes: u64,
    /// Latencies in µs.
    hit_latency: Histogram<u64>,
    miss_latency: Histogram<u64>,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("the bounds are valid");
        Tally {
            warmup_requests: 0,
            hits: 0,
            misses: 0,
            status_errors: 0,
            failed: 0,
            timed_out: 0,
            body_bytes: 0,
            hit_latency: histogram(),
            miss_latency: histogram(),
            first_error: None,
        }
    }

    fn requests(&self) -> u64 {
        self.hits + self.misses + self.errors()
    }

    fn errors(&self) -> u64 {
        self.status_errors + self.failed + self.timed_out
    }

    /// Records a request measured after the warm-up.
    fn record(&mut self, outcome: Outcome, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        match outcome {
            Outcome::Hit { body_bytes } => {
                self.hits += 1;
                self.body_bytes += body_bytes;
                self.hit_latency.saturating_record(micros);
            }
            Outcome::Miss { body_bytes } => {
                self.misses += 1;
                self.body_bytes += body_bytes;
                self.miss_latency.saturating_record(micros);
            }
            Outcome::Status(status) => {
                self.status_errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("HTTP status {status}"));
            }
            Outcome::Failed(error) => {
                self.failed += 1;
                self.first_error.get_or_insert(error);
            }
            Outcome::TimedOut => {
                self.timed_out += 1;
                self.first_error
                    .get_or_insert_with(|| format!("no whole response within {REQUEST_TIMEOUT:?}"));
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.warmup_requests += other.warmup_requests;
        self.hits += other.hits;
        self.misses += other.misses;
        self.status_errors += other.status_errors;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        self.body_bytes += other.body_bytes;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hit_latency.add(&other.hit_latency);
        let _ = self.miss_latency.add(&other.miss_latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One worker: requests one at a time until `stop` turns true, then hands back its figures.
async fn worker(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Tally {
    let mut rng: SmallRng = rand::make_rng();
    let mut tally = Tally::new();
    loop {
        let index = sample_index(&shared.zipf, shared.settings.keys, &mut rng);
        let request =
            Route::of_index(index).request(&shared.settings.target, shared.settings.body_bytes);
        let step = async {
            if let Some(pacer) = &shared.pacer {
                sleep_until(pacer.next_slot()).await;
            }
            let sent = Instant::now();
            let outcome = exchange(&shared.client, request).await;
            (outcome, sent)
        };
        let (outcome, sent) = tokio::select! {
            biased;
            _ = stop.wait_for(|&stopped| stopped) => break,
            done = step => done,
        };
        let done = Instant::now();
        let live = match outcome {
            Outcome::Hit { .. } => &shared.live.hits,
            Outcome::Miss { .. } => &shared.live.misses,
            _ => &shared.live.errors,
        };
        live.fetch_add(1, Relaxed);
        if done < shared.measure_from {
            tally.warmup_requests += 1;
        } else {
            tally.record(outcome, done - sent);
        }
    }
    tally
}

/// A key index in `0..keys`, 0 the most popular.
fn sample_index(zipf: &Zipf<f64>, keys: u64, rng: &mut impl Rng) -> u64 {
    // Zipf draws from 1..=keys; the float is a whole number.
    (zipf.sample(rng) as u64).clamp(1, keys) - 1
}

async fn run(settings: Settings) -> Result<(), BoxError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(settings.concurrency)
        .build(connector);
    let stats_before = match fetch_stats(&client, &settings.target).await {
        Ok(stats) => stats,
        Err(Unreachable(error)) => {
            return Err(format!("cannot reach {}: {error}", settings.target).into());
        }
    };
    let zipf = Zipf::new(settings.keys as f64, settings.zipf)?;

    let started = Instant::now();
    let deadline = started + settings.duration;
    let shared = Arc::new(Shared {
        client: client.clone(),
        zipf,
        pacer: Pacer::new(settings.rate),
        live: Live::default(),
        measure_from: started + settings.warmup,
        settings: settings.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    for _ in 0..settings.concurrency {
        workers.spawn(worker(Arc::clone(&shared), stop_rx.clone()));
    }

    let progress = std::io::stderr()
        .is_terminal()
        .then(|| Progress::new(&settings));
    let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = loop {
        tokio::select! {
            _ = sleep_until(deadline) => break false,
            _ = &mut ctrl_c => break true,
            _ = ticks.tick() => {
                if let Some(progress) = &progress {
                    progress.update(&shared, started.elapsed());
                }
            }
        }
    };
    let stopped = Instant::now();
    let _ = stop_tx.send(true);
    let mut tally = Tally::new();
    while let Some(worker) = workers.join_next().await {
        tally.merge(worker?);
    }
    if let Some(progress) = progress {
        progress.bar.finish_and_clear();
    }
    if interrupted {
        eprintln!(
            "loadgen: interrupted after {:.1}s",
            (stopped - started).as_secs_f64()
        );
    }

    let stats_after = fetch_stats(&client, &settings.target)
        .await
        .unwrap_or_else(|error| {
            eprintln!("loadgen: after the run, {error}");
            None
        });
    let report = Report {
        measured: stopped.saturating_duration_since(shared.measure_from),
        elapsed: stopped - started,
        interrupted,
        settings,
        tally,
        server: ServerFigures::new(stats_before.as_ref(), stats_after.as_ref()),
    };
    report.print_table();
    if report.settings.json {
        println!("{}", report.to_json());
    }
    Ok(())
}

/// The live progress line on stderr.
struct Progress {
    bar: ProgressBar,
    /// When the line was last drawn, and the live counts then.
    last: Cell<(Duration, [u64; 3])>,
    warmup: Duration,
    duration: Duration,
}

impl Progress {
    fn new(settings: &Settings) -> Self {
        let millis = u64::try_from(settings.duration.as_millis()).unwrap_or(u64::MAX);
        let bar = ProgressBar::new(millis);
        let style = ProgressStyle::with_template("[{bar:24}] {msg}")
            .expect("the template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        Progress {
            bar,
            last: Cell::new((Duration::ZERO, [0; 3])),
            warmup: settings.warmup,
            duration: settings.duration,
        }
    }

    /// Redraws the line: elapsed time, and the rates since the last redraw.
    fn update(&self, shared: &Shared, elapsed: Duration) {
        let now = shared.live.snapshot();
        let (then, before) = self.last.replace((elapsed, now));
        let [hits, misses, errors] = [0, 1, 2].map(|i| now[i] - before[i]);
        let interval = (elapsed - then).as_secs_f64();
        let rps = if interval > 0.0 {
            (hits + misses + errors) as f64 / interval
        } else {
            0.0
        };
        let hit_rate = match hits + misses {
            0 => "-".to_owned(),
            answered => format!("{:.1}%", 100.0 * hits as f64 / answered as f64),
        };
        let phase = if elapsed < self.warmup {
            "warm-up | "
        } else {
            ""
        };
        self.bar
            .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        self.bar.set_message(format!(
            "{:.0}/{:.0}s | {phase}{rps:.0} rps | hit {hit_rate} | {} errors",
            elapsed.as_secs_f64(),
            self.duration.as_secs_f64(),
            now[2],
        ));
    }
}

/// `GET /stats` could not be sent at all.
struct Unreachable(String);

/// The app's `GET /stats`, or `None` when it has none (404) or it is unusable (with a warning).
async fn fetch_stats(client: &HttpClient, target: &str) -> Result<Option<Value>, Unreachable> {
    let request = Request::get(format!("{target}/stats"))
        .body(Full::default())
        .expect("the target was checked to be a URL");
    let fetch = async {
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    let (status, body) = match timeout(STATS_TIMEOUT, fetch).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return Err(Unreachable(error_chain(&*error))),
        Err(_elapsed) => {
            return Err(Unreachable(format!(
                "no answer to GET /stats within {STATS_TIMEOUT:?}"
            )))
        }
    };
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        eprintln!("loadgen: GET /stats answered {status}: its figures are unknown");
        return Ok(None);
    }
    match serde_json::from_slice(&body) {
        Ok(stats) => Ok(Some(stats)),
        Err(error) => {
            eprintln!("loadgen: GET /stats is not JSON ({error}): its figures are unknown");
            Ok(None)
        }
    }
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GET /stats failed: {}", self.0)
    }
}

/// What the run cost the server, from `/stats` before and after; `None` where unknown.
#[derive(Debug, Default, PartialEq)]
struct ServerFigures {
    store: Option<String>,
    redis_used_memory: Option<u64>,
    redis_evicted_keys: Option<u64>,
    bytes_per_key: Option<f64>,
    handler_runs: Option<u64>,
}

impl ServerFigures {
    fn new(before: Option<&Value>, after: Option<&Value>) -> Self {
        let count = |stats: Option<&Value>, pointer: &str| {
            stats.and_then(|stats| stats.pointer(pointer)?.as_u64())
        };
        let delta = |pointer: &str| count(after, pointer)?.checked_sub(count(before, pointer)?);
        let keys = count(after, "/redis/keys").filter(|&keys| keys > 0);
        ServerFigures {
            store: after
                .and_then(|stats| stats.get("store")?.as_str())
                .map(str::to_owned),
            redis_used_memory: count(after, "/redis/used_memory"),
            redis_evicted_keys: delta("/redis/evicted_keys"),
            bytes_per_key: count(after, "/redis/used_memory_dataset")
                .zip(keys)
                .map(|(dataset, keys)| dataset as f64 / keys as f64),
            handler_runs: delta("/handler_runs/total"),
        }
    }
}

/// Everything the run found.
struct Report {
    settings: Settings,
    tally: Tally,
    server: ServerFigures,
    /// From the end of the warm-up to the stop.
    measured: Duration,
    elapsed: Duration,
    interrupted: bool,
}

impl Report {
    fn rps(&self) -> Option<f64> {
        let secs = self.measured.as_secs_f64();
        (secs > 0.0).then(|| self.tally.requests() as f64 / secs)
    }

    fn hit_rate(&self) -> Option<f64> {
        let answered = self.tally.hits + self.tally.misses;
        (answered > 0).then(|| self.tally.hits as f64 / answered as f64)
    }

    fn print_table(&self) {
        let (settings, tally, server) = (&self.settings, &self.tally, &self.server);
        let rate = if settings.rate > 0.0 {
            format!("{} rps", settings.rate)
        } else {
            "unlimited".to_owned()
        };
        println!(
            "target {}, duration {} (warm-up {}), keys {}, zipf {}, concurrency {}, rate {}, \
             body-bytes {}",
            settings.target,
            seconds(settings.duration),
            seconds(settings.warmup),
            settings.keys,
            settings.zipf,
            settings.concurrency,
            rate,
            settings.body_bytes,
        );
        if self.interrupted {
            println!(
                "interrupted by Ctrl-C after {:.1}s: the figures cover what ran",
                self.elapsed.as_secs_f64()
            );
        }
        println!();
        let row = |label: &str, value: String| println!("{label:<22}{value}");
        row(
            "requests",
            format!(
                "{} (and {} in the warm-up)",
                tally.requests(),
                tally.warmup_requests
            ),
        );
        row(
            "errors",
            format!(
                "{} (status {}, connection {}, timeout {})",
                tally.errors(),
                tally.status_errors,
                tally.failed,
                tally.timed_out
            ),
        );
        if let Some(error) = &tally.first_error {
            row("  first error", error.clone());
        }
        row(
            "throughput",
            match self.rps() {
                Some(rps) => format!("{rps:.1} rps over {:.1}s", self.measured.as_secs_f64()),
                None => "unknown (stopped in the warm-up)".to_owned(),
            },
        );
        row(
            "hit rate",
            or_unknown(self.hit_rate().map(|rate| format!("{:.2}%", 100.0 * rate))),
        );
        println!(
            "{:<22}{:>10}{:>10}{:>10}{:>10}",
            "latency (ms)", "p50", "p99", "p999", "count"
        );
        for (label, histogram) in [
            ("  hit", &tally.hit_latency),
            ("  miss", &tally.miss_latency),
        ] {
            let [p50, p99, p999] = percentiles(histogram)
                .map(|quantile| or_unknown(quantile.map(|ms| format!("{ms:.3}"))));
            println!(
                "{label:<22}{p50:>10}{p99:>10}{p999:>10}{:>10}",
                histogram.len()
            );
        }
        row("store", or_unknown(server.store.clone()));
        row(
            "redis used_memory",
            or_unknown(
                server.redis_used_memory.map(|bytes| {
                    format!("{bytes} B ({:.1} MiB)", bytes as f64 / f64::from(1 << 20))
                }),
            ),
        );
        row(
            "redis evicted_keys",
            or_unknown(
                server
                    .redis_evicted_keys
                    .map(|keys| format!("{keys} (during the run)")),
            ),
        );
        row(
            "bytes per key",
            or_unknown(
                server
                    .bytes_per_key
                    .map(|bytes| format!("{bytes:.0} (dataset / keys)")),
            ),
        );
        row(
            "handler runs",
            or_unknown(
                server
                    .handler_runs
                    .map(|runs| format!("{runs} (warm-up included)")),
            ),
        );
    }

    fn to_json(&self) -> Value {
        let (settings, tally, server) = (&self.settings, &self.tally, &self.server);
        let [hit_p50, hit_p99, hit_p999] = percentiles(&tally.hit_latency);
        let [miss_p50, miss_p99, miss_p999] = percentiles(&tally.miss_latency);
        json!({
            "requests": tally.requests(),
            "errors": tally.errors(),
            "errors_status": tally.status_errors,
            "errors_connection": tally.failed,
            "errors_timeout": tally.timed_out,
            "rps": self.rps(),
            "hit_rate": self.hit_rate(),
            "hits": tally.hits,
            "misses": tally.misses,
            "hit_p50_ms": hit_p50,
            "hit_p99_ms": hit_p99,
            "hit_p999_ms": hit_p999,
            "miss_p50_ms": miss_p50,
            "miss_p99_ms": miss_p99,
            "miss_p999_ms": miss_p999,
            "body_bytes_received": tally.body_bytes,
            "store": server.store,
            "redis_used_memory": server.redis_used_memory,
            "redis_evicted_keys": server.redis_evicted_keys,
            "bytes_per_key": server.bytes_per_key,
            "handler_runs": server.handler_runs,
            "warmup_requests": tally.warmup_requests,
            "measured_s": self.measured.as_secs_f64(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "interrupted": self.interrupted,
            "target": settings.target,
            "duration_s": settings.duration.as_secs_f64(),
            "warmup_s": settings.warmup.as_secs_f64(),
            "concurrency": settings.concurrency,
            "keys": settings.keys,
            "zipf": settings.zipf,
            "rate": settings.rate,
            "body_bytes": settings.body_bytes,
        })
    }
}

/// p50, p99 and p99.9 in ms, `None` without samples.
fn percentiles(histogram: &Histogram<u64>) -> [Option<f64>; 3] {
    [0.5, 0.99, 0.999].map(|quantile| {
        (!histogram.is_empty()).then(|| histogram.value_at_quantile(quantile) as f64 / 1000.0)
    })
}

fn or_unknown(value: Option<String>) -> String {
    value.unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn parse(args: &[&str]) -> Result<Option<Settings>, String> {
        Settings::parse(lexopt::Parser::from_args(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let settings = parse(&[]).unwrap().unwrap();
        assert_eq!(settings.target, "http://127.0.0.1:3000");
        assert_eq!(settings.duration, Duration::from_secs(30));
        assert_eq!(settings.warmup, Duration::from_secs(5));
        assert_eq!((settings.keys, settings.zipf), (10_000, 1.1));
        assert_eq!((settings.concurrency, settings.rate), (32, 0.0));
        assert_eq!((settings.body_bytes, settings.json), (0, false));
        assert_eq!(parse(&["--help"]), Ok(None));
    }

    #[test]
    fn flags_are_bounded() {
        for (args, message) in [
            (
                &["--keys", "0"][..],
                "--keys \"0\": expected an integer from 1 to 10000000",
            ),
            (&["--keys", "10000001"], "expected an integer from 1"),
            (&["--keys=ten"], "expected an integer"),
            (
                &["--zipf", "NaN"],
                "--zipf \"NaN\": expected a number from 0 to 5",
            ),
            (&["--zipf", "-1"], "expected a number"),
            (&["--concurrency", "4097"], "to 4096"),
            (&["--rate", "inf"], "to 10000000"),
            (&["--rate", "1e-300"], "at least 0.001"),
            (&["--body-bytes", "1048577"], "to 1048576"),
            (&["--duration", "25h"], "at most 24h"),
            (&["--duration", "0s"], "longer than 0"),
            (&["--duration", "30"], "expected a duration"),
            (&["--duration", "1.2.3s"], "expected a duration"),
            (
                &["--warmup", "30s"],
                "--warmup (30s) must be shorter than --duration (30s)",
            ),
            (&["--duration", "1s"], "--warmup (5s) must be shorter"),
            (&["--keys"], "missing argument for option '--keys'"),
            (&["--bogus"], "invalid option '--bogus'"),
            (&["extra"], "unexpected argument"),
            (&["--json=yes"], "unexpected argument for option '--json'"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(error.contains(message), "{args:?}: {error}");
        }
        let settings = parse(&["--duration=2m", "--warmup", "500ms", "--zipf", "0"]).unwrap();
        let settings = settings.unwrap();
        assert_eq!(settings.duration, Duration::from_secs(120));
        assert_eq!(settings.warmup, Duration::from_millis(500));
        assert_eq!(settings.zipf, 0.0);
        assert_eq!(
            parse(&["--duration", "1.5s", "--warmup", "0s"])
                .unwrap()
                .unwrap()
                .duration,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn only_loopback_targets_without_allow_remote() {
        for target in [
            "http://127.0.0.1:3000/",
            "http://127.1.2.3",
            "http://localhost:3000",
            "http://LOCALHOST",
            "http://[::1]:3000",
            "http://[::ffff:127.0.0.1]:3000",
        ] {
            let settings = parse(&["--target", target]).unwrap().unwrap();
            assert!(!settings.target.ends_with('/'), "{target}");
        }
        for target in [
            "http://10.0.0.1:3000",
            "http://192.168.1.2",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]",
            "http://0.0.0.0:3000",
        ] {
            let error = parse(&["--target", target]).unwrap_err();
            assert!(error.contains("not a loopback host"), "{target}: {error}");
            assert!(parse(&["--target", target, "--allow-remote"]).is_ok());
        }
        for (target, message) in [
            ("https://127.0.0.1", "only http://"),
            ("127.0.0.1:3000", "only http://"),
            ("http://127.0.0.1/?a=1", "no query"),
            ("http://", "not a URL"),
        ] {
            let error = parse(&["--target", target]).unwrap_err();
            assert!(error.contains(message), "{target}: {error}");
        }
    }

    #[test]
    fn different_indices_are_different_cache_keys() {
        // What the cache keys each route by: path for markets and goalscorers, team for teams,
        // path and (canonical) body for predictions; the four namespaces do not overlap.
        let mut keys = HashSet::new();
        let mut predictions = 0;
        for index in 0..80_000 {
            let route = Route::of_index(index);
            let request = route.request("http://127.0.0.1:3000", 100);
            predictions += u32::from(request.method() == Method::POST);
            let body = request.body().clone();
            let key = (request.uri().to_string(), format!("{body:?}"));
            assert!(keys.insert(key), "index {index}: {route:?} repeats a key");
        }
        assert_eq!(predictions, 40_000);
        let request = Route::of_index(1).request("http://h", 7);
        assert_eq!(request.uri(), "http://h/matches/100000/prediction");
        assert_eq!(
            body_text(request),
            r#"{"risk":"low","model":"v2","detail":7}"#
        );
        let request = Route::of_index(3).request("http://h", 0);
        assert_eq!(body_text(request), r#"{"risk":"medium","model":"v3"}"#);
        let request = Route::of_index(15).request("http://h", 0);
        assert_eq!(request.uri(), "http://h/teams/club-1/matches");
        assert_eq!(body_text(request), "");
    }

    /// The body of a request as built, which is ready at once.
    fn body_text(request: Request<Full<Bytes>>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let body = runtime.block_on(request.into_body().collect()).unwrap();
        String::from_utf8(body.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn zipf_indices_stay_in_range_and_favour_the_first() {
        let mut rng: SmallRng = rand::SeedableRng::seed_from_u64(7);
        for (keys, s) in [(1, 1.1), (10, 0.0), (1000, 1.1), (10_000_000, 5.0)] {
            let zipf = Zipf::new(keys as f64, s).unwrap();
            let mut counts = [0u32; 2];
            for _ in 0..10_000 {
                let index = sample_index(&zipf, keys, &mut rng);
                assert!(index < keys);
                if index < 2 {
                    counts[index as usize] += 1;
                }
            }
            if keys > 1 && s > 0.0 {
                assert!(counts[0] > counts[1], "{keys} {s}: {counts:?}");
            }
        }
    }

    #[test]
    fn hits_are_read_from_cache_status() {
        assert!(is_hit("tower-redis-cache; hit; ttl=299"));
        assert!(is_hit("tower-redis-cache; hit; ttl=-3; fwd=stale"));
        assert!(!is_hit("tower-redis-cache; fwd=uri-miss; stored"));
        assert!(!is_hit("hit"));
    }

    #[test]
    fn server_figures_from_stats() {
        let before = json!({
            "store": "redis",
            "handler_runs": {"total": 10},
            "redis": {"evicted_keys": 5, "used_memory": 1, "used_memory_dataset": 1, "keys": 1},
        });
        let after = json!({
            "store": "redis",
            "handler_runs": {"total": 25},
            "redis": {"evicted_keys": 7, "used_memory": 4096, "used_memory_dataset": 3000, "keys": 4},
        });
        let figures = ServerFigures::new(Some(&before), Some(&after));
        assert_eq!(
            figures,
            ServerFigures {
                store: Some("redis".into()),
                redis_used_memory: Some(4096),
                redis_evicted_keys: Some(2),
                bytes_per_key: Some(750.0),
                handler_runs: Some(15),
            }
        );
        let memory = json!({"store": "memory", "handler_runs": {"total": 3}, "redis": null});
        let figures = ServerFigures::new(Some(&memory), Some(&memory));
        assert_eq!(figures.handler_runs, Some(0));
        assert_eq!(figures.redis_used_memory, None);
        assert_eq!(ServerFigures::new(None, None), ServerFigures::default());
    }
}
