//! Cache poisoning by unkeyed inputs: query parameters the route does not list, ignored
//! parameters cloaking a keyed one, credentials, headers a response varies on, headers that
//! rewrite the URL or method, `HEAD`, and the body's media type. An input the key does not
//! hold never reaches a response served to a request without it.

use super::fixture::*;
use crate::app::*;
use axum::{
    body::Body,
    extract::{Query, Request},
    http::{header, HeaderName, HeaderValue, Method, StatusCode},
    routing::{any as any_method, get, post},
    Json, Router,
};
use std::collections::HashMap;
use tower_redis_cache::{Entity, Policy};

redis_test!(
    unlisted_query_parameters_bypass_and_never_poison,
    |redis| async move {
        let s = setup(redis).await;
        let app = Router::new().route(
            "/matches/{id}/markets",
            get(echo).route_layer(
                s.cache
                    .policy(markets().vary_query(["lang"]).ignore_query(["utm"])),
            ),
        );
        let poisoned = [
            "/matches/1/markets?evil=1",
            "/matches/1/markets?lang=en&evil=1",
            "/matches/1/markets?l%61ng=evil",
            "/matches/1/markets?LANG=evil",
            "/matches/1/markets?utm=1&lang%00=evil",
        ];
        for uri in poisoned {
            let r = s.send(&app, get_req(uri)).await;
            assert!(r.is_bypass("unkeyed-query"), "{uri}: {}", r.cache_status());
            assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
        }
        s.assert_nothing_in_redis("a request with an unlisted query parameter was stored");
        for uri in ["/matches/1/markets", "/matches/1/markets?lang=en"] {
            let r = s.send(&app, get_req(uri)).await;
            assert!(r.is_stored());
            let r = s.send(&app, get_req(uri)).await;
            assert!(r.is_hit());
            assert!(!r.text_lossy().contains("evil"));
            assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
        }
        // Poisoned requests after the clean ones are stored are still bypassed, never served.
        for uri in poisoned {
            let r = s.send(&app, get_req(uri)).await;
            assert!(r.is_bypass("unkeyed-query"), "{uri}");
            assert_eq!(r.echoed_request_line(), format!("GET {uri}"));
        }
    }
);

// Parameter cloaking: an ignored parameter whose value spells a keyed one (`;` or an encoded
// `&`). axum's `Query` splits on `&` only, so the handler sees no `lang`: nothing to poison.
redis_test!(
    ignored_parameters_cannot_cloak_a_keyed_one,
    |redis| async move {
        let s = setup(redis).await;
        let app = Router::new().route(
            "/matches/{id}/markets",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                format!("lang={}", q.get("lang").map_or("-", String::as_str))
            })
            .route_layer(
                s.cache
                    .policy(markets().vary_query(["lang"]).ignore_query(["utm"])),
            ),
        );
        for uri in [
            "/matches/1/markets?utm=x;lang=evil",
            "/matches/1/markets?utm=x%26lang%3Devil",
            "/matches/1/markets?utm=x&utm=;lang=evil",
        ] {
            let r = s.send(&app, get_req(uri)).await;
            assert_eq!(r.text_lossy(), "lang=-", "{uri}");
        }
        let r = s.send(&app, get_req("/matches/1/markets")).await;
        assert_eq!(r.text_lossy(), "lang=-");
        let r = s.send(&app, get_req("/matches/1/markets?lang=en")).await;
        assert_eq!(r.text_lossy(), "lang=en");
    }
);

redis_test!(
    credentials_bypass_unless_keyed_and_are_never_served_to_others,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        let with = |name: header::HeaderName, value: &str| {
            let mut req = json_req("/matches/1/prediction", "{}");
            req.headers_mut()
                .insert(name, HeaderValue::from_str(value).unwrap());
            req
        };
        for _ in 0..2 {
            let r = s
                .send(&app, with(header::AUTHORIZATION, "Bearer evil"))
                .await;
            assert!(r.is_bypass("credentials"), "{}", r.cache_status());
            assert!(r.text_lossy().contains("authorization: Bearer evil"));
            let r = s.send(&app, with(header::COOKIE, "session=evil")).await;
            assert!(r.is_bypass("credentials"), "{}", r.cache_status());
            let clean = s.send(&app, json_req("/matches/1/prediction", "{}")).await;
            assert!(
                !clean.text_lossy().contains("evil"),
                "{}",
                clean.text_lossy()
            );
        }
        assert_eq!(s.all_keys().len(), 1);

        // Keyed by credential: each token its own entry; no token never sees a token's entry.
        let keyed = s.pred_app(pred().vary_headers([header::AUTHORIZATION]));
        let with_token = |token: &str| {
            let mut req = json_req("/matches/2/prediction", "{}");
            let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
            req.headers_mut().insert(header::AUTHORIZATION, value);
            req
        };
        for round in 0..2 {
            for token in ["alice", "bob"] {
                let r = s.send(&keyed, with_token(token)).await;
                assert_eq!(r.is_hit(), round == 1);
                assert!(r
                    .text_lossy()
                    .contains(&format!("authorization: Bearer {token}")));
            }
            let r = s
                .send(&keyed, json_req("/matches/2/prediction", "{}"))
                .await;
            assert_eq!(r.is_hit(), round == 1);
            assert!(
                !r.text_lossy().contains("authorization"),
                "{}",
                r.text_lossy()
            );
        }
    }
);

// A handler that reads a header the route does not key, and says so with `Vary`, gets one entry
// per value of that header (the namespace learns it), and no value is ever served to a request
// with another; `Vary: *` is never stored. Keying the route on the header separates its values
// too.
redis_test!(
    responses_varying_on_unkeyed_headers_never_answer_other_values,
    |redis| async move {
        let s = setup(redis).await;
        let varying = |vary: &'static str| {
            move |req: Request| async move {
                let mut response = echo(req).await;
                response
                    .headers_mut()
                    .insert(header::VARY, HeaderValue::from_static(vary));
                response
            }
        };
        let poisoning_headers = [
            ("x-foo", "X-Foo"),
            ("accept-language", "accept-encoding, Accept-Language"),
            ("x-tenant", "X-TENANT"),
        ];
        for (i, (name, vary)) in poisoning_headers.into_iter().enumerate() {
            let uri = format!("/matches/{i}/prediction");
            // A namespace of its own: what one learns does not key another's requests.
            let policy = Policy::new(format!("vary{i}"))
                .methods([Method::POST])
                .entity(Entity::path_segment(1).prefix("m_"));
            let app = Router::new().route(
                "/matches/{id}/prediction",
                post(varying(vary)).route_layer(s.cache.policy(policy)),
            );
            let evil = || {
                let mut evil = json_req(&uri, "{}");
                evil.headers_mut()
                    .insert(name, HeaderValue::from_static("evil.example"));
                evil
            };
            for round in 0..2 {
                let r = s.send(&app, evil()).await;
                assert!(r.text_lossy().contains("evil"), "{name}");
                assert_eq!(r.is_hit(), round == 1, "{name}: {}", r.cache_status());
                let r = s.send(&app, json_req(&uri, "{}")).await;
                assert!(
                    !r.text_lossy().contains("evil"),
                    "{name}: {}",
                    r.text_lossy()
                );
                assert_eq!(r.is_hit(), round == 1, "{name}: {}", r.cache_status());
            }
        }

        // `Vary: *`: never stored.
        let app = Router::new().route(
            "/matches/{id}/prediction",
            post(varying("*")).route_layer(s.cache.policy(pred())),
        );
        for _ in 0..2 {
            let r = s.send(&app, json_req("/matches/7/prediction", "{}")).await;
            assert!(!r.is_stored() && !r.is_hit(), "{}", r.cache_status());
        }
        let keys = s.all_keys();
        assert!(
            !keys.iter().any(|k| k.contains(":pred:")),
            "a response varying on everything was stored: {keys:?}"
        );

        // The route keys x-foo: each value (and its absence) is its own entry.
        let app = Router::new().route(
            "/matches/{id}/prediction",
            post(varying("X-Foo")).route_layer(s.cache.policy(pred().vary_headers([X_FOO]))),
        );
        let foo = |value: Option<&'static str>| {
            let mut req = json_req("/matches/9/prediction", "{}");
            if let Some(value) = value {
                req.headers_mut()
                    .insert(X_FOO, HeaderValue::from_static(value));
            }
            req
        };
        for round in 0..2 {
            let r = s.send(&app, foo(Some("evil"))).await;
            assert_eq!(r.is_hit(), round == 1);
            assert!(r.text_lossy().contains("x-foo: evil"));
            let r = s.send(&app, foo(None)).await;
            assert_eq!(r.is_hit(), round == 1);
            assert!(!r.text_lossy().contains("evil"));
            let r = s.send(&app, foo(Some("good"))).await;
            assert_eq!(r.is_hit(), round == 1);
            assert!(r.text_lossy().contains("x-foo: good") && !r.text_lossy().contains("evil"));
        }
        let keys = s.all_keys();
        assert_eq!(
            keys.iter().filter(|k| k.contains(":pred:")).count(),
            3,
            "{keys:?}"
        );
    }
);

// Headers that rewrite the host, URL or method a handler sees never poison a clean request:
// unkeyed, the request bypasses the cache; keyed, each value is its own entry.
redis_test!(
    rewriting_headers_bypass_unless_keyed_and_never_poison,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        let with = |uri: &str, name: &'static str| {
            let mut req = json_req(uri, "{}");
            req.headers_mut()
                .insert(name, HeaderValue::from_static("evil.example"));
            req
        };
        for (i, name) in REWRITING.into_iter().enumerate() {
            let uri = format!("/matches/{i}/prediction");
            for round in 0..2 {
                let r = s.send(&app, with(&uri, name)).await;
                assert!(
                    !r.is_hit() && !r.is_stored(),
                    "{name}: {}",
                    r.cache_status()
                );
                assert!(r.text_lossy().contains(&format!("{name}: evil.example")));
                let r = s.send(&app, json_req(&uri, "{}")).await;
                assert!(
                    !r.text_lossy().contains("evil"),
                    "{name} poisoned: {}",
                    r.text_lossy()
                );
                assert_eq!(r.is_hit(), round == 1, "{name}: {}", r.cache_status());
            }
        }
        assert_eq!(s.all_keys().len(), REWRITING.len());

        // Keyed by the route: stored per value, and the clean request keeps its own entry.
        let names = REWRITING.map(HeaderName::from_static);
        let keyed = s.pred_app(pred().vary_headers(names));
        for name in REWRITING {
            let r = s.send(&keyed, with("/matches/99/prediction", name)).await;
            assert!(r.is_stored(), "{name}: {}", r.cache_status());
            let r = s.send(&keyed, with("/matches/99/prediction", name)).await;
            assert!(r.is_hit(), "{name}: {}", r.cache_status());
            let r = s
                .send(&keyed, json_req("/matches/99/prediction", "{}"))
                .await;
            assert!(
                !r.text_lossy().contains("evil"),
                "{name}: {}",
                r.text_lossy()
            );
        }
    }
);

redis_test!(
    head_is_never_stored_and_get_entries_answer_head_without_a_body,
    |redis| async move {
        let s = setup(redis).await;
        let app = Router::new().route(
            "/matches/{id}/markets",
            get(echo).route_layer(s.cache.policy(markets())),
        );
        let head = || {
            Request::head("/matches/1/markets")
                .body(Body::empty())
                .unwrap()
        };
        let r = s.send(&app, head()).await;
        assert!(r.body.is_empty() && !r.is_stored(), "{}", r.cache_status());
        s.assert_nothing_in_redis("a HEAD response was stored");
        let r = s.send(&app, get_req("/matches/1/markets")).await;
        assert!(r.is_stored() && !r.is_hit());
        assert_eq!(r.echoed_request_line(), "GET /matches/1/markets");
        let r = s.send(&app, head()).await;
        assert!(r.is_hit() && r.body.is_empty(), "{}", r.cache_status());
        let r = s.send(&app, get_req("/matches/1/markets")).await;
        assert!(r.is_hit());
        assert_eq!(r.echoed_request_line(), "GET /matches/1/markets");

        // A POST-only route passes every other method through untouched.
        let app = Router::new()
            .route("/matches/{id}/prediction", any_method(echo))
            .route_layer(s.cache.policy(pred()));
        for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            let req = Request::builder()
                .method(method.clone())
                .uri("/matches/1/prediction")
                .header("x-http-method-override", "POST")
                .body(Body::from("{}"))
                .unwrap();
            let r = s.send(&app, req).await;
            assert_eq!(r.cache_status(), "", "{method}");
        }
        // Only the GET entry: nothing was stored for the methods passed through.
        assert_eq!(s.all_keys().len(), 1);
    }
);

// The media type of a body is keyed (a handler such as axum's `Json` reads the body only with
// a JSON type), so the entry stored for one type never answers another.
redis_test!(content_type_is_keyed_with_the_body, |redis| async move {
    let s = setup(redis).await;
    let typed = |content_type: &'static str, id: u32| {
        Request::post(format!("/matches/{id}/prediction"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(r#"{"a":1}"#))
            .unwrap()
    };
    let app = s.pred_app(pred());
    let r = s.send(&app, typed("application/json", 1)).await;
    assert!(r.is_stored());
    let r = s.send(&app, typed("text/plain", 1)).await;
    assert!(!r.is_hit(), "{}", r.cache_status());
    assert!(r.text_lossy().contains("content-type: text/plain"));

    // Listing it in `vary_headers` changes nothing: separate entries, each its own echo.
    // Keyed: separate entries, each answered with its own echo.
    let app = s.pred_app(pred().vary_headers([header::CONTENT_TYPE]));
    for round in 0..2 {
        for content_type in ["application/json", "text/plain"] {
            let r = s.send(&app, typed(content_type, 2)).await;
            assert_eq!(r.is_hit(), round == 1, "{content_type}");
            assert!(r
                .text_lossy()
                .contains(&format!("content-type: {content_type}")));
        }
    }

    // axum's `Json` refuses text/plain (415, not stored); with the route keyed on the
    // content type, the stored JSON answer is never served to the refused form.
    let app = Router::new().route(
        "/matches/{id}/prediction",
        post(|Json(v): Json<serde_json::Value>| async move { v.to_string() })
            .route_layer(s.cache.policy(pred().vary_headers([header::CONTENT_TYPE]))),
    );
    for _ in 0..2 {
        let r = s.send(&app, typed("application/json", 3)).await;
        assert_eq!(r.status, StatusCode::OK);
        let r = s.send(&app, typed("text/plain", 3)).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
});
