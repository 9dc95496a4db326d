//! Strings: the run of bytes copied as they are, escapes read and written.

/// The bytes of a string copied as they are: all but `"`, `\` and control characters.
pub(super) const PLAIN: [bool; 256] = {
    let mut plain = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        plain[b] = false;
        b += 1;
    }
    plain[b'"' as usize] = false;
    plain[b'\\' as usize] = false;
    plain
};

/// The length of the run of [`PLAIN`] bytes that `bytes` starts with; 8 bytes at a time.
pub(super) fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(&chunk) = bytes.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let word = u64::from_le_bytes(chunk);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // The high bit of each byte that is zero in `quote` or `backslash` or below 0x20 in
        // `word`. A borrow only leaves a byte that is such a byte, so bytes above the first
        // may be marked wrongly, but the lowest mark is exact.
        let marks = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | word.wrapping_sub(ONES * 0x20) & !word)
            & HIGH;
        if marks != 0 {
            // Little-endian: the lowest mark is the first byte.
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + bytes[i..]
        .iter()
        .position(|&b| !PLAIN[usize::from(b)])
        .unwrap_or(bytes.len() - i)
}

/// Decodes the escape at `src[i]` (a `\`): the character and the escape's length. A `\u`
/// escape of a UTF-16 surrogate must be the first half of a pair, followed by the second.
pub(super) fn unescape(src: &[u8], i: usize) -> Option<(char, usize)> {
    let c = match src.get(i + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\x08',
        b'f' => '\x0c',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(src.get(i + 2..i + 6)?)?;
            return match unit {
                0xD800..=0xDBFF => {
                    if src.get(i + 6..i + 8)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(src.get(i + 8..i + 12)?)?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return None;
                    }
                    let c = 0x1_0000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    Some((char::from_u32(c)?, 12))
                }
                _ => Some((char::from_u32(unit)?, 6)),
            };
        }
        _ => return None,
    };
    Some((c, 2))
}

pub(super) fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |n, &d| {
        let digit = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        Some(n << 4 | u32::from(digit))
    })
}

/// Writes one decoded character of a string into `buffer` as RFC 8785 section 3.2.2.2 does:
/// `"` and `\\` escaped, control characters as `\b \t \n \f \r` or `\u00xx` (lower-case hex),
/// everything else as UTF-8.
pub(super) fn write_char(c: char, buffer: &mut [u8; 6]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let escape: &[u8] = match c {
        '"' => b"\\\"",
        '\\' => b"\\\\",
        '\x08' => b"\\b",
        '\t' => b"\\t",
        '\n' => b"\\n",
        '\x0c' => b"\\f",
        '\r' => b"\\r",
        '\0'..='\x1f' => {
            let b = c as u8;
            *buffer = *b"\\u0000";
            buffer[4] = HEX[usize::from(b >> 4)];
            buffer[5] = HEX[usize::from(b & 0xf)];
            return buffer;
        }
        _ => return c.encode_utf8(buffer).as_bytes(),
    };
    buffer[..escape.len()].copy_from_slice(escape);
    &buffer[..escape.len()]
}
