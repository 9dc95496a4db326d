//! RFC 8785 (JSON Canonicalization Scheme) for request bodies.
//!
//! The body is parsed strictly by `serde_json` into a small borrowed tree (strings without
//! escapes are not copied; duplicate member names are rejected, as I-JSON requires) and written
//! back out canonically: members sorted by their UTF-16 code units, no insignificant whitespace,
//! numbers in ECMAScript form (`ryu-js`), minimal string escapes. The `serde_json_canonicalizer`
//! crate does the same through `serde_json::Value` but costs 4x more (BENCHMARKS.md); it stays
//! the oracle of the differential tests below and in `tests/keys.rs`.
//!
//! Anything that is not such a document (invalid UTF-8 or JSON, duplicate members, numbers out
//! of range or integers beyond 2^53, which a double cannot tell apart, nesting deeper than
//! `serde_json`'s recursion limit of 128) is reported as `None`; callers then key the raw bytes in
//! a domain of their own, so invalid bodies never share one key.

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use std::{borrow::Cow, cmp::Ordering, fmt};

/// Returns the RFC 8785 canonical form of `body`, or `None` when `body` is not a JSON document
/// that can be canonicalised without losing information.
pub(crate) fn canonicalize(body: &[u8]) -> Option<Vec<u8>> {
    if has_inexact_integer(body) {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let node = Node::deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    let mut out = Vec::with_capacity(body.len());
    node.write(&mut out);
    Some(out)
}

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

/// A parsed JSON value; strings borrow from the body when they hold no escape.
enum Node<'a> {
    Null,
    Bool(bool),
    /// An integer literal, at most 2^53 in magnitude (checked by [`has_inexact_integer`]).
    Integer(i128),
    Float(f64),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// Members sorted by [`utf16_order`], names unique.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl Node<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            // ECMAScript prints integral doubles below 1e21 as plain digits, -0 as 0.
            Node::Integer(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Node::Float(f) => {
                out.extend_from_slice(ryu_js::Buffer::new().format_finite(*f).as_bytes())
            }
            Node::String(s) => write_string(s, out),
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Node::Object(members) => {
                out.push(b'{');
                for (i, (name, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(name, out);
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// RFC 8785 section 3.2.2.2: `"` and `\` escaped, control characters as `\b \t \n \f \r` or
/// `\u00xx` (lower-case hex), everything else as UTF-8.
fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\x08' => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\x0c' => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// RFC 8785 sorts member names by their UTF-16 code units (UTF-8 byte order differs for
/// characters beyond U+FFFF against U+E000..U+FFFF).
fn utf16_order(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.as_bytes().cmp(b.as_bytes())
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Integer(i128::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Integer(i128::from(v)))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Node<'de>, E> {
        if v.is_finite() {
            Ok(Node::Float(v))
        } else {
            Err(E::custom("non-finite number"))
        }
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(Name(name)) = map.next_key()? {
            members.push((name, map.next_value()?));
        }
        members.sort_by(|(a, _), (b, _)| utf16_order(a, b));
        if members.windows(2).any(|w| w[0].0 == w[1].0) {
            // serde_json keeps the last duplicate while a handler deserialising into a struct
            // rejects the document: keying either way would hide an input from the key.
            return Err(A::Error::custom("duplicate member name"));
        }
        Ok(Node::Object(members))
    }
}

/// A member name, borrowed from the body when it holds no escape (serde's own `Cow<str>`
/// always copies).
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::canonicalize;
    use proptest::prelude::*;

    fn canon(s: &str) -> Option<String> {
        canonicalize(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    /// The reference implementation, through `serde_json::Value`.
    fn oracle(s: &str) -> Option<String> {
        serde_json_canonicalizer::pipe(s).ok()
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
            canon("[1.0, 1e2, -0, 0.5E1, -0.0]").as_deref(),
            Some("[1,100,0,5,0]")
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
    fn sorts_by_utf16_code_units() {
        // RFC 8785 section 3.2.3: U+1F600 (a surrogate pair, 0xD83D..) sorts before U+FB33.
        let input = "{\"\u{fb33}\":1,\"\u{1f600}\":2,\"a\":3}";
        assert_eq!(canon(input), oracle(input));
        assert_eq!(
            canon(input).unwrap(),
            "{\"a\":3,\"\u{1f600}\":2,\"\u{fb33}\":1}"
        );
    }

    #[test]
    fn rejects_what_cannot_be_canonicalised() {
        assert_eq!(canon(r#"{"a":1,"a":2}"#), None, "duplicate members");
        assert_eq!(canon(r#"{"b":{"a":1,"a":1}}"#), None, "nested duplicates");
        assert_eq!(canon("{"), None, "truncated");
        assert_eq!(canon("{} {}"), None, "trailing value");
        assert_eq!(canon("1e400"), None, "out of range");
        assert_eq!(canon("9007199254740993"), None, "beyond 2^53");
        assert_eq!(canon("-9007199254740993"), None, "beyond -2^53");
        assert_eq!(canon("18446744073709551616"), None, "beyond 64 bits");
        assert_eq!(
            canon("9007199254740992").as_deref(),
            Some("9007199254740992")
        );
        assert_eq!(canonicalize(b"\"\xff\""), None, "invalid UTF-8");
        assert_eq!(canon(r#""\ud800""#), None, "lone surrogate");
        assert_eq!(canon(&"[".repeat(100_000)), None, "deep nesting");
        assert!(canon(&format!("{}{}", "[".repeat(100), "]".repeat(100))).is_some());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\\u{7f}\u{2028}\u{e000}\u{fb33}\u{1f600}a-c]{0,6}"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(
                    "[\u{0}-\u{7f}\u{e000}\u{fb33}\u{1f600}\u{10ffff}a-e]{0,4}",
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Differential test: the same canonical bytes as `serde_json_canonicalizer`, from the
        /// compact and the pretty serialisation of any value.
        #[test]
        fn agrees_with_the_reference_implementation(value in json_value()) {
            let compact = serde_json::to_string(&value).unwrap();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let expected = oracle(&compact);
            prop_assert!(expected.is_some());
            prop_assert_eq!(canon(&compact), expected.clone(), "compact {}", compact);
            prop_assert_eq!(canon(&pretty), expected, "pretty {}", pretty);
        }

        /// Arbitrary bytes never panic, and whatever both accept they canonicalise alike.
        #[test]
        fn arbitrary_bytes_agree_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(ours) = canonicalize(&bytes) {
                let text = std::str::from_utf8(&bytes).unwrap();
                prop_assert_eq!(Some(String::from_utf8(ours).unwrap()), oracle(text));
            }
        }
    }
}
