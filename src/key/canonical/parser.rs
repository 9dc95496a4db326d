//! The parser: reads the body once and writes its canonical form as it goes.

use super::{
    emit::{emit, Reorder, Span},
    numbers::{digits_value, short_decimal, skip_digits},
    order::{sort_key, utf16_cmp},
    strings::{plain_len, unescape, write_char, PLAIN},
};
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
