//! The order of member names: RFC 8785 sorts them by UTF-16 code units.

use std::cmp::Ordering;

/// The first 8 bytes of `name` (padded with zeros) as a number whose order is the UTF-16 order
/// of the names (see [`utf16_cmp`]): `F0..F4`, the lead bytes of characters beyond U+FFFF, are
/// moved below `EE`, `EF`. Names whose keys differ sort as their keys do; equal keys say
/// nothing.
pub(super) fn sort_key(name: &[u8]) -> u64 {
    let mut key = [0; 8];
    match name.first_chunk::<8>() {
        Some(&first) => key = first,
        None => key[..name.len()].copy_from_slice(name),
    }
    if u64::from_ne_bytes(key) & 0x8080_8080_8080_8080 != 0 {
        for b in &mut key {
            *b = match *b {
                0xEE | 0xEF => *b + 5,
                0xF0..=0xF4 => *b - 2,
                other => other,
            };
        }
    }
    u64::from_be_bytes(key)
}

/// RFC 8785 sorts member names by their UTF-16 code units. On UTF-8 that is byte order, except
/// that characters beyond U+FFFF (lead bytes F0..F4; surrogates D800..DFFF in UTF-16) sort
/// before U+E000..U+FFFF (lead bytes EE, EF).
pub(super) fn utf16_cmp(a: &[u8], b: &[u8]) -> Ordering {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        None => a.len().cmp(&b.len()),
        Some(i) => {
            // The strings agree before `i`, so `i` starts a character in both or in neither;
            // if in neither, both characters have one length and sort as code points.
            let (x, y) = (a[i], b[i]);
            if x >= 0xEE && y >= 0xEE && (x >= 0xF0) != (y >= 0xF0) {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        }
    }
}
