//! TLS with a private CA: a standalone server and a three-master cluster (whose bus is on TLS
//! too), each node with a TLS port besides its plain one. The right CA caches; system roots, a
//! wrong CA, a missing client certificate, a plain client on a TLS port (and the reverse) fail
//! in time; TLS files for a URL without TLS are a configuration error.
//!
//! Each test makes its certificates before its servers, so `redis_test!` hands it the topology
//! (`start = identity`) and the test starts a [`TlsRedis`] on it.

use super::fixture::*;
use crate::servers::{TestPki, TlsRedis, Topology};
use std::convert::identity;
use std::time::{Duration, Instant};
use tower_redis_cache::{RedisStore, StoreErrorKind};

redis_test!(
    tls_with_the_private_ca_caches,
    start = identity,
    |topology| async move {
        let pki = TestPki::generate();
        let redis = TlsRedis::start_on(topology, &pki, false, None);
        let store = store_builder(&redis.url())
            .tls_ca_file(pki.ca())
            .connect()
            .await
            .unwrap();
        // The connections really are on the TLS ports.
        let clients = client_list(&redis.redis);
        let tls_clients = clients
            .lines()
            .filter(|l| {
                redis
                    .tls_ports()
                    .iter()
                    .any(|port| l.contains(&format!("laddr=127.0.0.1:{port} ")))
            })
            .count();
        assert!(tls_clients >= 1, "no client on a TLS port:\n{clients}");
        assert_cache_round_trip(store, &redis.redis).await;
    }
);

redis_test!(
    tls_with_system_roots_only_fails_within_the_timeout,
    start = identity,
    |topology| async move {
        let pki = TestPki::generate();
        let redis = TlsRedis::start_on(topology, &pki, false, None);
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
    }
);

redis_test!(
    tls_with_the_wrong_ca_fails,
    start = identity,
    |topology| async move {
        let pki = TestPki::generate();
        let redis = TlsRedis::start_on(topology, &pki, false, Some(PASSWORD));
        let builder = store_builder(&redis.url()).tls_ca_file(pki.wrong_ca());
        let error = connect_fails(builder, "wrong CA").await;
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        assert_error_hides(&error, &[PASSWORD], "wrong CA");
    }
);

redis_test!(
    tls_port_and_plain_port_do_not_mix,
    start = identity,
    |topology| async move {
        let pki = TestPki::generate();
        let redis = TlsRedis::start_on(topology, &pki, false, None);
        // Plain RESP to the TLS port.
        let url = redis.plain_url_to_tls_ports();
        connect_fails(store_builder(&url), "plain to the TLS port").await;
        // TLS to the plain port.
        let url = redis.tls_url_to_plain_ports();
        let builder = store_builder(&url).tls_ca_file(pki.ca());
        connect_fails(builder, "TLS to the plain port").await;
        // TLS files for a URL without TLS are a configuration error, not a silent downgrade.
        let url = redis.redis.url_with("", "");
        let error = store_builder(&url)
            .tls_ca_file(pki.ca())
            .connect()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Config, "{error}");
    }
);

redis_test!(
    tls_client_certificate_is_required_when_the_server_asks_for_one,
    start = identity,
    |topology| async move {
        let pki = TestPki::generate();
        let redis = TlsRedis::start_on(topology, &pki, true, None);

        let builder = store_builder(&redis.url()).tls_ca_file(pki.ca());
        let error = connect_fails(builder, "no client certificate").await;
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");

        let store = store_builder(&redis.url())
            .tls_ca_file(pki.ca())
            .tls_client_auth(pki.client_cert(), pki.client_key())
            .connect()
            .await
            .unwrap();
        assert_cache_round_trip(store, &redis.redis).await;
    }
);

redis_test!(
    tls_with_a_password,
    start = identity,
    |topology| async move {
        let pki = TestPki::generate();
        let redis = TlsRedis::start_on(topology, &pki, false, Some(PASSWORD));
        let scheme = match topology {
            Topology::Standalone => "rediss://:",
            Topology::Cluster => "rediss-cluster://:",
        };
        assert!(redis.url().starts_with(scheme), "{}", redis.url());

        let store = store_builder(&redis.url())
            .tls_ca_file(pki.ca())
            .connect()
            .await
            .unwrap();
        assert_cache_round_trip(store, &redis.redis).await;

        let url = redis.url_with("", WRONG_PASSWORD);
        let builder = store_builder(&url).tls_ca_file(pki.ca());
        let error = connect_fails(builder, "TLS, wrong password").await;
        assert_error_hides(&error, &[WRONG_PASSWORD, PASSWORD], "TLS, wrong password");
    }
);

/// No Redis at all (the files are checked before any connection): one test, not one per
/// topology.
#[tokio::test]
async fn tls_file_errors_name_the_file_and_fail_fast() {
    bounded(async {
        let pki = TestPki::generate();
        let missing = pki.dir().join("missing-ca.pem");
        let url = format!(
            "rediss://:{PASSWORD}@127.0.0.1:{}",
            crate::servers::server::ephemeral_port()
        );
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
