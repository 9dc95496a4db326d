//! Entity-tags: which `ETag` values are valid, and the strong one a stored entry gets when its
//! handler gave none.

use bytes::Bytes;
use http::HeaderValue;

/// The opaque tag of a valid entity-tag (`"x"` or `W/"x"`), quotes included; `None` if invalid.
pub(super) fn opaque_tag(tag: &[u8]) -> Option<&[u8]> {
    let tag = tag.trim_ascii();
    let opaque = tag.strip_prefix(b"W/").unwrap_or(tag);
    let inner = opaque.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    inner
        .iter()
        .all(|&c| c == 0x21 || (0x23..=0x7E).contains(&c) || c >= 0x80)
        .then_some(opaque)
}

/// Whether `value` is a valid entity-tag.
pub(crate) fn is_entity_tag(value: &HeaderValue) -> bool {
    opaque_tag(value.as_bytes()).is_some()
}

/// A strong entity-tag for `body`: its 128-bit xxHash3, in hex.
pub(crate) fn derived_etag(body: &Bytes) -> HeaderValue {
    let digest = xxhash_rust::xxh3::xxh3_128(body);
    HeaderValue::from_str(&format!("\"{digest:032x}\"")).expect("hex in quotes is a valid value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_are_validated() {
        assert!(is_entity_tag(&HeaderValue::from_static("\"abc\"")));
        assert!(is_entity_tag(&HeaderValue::from_static("W/\"\"")));
        assert!(!is_entity_tag(&HeaderValue::from_static("abc")));
        assert!(!is_entity_tag(&HeaderValue::from_static("\"a\"b\"")));
        let derived = derived_etag(&Bytes::from_static(b"body"));
        assert!(is_entity_tag(&derived));
        assert_eq!(derived, derived_etag(&Bytes::from_static(b"body")));
    }
}
