//! Canonical keys, in process (no Redis): the same JSON config gives the same key whatever its
//! member order, whitespace, number spelling or string escapes; a changed leaf value gives
//! another key; invalid bodies never share one.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use tower_redis_cache::{KeyFactory, Variant};

fn key(body: &[u8]) -> String {
    KeyFactory::new("monps", "test", "v1")
        .key("pred", "m_12345", &Variant::new().json_body(body))
        .into()
}

#[test]
fn the_documented_key_forms() {
    assert_eq!(key(b""), "monps:test:v1:pred:{m_12345}:default");
    let with_config = key(br#"{"risk":"high","model":"v2"}"#);
    let id = with_config
        .strip_prefix("monps:test:v1:pred:{m_12345}:")
        .unwrap();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(key(br#" { "model" : "v2" , "risk":"high" } "#), with_config);
    assert_ne!(key(br#"{"risk":"low","model":"v2"}"#), with_config);
}

/// Leaves: numbers are integers exactly representable in an `f64` (so every spelling of them
/// means one value) or floats in a range where adding 1 changes them.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::collection::vec(any::<char>(), 0..10)
            .prop_map(|c| Value::String(c.into_iter().collect())),
    ]
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,6}",
        prop::collection::vec(any::<char>(), 0..6).prop_map(|c| c.into_iter().collect()),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(member_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A config: an object with at least one member.
fn config() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(member_name(), json(), 1..6)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

/// Writes a JSON value in one of its many spellings, chosen by a seeded generator: members
/// shuffled, whitespace sprinkled, numbers and strings spelled differently.
struct Speller {
    state: u64,
    out: String,
}

impl Speller {
    fn spell(value: &Value, seed: u64) -> String {
        let mut speller = Speller {
            state: seed,
            out: String::new(),
        };
        speller.whitespace();
        speller.value(value);
        speller.whitespace();
        speller.out
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn whitespace(&mut self) {
        for _ in 0..self.pick(4) {
            let ws = [' ', '\t', '\n', '\r'][self.pick(4)];
            self.out.push(ws);
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.whitespace();
                        self.out.push(',');
                    }
                    self.whitespace();
                    self.value(item);
                    self.whitespace();
                }
                self.whitespace();
                self.out.push(']');
            }
            Value::Object(members) => {
                let mut members: Vec<(&String, &Value)> = members.iter().collect();
                for i in (1..members.len()).rev() {
                    let j = self.pick(i + 1);
                    members.swap(i, j);
                }
                self.out.push('{');
                for (i, (name, value)) in members.into_iter().enumerate() {
                    if i > 0 {
                        self.whitespace();
                        self.out.push(',');
                    }
                    self.whitespace();
                    self.string(name);
                    self.whitespace();
                    self.out.push(':');
                    self.whitespace();
                    self.value(value);
                    self.whitespace();
                }
                self.whitespace();
                self.out.push('}');
            }
        }
    }

    fn number(&mut self, n: &Number) {
        let spelling = if let Some(i) = n.as_i64() {
            match (self.pick(6), i) {
                (0, 0) => "-0".to_owned(),
                (0, _) => format!("{i}0e-1"),
                (1, _) => format!("{i}.0"),
                (2, _) => format!("{i}e0"),
                (3, _) => format!("{i}.000E+00"),
                _ => format!("{i}"),
            }
        } else {
            let f = n.as_f64().expect("finite");
            match self.pick(3) {
                0 => format!("{f:e}"),
                1 => format!("{f:E}").replace('E', "E+").replace("E+-", "E-"),
                _ => format!("{f:?}"),
            }
        };
        self.out.push_str(&spelling);
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let escaped = self.pick(3) == 0;
            match c {
                '"' if !escaped => self.out.push_str("\\\""),
                '\\' if !escaped => self.out.push_str("\\\\"),
                '/' if escaped => self.out.push_str("\\/"),
                '\n' if !escaped => self.out.push_str("\\n"),
                '\t' if !escaped => self.out.push_str("\\t"),
                c if c < ' ' || c == '"' || c == '\\' || escaped => self.unicode_escape(c),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn unicode_escape(&mut self, c: char) {
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            let escape = if self.pick(2) == 0 {
                format!("\\u{unit:04x}")
            } else {
                format!("\\u{unit:04X}")
            };
            self.out.push_str(&escape);
        }
    }
}

/// Every leaf (and empty container) of `value`, as a JSON pointer.
fn leaves(value: &Value, pointer: String, out: &mut Vec<String>) {
    let escape = |s: &str| s.replace('~', "~0").replace('/', "~1");
    match value {
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(members) if !members.is_empty() => {
            for (name, item) in members {
                leaves(item, format!("{pointer}/{}", escape(name)), out);
            }
        }
        _ => out.push(pointer),
    }
}

/// Changes one leaf to a value that is different in every spelling.
fn change(value: &mut Value) {
    *value = match value.take() {
        Value::Null => Value::Bool(false),
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i + 1),
            None => Value::from(n.as_f64().expect("finite") + 1.0),
        },
        Value::String(s) => Value::String(s + "x"),
        Value::Array(_) => Value::Array(vec![Value::Null]),
        Value::Object(_) => Value::Object([(String::new(), Value::Null)].into_iter().collect()),
    };
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn spellings_of_one_config_share_a_key(config in config(), a in any::<u64>(), b in any::<u64>()) {
        let (one, other) = (Speller::spell(&config, a), Speller::spell(&config, b));
        // The speller is right: the RFC 8785 oracle sees one value in both spellings.
        let canonical = serde_json_canonicalizer::to_vec(&config).expect("canonical form");
        for spelling in [&one, &other] {
            let parsed: Value = serde_json::from_str(spelling).expect("the speller writes JSON");
            prop_assert_eq!(&serde_json_canonicalizer::to_vec(&parsed).unwrap(), &canonical);
        }
        prop_assert_eq!(key(one.as_bytes()), key(other.as_bytes()), "{} vs {}", one, other);
        // The canonical form is one more spelling of it.
        prop_assert_eq!(key(one.as_bytes()), key(&canonical));
    }

    #[test]
    fn a_changed_leaf_changes_the_key(
        config in config(),
        which in any::<prop::sample::Index>(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let mut changed = config.clone();
        let mut pointers = Vec::new();
        leaves(&changed, String::new(), &mut pointers);
        let pointer = &pointers[which.index(pointers.len())];
        change(changed.pointer_mut(pointer).expect("pointer to a leaf"));
        prop_assert_ne!(&changed, &config);
        let (one, other) = (Speller::spell(&config, a), Speller::spell(&changed, b));
        prop_assert_ne!(key(one.as_bytes()), key(other.as_bytes()), "{} vs {}", one, other);
    }

    #[test]
    fn invalid_bodies_never_share_a_key(
        a in prop::collection::vec(any::<u8>(), 1..32),
        b in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        prop_assume!(a != b);
        prop_assume!(serde_json::from_slice::<Value>(&a).is_err());
        prop_assume!(serde_json::from_slice::<Value>(&b).is_err());
        prop_assert_ne!(key(&a), key(&b));
        prop_assert!(!key(&a).ends_with(":default"));
    }

    #[test]
    fn an_invalid_body_never_shares_a_valid_configs_key(config in config(), seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let valid = Speller::spell(&config, seed);
        let truncated = &valid.as_bytes()[..cut.index(valid.trim_end().len())];
        prop_assume!(serde_json::from_slice::<Value>(truncated).is_err());
        prop_assert_ne!(key(truncated), key(valid.as_bytes()));
    }
}
