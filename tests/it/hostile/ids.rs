//! Hostile entity ids: glob characters, hash-tag braces, separators, percent-encodings and
//! overlong ids, in the path or through `Entity::from_fn`. Each stays inside its own hash tag,
//! its invalidation pattern matches only its own keys, and an id too long to key bypasses.

use super::fixture::*;
use crate::app::*;
use axum::{
    http::{HeaderName, HeaderValue, StatusCode},
    routing::get,
    Router,
};
use bytes::Bytes;
use http_body_util::Full;
use proptest::prelude::*;
use std::{
    collections::BTreeSet,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_redis_cache::{
    store::{Store, StoreFuture},
    CacheLayer, Entity, Policy, Variant, MAX_ENTITY_LEN,
};

/// Path ids as they appear in the URI (raw or percent-encoded), each a different entity.
const HOSTILE_IDS: [&str; 24] = [
    "1",
    "12",
    "12345",
    "12345}:*",
    "a%7D%3A%2A",
    "%2A",
    "*",
    "%3F",
    "[a-z]",
    "1*",
    "{x}",
    "a:b",
    "a}{b",
    "]",
    "[",
    "%C3%A9",
    "é",
    "%",
    "%25",
    "\\",
    "^",
    "m_1",
    "%7Bm_1%7D",
    "..",
];

redis_test!(
    hostile_ids_stay_in_their_hash_tag_and_patterns_match_only_their_entity,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred()).route(
            "/matches/{id}/markets",
            get(echo).route_layer(s.cache.policy(markets().vary_query(["lang"]))),
        );
        for id in HOSTILE_IDS {
            let pred_uri = format!("/matches/{id}/prediction");
            let markets_uri = format!("/matches/{id}/markets?lang=x{{}}:*?[]%25%C3%A9");
            for round in 0..2 {
                let r = s
                    .send(&app, json_req(&pred_uri, r#"{"risk":"high"}"#))
                    .await;
                assert_eq!(r.echoed_request_line(), format!("POST {pred_uri}"));
                assert_eq!(r.is_hit(), round == 1, "{id}: {}", r.cache_status());
                let r = s.send(&app, get_req(&markets_uri)).await;
                assert_eq!(r.echoed_request_line(), format!("GET {markets_uri}"));
                assert_eq!(r.is_hit(), round == 1, "{id}: {}", r.cache_status());
            }
        }

        // Spellings of one id (`%2A` and `*`) are one entity, as the handler reads them alike.
        let distinct: BTreeSet<String> = HOSTILE_IDS.iter().map(|id| decoded(id)).collect();
        assert_eq!(distinct.len(), HOSTILE_IDS.len() - 3, "{distinct:?}");
        let all = s.all_keys();
        assert_eq!(all.len(), 2 * distinct.len(), "{all:#?}");
        let tags: BTreeSet<&str> = all.iter().map(|k| tag(k)).collect();
        assert_eq!(tags.len(), distinct.len(), "two ids share a hash tag");

        // Each entity's pattern finds exactly its two keys (one per namespace); crafted patterns
        // (glob characters, other entities' prefixes) find exactly the keys of the entity they
        // spell, here none but `m_1*`'s.
        let crafted = [
            "*", "?", "[a-z]", "m_*", "m_?", "m_1*", "m_1?", "m_[0-9]*", "}:*", "*}:*{", "\\*", "",
        ];
        let entities = distinct
            .iter()
            .map(|id| format!("m_{id}"))
            .chain(crafted.iter().map(|c| (*c).to_owned()));
        for entity in entities {
            let pattern = key_factory().entity_pattern(&entity);
            let found = s.redis.keys(&pattern);
            let expected: Vec<String> = all
                .iter()
                .filter(|k| tag(k) == tag_of(&entity))
                .cloned()
                .collect();
            assert_eq!(found, expected, "entity {entity:?}, pattern {pattern:?}");
            let is_stored = distinct.iter().any(|id| format!("m_{id}") == entity);
            assert_eq!(found.len(), if is_stored { 2 } else { 0 }, "{entity:?}");
        }
        for namespace in ["pred", "markets"] {
            let found = s.redis.keys(&key_factory().namespace_pattern(namespace));
            assert_eq!(found.len(), distinct.len());
            assert!(found.iter().all(|k| k.split(':').nth(3) == Some(namespace)));
        }
        for namespace in ["*", "pred*", "?red", "[a-z]*"] {
            let pattern = key_factory().namespace_pattern(namespace);
            assert_eq!(s.redis.keys(&pattern), Vec::<String>::new(), "{pattern}");
        }
    }
);

// The default entity is the whole path: hostile paths stay inside their hash tag, an
// overlong one bypasses, and each path's pattern matches only its own key.
redis_test!(
    default_path_entities_are_safe_and_bounded,
    |redis| async move {
        let s = setup(redis).await;
        let app = Router::new().route(
            "/items/{*rest}",
            get(echo).route_layer(s.cache.policy(Policy::new("items"))),
        );
        let paths = [
            "/items/1",
            "/items/1/",
            "/items/*",
            "/items/a:b}{",
            "/items/[a-z]",
            "/items/../x",
            "/items/é",
            "/items/a%2Fb",
            "/items/a/b",
        ];
        // Other spellings of paths above: the same entity, so the same key (each overwrites the
        // other's entry, as a handler may tell them apart) and one invalidation for both.
        let spellings = [
            ("/items/%2A", "/items/*"),
            ("/items/%C3%A9", "/items/%c3%a9"),
        ];
        for path in paths {
            for round in 0..2 {
                let r = s.send(&app, get_req(path)).await;
                assert_eq!(r.echoed_request_line(), format!("GET {path}"));
                assert_eq!(r.is_hit(), round == 1, "{path}: {}", r.cache_status());
            }
        }
        let long = format!("/items/{}", "a".repeat(MAX_ENTITY_LEN));
        let r = s.send(&app, get_req(&long)).await;
        assert!(r.is_bypass("no-entity"), "{}", r.cache_status());
        for (spelling, twin) in spellings {
            for path in [spelling, twin] {
                let r = s.send(&app, get_req(path)).await;
                assert_eq!(
                    r.echoed_request_line(),
                    format!("GET {path}"),
                    "never the twin's"
                );
                assert!(!r.is_hit(), "{path}: {}", r.cache_status());
            }
        }

        let all = s.all_keys();
        assert_eq!(all.len(), paths.len(), "spellings add no key: {all:#?}");
        for path in paths {
            let found = s.redis.keys(&key_factory().entity_pattern(path));
            assert_eq!(found.len(), 1, "{path}: {found:?}");
            assert_eq!(tag(&found[0]), tag_of(path));
        }
        for crafted in ["*", "/items/*", "/items/?", "/items/[a-z]*", "/*"] {
            let found = s.redis.keys(&key_factory().entity_pattern(crafted));
            let own = paths.contains(&crafted) as usize;
            assert_eq!(found.len(), own, "{crafted}: {found:?}");
        }
    }
);

redis_test!(
    overlong_ids_bypass_and_keys_stay_bounded_whatever_the_query_and_headers,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred()).route(
            "/matches/{id}/markets",
            get(echo).route_layer(
                s.cache
                    .policy(markets().vary_query(["lang"]).vary_headers([X_FOO])),
            ),
        );
        // `m_` + 254 bytes is the longest entity keyed.
        let longest = "a".repeat(MAX_ENTITY_LEN - 2);
        let r = s
            .send(
                &app,
                json_req(&format!("/matches/{longest}/prediction"), "{}"),
            )
            .await;
        assert!(r.is_stored(), "{}", r.cache_status());
        for id in [
            "a".repeat(MAX_ENTITY_LEN - 1),
            // Decoded, `%2A` as text: 3 bytes, 5 encoded (`%252A`): over the limit once encoded.
            "%252A".repeat(52),
            "é".repeat(100),
            // `http` refuses URIs of 64 KiB and more: this is about the longest path there is.
            "a".repeat(60_000),
        ] {
            let uri = format!("/matches/{id}/prediction");
            for _ in 0..2 {
                let r = s.send(&app, json_req(&uri, "{}")).await;
                assert_eq!(r.status, StatusCode::OK);
                assert!(r.is_bypass("no-entity"), "{}", r.cache_status());
                assert_eq!(r.echoed_request_line(), format!("POST {uri}"));
            }
        }

        // Huge keyed query values and headers go into the variant hash, not the key.
        let huge_value = "x".repeat(60_000);
        let many_values = "lang=v&".repeat(8_000);
        for query in [format!("lang={huge_value}"), many_values] {
            let uri = format!("/matches/1/markets?{query}");
            let r = s.send(&app, get_req(&uri)).await;
            assert!(r.is_stored(), "{}", r.cache_status());
            assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
            assert!(s.send(&app, get_req(&uri)).await.is_hit());
        }
        let mut req = get_req("/matches/1/markets");
        req.headers_mut()
            .insert(X_FOO, HeaderValue::from_str(&huge_value).unwrap());
        for i in 0..2_000 {
            let name = HeaderName::from_bytes(format!("x-junk-{i}").as_bytes()).unwrap();
            req.headers_mut()
                .insert(name, HeaderValue::from_str(&"j".repeat(1024)).unwrap());
        }
        let r = s.send(&app, req).await;
        assert!(r.is_stored(), "{}", r.cache_status());
        assert!(r.text_lossy().contains(&huge_value));
        // A 1 MiB keyed header value: answered intact; the echo (over the 1 MiB response limit)
        // is announced `stored` from its head but never written.
        let mut req = get_req("/matches/1/markets");
        let mib = "q".repeat(1 << 20);
        req.headers_mut()
            .insert(X_FOO, HeaderValue::from_str(&mib).unwrap());
        let r = s.send_unwaited(&app, req).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text_lossy().contains(&mib));

        let all = s.all_keys();
        assert_eq!(all.len(), 4, "{all:#?}");
        let bound = |namespace: &str| {
            let entity = format!("m_{longest}");
            key_factory()
                .key(namespace, &entity, &Variant::new().query("a", "b"))
                .as_str()
                .len()
        };
        for key in &all {
            let namespace = key.split(':').nth(3).unwrap();
            assert!(key.len() <= bound(namespace), "{} bytes: {key}", key.len());
        }
        let max = all.iter().map(String::len).max().unwrap();
        assert_eq!(
            max,
            bound("pred"),
            "the longest key is the longest entity's"
        );
        assert_eq!(max, 14 + 5 + 2 + MAX_ENTITY_LEN + 1 + 16);
    }
);

// A property over any id, through a store that records the keys it is asked for: no Redis,
// so one test rather than one per topology.

/// A store that records every key asked for and holds nothing.
#[derive(Clone, Default)]
struct KeyLog(Arc<Mutex<Vec<String>>>);

impl KeyLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Store for KeyLog {
    fn get(&self, key: &str) -> StoreFuture<Option<Bytes>> {
        self.0.lock().unwrap().push(key.to_owned());
        Box::pin(async { Ok(None) })
    }

    fn set(&self, key: &str, _: Bytes, _: Duration) -> StoreFuture<()> {
        self.0.lock().unwrap().push(key.to_owned());
        Box::pin(async { Ok(()) })
    }

    fn delete(&self, _: &str) -> StoreFuture<bool> {
        Box::pin(async { Ok(false) })
    }
}

/// The entity id a request carries, read by `Entity::from_fn`.
#[derive(Clone)]
struct Id(String);

fn ids() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[{}:*?\\[\\]%\\\\^m_0-9a-z]{0,24}",
        "[a]{250,260}",
    ]
}

/// The key looked up for a request whose `Entity::from_fn` returns `id`, if it was cached.
fn key_for_id(runtime: &tokio::runtime::Runtime, log: &KeyLog, id: &str) -> Option<String> {
    let cache = CacheLayer::new(log.clone(), key_factory()).policy(Policy::new("pred").entity(
        Entity::from_fn(|parts| parts.extensions.get::<Id>().map(|id| id.0.clone())),
    ));
    let service = ServiceBuilder::new().layer(cache).service_fn(|_| async {
        // 204 is never stored: only lookups reach the log.
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok::<_, Infallible>(response)
    });
    let mut request = http::Request::get("/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request.extensions_mut().insert(Id(id.to_owned()));
    runtime.block_on(service.oneshot(request)).unwrap();
    let mut logged = log.take();
    assert!(logged.len() <= 1, "{logged:?}");
    logged.pop()
}

proptest! {
    #[test]
    fn any_entity_id_gives_one_safe_hash_tag_or_bypasses(a in ids(), b in ids()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let log = KeyLog::default();
        let key_a = key_for_id(&runtime, &log, &a);
        let key_b = key_for_id(&runtime, &log, &b);
        for (id, key) in [(&a, &key_a), (&b, &key_b)] {
            let expected = key_factory().key("pred", id, &Variant::new());
            let tag_len = tag(expected.as_str()).len() - 2;
            match key {
                Some(key) => {
                    assert_key_shape(key);
                    prop_assert_eq!(key.as_str(), expected.as_str());
                    prop_assert!(!id.is_empty() && tag_len <= MAX_ENTITY_LEN);
                }
                None => prop_assert!(id.is_empty() || tag_len > MAX_ENTITY_LEN, "{:?}", id),
            }
        }
        if let (Some(key_a), Some(key_b)) = (&key_a, &key_b) {
            prop_assert_eq!(tag(key_a) == tag(key_b), a == b);
            let pattern = key_factory().entity_pattern(&a);
            prop_assert_eq!(pattern.matches(GLOB).count(), 2, "{}", pattern);
        }
    }
}
