//! Unit and differential tests of the canonicaliser, against `serde_json_canonicalizer`.

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

/// Whether `serde_json` accepts `bytes` (as `Value`, the oracle's own parse).
fn serde_accepts(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
}

#[test]
fn nesting_limit_is_serde_json_s() {
    for depth in [1, 2, 126, 127, 128, 129, 200] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let mixed = format!(
            "{}null{}",
            r#"[{"a":"#.repeat(depth / 2 + 1),
            "}]".repeat(depth / 2 + 1)
        );
        for text in [arrays, objects, mixed] {
            assert_eq!(
                canon(&text).is_some(),
                serde_accepts(text.as_bytes()),
                "{text}"
            );
            assert_eq!(canon(&text), oracle(&text), "{text}");
        }
    }
    assert!(canon(&format!("{}{}", "[".repeat(127), "]".repeat(127))).is_some());
    assert!(canon(&format!("{}{}", "[".repeat(128), "]".repeat(128))).is_none());
}

#[test]
fn refuses_what_serde_json_refuses() {
    let refused: &[&[u8]] = &[
        b"",
        b" ",
        b"[1,]",
        b"{\"a\":1,}",
        b"[,1]",
        b"{,}",
        b"01",
        b"-01",
        b"00",
        b"1.",
        b".5",
        b"+1",
        b"-",
        b"1e",
        b"1e+",
        b"1.e5",
        b"--1",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"tru",
        b"nul",
        b"fals",
        b"truex",
        b"nulll",
        b"[1]]",
        b"{}}",
        b"[",
        b"{\"a\"",
        b"{\"a\":}",
        b"{\"a\" 1}",
        b"{1:1}",
        b"[1 2]",
        b"\"\\ud800\"",
        b"\"\\udc00\"",
        b"\"\\ud800\\u0041\"",
        b"\"\\ud800\\n\"",
        b"\"\\ud800\\ud800\"",
        b"\"\\ud83d\"",
        b"\"\\u12\"",
        b"\"\\u12g4\"",
        b"\"\\x\"",
        b"\"\\'\"",
        b"\"\x01\"",
        b"\"\n\"",
        b"\"\t\"",
        b"\"\x1f\"",
        b"\"abc",
        b"\"\\",
        b"\"\\\"",
        b"\xef\xbb\xbf{}",
        b"\"\xc3\"",
        b"\"\xed\xa0\x80\"",
        b"\"\xf4\x90\x80\x80\"",
        b"\"\xc0\xaf\"",
        b"\xff",
        b"{} {}",
        b"1 2",
        b"[1]x",
        b"'a'",
        b"\"a\"\"b\"",
        b"[1,,2]",
        b"{\"a\"::1}",
        b"\x0b1",
        b"\x0c1",
        b"\xc2\xa01",
        b"[\"a\":1]",
        b"{\"a\",\"b\"}",
        b"1e400",
        b"-1e400",
        b"1.7976931348623159e308",
        b"1e99999999999999999999",
        b"-1e99999999999999999999",
    ];
    for &bytes in refused {
        assert!(!serde_accepts(bytes), "serde_json accepts {bytes:?}");
        assert_eq!(
            canonicalize(bytes),
            None,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn accepts_what_serde_json_accepts() {
    let accepted = [
        " \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 \t\r\n] \t\r\n} \t\r\n",
        "0",
        "-0",
        "-0.0",
        "0.0",
        "0e0",
        "-0e-0",
        "1E+2",
        "1e-2",
        "0.5e-3",
        "1e-400",
        "-1e-400",
        "1.7976931348623157e308",
        "4.9e-324",
        "2.4e-324",
        "1e308",
        "123456789012345678901234.5",
        "0.1000000000000000055511151231257827",
        "100.000",
        "0.000001",
        "0.0000001",
        "0.00000123",
        "1.5e21",
        "1e21",
        "1e20",
        "123e-2",
        "9007199254740992",
        "-9007199254740992",
        "9007199254740993.0",
        "0e99999999999999999999",
        "-1e-99999999999999999999",
        "[]",
        "{}",
        "[ ]",
        "{ }",
        "\"\"",
        "\"\\u0000\"",
        "\"\\u001F\\u007f\\u0080\\u00FF\\u2028\\uFFFF\\uFEFF\"",
        "\"\\uD83D\\uDE00\\ud83d\\ude00\"",
        "\"\\/\\\\\\\"\\b\\f\\n\\r\\t\"",
        "\"\u{7f}\u{80}\u{ffff}\u{10ffff}\"",
        r#"{"\u0061":1,"b":2}"#,
        r#"{"b":{"d":1,"c":[{"z":0,"y":1}]},"a":[{"b":1,"a":2}]}"#,
        r#"{"a\"b":1,"a":2,"a\\":3,"a\u0000":4,"a\n":5}"#,
        "{\"\\ue000\":1,\"\\ud83d\\ude00\":2,\"\u{ff}\":3,\"\u{d7ff}\":4}",
    ];
    for text in accepted {
        assert!(serde_accepts(text.as_bytes()), "serde_json refuses {text}");
        assert_eq!(canon(text), oracle(text), "{text}");
        assert!(canon(text).is_some(), "{text}");
    }
    assert_eq!(
        canon("[-0, -0.0, 0.000, 100.000, 1.50, 0.000001, 0.0000001]").as_deref(),
        Some("[0,0,0,100,1.5,0.000001,1e-7]")
    );
    assert_eq!(
        canon(r#"{"a":1,"\u0061":2}"#),
        None,
        "duplicates, one escaped"
    );
    assert_eq!(
        canon(r#"[{"b":1,"c":{"x":1,"x":2},"a":0}]"#),
        None,
        "deep duplicates"
    );
    assert_eq!(
        canon(r#"{"b":1,"a":2,"b":3}"#),
        None,
        "duplicates out of order"
    );
}

/// The byte scan that guarded the `serde_json` parser before this one: a reference for
/// "this document has an integer literal beyond ±2^53", on documents `serde_json` accepts.
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
                        .is_none_or(|n| n > 1 << 53);
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

/// Whether `bytes` (which `serde_json` accepts) has a duplicate member name at any depth,
/// found by `serde_json` and a set of names per object.
fn has_duplicates(bytes: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct NoDuplicates;
    impl<'de> Deserialize<'de> for NoDuplicates {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(NoDuplicates)
        }
    }
    impl<'de> Visitor<'de> for NoDuplicates {
        type Value = NoDuplicates;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON without duplicate member names")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
            Ok(self)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
            Ok(self)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
            Ok(self)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
            Ok(self)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self, E> {
            Ok(self)
        }
        fn visit_unit<E>(self) -> Result<Self, E> {
            Ok(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
            while seq.next_element::<NoDuplicates>()?.is_some() {}
            Ok(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
            let mut names = std::collections::HashSet::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<NoDuplicates>()?;
                if !names.insert(name) {
                    return Err(serde::de::Error::custom("duplicate member name"));
                }
            }
            Ok(self)
        }
    }
    serde_json::from_slice::<NoDuplicates>(bytes).is_err()
}

/// The two properties, on any bytes: what we accept `serde_json` accepts, and we write what
/// the oracle writes (soundness); what `serde_json` accepts we accept unless it has a
/// duplicate member name or an integer beyond ±2^53 (completeness; its nesting limit is
/// ours).
fn differential(bytes: &[u8]) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(bytes);
    match canonicalize(bytes) {
        Some(ours) => {
            prop_assert!(
                serde_accepts(bytes),
                "accepted what serde_json refuses: {:?}",
                shown
            );
            prop_assert!(!has_duplicates(bytes), "accepted duplicates: {:?}", shown);
            prop_assert!(
                !has_inexact_integer(bytes),
                "accepted a big integer: {:?}",
                shown
            );
            let text = std::str::from_utf8(bytes).unwrap();
            prop_assert_eq!(
                Some(String::from_utf8(ours).unwrap()),
                oracle(text),
                "{:?}",
                shown
            );
        }
        None => {
            prop_assert!(
                !serde_accepts(bytes) || has_duplicates(bytes) || has_inexact_integer(bytes),
                "refused what serde_json accepts: {:?}",
                shown
            );
        }
    }
    Ok(())
}

fn whitespace() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => prop::collection::vec(prop::sample::select(vec![" ", "\t", "\r", "\n"]), 1..4)
            .prop_map(|w| w.concat()),
    ]
}

/// `\uXXXX`, in lower- or upper-case hex.
fn hex_escape(unit: u16, upper: bool) -> String {
    if upper {
        format!("\\u{unit:04X}")
    } else {
        format!("\\u{unit:04x}")
    }
}

/// The text of a string: plain characters (any plane), short escapes, `\u` escapes of BMP
/// characters and of surrogate pairs, in either case.
fn string_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        "[a-zA-Z0-9 '/]{1,4}",
        "[\u{7f}-\u{7ff}\u{800}-\u{fffd}\u{e000}\u{fb33}\u{ffff}\u{10000}-\u{10ffff}\u{1f600}]{1,2}",
        prop::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"])
            .prop_map(String::from),
        (0u16..0x20, any::<bool>()).prop_map(|(u, upper)| hex_escape(u, upper)),
        (any::<u16>(), any::<bool>())
            .prop_filter("not a surrogate", |(u, _)| !(0xd800..0xe000).contains(u))
            .prop_map(|(u, upper)| hex_escape(u, upper)),
        (0x1_0000u32..=0x10_ffff, any::<bool>()).prop_map(|(c, upper)| {
            let c = char::from_u32(c).unwrap();
            let mut units = [0; 2];
            c.encode_utf16(&mut units);
            hex_escape(units[0], upper) + &hex_escape(units[1], upper)
        }),
    ];
    prop::collection::vec(fragment, 0..5).prop_map(|f| format!("\"{}\"", f.concat()))
}

/// Member names: a few that collide (escaped or not) or sort apart in UTF-16 and UTF-8, and
/// any string.
fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "\"\"",
            "\"a\"",
            "\"b\"",
            "\"\\u0061\"",
            "\"aa\"",
            "\"A\"",
            "\"\u{e9}\"",
            "\"\\u00e9\"",
            "\"\u{e000}\"",
            "\"\\uE000\"",
            "\"\u{fb33}\"",
            "\"\u{1f600}\"",
            "\"\\ud83d\\ude00\"",
            "\"\u{10ffff}\"",
            "\"a\\n\"",
            "\"a\\\"\"",
            "\"\\u0000\"",
        ])
        .prop_map(String::from),
        string_text(),
    ]
}

/// Number spellings: signs, leading and trailing zeros, fractions, exponents of any case
/// and sign, integers about 2^53 and beyond 64 bits, out-of-range and subnormal exponents.
fn number_text() -> impl Strategy<Value = String> {
    let int = prop_oneof![
        Just("0".to_owned()),
        "[1-9][0-9]{0,3}",
        "[1-9][0-9]{13,17}",
        prop::sample::select(vec![
            "9007199254740991",
            "9007199254740992",
            "9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "100000000000000000000",
        ])
        .prop_map(String::from),
    ];
    let fraction = prop_oneof![
        "[0-9]{1,3}",
        "[0-9]{1,22}",
        "0{4,8}[1-9][0-9]{0,3}",
        "[0-9]{1,3}0{1,4}"
    ];
    let exponent = (
        prop::sample::select(vec!["e", "E"]),
        prop::sample::select(vec!["", "+", "-"]),
        prop_oneof![
            "[0-9]{1,3}",
            prop::sample::select(vec![
                "308",
                "309",
                "324",
                "325",
                "400",
                "00",
                "0021",
                "99999999999999999999"
            ])
            .prop_map(String::from),
        ],
    )
        .prop_map(|(e, sign, digits)| format!("{e}{sign}{digits}"));
    (
        any::<bool>(),
        int,
        prop::option::of(fraction),
        prop::option::weighted(0.3, exponent),
    )
        .prop_map(|(minus, int, fraction, exponent)| {
            let mut s = String::new();
            if minus {
                s.push('-');
            }
            s.push_str(&int);
            if let Some(fraction) = fraction {
                s.push('.');
                s.push_str(&fraction);
            }
            s.push_str(exponent.as_deref().unwrap_or(""));
            s
        })
}

/// JSON text with whitespace anywhere it may be.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
        number_text(),
        string_text(),
    ];
    let value = leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            (
                prop::collection::vec((whitespace(), inner.clone(), whitespace()), 0..6),
                whitespace()
            )
                .prop_map(|(items, ws)| {
                    let items: Vec<String> =
                        items.into_iter().map(|(a, v, b)| a + &v + &b).collect();
                    format!(
                        "[{}{}]",
                        items.join(","),
                        if items.is_empty() { ws } else { String::new() }
                    )
                }),
            (
                prop::collection::vec(
                    (
                        whitespace(),
                        name_text(),
                        whitespace(),
                        whitespace(),
                        inner,
                        whitespace()
                    ),
                    0..6
                ),
                whitespace()
            )
                .prop_map(|(members, ws)| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(a, n, b, c, v, d)| format!("{a}{n}{b}:{c}{v}{d}"))
                        .collect();
                    format!(
                        "{{{}{}}}",
                        members.join(","),
                        if members.is_empty() {
                            ws
                        } else {
                            String::new()
                        }
                    )
                }),
        ]
    });
    (whitespace(), value, whitespace()).prop_map(|(a, v, b)| a + &v + &b)
}

/// Ways to break a document (or, by chance, to keep it valid).
#[derive(Clone, Debug)]
enum Mutation {
    Insert(&'static [u8]),
    Truncate,
    Delete,
    Duplicate,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let inserted: Vec<&'static [u8]> = vec![
        b",",
        b"01",
        b"0",
        b"1.",
        b".5",
        b"+1",
        b"-",
        b"e5",
        b".",
        b"\\ud800",
        b"\\udc00",
        b"\\ud800\\u0041",
        b"\x01",
        b"\x1f",
        b"\n",
        b"\t",
        b"\x0b",
        b"]",
        b"}",
        b"[",
        b"{",
        b"tru",
        b"nul",
        b"NaN",
        b"\"",
        b"\\",
        b"\\x",
        b"\\u12",
        b":",
        b" ",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\x00",
        b",]",
        b",}",
        b"\"a\":1,",
        b"00",
    ];
    prop_oneof![
        4 => prop::sample::select(inserted).prop_map(Mutation::Insert),
        1 => Just(Mutation::Truncate),
        1 => Just(Mutation::Delete),
        1 => Just(Mutation::Duplicate),
    ]
}

fn mutate(text: &str, mutation: &Mutation, at: prop::sample::Index) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let i = at.index(bytes.len() + 1);
    match *mutation {
        Mutation::Insert(inserted) => {
            bytes.splice(i..i, inserted.iter().copied());
        }
        Mutation::Truncate => bytes.truncate(i),
        Mutation::Delete if i < bytes.len() => {
            bytes.remove(i);
        }
        Mutation::Duplicate if i < bytes.len() => bytes.insert(i, bytes[i]),
        Mutation::Delete | Mutation::Duplicate => {}
    }
    bytes
}

/// The UTF-16 order, by encoding to UTF-16.
fn utf16_reference(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Generated JSON text, as it is and broken in one place, against `serde_json` and the
    /// oracle.
    #[test]
    fn text_agrees_with_serde_json_and_the_oracle(
        text in json_text(),
        mutation in prop::option::weighted(0.5, (mutation(), any::<prop::sample::Index>())),
    ) {
        differential(text.as_bytes())?;
        if let Some((mutation, at)) = mutation {
            differential(&mutate(&text, &mutation, at))?;
        }
    }

    /// Numbers alone and in an array, through both the fast and the `ryu-js` paths.
    #[test]
    fn numbers_agree_with_the_oracle(number in number_text(), ws in whitespace()) {
        differential(number.as_bytes())?;
        differential(format!("[{ws}{number}{ws},{number}]").as_bytes())?;
    }

    /// Short decimals (the fast path) are written as `ryu-js` writes their double.
    #[test]
    fn short_decimals_are_written_as_ryu_js_does(
        minus in any::<bool>(),
        int in prop_oneof!["0", "[1-9][0-9]{0,15}"],
        fraction in prop_oneof!["[0-9]{1,16}", "0{0,7}[0-9]{1,10}", "[0-9]{1,8}0{0,8}"],
    ) {
        let literal = format!("{}{int}.{fraction}", if minus { "-" } else { "" });
        let expected = ryu_js::Buffer::new().format_finite(literal.parse::<f64>().unwrap()).to_owned();
        prop_assert_eq!(canon(&literal), Some(expected), "{}", literal);
    }

    /// Any bytes with a JSON-ish alphabet, against `serde_json` and the oracle.
    #[test]
    fn json_alphabet_agrees_with_serde_json(
        bytes in prop::collection::vec(prop::sample::select(b"{}[],:\"\\/ \n01-.eE+9tfnrulasbu\xc3\xa9".to_vec()), 0..24)
    ) {
        differential(&bytes)?;
    }

    #[test]
    fn utf16_cmp_is_the_utf16_order(
        a in "[a\u{0}-\u{7f}\u{80}-\u{7ff}\u{d7ff}\u{e000}\u{fb33}\u{ffff}\u{10000}\u{1f600}\u{10ffff}]{0,4}",
        b in "[a\u{0}-\u{7f}\u{80}-\u{7ff}\u{d7ff}\u{e000}\u{fb33}\u{ffff}\u{10000}\u{1f600}\u{10ffff}]{0,4}",
    ) {
        prop_assert_eq!(super::order::utf16_cmp(a.as_bytes(), b.as_bytes()), utf16_reference(&a, &b));
        prop_assert_eq!(super::order::utf16_cmp(a.as_bytes(), a.as_bytes()), std::cmp::Ordering::Equal);
    }
}

#[test]
fn nested_objects_out_of_order_are_all_put_in_order() {
    let input = r#"{"z":{"y":[{"d":{"f":1,"e":2},"c":3},{"b":0}],"x":{"w":{"v":1,"u":2}}},"a":{"c":1,"b":2},"m":[{"o":1,"n":2}]}"#;
    let expected = r#"{"a":{"b":2,"c":1},"m":[{"n":2,"o":1}],"z":{"x":{"w":{"u":2,"v":1}},"y":[{"c":3,"d":{"e":2,"f":1}},{"b":0}]}}"#;
    assert_eq!(canon(input).as_deref(), Some(expected));
    assert_eq!(canon(input), oracle(input));
    // Out of order only deep inside, and in order only deep inside.
    for input in [
        r#"{"a":{"b":{"c":{"e":1,"d":2}}},"b":1}"#,
        r#"{"b":{"b":{"b":{"d":1,"e":2}}},"a":1}"#,
        r#"[[[{"b":1,"a":2}],{"b":1,"a":2}],{"b":{"b":1,"a":2},"a":{"b":1,"a":2}}]"#,
    ] {
        assert_eq!(canon(input), oracle(input), "{input}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// The 8-bytes-at-a-time scan stops where a byte-by-byte one does.
    #[test]
    fn plain_len_is_the_plain_prefix(
        bytes in prop::collection::vec(
            prop_oneof![4 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\')],
            0..40,
        )
    ) {
        let expected = bytes.iter().position(|&b| !super::strings::PLAIN[usize::from(b)]).unwrap_or(bytes.len());
        prop_assert_eq!(super::strings::plain_len(&bytes), expected);
    }

    /// Sort keys never contradict the UTF-16 order.
    #[test]
    fn sort_keys_agree_with_the_utf16_order(
        a in "[a\u{0}-\u{7f}\u{80}-\u{7ff}\u{d7ff}\u{e000}\u{fb33}\u{ffff}\u{10000}\u{1f600}\u{10ffff}]{0,10}",
        b in "[a\u{0}-\u{7f}\u{80}-\u{7ff}\u{d7ff}\u{e000}\u{fb33}\u{ffff}\u{10000}\u{1f600}\u{10ffff}]{0,10}",
    ) {
        let (ka, kb) = (super::order::sort_key(a.as_bytes()), super::order::sort_key(b.as_bytes()));
        if ka != kb {
            prop_assert_eq!(ka.cmp(&kb), utf16_reference(&a, &b));
        }
    }
}
