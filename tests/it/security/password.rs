//! A password from the URL: it authenticates (percent-decoded), and a wrong or missing one
//! fails in time without showing up in the error.

use super::fixture::*;
use crate::servers::Redis;
use tower_redis_cache::RedisStore;

redis_test!(
    password_from_the_url_authenticates_and_caches,
    start = with_password,
    |redis| async move {
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        assert_cache_round_trip(store, &redis).await;
    }
);

redis_test!(
    password_with_reserved_characters_is_percent_decoded,
    start = |topology| Redis::with_password(topology, ODD_PASSWORD),
    |redis| async move {
        // url() percent-encodes the password.
        assert!(redis.url().contains("%40"), "{}", redis.url());
        let store = store_builder(&redis.url()).connect().await.unwrap();
        assert_cache_round_trip(store, &redis).await;
    }
);

redis_test!(
    wrong_or_missing_password_fails_without_revealing_it,
    start = with_password,
    |redis| async move {
        let url = redis.url_with("", WRONG_PASSWORD);
        let error = connect_fails(store_builder(&url), "wrong password").await;
        assert_error_hides(&error, &[WRONG_PASSWORD, PASSWORD], "wrong password");

        let url = redis.url_with("", "");
        let error = connect_fails(store_builder(&url), "no password").await;
        assert_error_hides(&error, &[PASSWORD], "no password");
    }
);
