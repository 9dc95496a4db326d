//! Writing the canonical form: the output copied in runs, with the members of each object
//! that was written out of order put in order.

/// A byte range, in the body or in one of the parser's buffers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

/// An object whose members were written out of order: where its `{` is in the output, where
/// its `}` is, and its members' spans in canonical order (a range of [`Parser::spans`]).
#[derive(Debug)]
pub(super) struct Reorder {
    pub(super) open: usize,
    pub(super) close: usize,
    pub(super) members: Span,
}

/// Copies `src[range]` to `out`, writing the members of each object in `reorders` in canonical
/// order. `reorders` is sorted by position and holds the objects in `range` and the objects in
/// them (and maybe objects before or after `range`, which are skipped).
pub(super) fn emit(
    src: &[u8],
    range: Span,
    reorders: &[Reorder],
    spans: &[Span],
    out: &mut Vec<u8>,
) {
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
pub(super) fn copy(src: &[u8], start: usize, end: usize, out: &mut Vec<u8>) {
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
