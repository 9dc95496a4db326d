//! `Variant::json_body` on arbitrary bytes: the RFC 8785 canonical key of a request body.
//!
//! Properties:
//! - it never panics, and any non-empty body gives a 16-hex-digit id (never `default`);
//! - formatting independence: when the bytes parse as a `serde_json::Value` whose numbers a
//!   double holds exactly (integers within ±2^53, floats below 2^53), its compact and pretty
//!   serialisations and its RFC 8785 form (by `serde_json_canonicalizer`, the oracle) all have
//!   one id, and so does the body itself unless it has duplicate member names. (Bodies with
//!   larger integers are keyed by their raw bytes, formatting included, so that distinct
//!   integers a double cannot tell apart never share a key.)
//! - a body with duplicate member names is keyed by its raw bytes: it never shares the key of
//!   the value `serde_json` keeps (the last duplicate wins).
//! - a body `serde_json` rejects is keyed by its raw bytes (the canonicaliser accepts no more
//!   than `serde_json` does): insignificant whitespace before or after it changes its id.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run canonical_json -- -max_total_time=180`
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::{collections::HashSet, fmt};
use tower_redis_cache::Variant;

fuzz_target!(|data: &[u8]| {
    let id = Variant::new().json_body(data).id();
    if data.is_empty() {
        assert_eq!(id, "default");
        return;
    }
    assert_eq!(id.len(), 16, "id {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "id {id:?}");

    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        // Whitespace around a document `serde_json` rejects leaves it rejected; had the body
        // been canonicalised, its id would stay the same.
        let spaced: Vec<u8> = [&b" "[..], data, b"\n"].concat();
        assert_ne!(
            id,
            Variant::new().json_body(&spaced).id(),
            "accepted what serde_json rejects"
        );
        return;
    };
    let id_of = |bytes: &[u8]| Variant::new().json_body(bytes).id();
    let compact = serde_json::to_vec(&value).expect("a Value serialises");
    let value_id = id_of(&compact);
    let has_duplicates = serde_json::from_slice::<NoDuplicates>(data).is_err();
    if !exact_numbers(&value) {
        if has_duplicates {
            assert_ne!(id, value_id, "duplicates share the last-wins value's key");
        }
        return;
    }
    let pretty = serde_json::to_vec_pretty(&value).expect("a Value serialises");
    let oracle = serde_json_canonicalizer::to_vec(&value).expect("the oracle canonicalises");
    assert_eq!(id_of(&pretty), value_id, "pretty vs compact");
    assert_eq!(id_of(&oracle), value_id, "RFC 8785 form vs compact");

    if has_duplicates {
        assert_ne!(
            id, value_id,
            "a body with duplicate members shares the key of its last-wins value"
        );
    } else {
        assert_eq!(id, value_id, "the body's key depends on its formatting");
    }
});

/// Parses any JSON value and fails on a duplicate member name at any depth: the oracle for
/// "this body has duplicates", written independently of the crate's own strict parser.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without duplicate member names")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut names = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value::<NoDuplicates>()?;
            if !names.insert(name) {
                return Err(serde::de::Error::custom("duplicate member name"));
            }
        }
        Ok(NoDuplicates)
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
