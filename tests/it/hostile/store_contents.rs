//! Hostile store contents: what sits under a request's key before it is asked for (garbage,
//! another format version, a truncated entry, an entry answering another request, a value of
//! another Redis type, a header count that used to panic the decoder). Each is a miss, never a
//! 500 nor a panic, and the handler's response overwrites it.

use super::fixture::*;
use crate::app::*;
use crate::servers::Reply as RespReply;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
use std::time::{Duration, SystemTime};
use tower::ServiceExt;
use tower_redis_cache::store::Entry;

fn encoded_entry(identity: &[u8], body: &'static [u8], headers: &[(&str, &str)]) -> Bytes {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    Entry::new(StatusCode::OK, map, Bytes::from_static(body))
        .with_stored_at(SystemTime::now())
        .with_ttl(Duration::from_secs(60))
        .with_identity(Bytes::copy_from_slice(identity))
        .encode()
}

// What sits under a request's key before it is asked for: garbage, another version, a
// truncated entry, an entry answering another request, a value of another Redis type. Each
// is a miss (never a 500, never served) and is overwritten by the handler's response.
redis_test!(
    garbage_and_foreign_entries_are_misses_and_get_overwritten,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        let body = r#"{"risk":"high"}"#;
        let key = key_factory().key("pred", "m_1", &json_variant(body.as_bytes()));
        let key = key.as_str();
        let planted_elsewhere = encoded_entry(b"\0\0\0\x15/matches/2/prediction", b"ENTITY 2", &[]);
        let mut truncated = encoded_entry(b"x", b"TRUNCATED", &[]).to_vec();
        truncated.truncate(truncated.len() - 3);
        let mut next_version = encoded_entry(b"x", b"V3", &[]).to_vec();
        next_version[3] = 3;
        let values: Vec<(Vec<u8>, &str)> = vec![
            (b"garbage".to_vec(), "bad-entry"),
            (Vec::new(), "bad-entry"),
            (b"TRC".to_vec(), "bad-entry"),
            (truncated, "bad-entry"),
            (next_version, "bad-entry"),
            (planted_elsewhere.to_vec(), "vary-miss"),
        ];
        for (value, outcome) in values {
            s.redis.set_raw(key, &value);
            let r = s.send(&app, json_req("/matches/1/prediction", body)).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.cache_status().contains(outcome), "{}", r.cache_status());
            assert!(r.is_stored(), "{}", r.cache_status());
            assert_eq!(r.echoed_request_line(), "POST /matches/1/prediction");
            assert_eq!(s.all_keys(), [key], "not the key the factory computes");
            let r = s.send(&app, json_req("/matches/1/prediction", body)).await;
            assert!(r.is_hit(), "not overwritten: {}", r.cache_status());
            assert_eq!(r.echoed_request_line(), "POST /matches/1/prediction");
        }

        // A value of another type: WRONGTYPE on GET is a store error, a miss; SET overwrites it.
        s.redis.flushall();
        let reply = s.redis.query_for(key, &["RPUSH", key, "a", "b"]);
        assert_eq!(reply, RespReply::Integer(2));
        let r = s.send(&app, json_req("/matches/1/prediction", body)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.cache_status().contains("fwd=miss"),
            "{}",
            r.cache_status()
        );
        assert!(r.is_stored());
        assert!(s
            .send(&app, json_req("/matches/1/prediction", body))
            .await
            .is_hit());
    }
);

/// The 28 bytes `TRC 01 | stored_at 0 | ttl 0 | status 200 | identity "" | header count 0xFFFF`.
/// `Entry::decode` used to call `HeaderMap::with_capacity(count)`, which panics ("size
/// overflows MAX_SIZE") for any count above 24 576.
const HUGE_HEADER_COUNT: [u8; 28] = [
    b'T', b'R', b'C', 1, // magic, version
    0, 0, 0, 0, 0, 0, 0, 0, // stored_at
    0, 0, 0, 0, 0, 0, 0, 0, // ttl
    0, 200, // status
    0, 0, 0, 0, // identity length
    0xFF, 0xFF, // header count
];

/// The first crash of `fuzz/fuzz_targets/entry_decode.rs` (artifact
/// `crash-cd5df3ddf1b4bb0aa302bfa2f5d6a029a51b8b74`, found after 5 083 runs), behind the
/// `TRC 01` the target puts in front of its input: status 768, header count 0xFFFF.
const FUZZ_ENTRY_DECODE_CRASH: [u8; 36] = [
    b'T', b'R', b'C', 1, // magic, version
    41, 4, 114, 10, 10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 3, 0, 0, 0, 0, 0, 255, 255, 255, 255, 10,
    10, 6, 0, 10, 10,
];

// The decoder alone: no Redis, so one test rather than one per topology.
#[test]
fn entry_decode_of_a_huge_header_count_is_an_error_not_a_panic() {
    let mut inputs = vec![HUGE_HEADER_COUNT.to_vec(), FUZZ_ENTRY_DECODE_CRASH.to_vec()];
    for count in [24_576u16, 24_577, 32_768] {
        let mut input = HUGE_HEADER_COUNT.to_vec();
        input[26..].copy_from_slice(&count.to_be_bytes());
        inputs.push(input);
    }
    for input in inputs {
        let decoded = std::panic::catch_unwind(|| Entry::decode(Bytes::from(input.clone())));
        assert!(
            matches!(decoded, Ok(Err(_))),
            "decode panicked or accepted {input:?}"
        );
    }
}

// The same 28 bytes planted under a request's key: the request is a miss. (The panic used to
// unwind out of the response future; through hyper, the connection was dropped.)
redis_test!(
    a_planted_huge_header_count_is_a_miss_not_a_panic,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        let key = key_factory().key("pred", "m_1", &json_variant(b"{}"));
        s.redis.set_raw(key.as_str(), &HUGE_HEADER_COUNT);
        let task = tokio::spawn({
            let app = app.clone();
            async move { app.oneshot(json_req("/matches/1/prediction", "{}")).await }
        });
        let response = task
            .await
            .expect("the request panicked")
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let status = response.headers()["cache-status"].to_str().unwrap();
        assert!(status.contains("detail=bad-entry"), "{status}");
    }
);
