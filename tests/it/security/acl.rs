//! An ACL user from the URL: its connections are the user's and confined to its keys, a wrong
//! secret fails without showing up, and a store built before its user exists starts working
//! once it does.

use super::fixture::*;
use crate::app::eventually;
use std::time::{Duration, Instant};
use tower_redis_cache::{store::Store, StoreErrorKind};

redis_test!(
    acl_user_from_the_url_is_used_and_confined_to_its_keys,
    // The default user gets another password, so only the ACL user's can work.
    start = with_password,
    |redis| async move {
        create_acl_user(&redis);

        let url = redis.url_with(ACL_USER, ACL_SECRET);
        let store = store_builder(&url).pool_size(1).connect().await.unwrap();

        // The connection is the ACL user's…
        let clients = client_list(&redis);
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
    }
);

redis_test!(
    acl_user_with_a_wrong_secret_fails_without_revealing_it,
    start = with_password,
    |redis| async move {
        create_acl_user(&redis);
        let url = redis.url_with(ACL_USER, WRONG_PASSWORD);
        let error = connect_fails(store_builder(&url), "wrong ACL secret").await;
        assert_error_hides(&error, &[WRONG_PASSWORD, ACL_SECRET], "wrong ACL secret");
    }
);

// A store built (in the background) before its ACL user exists, as happens when the app and
// the Redis provisioning race at deploy time, or when a password is rotated in the app first,
// must start working once the credentials are valid, like any other store that "treats Redis
// as down until it answers".
//
// This began as a defect: fred's `Config::fail_fast` defaults to `true`, which ends the
// client's connection task for good when the *first* connection attempt fails (here
// `WRONGPASS`; the same happens when Redis is merely down at startup), and
// `RedisStoreBuilder::build_pool` kept that default, so every later call waited for the
// command timeout and failed.
redis_test!(
    store_built_before_its_acl_user_exists_works_once_it_does,
    start = with_password,
    |redis| async move {
        let url = redis.url_with(ACL_USER, ACL_SECRET);
        let store = store_builder(&url)
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        // The scenario needs the store's first attempt to have failed before the user exists:
        // Redis records the refused AUTH in its ACL log, the event to wait for.
        eventually("the store's first AUTH refused (ACL LOG)", || {
            refused_auths(&redis, ACL_USER) > 0
        })
        .await;
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
    }
);
