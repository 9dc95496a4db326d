//! Hostile JSON bodies: nested past any parser's stack, invalid UTF-8, duplicate members,
//! numbers out of range or beyond a double's precision, lone surrogates. Bodies that cannot be
//! canonicalised are keyed by their bytes, so no two ever share an entry; equal documents do.

use super::fixture::*;
use axum::{http::StatusCode, response::IntoResponse, routing::post, Json, Router};
use proptest::prelude::*;
use tower_redis_cache::Variant;

redis_test!(
    deeply_nested_json_is_keyed_by_its_raw_bytes_without_overflowing_the_stack,
    |redis| async move {
        const DEPTH: usize = 100_000;
        let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
        // The same document as `arrays` but for one insignificant space: raw-byte keying tells
        // them apart (a wasted entry, never a wrong one).
        let spaced = format!("{} {}", "[".repeat(DEPTH), "]".repeat(DEPTH));

        // No recursion past serde_json's limit: a small stack is plenty.
        let (a, o) = (arrays.clone(), objects.clone());
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                for body in [a, o] {
                    let id = Variant::new().json_body(body.as_bytes()).id();
                    assert_eq!(id.len(), 16);
                }
            })
            .expect("spawn")
            .join()
            .expect("json_body on 100 000 levels overflowed a 256 KiB stack");

        let s = setup(redis).await;
        let app = s.pred_app(pred().max_request_body(1 << 20));
        for body in [&arrays, &objects, &spaced] {
            let first = s
                .send(&app, json_req("/matches/1/prediction", body.clone()))
                .await;
            assert!(
                first.is_stored() && !first.is_hit(),
                "{}",
                first.cache_status()
            );
            assert!(first.echoed_body() == body.as_bytes(), "deep body altered");
            let again = s
                .send(&app, json_req("/matches/1/prediction", body.clone()))
                .await;
            assert!(again.is_hit(), "{}", again.cache_status());
            assert!(again.echoed_body() == body.as_bytes());
        }
        assert_eq!(s.all_keys().len(), 3);

        // Within the nesting limit the body is canonical JSON: whitespace does not matter.
        let shallow = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let shallow_spaced = format!("{} \n{}", "[".repeat(100), "]".repeat(100));
        let first = s
            .send(&app, json_req("/matches/1/prediction", shallow))
            .await;
        assert!(first.is_stored());
        let second = s
            .send(&app, json_req("/matches/1/prediction", shallow_spaced))
            .await;
        assert!(second.is_hit(), "{}", second.cache_status());
    }
);

// Bodies that are not canonicalisable JSON are keyed by their bytes, so none of them shares
// a key with another body, nor with the value a lenient parser would see in it.
redis_test!(hostile_json_bodies_never_share_a_key, |redis| async move {
    let three_hundred_digits = format!("1{}", "0".repeat(299));
    let bodies: Vec<Vec<u8>> = [
        // Invalid UTF-8, bare and inside strings.
        &b"\"\xff\""[..],
        b"\xff\xfe",
        b"{\"a\":\"\xff\"}",
        b"{\"a\":\"\xfe\"}",
        // Duplicate members: the last-wins value first, then documents spelling it twice.
        b"{\"a\":2}",
        b"{\"a\":1,\"a\":2}",
        b"{\"a\":2,\"a\":1}",
        b"{\"a\":1}",
        b"{\"o\":{\"a\":1,\"a\":2}}",
        b"{\"o\":{\"a\":2}}",
        // Numbers out of the IEEE 754 range, and a 300-digit integer.
        b"1e400",
        b"1e401",
        b"-1e400",
        b"[1e400]",
        b"{\"x\":1e400}",
        three_hundred_digits.as_bytes(),
        // Lone surrogates, and a valid pair.
        b"\"\\ud800\"",
        b"\"\\udc00\"",
        b"\"\\ud800\\u0041\"",
        b"\"\\ud800\\udc00\"",
        // Small documents and near-JSON.
        b"{}",
        b"[]",
        b"null",
        b"\"\"",
        b"0",
        b"{",
        b"{}{}",
        b"\xef\xbb\xbf{}",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();

    let s = setup(redis).await;
    let app = s.pred_app(pred());
    for body in &bodies {
        let r = s
            .send(&app, json_req("/matches/1/prediction", body.clone()))
            .await;
        let shown = String::from_utf8_lossy(body);
        assert!(!r.is_hit(), "{shown}: served another body's entry");
        assert!(r.is_stored(), "{shown}: {}", r.cache_status());
        assert!(r.echoed_body() == &body[..], "{shown}: body altered");
    }
    for body in &bodies {
        let r = s
            .send(&app, json_req("/matches/1/prediction", body.clone()))
            .await;
        let shown = String::from_utf8_lossy(body);
        assert!(r.is_hit(), "{shown}: {}", r.cache_status());
        assert!(r.echoed_body() == &body[..], "{shown}: served another body");
    }
    assert_eq!(s.all_keys().len(), bodies.len());

    // Equal documents still share: a surrogate pair and its UTF-8, member order, whitespace.
    for (stored, same) in [
        (&b"\"\\ud800\\udc00\""[..], "\"\u{10000}\"".as_bytes()),
        (b"{\"a\":1}", b" { \"a\" : 1 } "),
        (b"{}", b"{} "),
    ] {
        let r = s.send(&app, json_req("/matches/1/prediction", same)).await;
        assert!(r.is_hit(), "{}", String::from_utf8_lossy(same));
        assert!(r.echoed_body() == stored);
    }
});

// A handler reading `{"id": u64}` sees 9007199254740993 and 9007199254740992 as different
// ids, but RFC 8785 writes both as the double 9007199254740992: the crate keys bodies with
// integers beyond 2^53 by their raw bytes, so neither is served the other's response.
// (Found here: before that, the second request was a hit on the first one's entry.)
redis_test!(
    integers_beyond_f64_precision_are_keyed_apart,
    |redis| async move {
        let s = setup(redis).await;
        let app = Router::new().route(
            "/matches/{id}/prediction",
            post(|Json(config): Json<serde_json::Value>| async move {
                match config["id"].as_u64() {
                    Some(id) => id.to_string().into_response(),
                    None => StatusCode::UNPROCESSABLE_ENTITY.into_response(),
                }
            })
            .route_layer(s.cache.policy(pred())),
        );
        for (first, second) in [
            ("9007199254740992", "9007199254740993"),
            ("18446744073709551614", "18446744073709551615"),
        ] {
            let r = s
                .send(
                    &app,
                    json_req("/matches/1/prediction", format!(r#"{{"id":{first}}}"#)),
                )
                .await;
            assert_eq!(r.text_lossy(), first);
            let r = s
                .send(
                    &app,
                    json_req("/matches/1/prediction", format!(r#"{{"id":{second}}}"#)),
                )
                .await;
            assert_eq!(
                r.text_lossy(),
                second,
                "{second} was served {first}'s response"
            );
        }
    }
);

// `1`, `1.0` and `1e0` are one RFC 8785 number, and the crate keys them as one value (as the
// issue asks: equivalent spellings never change the key). A handler that reads numbers by value
// (here as `f64`) answers them alike, so sharing the entry serves exactly what it would have.
// (A handler that refuses `1.0` for an integer field would have answered 422, which is not
// stored; the README states that numbers are keyed by value.)
redis_test!(
    integer_and_float_spellings_of_one_value_share_an_entry,
    |redis| async move {
        let s = setup(redis).await;
        let app = Router::new().route(
            "/matches/{id}/prediction",
            post(|Json(config): Json<serde_json::Value>| async move {
                match config["id"].as_f64() {
                    Some(id) => format!("{id:?}").into_response(),
                    None => StatusCode::UNPROCESSABLE_ENTITY.into_response(),
                }
            })
            .route_layer(s.cache.policy(pred())),
        );
        let r = s
            .send(&app, json_req("/matches/1/prediction", r#"{"id":1}"#))
            .await;
        assert_eq!((r.status, r.text_lossy().as_str()), (StatusCode::OK, "1.0"));
        for float in [r#"{"id":1.0}"#, r#"{"id":1e0}"#, r#"{"id":10E-1}"#] {
            let r = s.send(&app, json_req("/matches/1/prediction", float)).await;
            assert!(
                r.cache_status().contains("; hit"),
                "{float}: {}",
                r.cache_status()
            );
            assert_eq!(r.text_lossy(), "1.0", "{float}");
        }
    }
);

// Properties of the variant id alone: no Redis, so one test each rather than one per topology.
proptest! {
    #[test]
    fn json_body_never_panics_on_arbitrary_bytes(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            "[\\[\\]{}\",:0-9eE.+\\-tfnrulas\\\\ \\t\\n]{0,96}".prop_map(String::into_bytes),
        ]
    ) {
        let id = Variant::new().json_body(&bytes).id();
        if bytes.is_empty() {
            prop_assert_eq!(id, "default");
        } else {
            prop_assert_eq!(id.len(), 16);
            prop_assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    /// Documents whose numbers a double holds exactly: canonical, whatever the formatting.
    /// (Bodies with integers beyond 2^53 are keyed by their raw bytes, formatting included.)
    #[test]
    fn json_values_have_one_id_whatever_their_formatting(
        value in json_value().prop_filter("numbers within ±2^53", exact_numbers)
    ) {
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        let canonical = serde_json_canonicalizer::to_vec(&value).unwrap();
        let id = Variant::new().json_body(&compact).id();
        prop_assert_eq!(Variant::new().json_body(&pretty).id(), id.clone());
        prop_assert_eq!(Variant::new().json_body(&canonical).id(), id);
    }

    #[test]
    fn integers_beyond_2_53_never_share_a_key(n in (1u64 << 53)..u64::MAX, negative in any::<bool>()) {
        let sign = if negative && n <= 1 << 63 { "-" } else { "" };
        let body = |n: u64| format!(r#"{{"id":{sign}{n}}}"#);
        prop_assert_ne!(
            Variant::new().json_body(body(n).as_bytes()).id(),
            Variant::new().json_body(body(n + 1).as_bytes()).id()
        );
    }
}

/// Whether every number in `value` is one a double holds exactly and RFC 8785 writes without
/// an exponent only when it has at most 16 digits: integers within ±2^53, floats below 2^53.
fn exact_numbers(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    const LIMIT: u64 = 1 << 53;
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(|u| u <= LIMIT)
            .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= LIMIT))
            .unwrap_or_else(|| n.as_f64().is_some_and(|f| f.abs() < LIMIT as f64)),
        Value::Array(items) => items.iter().all(exact_numbers),
        Value::Object(members) => members.values().all(exact_numbers),
        _ => true,
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}
