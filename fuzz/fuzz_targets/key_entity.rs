//! `KeyFactory::key` and `KeyFactory::entity_pattern` on arbitrary ids and namespaces.
//!
//! Properties, for any namespace and any two ids `a` and `b`:
//! - a key has exactly six `:`-separated fields, exactly one `{` and one `}` (the hash tag is
//!   the whole fifth field), and no glob character (`* ? [ ] \ ^`) anywhere;
//! - an entity pattern is `prefix:*:{tag}:*` with the same tag as the key, and its only glob
//!   characters are those two `*`;
//! - under Redis' glob rules, the pattern of `a` matches the key of `b` exactly when `a == b`
//!   (an invalidation never widens to another entity), in any namespace.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run key_entity -- -max_total_time=180`
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_redis_cache::{KeyFactory, Variant};

const GLOB: [char; 6] = ['*', '?', '[', ']', '\\', '^'];

fuzz_target!(|input: (String, String, String, bool)| {
    let (namespace, a, b, with_variant) = input;
    let keys = KeyFactory::new("monps", "test", "v1");
    let variant = if with_variant {
        Variant::new().json_body(a.as_bytes()).query(&b, &namespace)
    } else {
        Variant::new()
    };
    let key_a = keys.key(&namespace, &a, &variant);
    let key_b = keys.key(&namespace, &b, &variant);
    let tag_a = check_key(key_a.as_str());
    let tag_b = check_key(key_b.as_str());
    assert_eq!(tag_a == tag_b, a == b, "entity encoding is not injective");

    let pattern = keys.entity_pattern(&a);
    assert_eq!(pattern, format!("monps:test:v1:*:{tag_a}:*"));
    assert_eq!(pattern.matches(GLOB).count(), 2, "pattern {pattern:?}");
    assert!(glob_match(pattern.as_bytes(), key_a.as_str().as_bytes()));
    assert_eq!(
        glob_match(pattern.as_bytes(), key_b.as_str().as_bytes()),
        a == b,
        "the pattern of {a:?} vs the key of {b:?}: {pattern:?} / {key_b}"
    );
    // The pattern spans namespaces: `b`'s key in another one is matched exactly when b == a.
    let other = keys.key("other", &b, &Variant::new());
    assert_eq!(
        glob_match(pattern.as_bytes(), other.as_str().as_bytes()),
        a == b
    );
});

/// Checks the shape of a key and returns its hash tag field (`{...}`).
fn check_key(key: &str) -> &str {
    let fields: Vec<&str> = key.split(':').collect();
    assert_eq!(fields.len(), 6, "fields of {key:?}");
    assert_eq!(key.matches('{').count(), 1, "{key:?}");
    assert_eq!(key.matches('}').count(), 1, "{key:?}");
    let tag = fields[4];
    assert!(tag.starts_with('{') && tag.ends_with('}'), "{key:?}");
    assert!(!key.contains(GLOB), "glob character in {key:?}");
    assert!(key.is_ascii(), "{key:?}");
    tag
}

/// Redis' `stringmatchlen` (case-sensitive): `*`, `?`, `[...]` with `^` and ranges, `\` escapes.
fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    match pattern.split_first() {
        None => string.is_empty(),
        Some((b'*', rest)) => (0..=string.len()).any(|i| glob_match(rest, &string[i..])),
        Some((b'?', rest)) => !string.is_empty() && glob_match(rest, &string[1..]),
        Some((b'[', rest)) => {
            let Some((&c, tail)) = string.split_first() else {
                return false;
            };
            let (negate, mut p) = match rest.split_first() {
                Some((b'^', p)) => (true, p),
                _ => (false, rest),
            };
            let mut matched = false;
            loop {
                match p {
                    [] => break,
                    [b']', r @ ..] => {
                        p = r;
                        break;
                    }
                    [b'\\', x, r @ ..] => {
                        matched |= *x == c;
                        p = r;
                    }
                    [lo, b'-', hi, r @ ..] if *hi != b']' => {
                        let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                        matched |= (lo..=hi).contains(&c);
                        p = r;
                    }
                    [x, r @ ..] => {
                        matched |= *x == c;
                        p = r;
                    }
                }
            }
            matched != negate && glob_match(p, tail)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            string.first() == Some(&rest[0]) && glob_match(&rest[1..], &string[1..])
        }
        Some((&c, rest)) => string.first() == Some(&c) && glob_match(rest, &string[1..]),
    }
}
