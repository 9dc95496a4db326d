//! RFC 8785 (JSON Canonicalization Scheme) for request bodies.
//!
//! The body is parsed strictly (duplicate member names are rejected, as I-JSON requires) into a
//! value tree and written back out by [`serde_json_canonicalizer`]: sorted member names, no
//! insignificant whitespace, ECMAScript number formatting and minimal string escapes. Anything that
//! is not such a document (invalid UTF-8 or JSON, duplicate members, numbers out of range or
//! integers beyond 2^53, which a double cannot tell apart, nesting
//! deeper than `serde_json`'s recursion limit of 128) is reported as `None`; callers then key the raw
//! bytes in a domain of their own, so invalid bodies never share one key.

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Returns the RFC 8785 canonical form of `body`, or `None` when `body` is not a JSON document
/// that can be canonicalised without losing information.
pub(crate) fn canonicalize(body: &[u8]) -> Option<Vec<u8>> {
    if has_inexact_integer(body) {
        return None;
    }
    let StrictValue(value) = serde_json::from_slice(body).ok()?;
    serde_json_canonicalizer::to_vec(&value).ok()
}

/// A JSON value whose objects are checked for duplicate member names while parsing.
///
/// `serde_json::Value` silently keeps the last duplicate, while a handler deserialising into a
/// struct rejects the document: keying such a body by its canonical form would make an input the
/// handler can see (the duplicate) invisible to the key.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

/// RFC 8785 writes every number as an IEEE 754 double, which holds integers exactly only up to
/// 2^53: beyond that, distinct ids such as 9007199254740992 and 9007199254740993 would share one
/// canonical form, and one request would be served the other's response. A body with such an
/// integer literal is keyed by its raw bytes instead. (Fractions and exponents keep RFC 8785's
/// double semantics: `1e30` is a double however it is spelled.)
const MAX_EXACT_INTEGER: u128 = 1 << 53;

/// Whether `body` holds an integer literal (no fraction, no exponent) beyond ±2^53, found by a
/// scan of the bytes outside strings.
fn has_inexact_integer(body: &[u8]) -> bool {
    let mut i = 0;
    let mut in_string = false;
    while i < body.len() {
        let b = body[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < body.len()
                    && matches!(body[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &body[start..i];
                let integer = !token.iter().any(|c| matches!(c, b'.' | b'e' | b'E'));
                let digits = token.strip_prefix(b"-").unwrap_or(token);
                let too_big = digits.len() > 16
                    || std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse::<u128>().ok())
                        .is_none_or(|n| n > MAX_EXACT_INTEGER);
                if integer && too_big {
                    return true;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if members.insert(name, value).is_some() {
                return Err(A::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::canonicalize;

    fn canon(s: &str) -> Option<String> {
        canonicalize(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn sorts_members_and_drops_whitespace() {
        assert_eq!(
            canon(r#" { "risk" : "high", "model":"v2" } "#).as_deref(),
            Some(r#"{"model":"v2","risk":"high"}"#)
        );
    }

    #[test]
    fn normalises_numbers_and_strings() {
        assert_eq!(
            canon("[1.0, 1e2, -0, 0.5E1]").as_deref(),
            Some("[1,100,0,5]")
        );
        assert_eq!(canon(r#""\u0041\/""#).as_deref(), Some(r#""A/""#));
    }

    #[test]
    fn rfc8785_sample_is_reproduced() {
        // The example of RFC 8785, section 3.2.2 (strings with escapes, numbers, literals).
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(canon(input).as_deref(), Some(expected));
    }

    #[test]
    fn rejects_what_cannot_be_canonicalised() {
        assert_eq!(canon(r#"{"a":1,"a":2}"#), None, "duplicate members");
        assert_eq!(canon("{"), None, "truncated");
        assert_eq!(canon("1e400"), None, "out of range");
        assert_eq!(canon("9007199254740993"), None, "beyond 2^53");
        assert_eq!(canon("-9007199254740993"), None, "beyond -2^53");
        assert_eq!(canon("18446744073709551616"), None, "beyond 64 bits");
        assert_eq!(
            canon("9007199254740992").as_deref(),
            Some("9007199254740992")
        );
        assert_eq!(canonicalize(b"\"\xff\""), None, "invalid UTF-8");
        assert_eq!(canon(&"[".repeat(100_000)), None, "deep nesting");
        assert!(canon(&format!("{}{}", "[".repeat(100), "]".repeat(100))).is_some());
    }
}
