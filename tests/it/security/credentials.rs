//! Credentials never appear: not in `Debug` output, not in connect errors (unreachable hosts,
//! bad URLs, rejected credentials), not on the wire of a URL scheme the store does not know, and
//! not in the logs (this crate's and fred's, at `TRACE`).

use super::fixture::*;
use crate::app::{eventually, get_req, run_current_thread, send};
use crate::servers::server::ephemeral_port;
use crate::servers::{TestPki, TlsRedis};
use axum::http::StatusCode;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower_redis_cache::{Policy, StoreErrorKind};
use tracing_subscriber::util::SubscriberInitExt;

redis_test!(
    debug_output_never_shows_credentials,
    start = with_password,
    |redis| async move {
        create_acl_user(&redis);
        let secrets = [PASSWORD, ACL_SECRET];

        let password_url = redis.url();
        let acl_url = redis.url_with(ACL_USER, ACL_SECRET);
        for url in [&password_url, &acl_url] {
            let builder = store_builder(url);
            let debug = format!("{builder:?} {builder:#?}");
            assert_hides(&debug, &secrets, "RedisStoreBuilder Debug");
            assert!(debug.contains(&redis.ports()[0].to_string()), "{debug}");

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
    }
);

redis_test!(
    connect_errors_never_show_credentials,
    start = with_password,
    |redis| async move {
        let secrets = [PASSWORD, WRONG_PASSWORD, ACL_SECRET];

        // Unreachable host: nothing listens on the port.
        let port = ephemeral_port();
        for (user, password) in [("", PASSWORD), (ACL_USER, ACL_SECRET)] {
            let url = format!(
                "redis://{}127.0.0.1:{port}",
                crate::servers::topology::userinfo(user, password)
            );
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

        // Wrong password and wrong ACL secret on the live deployment.
        create_acl_user(&redis);
        for url in [
            redis.url_with("", WRONG_PASSWORD),
            redis.url_with(ACL_USER, WRONG_PASSWORD),
            redis.url_with("nosuchuser", ACL_SECRET),
        ] {
            let error = connect_fails(store_builder(&url), "rejected credentials").await;
            assert_error_hides(&error, &secrets, "rejected credentials");
        }
    }
);

/// A URL whose scheme the store does not know (`redis+tls://`, a plausible way to ask for TLS)
/// must be a configuration error. fred's `Config::from_url` treats every scheme that does not
/// start with `rediss`/`valkeys` (and does not end in `-cluster`, `-sentinel`, `+unix`) as plain
/// `redis://`, and `RedisStoreBuilder` passes it through: the store connects without TLS and
/// sends `AUTH` with the password in cleartext.
///
/// No Redis: a listener stands in for one, to capture what would be sent. One test, not one
/// per topology.
#[tokio::test]
async fn unknown_url_scheme_is_rejected_before_any_connection() {
    bounded(async {
        const SENTINEL: &[u8] = b"sentinel: the last connection";
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::<u8>::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (sink, count) = (received.clone(), accepted.clone());
        let capture = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                count.fetch_add(1, SeqCst);
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
        // A connection of our own, after every connect above has returned: the listener
        // accepts in order, so once it has read our sentinel, any connection the store made
        // was accepted before it (and counted).
        let mut own = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut own, SENTINEL)
            .await
            .unwrap();
        eventually("the sentinel connection's bytes", || {
            received
                .lock()
                .unwrap()
                .windows(SENTINEL.len())
                .any(|w| w == SENTINEL)
        })
        .await;
        capture.abort();

        let received = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
        assert!(
            !received.contains(PASSWORD),
            "the password went over plain TCP: {received:?}"
        );
        assert_eq!(
            accepted.load(SeqCst),
            1,
            "connected anyway (the sentinel's is the only connection allowed): {received:?}"
        );
        assert_eq!(
            received.as_bytes(),
            SENTINEL,
            "connected anyway: {received:?}"
        );
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
        self.text_since(0)
    }

    /// How many bytes have been logged.
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// What was logged after the first `mark` bytes.
    fn text_since(&self, mark: usize) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()[mark..]).into_owned()
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

// Logs at `TRACE` from this crate and from fred (which logs through the `log` crate; the
// subscriber's `set_default` installs the `log` → `tracing` bridge) while failing connects
// and requests run with Redis down or the credentials wrong: no secret may be logged.
//
// The test runs on a current-thread runtime, so every task it spawns (fred's connection and
// reconnection tasks, write-backs) logs to the thread's scoped subscriber.
redis_test!(
    logs_never_show_credentials,
    start = with_password,
    run = run_current_thread,
    |redis| async move {
        let mut redis = redis;
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let guard = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish()
            .set_default();

        create_acl_user(&redis);

        // Failing connects: wrong password, wrong ACL secret, unreachable host.
        connect_fails(
            store_builder(&redis.url_with("", WRONG_PASSWORD)),
            "wrong password",
        )
        .await;
        connect_fails(
            store_builder(&redis.url_with(ACL_USER, WRONG_PASSWORD)),
            "wrong ACL secret",
        )
        .await;
        let unreachable = format!(
            "redis://{ACL_USER}:{ACL_SECRET}@127.0.0.1:{}",
            ephemeral_port()
        );
        connect_fails(store_builder(&unreachable), "unreachable").await;

        // TLS with a password, but the wrong CA.
        let pki = TestPki::generate();
        let tls = TlsRedis::start_on(redis.topology(), &pki, false, Some(PASSWORD));
        connect_fails(
            store_builder(&tls.url()).tls_ca_file(pki.wrong_ca()),
            "TLS, wrong CA",
        )
        .await;
        drop(tls);

        // Requests through a layer whose store keeps failing to authenticate.
        let rejected = store_builder(&redis.url_with("", WRONG_PASSWORD))
            .build()
            .unwrap();
        let cache = layer_with_timeout(rejected, Duration::from_millis(200));
        let app = cached_app(&cache, Arc::default());
        for i in 0..3 {
            let reply = send(&app, get_req(&format!("/items/{i}"))).await;
            assert_eq!(reply.status, StatusCode::OK);
            let status = reply.cache_status();
            assert!(status.contains("fwd=miss"), "{status}");
        }

        // Requests through a working ACL-user store, then with Redis down.
        let store = store_builder(&redis.url_with(ACL_USER, ACL_SECRET))
            .connect()
            .await
            .unwrap();
        let cache = layer_with_timeout(store, Duration::from_millis(200));
        let app = cached_app(&cache, Arc::default());
        send(&app, get_req("/items/1")).await;
        let killed_at = logs.len();
        redis.kill();
        for i in 0..5 {
            let reply = send(&app, get_req(&format!("/items/{i}"))).await;
            assert_eq!(reply.status, StatusCode::OK);
            let status = reply.cache_status();
            assert!(status.contains("fwd=miss"), "{status}");
        }
        // Let fred's reconnection loop run (and log, credentials at hand) for a few attempts:
        // each one logs `Reconnecting...` at TRACE.
        eventually("fred's reconnection attempts in the logs", || {
            logs.text_since(killed_at).matches("Reconnecting").count() >= 3
        })
        .await;
        assert!(cache.stats().lookup_errors > 0, "{:?}", cache.stats());
        drop(guard);

        let text = logs.text();
        // The capture works, for both sources: this crate's lookups and fred's connection logs.
        assert!(
            text.contains("cache lookup failed"),
            "no log from this crate:\n{text}"
        );
        assert!(text.contains("fred::"), "no log from fred:\n{text}");
        assert_hides(&text, &[PASSWORD, WRONG_PASSWORD, ACL_SECRET], "the logs");
    }
);
