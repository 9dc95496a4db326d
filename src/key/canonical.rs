//! RFC 8785 (JSON Canonicalization Scheme) for request bodies.
//!
//! A strict, hand-written parser checks once that the body is UTF-8, then reads it once and
//! writes its canonical form as it goes: members sorted by their UTF-16 code units, no
//! insignificant whitespace, numbers in ECMAScript form, minimal string escapes. It builds no
//! tree and copies little: the runs of the body that are already canonical (strings without
//! escapes, integer literals, `true`, `false`, `null`, punctuation) reach the output in one copy
//! up to the next byte that is not; numbers with a fraction or an exponent are parsed (correctly
//! rounded, as by `serde_json`'s `float_roundtrip`) and written by `ryu-js`, except decimals of
//! at most 15 digits, which are their own shortest form less trailing zeros. An object whose
//! members are out of order is put in order at the end, by one more copy of the output however
//! deep the nesting.
//!
//! It accepts a subset of what `serde_json` (RFC 8259) accepts and, where it accepts, writes
//! exactly what `serde_json_canonicalizer` writes through a `serde_json::Value`, which costs
//! about 10x more (`parse to Value` plus `jcs to_vec of parsed Value` in `benches/keys.rs`);
//! that crate stays the oracle of the differential tests below (JSON text generated with
//! whitespace, escapes, number spellings and breakages, against `serde_json` and the oracle)
//! and in `tests/it/keys.rs`.
//!
//! Anything that is not such a document (invalid UTF-8 or JSON, duplicate member names,
//! numbers out of range or integers beyond 2^53, which a double cannot tell apart, nesting
//! deeper than 127 arrays and objects, where `serde_json`'s recursion limit stops) is reported
//! as `None`; callers then key the raw bytes in a domain of their own, so invalid bodies never
//! share one key.

use std::cmp::Ordering;

/// Returns the RFC 8785 canonical form of `body`, or `None` when `body` is not a JSON document
/// that can be canonicalised without losing information.
pub(crate) fn canonicalize(body: &[u8]) -> Option<Vec<u8>> {
    // Checked once here: the parser then only has to find the ASCII bytes that matter.
    std::str::from_utf8(body).ok()?;
    let mut parser = Parser::new(body);
    parser.value()?;
    parser.skip_whitespace();
    if parser.pos != body.len() {
        return None;
    }
    Some(parser.finish())
}

/// RFC 8785 writes every number as an IEEE 754 double, which holds integers exactly only up to
/// 2^53: beyond that, distinct ids such as 9007199254740992 and 9007199254740993 would share one
/// canonical form, and one request would be served the other's response. A body with such an
/// integer literal is keyed by its raw bytes instead. (Fractions and exponents keep RFC 8785's
/// double semantics: `1e30` is a double however it is spelled.)
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// The deepest nesting of arrays and objects accepted: `serde_json`'s (its recursion limit of
/// 128 counts down to 0 and fails there, so 127 levels parse and 128 do not).
const MAX_DEPTH: usize = 127;

/// A byte range, in the body or in one of the parser's buffers.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
}

/// Where the decoded bytes of a member name are.
#[derive(Clone, Copy, Debug)]
enum Name {
    /// A name without escapes: its bytes in the body, between the quotes.
    Body(Span),
    /// A name with escapes, decoded into [`Parser::names`].
    Decoded(Span),
}

/// A member of an object being parsed: its name and where `"name":value` is in the output.
#[derive(Clone, Copy, Debug)]
struct Member {
    /// [`sort_key`] of the name: members whose keys differ sort as their keys do.
    key: u64,
    name: Name,
    span: Span,
}

/// An object whose members were written out of order: where its `{` is in the output, where
/// its `}` is, and its members' spans in canonical order (a range of [`Parser::spans`]).
#[derive(Debug)]
struct Reorder {
    open: usize,
    close: usize,
    members: Span,
}

/// The parser and the writer of the canonical form.
///
/// Most of a compact document is its own canonical form, so the parser does not copy bytes as
/// it goes: the output is `out` followed by the body's bytes from `copied` to `pos`, and only
/// what differs (whitespace dropped, a number or an escape rewritten) makes it copy that run to
/// `out` first ([`replace`](Self::replace)).
struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    /// Where in `src` the bytes not yet in `out` (but in the output) begin.
    copied: usize,
    /// Arrays and objects open at `pos`.
    depth: usize,
    /// The canonical form up to `copied`, except that the members of each object are in
    /// input order.
    out: Vec<u8>,
    /// The members of the objects open at `pos`, innermost last.
    members: Vec<Member>,
    /// The decoded names, with escapes, of `members`.
    names: Vec<u8>,
    /// The objects of the output to put in order, innermost first.
    reorders: Vec<Reorder>,
    spans: Vec<Span>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a [u8]) -> Self {
        Self {
            src,
            pos: 0,
            copied: 0,
            depth: 0,
            out: Vec::with_capacity(src.len()),
            members: Vec::with_capacity(16),
            names: Vec::new(),
            reorders: Vec::new(),
            spans: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// The length of the output so far (up to `pos`).
    fn written(&self) -> usize {
        self.out.len() + (self.pos - self.copied)
    }

    /// Writes `with` for `src[start..end]` (with `copied <= start <= end`) and moves `pos` to
    /// `end`.
    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        self.out.extend_from_slice(&self.src[self.copied..start]);
        self.out.extend_from_slice(with);
        self.pos = end;
        self.copied = end;
    }

    /// RFC 8259's whitespace: space, tab, line feed, carriage return; the output has none.
    #[inline(always)]
    fn skip_whitespace(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.drop_whitespace();
        }
    }

    #[inline(never)]
    fn drop_whitespace(&mut self) {
        let mut end = self.pos + 1;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(end) {
            end += 1;
        }
        self.replace(self.pos, end, b"");
    }

    /// Parses one value, with the whitespace before it, and writes it.
    fn value(&mut self) -> Option<()> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(false).map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Option<()> {
        if self.src.get(self.pos..self.pos + word.len())? != word {
            return None;
        }
        self.pos += word.len();
        Some(())
    }

    /// Opens an array or object at `pos`.
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.pos += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn array(&mut self) -> Option<()> {
        self.enter()?;
        self.skip_whitespace();
        if self.peek() != Some(b']') {
            loop {
                self.value()?;
                self.skip_whitespace();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b']' => break,
                    _ => return None,
                }
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Some(())
    }

    fn object(&mut self) -> Option<()> {
        let open = self.written();
        self.enter()?;
        self.skip_whitespace();
        if self.peek() != Some(b'}') {
            let first = self.members.len();
            let names = self.names.len();
            loop {
                self.skip_whitespace();
                if self.peek()? != b'"' {
                    return None;
                }
                let start = self.written();
                let name = self.string(true)?;
                self.skip_whitespace();
                if self.peek()? != b':' {
                    return None;
                }
                self.pos += 1;
                self.value()?;
                let span = Span {
                    start,
                    end: self.written(),
                };
                let key = sort_key(match name {
                    Name::Body(s) => &self.src[s.start..s.end],
                    Name::Decoded(s) => &self.names[s.start..s.end],
                });
                self.members.push(Member { key, name, span });
                self.skip_whitespace();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
            self.order_members(first, open)?;
            // The names of this object and of the objects in it are no longer needed.
            self.names.truncate(names);
        }
        self.pos += 1;
        self.depth -= 1;
        Some(())
    }

    /// Checks the members of the object just parsed (`members[first..]`, `pos` at its `}`)
    /// for duplicates and, when they are out of order, records their canonical order for
    /// [`finish`](Self::finish).
    fn order_members(&mut self, first: usize, open: usize) -> Option<()> {
        let close = self.written();
        let (src, names) = (self.src, &self.names);
        let name = |member: &Member| match member.name {
            Name::Body(s) => &src[s.start..s.end],
            Name::Decoded(s) => &names[s.start..s.end],
        };
        let order =
            |a: &Member, b: &Member| a.key.cmp(&b.key).then_with(|| utf16_cmp(name(a), name(b)));
        let members = &mut self.members[first..];
        let mut in_order = true;
        for pair in members.windows(2) {
            match order(&pair[0], &pair[1]) {
                Ordering::Less => {}
                // serde_json keeps the last duplicate while a handler deserialising into a
                // struct rejects the document: keying either way would hide an input from the
                // key.
                Ordering::Equal => return None,
                Ordering::Greater => {
                    in_order = false;
                    break;
                }
            }
        }
        if !in_order {
            members.sort_unstable_by(order);
            if members
                .windows(2)
                .any(|pair| pair[0].key == pair[1].key && name(&pair[0]) == name(&pair[1]))
            {
                return None;
            }
            if self.reorders.is_empty() {
                self.reorders.reserve(16);
                self.spans.reserve(64);
            }
            let start = self.spans.len();
            self.spans.extend(members.iter().map(|member| member.span));
            let members = Span {
                start,
                end: self.spans.len(),
            };
            self.reorders.push(Reorder {
                open,
                close,
                members,
            });
        }
        self.members.truncate(first);
        Some(())
    }

    /// Parses the string at `pos` (at its `"`) and writes its canonical form. For a member
    /// name, returns where its decoded bytes are.
    fn string(&mut self, name: bool) -> Option<Name> {
        let src = self.src;
        let start = self.pos + 1;
        let i = start + plain_len(&src[start..]);
        match *src.get(i)? {
            // No escape: no `"`, `\` or control character inside, which is the canonical form.
            b'"' => {
                self.pos = i + 1;
                Some(Name::Body(Span { start, end: i }))
            }
            b'\\' => self.escaped_string(start, i, name),
            // A control character: RFC 8259 wants it escaped.
            _ => None,
        }
    }

    /// The rest of [`string`](Self::string) from its first escape, at `i`.
    fn escaped_string(&mut self, start: usize, mut i: usize, name: bool) -> Option<Name> {
        let src = self.src;
        let decoded = self.names.len();
        if name {
            self.names.extend_from_slice(&src[start..i]);
        }
        loop {
            let byte = *src.get(i)?;
            if PLAIN[usize::from(byte)] {
                let run = i;
                i += plain_len(&src[i..]);
                if name {
                    self.names.extend_from_slice(&src[run..i]);
                }
            } else if byte == b'"' {
                break;
            } else if byte == b'\\' {
                let (c, len) = unescape(src, i)?;
                if len != 2 || c == '/' {
                    // `\/` and `\u` escapes are rewritten (the others are their own
                    // canonical form).
                    let mut escaped = [0; 6];
                    let escaped = write_char(c, &mut escaped);
                    self.replace(i, i + len, escaped);
                }
                if name {
                    let mut utf8 = [0; 4];
                    self.names
                        .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                i += len;
            } else {
                return None;
            }
        }
        self.pos = i + 1;
        Some(Name::Decoded(Span {
            start: decoded,
            end: self.names.len(),
        }))
    }

    /// Parses the number at `pos` (RFC 8259: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`)
    /// and writes it in ECMAScript form.
    fn number(&mut self) -> Option<()> {
        let src = self.src;
        let start = self.pos;
        let mut i = start + usize::from(src[start] == b'-');
        let int_start = i;
        match src.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = skip_digits(src, i + 1),
            _ => return None,
        }
        let int_end = i;
        let mut fraction = None;
        if src.get(i) == Some(&b'.') {
            let digits = i + 1;
            i = skip_digits(src, digits);
            if i == digits {
                return None;
            }
            fraction = Some(Span {
                start: digits,
                end: i,
            });
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = src.get(i) {
            exponent = true;
            i += 1;
            if let Some(b'+' | b'-') = src.get(i) {
                i += 1;
            }
            let digits = i;
            i = skip_digits(src, digits);
            if i == digits {
                return None;
            }
        }
        let int = &src[int_start..int_end];
        match fraction {
            None if !exponent => {
                // An integer literal: written as it is (it has no leading zero), `-0` as `0`.
                if int.len() > 16 || digits_value(int) > MAX_EXACT_INTEGER {
                    return None;
                }
                if int == b"0" && int_start != start {
                    self.replace(start, i, b"0");
                } else {
                    self.pos = i;
                }
            }
            Some(fraction) if !exponent && short_decimal(int, &src[fraction.start..i]) => {
                // ECMAScript's shortest round trip gives back the literal's own digits, less
                // the fraction's trailing zeros (and the `.` if no digit is left).
                let fraction = &src[fraction.start..i];
                let kept =
                    fraction.len() - fraction.iter().rev().take_while(|&&d| d == b'0').count();
                if kept == fraction.len() {
                    self.pos = i;
                } else if kept > 0 {
                    self.replace(int_end + 1 + kept, i, b"");
                } else if int != b"0" {
                    self.replace(int_end, i, b"");
                } else {
                    // Zero, whatever its sign.
                    self.replace(start, i, b"0");
                }
            }
            _ => {
                // Correctly rounded, as serde_json's `float_roundtrip`.
                let value: f64 = std::str::from_utf8(&src[start..i]).ok()?.parse().ok()?;
                if !value.is_finite() {
                    return None;
                }
                let mut buffer = ryu_js::Buffer::new();
                self.replace(start, i, buffer.format_finite(value).as_bytes());
            }
        }
        Some(())
    }

    /// The canonical form: the output, with the members of every object in
    /// [`reorders`](Self::reorders) put in order.
    fn finish(mut self) -> Vec<u8> {
        self.replace(self.pos, self.pos, b"");
        if self.reorders.is_empty() {
            return self.out;
        }
        let mut reorders = self.reorders;
        // By position: an object before the objects in it.
        reorders.sort_unstable_by_key(|r| r.open);
        let mut out = Vec::with_capacity(self.out.len());
        let all = Span {
            start: 0,
            end: self.out.len(),
        };
        emit(&self.out, all, &reorders, &self.spans, &mut out);
        out
    }
}

/// Copies `src[range]` to `out`, writing the members of each object in `reorders` in canonical
/// order. `reorders` is sorted by position and holds the objects in `range` and the objects in
/// them (and maybe objects before or after `range`, which are skipped).
fn emit(src: &[u8], range: Span, reorders: &[Reorder], spans: &[Span], out: &mut Vec<u8>) {
    let mut at = range.start;
    // The first object in `range` (a member's span starts after its object's `{`).
    let mut next = reorders.partition_point(|r| r.open < range.start);
    while let Some(object) = reorders.get(next).filter(|r| r.open < range.end) {
        copy(src, at, object.open + 1, out);
        // The objects inside this one follow it.
        let inner = &reorders[next + 1..];
        let inner = &inner[..inner.partition_point(|r| r.open < object.close)];
        for (i, &member) in spans[object.members.start..object.members.end]
            .iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            if inner.is_empty() {
                copy(src, member.start, member.end, out);
            } else {
                emit(src, member, inner, spans, out);
            }
        }
        at = object.close;
        next += 1 + inner.len();
    }
    copy(src, at, range.end, out);
}

/// `out.extend_from_slice(&src[start..end])`, without a call to `memcpy` for the short runs
/// that members usually are.
fn copy(src: &[u8], start: usize, end: usize, out: &mut Vec<u8>) {
    const SHORT: usize = 32;
    let len = end - start;
    match src
        .get(start..)
        .and_then(|rest| rest.first_chunk::<SHORT>())
    {
        Some(chunk) if len <= SHORT => {
            out.extend_from_slice(chunk);
            out.truncate(out.len() - (SHORT - len));
        }
        _ => out.extend_from_slice(&src[start..end]),
    }
}

/// The bytes of a string copied as they are: all but `"`, `\` and control characters.
const PLAIN: [bool; 256] = {
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
fn plain_len(bytes: &[u8]) -> usize {
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

fn skip_digits(src: &[u8], mut i: usize) -> usize {
    while src.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// The value of at most 19 decimal digits.
fn digits_value(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0'))
}

/// Whether the decimal literal `int.fraction` (no exponent) is written in ECMAScript form as
/// itself, less the fraction's trailing zeros (and the `.` when nothing is left of it, and the
/// sign of a zero).
///
/// It is when it has at most 15 significant digits (`f64::DIGITS`: distinct such decimals are
/// distinct doubles, so no shorter decimal rounds to the same double and the shortest round trip
/// gives these digits back) and ECMAScript prints it without an exponent (from 1e-6 up to 1e21;
/// 15 digits stay below 1e15).
fn short_decimal(int: &[u8], fraction: &[u8]) -> bool {
    let kept = fraction.len() - fraction.iter().rev().take_while(|&&d| d == b'0').count();
    if int == b"0" {
        let zeros = fraction.iter().take_while(|&&d| d == b'0').count();
        kept == 0 || (zeros <= 5 && kept - zeros <= 15)
    } else {
        int.len() + kept <= 15
    }
}

/// Decodes the escape at `src[i]` (a `\`): the character and the escape's length. A `\u`
/// escape of a UTF-16 surrogate must be the first half of a pair, followed by the second.
fn unescape(src: &[u8], i: usize) -> Option<(char, usize)> {
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

fn hex4(digits: &[u8]) -> Option<u32> {
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
fn write_char(c: char, buffer: &mut [u8; 6]) -> &[u8] {
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

/// The first 8 bytes of `name` (padded with zeros) as a number whose order is the UTF-16 order
/// of the names (see [`utf16_cmp`]): `F0..F4`, the lead bytes of characters beyond U+FFFF, are
/// moved below `EE`, `EF`. Names whose keys differ sort as their keys do; equal keys say
/// nothing.
fn sort_key(name: &[u8]) -> u64 {
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
fn utf16_cmp(a: &[u8], b: &[u8]) -> Ordering {
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
            prop_assert_eq!(super::utf16_cmp(a.as_bytes(), b.as_bytes()), utf16_reference(&a, &b));
            prop_assert_eq!(super::utf16_cmp(a.as_bytes(), a.as_bytes()), std::cmp::Ordering::Equal);
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
            let expected = bytes.iter().position(|&b| !super::PLAIN[usize::from(b)]).unwrap_or(bytes.len());
            prop_assert_eq!(super::plain_len(&bytes), expected);
        }

        /// Sort keys never contradict the UTF-16 order.
        #[test]
        fn sort_keys_agree_with_the_utf16_order(
            a in "[a\u{0}-\u{7f}\u{80}-\u{7ff}\u{d7ff}\u{e000}\u{fb33}\u{ffff}\u{10000}\u{1f600}\u{10ffff}]{0,10}",
            b in "[a\u{0}-\u{7f}\u{80}-\u{7ff}\u{d7ff}\u{e000}\u{fb33}\u{ffff}\u{10000}\u{1f600}\u{10ffff}]{0,10}",
        ) {
            let (ka, kb) = (super::sort_key(a.as_bytes()), super::sort_key(b.as_bytes()));
            if ka != kb {
                prop_assert_eq!(ka.cmp(&kb), utf16_reference(&a, &b));
            }
        }
    }
}
