//! The one encoding every user-supplied key field goes through.
//!
//! ASCII letters, digits, `_`, `-` and `.` are kept; every other byte becomes `%XX` (upper-case
//! hex). The encoding is injective, so distinct inputs stay distinct keys, and its output never
//! contains `:` (a field separator), `{` or `}` (the Redis Cluster hash tag) or a glob character
//! (`* ? [ ] \ ^`), so no input can move into another field, escape the hash tag or widen an
//! invalidation pattern.

/// Appends `raw` to `out`, percent-encoding every byte outside `[A-Za-z0-9_.-]`.
pub(crate) fn push_encoded(out: &mut String, raw: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in raw {
        if is_kept(byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xF)] as char);
        }
    }
}

/// `raw` encoded as every key field is.
pub(crate) fn encoded(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    push_encoded(&mut out, raw.as_bytes());
    out
}

/// The encoded length of `raw`, without encoding it.
pub(crate) fn encoded_len(raw: &[u8]) -> usize {
    raw.iter().map(|&b| if is_kept(b) { 1 } else { 3 }).sum()
}

fn is_kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(raw: &str) -> String {
        let mut out = String::new();
        push_encoded(&mut out, raw.as_bytes());
        assert_eq!(out.len(), encoded_len(raw.as_bytes()));
        out
    }

    #[test]
    fn keeps_plain_ids() {
        assert_eq!(encode("m_12345"), "m_12345");
        assert_eq!(encode("a-b.c"), "a-b.c");
    }

    #[test]
    fn escapes_separators_tags_globs_and_percent() {
        assert_eq!(encode("a:b"), "a%3Ab");
        assert_eq!(encode("}x{"), "%7Dx%7B");
        assert_eq!(encode("*?[]\\^"), "%2A%3F%5B%5D%5C%5E");
        assert_eq!(encode("%3A"), "%253A");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode(""), "");
    }

    proptest::proptest! {
        #[test]
        fn output_is_safe_and_injective(a in proptest::collection::vec(proptest::num::u8::ANY, 0..32),
                                        b in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let (mut ea, mut eb) = (String::new(), String::new());
            push_encoded(&mut ea, &a);
            push_encoded(&mut eb, &b);
            let unsafe_chars = [':', '{', '}', '*', '?', '[', ']', '\\', '^'];
            proptest::prop_assert!(!ea.contains(unsafe_chars), "unsafe character in {}", ea);
            proptest::prop_assert_eq!(a == b, ea == eb);
        }
    }
}
