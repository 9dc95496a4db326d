//! Connection security against real `redis-server` processes: a password and an ACL user from
//! the URL, TLS with a private CA (and client certificates), and credentials that never show up
//! in `Debug` output, errors or logs.
//!
//! Every test starts its own servers (killed on drop) and runs under an overall deadline; every
//! failing connect must fail within its connection timeout, never hang.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{
    body::Body,
    extract::Path,
    http::{Request, Response, StatusCode},
    routing::get,
    Router,
};
use tower::ServiceExt;
use tower_redis_cache::{
    CacheLayer, Entity, KeyFactory, Policy, RedisStore, RedisStoreBuilder, Store, StoreError,
    StoreErrorKind,
};
use tracing_subscriber::util::SubscriberInitExt;

use crate::servers::server::{ephemeral_port, percent_encode};
use crate::servers::tls::{TestPki, TlsRedis};
use crate::servers::RedisServer;

/// The server password: distinctive, so a leak cannot hide behind a common word.
const PASSWORD: &str = "Sup3r-Secr3t-Pw";
/// A wrong password, just as distinctive (it must not leak either).
const WRONG_PASSWORD: &str = "Wr0ng-Secr3t-Pw";
/// The ACL user and its secret.
const ACL_USER: &str = "cacheuser";
const ACL_SECRET: &str = "Acl-Us3r-S3cret";
/// A password with characters that must be percent-encoded in a URL.
const ODD_PASSWORD: &str = "p@ss:w/rd%Secr3t#?";

/// How long a failing connect may take: its connection timeout plus scheduling slack.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_SLACK: Duration = Duration::from_millis(1500);
/// Every test's overall deadline.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `test` with an overall deadline, so a hang fails the test instead of the run.
async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .expect("test exceeded its overall deadline");
}

fn redis_url(user: &str, password: &str, port: u16) -> String {
    format!(
        "redis://{}:{}@127.0.0.1:{port}",
        percent_encode(user),
        percent_encode(password)
    )
}

fn store_builder(url: &str) -> RedisStoreBuilder {
    RedisStore::builder(url)
        .connection_timeout(CONNECT_TIMEOUT)
        .command_timeout(Duration::from_secs(2))
}

/// Connects with `builder` and expects a failure within the connection timeout (plus slack).
async fn connect_fails(builder: RedisStoreBuilder, what: &str) -> StoreError {
    let started = Instant::now();
    let result = tokio::time::timeout(CONNECT_TIMEOUT * 3, builder.connect())
        .await
        .unwrap_or_else(|_| panic!("{what}: connect hung past 3x its connection timeout"));
    let elapsed = started.elapsed();
    let error = match result {
        Ok(store) => panic!("{what}: connect succeeded ({store:?})"),
        Err(error) => error,
    };
    assert!(
        elapsed <= CONNECT_TIMEOUT + CONNECT_SLACK,
        "{what}: failed only after {elapsed:?} ({error})"
    );
    error
}

/// Asserts that none of `secrets` (nor their percent-encoded forms) occurs in `text`.
#[track_caller]
fn assert_hides(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        for form in [secret.to_string(), percent_encode(secret)] {
            assert!(
                !text.contains(&form),
                "{what} reveals the secret {form:?}:\n{text}"
            );
        }
    }
}

/// Asserts a connect error reveals no secret in its `Display` or `Debug` form.
#[track_caller]
fn assert_error_hides(error: &StoreError, secrets: &[&str], what: &str) {
    assert_hides(&error.to_string(), secrets, &format!("{what} (Display)"));
    assert_hides(&format!("{error:?}"), secrets, &format!("{what} (Debug)"));
}

/// The app of every round trip: `GET /items/{id}`, cached per id, counting handler runs.
fn cached_app(cache: &CacheLayer, runs: Arc<AtomicU64>) -> Router {
    Router::new().route(
        "/items/{id}",
        get(move |Path(id): Path<String>| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Relaxed);
                format!("item {id}")
            }
        })
        .route_layer(cache.policy(Policy::new("items").entity(Entity::path_segment(1)))),
    )
}

/// A layer on `store` with keys `monps:sec:v1:…` and a lookup timeout generous enough for TLS
/// under a loaded test run.
fn layer(store: impl Store) -> CacheLayer {
    layer_with_timeout(store, Duration::from_secs(1))
}

fn layer_with_timeout(store: impl Store, lookup_timeout: Duration) -> CacheLayer {
    CacheLayer::builder(store, KeyFactory::new("monps", "sec", "v1"))
        .lookup_timeout(lookup_timeout)
        .build()
        .unwrap()
}

async fn send(app: &Router, path: &str) -> (Response<Body>, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response, status)
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Miss, write-back, then hit through a [`CacheLayer`] on `store`; the entry lands in `server`.
async fn assert_cache_round_trip(store: RedisStore, server: &RedisServer) {
    let cache = layer(store);
    let runs = Arc::new(AtomicU64::new(0));
    let app = cached_app(&cache, runs.clone());

    let (first, status) = send(&app, "/items/42").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(status.contains("fwd=uri-miss"), "first: {status}");
    assert_eq!(body_text(first).await, "item 42");

    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.stats().writes == 0 {
        let stats = cache.stats();
        assert_eq!(stats.write_errors, 0, "write-back failed: {stats:?}");
        assert!(Instant::now() < deadline, "no write-back: {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (second, status) = send(&app, "/items/42").await;
    assert_eq!(second.status(), StatusCode::OK);
    assert!(status.contains("; hit"), "second: {status}");
    assert_eq!(body_text(second).await, "item 42");
    assert_eq!(runs.load(Relaxed), 1, "the hit must not run the handler");

    let keys = server.keys("monps:sec:v1:items:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
}

// ---------------------------------------------------------------------------------------------
// 1. Password from the URL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn password_from_the_url_authenticates_and_caches() {
    bounded(async {
        let redis = RedisServer::builder().password(PASSWORD).start();
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        assert_cache_round_trip(store, &redis).await;
    })
    .await;
}

#[tokio::test]
async fn password_with_reserved_characters_is_percent_decoded() {
    bounded(async {
        let redis = RedisServer::builder().password(ODD_PASSWORD).start();
        // url() percent-encodes the password.
        let store = store_builder(&redis.url()).connect().await.unwrap();
        assert_cache_round_trip(store, &redis).await;
    })
    .await;
}

#[tokio::test]
async fn wrong_or_missing_password_fails_without_revealing_it() {
    bounded(async {
        let redis = RedisServer::builder().password(PASSWORD).start();
        let url = redis_url("", WRONG_PASSWORD, redis.port());
        let error = connect_fails(store_builder(&url), "wrong password").await;
        assert_error_hides(&error, &[WRONG_PASSWORD, PASSWORD], "wrong password");

        let url = format!("redis://127.0.0.1:{}", redis.port());
        let error = connect_fails(store_builder(&url), "no password").await;
        assert_error_hides(&error, &[PASSWORD], "no password");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. ACL user from the URL
// ---------------------------------------------------------------------------------------------

/// Creates the ACL user with exactly what the store needs: on connect fred sends `AUTH user pw`,
/// `CLIENT ID` and `INFO server` (fred tolerates refusals of the last two, but then logs
/// warnings); the cache sends `GET`, and writes and invalidates by `EVALSHA` (`EVAL` when a
/// server lacks the script) running the commands listed after them (README, "ACL").
fn create_acl_user(redis: &RedisServer) {
    let secret = format!(">{ACL_SECRET}");
    let reply = redis.command(&[
        "ACL",
        "SETUSER",
        ACL_USER,
        "reset",
        "on",
        &secret,
        "~monps:*",
        "+get",
        "+set",
        "+del",
        "+evalsha",
        "+eval",
        "+time",
        "+pexpire",
        "+pttl",
        "+hset",
        "+hget",
        "+hdel",
        "+hkeys",
        "+zadd",
        "+zrem",
        "+zrange",
        "+zrangebyscore",
        "+zremrangebyscore",
        "+ping",
        "+client|id",
        "+info",
    ]);
    assert_eq!(reply, "OK", "ACL SETUSER");
}

#[tokio::test]
async fn acl_user_from_the_url_is_used_and_confined_to_its_keys() {
    bounded(async {
        // The default user gets another password, so only the ACL user's can work.
        let redis = RedisServer::builder().password(PASSWORD).start();
        create_acl_user(&redis);

        let url = redis_url(ACL_USER, ACL_SECRET, redis.port());
        let store = store_builder(&url).pool_size(1).connect().await.unwrap();

        // The connection is the ACL user's…
        let clients = redis.command(&["CLIENT", "LIST"]);
        assert!(
            clients
                .lines()
                .any(|l| l.contains(&format!(" user={ACL_USER} "))),
            "no client of {ACL_USER}:\n{clients}"
        );
        // …and so are its limits: keys outside `monps:*` are denied.
        let error = store
            .set("other:key", "v".into(), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
        assert!(error.to_string().contains("NOPERM"), "{error}");
        let error = store.get("other:key").await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
        assert!(!redis.exists("other:key"));
        store
            .set("monps:allowed", "v".into(), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(store.get("monps:allowed").await.unwrap().unwrap(), "v");
        assert!(store.delete("monps:allowed").await.unwrap());

        assert_cache_round_trip(store, &redis).await;
    })
    .await;
}

#[tokio::test]
async fn acl_user_with_a_wrong_secret_fails_without_revealing_it() {
    bounded(async {
        let redis = RedisServer::builder().password(PASSWORD).start();
        create_acl_user(&redis);
        let url = redis_url(ACL_USER, WRONG_PASSWORD, redis.port());
        let error = connect_fails(store_builder(&url), "wrong ACL secret").await;
        assert_error_hides(&error, &[WRONG_PASSWORD, ACL_SECRET], "wrong ACL secret");
    })
    .await;
}

/// A store built (in the background) before its ACL user exists, as happens when the app and
/// the Redis provisioning race at deploy time, or when a password is rotated in the app first,
/// must start working once the credentials are valid, like any other store that "treats Redis
/// as down until it answers".
///
/// It never does: fred's `Config::fail_fast` defaults to `true`, which ends the client's
/// connection task for good when the *first* connection attempt fails (here `WRONGPASS`; the
/// same happens when Redis is merely down at startup), and `RedisStoreBuilder::build_pool`
/// keeps that default. Every later call waits for the command timeout and fails.
#[tokio::test]
async fn store_built_before_its_acl_user_exists_works_once_it_does() {
    bounded(async {
        let redis = RedisServer::builder().password(PASSWORD).start();
        let url = redis_url(ACL_USER, ACL_SECRET, redis.port());
        let store = store_builder(&url)
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.get("monps:k").await.is_err(), "no such user yet");

        create_acl_user(&redis);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match store.get("monps:k").await {
                Ok(_) => break,
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "still failing 10 s after the user was created: {error}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_cache_round_trip(store, &redis).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 3. TLS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tls_with_the_private_ca_caches() {
    bounded(async {
        let pki = TestPki::generate();
        let redis = TlsRedis::start(&pki, false, None);
        let store = store_builder(&redis.url())
            .tls_ca_file(pki.ca())
            .connect()
            .await
            .unwrap();
        // The connection really is on the TLS port.
        let clients = redis.server.command(&["CLIENT", "LIST"]);
        let tls_clients = clients
            .lines()
            .filter(|l| l.contains(&format!("laddr=127.0.0.1:{} ", redis.tls_port())))
            .count();
        assert!(tls_clients >= 1, "no client on the TLS port:\n{clients}");
        assert_cache_round_trip(store, &redis.server).await;
    })
    .await;
}

#[tokio::test]
async fn tls_with_system_roots_only_fails_within_the_timeout() {
    bounded(async {
        let pki = TestPki::generate();
        let redis = TlsRedis::start(&pki, false, None);
        let error = connect_fails(store_builder(&redis.url()), "system roots only").await;
        assert_ne!(error.kind(), StoreErrorKind::Rejected, "{error}");
        // The default settings (`RedisStore::connect`) are bounded too.
        let started = Instant::now();
        let result =
            tokio::time::timeout(Duration::from_secs(10), RedisStore::connect(&redis.url()))
                .await
                .expect("RedisStore::connect hung");
        assert!(result.is_err(), "connected without trusting the CA");
        assert!(started.elapsed() < Duration::from_secs(4));
    })
    .await;
}

#[tokio::test]
async fn tls_with_the_wrong_ca_fails() {
    bounded(async {
        let pki = TestPki::generate();
        let redis = TlsRedis::start(&pki, false, Some(PASSWORD));
        let builder = store_builder(&redis.url()).tls_ca_file(pki.wrong_ca());
        let error = connect_fails(builder, "wrong CA").await;
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        assert_error_hides(&error, &[PASSWORD], "wrong CA");
    })
    .await;
}

#[tokio::test]
async fn tls_port_and_plain_port_do_not_mix() {
    bounded(async {
        let pki = TestPki::generate();
        let redis = TlsRedis::start(&pki, false, None);
        // Plain RESP to the TLS port.
        let url = format!("redis://127.0.0.1:{}", redis.tls_port());
        connect_fails(store_builder(&url), "plain to the TLS port").await;
        // TLS to the plain port.
        let url = format!("rediss://127.0.0.1:{}", redis.server.port());
        let builder = store_builder(&url).tls_ca_file(pki.ca());
        connect_fails(builder, "TLS to the plain port").await;
        // TLS files for a URL without TLS are a configuration error, not a silent downgrade.
        let url = format!("redis://127.0.0.1:{}", redis.server.port());
        let error = store_builder(&url)
            .tls_ca_file(pki.ca())
            .connect()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Config, "{error}");
    })
    .await;
}

#[tokio::test]
async fn tls_client_certificate_is_required_when_the_server_asks_for_one() {
    bounded(async {
        let pki = TestPki::generate();
        let redis = TlsRedis::start(&pki, true, None);

        let builder = store_builder(&redis.url()).tls_ca_file(pki.ca());
        let error = connect_fails(builder, "no client certificate").await;
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");

        let store = store_builder(&redis.url())
            .tls_ca_file(pki.ca())
            .tls_client_auth(pki.client_cert(), pki.client_key())
            .connect()
            .await
            .unwrap();
        assert_cache_round_trip(store, &redis.server).await;
    })
    .await;
}

#[tokio::test]
async fn tls_with_a_password() {
    bounded(async {
        let pki = TestPki::generate();
        let redis = TlsRedis::start(&pki, false, Some(PASSWORD));
        assert!(redis.url().starts_with("rediss://:"));

        let store = store_builder(&redis.url())
            .tls_ca_file(pki.ca())
            .connect()
            .await
            .unwrap();
        assert_cache_round_trip(store, &redis.server).await;

        let url = format!("rediss://:{WRONG_PASSWORD}@127.0.0.1:{}", redis.tls_port());
        let builder = store_builder(&url).tls_ca_file(pki.ca());
        let error = connect_fails(builder, "TLS, wrong password").await;
        assert_error_hides(&error, &[WRONG_PASSWORD, PASSWORD], "TLS, wrong password");
    })
    .await;
}

#[tokio::test]
async fn tls_file_errors_name_the_file_and_fail_fast() {
    bounded(async {
        let pki = TestPki::generate();
        let missing = pki.dir().join("missing-ca.pem");
        let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}", ephemeral_port());
        let error = store_builder(&url)
            .tls_ca_file(&missing)
            .connect()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Config, "{error}");
        assert!(error.to_string().contains("missing-ca.pem"), "{error}");
        assert_error_hides(&error, &[PASSWORD], "missing CA file");

        // A key file is never echoed: pass the server key as a "CA" file.
        let error = store_builder(&url)
            .tls_ca_file(pki.server_key())
            .connect()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Config, "{error}");
        let key = std::fs::read_to_string(pki.server_key()).unwrap();
        let key_body = key.lines().nth(1).unwrap();
        assert!(!error.to_string().contains(key_body), "{error}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 4. Credentials never appear
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn debug_output_never_shows_credentials() {
    bounded(async {
        let redis = RedisServer::builder().password(PASSWORD).start();
        create_acl_user(&redis);
        let secrets = [PASSWORD, ACL_SECRET];

        let password_url = redis.url();
        let acl_url = redis_url(ACL_USER, ACL_SECRET, redis.port());
        for url in [&password_url, &acl_url] {
            let builder = store_builder(url);
            let debug = format!("{builder:?} {builder:#?}");
            assert_hides(&debug, &secrets, "RedisStoreBuilder Debug");
            assert!(debug.contains(&redis.port().to_string()), "{debug}");

            let store = builder.connect().await.unwrap();
            let debug = format!("{store:?} {store:#?}");
            assert_hides(&debug, &secrets, "RedisStore Debug");

            let cache = layer(store);
            let cache = cache.policy(Policy::new("items"));
            let debug = format!("{cache:?} {cache:#?}");
            assert_hides(&debug, &secrets, "CacheLayer Debug");
        }

        let pki = TestPki::generate();
        let tls_url = format!("rediss://{ACL_USER}:{ACL_SECRET}@127.0.0.1:1");
        let builder = store_builder(&tls_url)
            .tls_ca_file(pki.ca())
            .tls_client_auth(pki.client_cert(), pki.client_key());
        assert_hides(
            &format!("{builder:?}"),
            &secrets,
            "TLS RedisStoreBuilder Debug",
        );

        // An unparsable URL must not be echoed either.
        let bad = format!("redis://:{PASSWORD}@127.0.0.1:notaport");
        assert_hides(
            &format!("{:?}", store_builder(&bad)),
            &secrets,
            "RedisStoreBuilder Debug (bad URL)",
        );
    })
    .await;
}

#[tokio::test]
async fn connect_errors_never_show_credentials() {
    bounded(async {
        let secrets = [PASSWORD, WRONG_PASSWORD, ACL_SECRET];

        // Unreachable host: nothing listens on the port.
        let port = ephemeral_port();
        for url in [
            redis_url("", PASSWORD, port),
            redis_url(ACL_USER, ACL_SECRET, port),
        ] {
            let error = connect_fails(store_builder(&url), "unreachable").await;
            assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
            assert_error_hides(&error, &secrets, "unreachable");
        }

        // Bad URLs, each carrying the secret.
        for url in [
            format!("redis://:{PASSWORD}@127.0.0.1:notaport"),
            format!("redis://{ACL_USER}:{ACL_SECRET}@127.0.0.1:99999"),
            format!("redis://{ACL_USER}:{ACL_SECRET}@/0"),
            format!("redis-cluster://:{PASSWORD}@127.0.0.1:7000?node=bad"),
            format!("redis://:{PASSWORD}@[::1"),
            PASSWORD.to_owned(),
        ] {
            let started = Instant::now();
            let error = store_builder(&url).connect().await.unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(1), "{error}");
            assert_eq!(error.kind(), StoreErrorKind::Config, "{url}: {error}");
            assert_error_hides(&error, &secrets, "bad URL");
            let error = store_builder(&url).build().unwrap_err();
            assert_error_hides(&error, &secrets, "bad URL (build)");
        }

        // Wrong password and wrong ACL secret on a live server.
        let redis = RedisServer::builder().password(PASSWORD).start();
        create_acl_user(&redis);
        for url in [
            redis_url("", WRONG_PASSWORD, redis.port()),
            redis_url(ACL_USER, WRONG_PASSWORD, redis.port()),
            redis_url("nosuchuser", ACL_SECRET, redis.port()),
        ] {
            let error = connect_fails(store_builder(&url), "rejected credentials").await;
            assert_error_hides(&error, &secrets, "rejected credentials");
        }
    })
    .await;
}

/// A URL whose scheme the store does not know (`redis+tls://`, a plausible way to ask for TLS)
/// must be a configuration error. fred's `Config::from_url` treats every scheme that does not
/// start with `rediss`/`valkeys` (and does not end in `-cluster`, `-sentinel`, `+unix`) as plain
/// `redis://`, and `RedisStoreBuilder` passes it through: the store connects without TLS and
/// sends `AUTH` with the password in cleartext.
#[tokio::test]
async fn unknown_url_scheme_is_rejected_before_any_connection() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = received.clone();
        let capture = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        sink.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });

        let mut outcomes = Vec::new();
        for scheme in ["redis+tls", "tls", "notredis"] {
            let url = format!("{scheme}://:{PASSWORD}@127.0.0.1:{port}");
            let result = store_builder(&url)
                .connection_timeout(Duration::from_millis(500))
                .connect()
                .await;
            outcomes.push((scheme, result.map(|_| ()).map_err(|e| e.kind())));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        capture.abort();

        let received = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
        assert!(
            !received.contains(PASSWORD),
            "the password went over plain TCP: {received:?}"
        );
        assert!(received.is_empty(), "connected anyway: {received:?}");
        for (scheme, outcome) in outcomes {
            assert_eq!(outcome, Err(StoreErrorKind::Config), "{scheme}://");
        }
    })
    .await;
}

/// An in-memory log sink for a scoped `tracing` subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Logs at `TRACE` from this crate and from fred (which logs through the `log` crate; the
/// subscriber's `set_default` installs the `log` → `tracing` bridge) while failing connects
/// and requests run with Redis down or the credentials wrong: no secret may be logged.
///
/// The test runs on a current-thread runtime, so every task it spawns (fred's connection and
/// reconnection tasks, write-backs) logs to the thread's scoped subscriber.
#[tokio::test(flavor = "current_thread")]
async fn logs_never_show_credentials() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let _guard = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish()
        .set_default();

    bounded(async {
        let mut redis = RedisServer::builder().password(PASSWORD).start();
        create_acl_user(&redis);
        let port = redis.port();

        // Failing connects: wrong password, wrong ACL secret, unreachable host.
        connect_fails(
            store_builder(&redis_url("", WRONG_PASSWORD, port)),
            "wrong password",
        )
        .await;
        connect_fails(
            store_builder(&redis_url(ACL_USER, WRONG_PASSWORD, port)),
            "wrong ACL secret",
        )
        .await;
        connect_fails(
            store_builder(&redis_url(ACL_USER, ACL_SECRET, ephemeral_port())),
            "unreachable",
        )
        .await;

        // TLS with a password, but the wrong CA.
        let pki = TestPki::generate();
        let tls = TlsRedis::start(&pki, false, Some(PASSWORD));
        connect_fails(
            store_builder(&tls.url()).tls_ca_file(pki.wrong_ca()),
            "TLS, wrong CA",
        )
        .await;
        drop(tls);

        // Requests through a layer whose store keeps failing to authenticate.
        let rejected = store_builder(&redis_url("", WRONG_PASSWORD, port))
            .build()
            .unwrap();
        let cache = layer_with_timeout(rejected, Duration::from_millis(200));
        let app = cached_app(&cache, Arc::default());
        for i in 0..3 {
            let (response, status) = send(&app, &format!("/items/{i}")).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert!(status.contains("fwd=miss"), "{status}");
            body_text(response).await;
        }

        // Requests through a working ACL-user store, then with Redis down.
        let store = store_builder(&redis_url(ACL_USER, ACL_SECRET, port))
            .connect()
            .await
            .unwrap();
        let cache = layer_with_timeout(store, Duration::from_millis(200));
        let app = cached_app(&cache, Arc::default());
        let (response, _) = send(&app, "/items/1").await;
        body_text(response).await;
        redis.kill();
        for i in 0..5 {
            let (response, status) = send(&app, &format!("/items/{i}")).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert!(status.contains("fwd=miss"), "{status}");
            body_text(response).await;
        }
        // Let fred's reconnection loop run (and log) for a while.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(cache.stats().lookup_errors > 0, "{:?}", cache.stats());
    })
    .await;

    let text = logs.text();
    // The capture works, for both sources: this crate's lookups and fred's connection logs.
    assert!(
        text.contains("cache lookup failed"),
        "no log from this crate:\n{text}"
    );
    assert!(text.contains("fred::"), "no log from fred:\n{text}");
    assert_hides(&text, &[PASSWORD, WRONG_PASSWORD, ACL_SECRET], "the logs");
}
