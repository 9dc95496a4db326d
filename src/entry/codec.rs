//! The stored entry: a compact, versioned binary encoding of one response.
//!
//! Layout of version 2 (integers big-endian):
//!
//! ```text
//! "TRC" 0x02                    magic and version
//! u64 stored_at                 milliseconds since the Unix epoch
//! u64 ttl                       milliseconds
//! u32 stale_while_revalidate    milliseconds past the TTL it may be served while refreshed
//! u32 stale_if_error            milliseconds past the TTL it may be served instead of an error
//! u16 status
//! u32 len, bytes                request identity (SHA-256 of path and variant inputs), checked on read
//! u16 count, count x { u16 len, name, u32 len, value }   headers
//! u32 len, bytes                body
//! ```
//!
//! Version 3 is version 2 with a compressed body: a `u8` body encoding (1: LZ4 block, its
//! uncompressed length prepended) before the body field. It is written only for a compressed
//! body, so entries of uncompressed bodies stay readable by version-2 readers.
//!
//! Versions 4 and 5 are versions 2 and 3 with `u32 compute` (milliseconds the inner service
//! took, for refresh-ahead) after `stale_if_error`. They are written only for entries that
//! record it (routes with refresh-ahead), so other entries stay readable by older readers.
//!
//! Decoding checks every length against the bytes present and every header against `http`'s
//! rules; anything else (another version, foreign or truncated bytes, trailing bytes, a body
//! that does not decompress) is an [`EntryError`], which the cache treats as a miss and
//! overwrites. Version 1 (version 2 without the two stale windows) is still read, with no stale
//! windows.

use super::{
    compression::{decompress, Compression},
    Entry,
};
use crate::millis::millis;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

const MAGIC: &[u8; 3] = b"TRC";
/// How many headers a hit adds to the stored ones.
const HIT_HEADERS: usize = 3;
const VERSION: u8 = 2;
/// The version of entries whose body is compressed.
const COMPRESSED_VERSION: u8 = 3;
/// What a version with the compute time adds to the one without.
const WITH_COMPUTE: u8 = 2;
/// The body encoding of version 3: LZ4, the uncompressed length prepended.
const LZ4: u8 = 1;

/// The bytes an encoded entry takes besides its identity, headers and body: magic and version
/// (4), stored_at (8), TTL (8), the stale windows (4 + 4), the compute time (4, when
/// recorded), status (2), the identity's length (4), the header count (2), the body encoding
/// (1, compressed bodies only) and the body's length (4).
const FIXED_LEN: usize = 4 + 8 + 8 + 4 + 4 + 4 + 2 + 4 + 2 + 1 + 4;

/// What one header takes in an encoded entry.
pub(crate) fn header_len(name: &HeaderName, value: &HeaderValue) -> usize {
    2 + name.as_str().len() + 4 + value.len()
}

/// The most an entry takes encoded, given what its headers take ([`header_len`] summed), the
/// length of its identity and of its (uncompressed) body.
pub(crate) fn max_encoded_len(headers_len: usize, identity_len: usize, body_len: usize) -> usize {
    FIXED_LEN
        .saturating_add(headers_len)
        .saturating_add(identity_len)
        .saturating_add(body_len)
}

/// Why bytes read from the store are not an [`Entry`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// The bytes do not start with this crate's magic.
    Foreign,
    /// Written by another version of the encoding.
    UnknownVersion(u8),
    /// The bytes end early, carry trailing bytes or hold an invalid field.
    Corrupt(&'static str),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Foreign => f.write_str("not a cache entry"),
            EntryError::UnknownVersion(v) => write!(f, "unknown entry version {v}"),
            EntryError::Corrupt(what) => write!(f, "corrupt entry: {what}"),
        }
    }
}

impl std::error::Error for EntryError {}

impl Entry {
    /// Encodes the entry; the body and identity are copied once into the result.
    pub fn encode(&self) -> Bytes {
        self.encode_body(None)
    }

    /// Encodes the entry with its body compressed as `compression` says.
    pub(crate) fn encode_with(&self, compression: Compression) -> Bytes {
        self.encode_body(compression.compress(&self.body))
    }

    fn encode_body(&self, compressed: Option<Vec<u8>>) -> Bytes {
        let body: &[u8] = compressed.as_deref().unwrap_or(&self.body);
        let headers_len = self.headers.iter().map(|(n, v)| header_len(n, v)).sum();
        let mut out = BytesMut::with_capacity(max_encoded_len(
            headers_len,
            self.identity.len(),
            body.len(),
        ));
        out.put_slice(MAGIC);
        let version = match compressed {
            Some(_) => COMPRESSED_VERSION,
            None => VERSION,
        };
        let compute = window_millis(self.compute);
        out.put_u8(match compute {
            0 => version,
            _ => version + WITH_COMPUTE,
        });
        out.put_u64(millis_since_epoch(self.stored_at));
        out.put_u64(millis(self.ttl));
        out.put_u32(window_millis(self.stale_while_revalidate));
        out.put_u32(window_millis(self.stale_if_error));
        if compute > 0 {
            out.put_u32(compute);
        }
        out.put_u16(self.status.as_u16());
        put_u32_prefixed(&mut out, &self.identity);
        let count = self.headers.len().min(usize::from(u16::MAX));
        out.put_u16(count as u16);
        for (name, value) in self.headers.iter().take(count) {
            // Header names are far shorter than 64 KiB (hyper caps whole heads well below that).
            out.put_u16(name.as_str().len() as u16);
            out.put_slice(name.as_str().as_bytes());
            put_u32_prefixed(&mut out, value.as_bytes());
        }
        if compressed.is_some() {
            out.put_u8(LZ4);
        }
        put_u32_prefixed(&mut out, body);
        out.freeze()
    }

    /// Decodes an entry; body, identity and header values share `bytes` without copying.
    pub fn decode(bytes: Bytes) -> Result<Self, EntryError> {
        let mut r = Reader(bytes);
        if r.0.len() < 4 || &r.0[..3] != MAGIC {
            return Err(EntryError::Foreign);
        }
        let version = r.0[3];
        if !(1..=COMPRESSED_VERSION + WITH_COMPUTE).contains(&version) {
            return Err(EntryError::UnknownVersion(version));
        }
        let (version, with_compute) = match version {
            4.. => (version - WITH_COMPUTE, true),
            _ => (version, false),
        };
        r.0.advance(4);
        let stored_at = UNIX_EPOCH
            .checked_add(Duration::from_millis(r.u64()?))
            .ok_or(EntryError::Corrupt("stored_at"))?;
        let ttl = Duration::from_millis(r.u64()?);
        let (stale_while_revalidate, stale_if_error) = match version {
            1 => (Duration::ZERO, Duration::ZERO),
            _ => (
                Duration::from_millis(u64::from(r.u32()?)),
                Duration::from_millis(u64::from(r.u32()?)),
            ),
        };
        let compute = match with_compute {
            true => Duration::from_millis(u64::from(r.u32()?)),
            false => Duration::ZERO,
        };
        let status = StatusCode::from_u16(r.u16()?).map_err(|_| EntryError::Corrupt("status"))?;
        let identity = r.u32_prefixed()?;
        let count = r.u16()?;
        // The count is untrusted: never let it size an allocation (http panics past its limit).
        // Room for the three headers a hit adds (`Content-Length`, `Age`, `Cache-Status`), so
        // serving it does not grow and rehash the map.
        let mut headers = HeaderMap::with_capacity(usize::from(count).min(64) + HIT_HEADERS);
        for _ in 0..count {
            let name_len = usize::from(r.u16()?);
            let name = r.take(name_len)?;
            let name =
                HeaderName::from_bytes(&name).map_err(|_| EntryError::Corrupt("header name"))?;
            let value = HeaderValue::from_maybe_shared(r.u32_prefixed()?)
                .map_err(|_| EntryError::Corrupt("header value"))?;
            headers
                .try_append(name, value)
                .map_err(|_| EntryError::Corrupt("too many headers"))?;
        }
        let body = match version {
            COMPRESSED_VERSION => {
                let encoding = r.take(1)?;
                if encoding[..] != [LZ4] {
                    return Err(EntryError::Corrupt("body encoding"));
                }
                let compressed = r.u32_prefixed()?;
                if !r.0.is_empty() {
                    return Err(EntryError::Corrupt("trailing bytes"));
                }
                let body = decompress(&compressed).ok_or(EntryError::Corrupt("compressed body"))?;
                Bytes::from(body)
            }
            _ => r.u32_prefixed()?,
        };
        if !r.0.is_empty() {
            return Err(EntryError::Corrupt("trailing bytes"));
        }
        Ok(Self {
            status,
            headers,
            body,
            stored_at,
            ttl,
            stale_while_revalidate,
            stale_if_error,
            compute,
            identity,
        })
    }
}

/// An encoded entry marked stale as of `now` (a soft purge): its TTL field cut to its age, so
/// its stale windows start now; `None` for bytes that are not an entry. What
/// `stale_entries.lua` does in Redis.
pub(crate) fn marked_stale(bytes: &[u8], now: SystemTime) -> Option<Bytes> {
    if bytes.len() < 20 || &bytes[..3] != MAGIC {
        return None;
    }
    let field = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let (stored_at, ttl) = (field(4), field(12));
    let age = millis_since_epoch(now).saturating_sub(stored_at);
    let mut marked = BytesMut::from(bytes);
    if age < ttl {
        marked[12..20].copy_from_slice(&age.to_be_bytes());
    }
    Some(marked.freeze())
}

fn millis_since_epoch(time: SystemTime) -> u64 {
    millis(time.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// A stale window's milliseconds, as its `u32` field holds them (about 49 days at most).
fn window_millis(window: Duration) -> u32 {
    u32::try_from(millis(window)).unwrap_or(u32::MAX)
}

fn put_u32_prefixed(out: &mut BytesMut, bytes: &[u8]) {
    // Bodies are bounded by the policy's limit; an entry over 4 GiB is never built.
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.put_slice(bytes);
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), EntryError> {
        if self.0.len() < n {
            Err(EntryError::Corrupt("truncated"))
        } else {
            Ok(())
        }
    }

    fn u16(&mut self) -> Result<u16, EntryError> {
        self.need(2)?;
        Ok(self.0.get_u16())
    }

    fn u32(&mut self) -> Result<u32, EntryError> {
        self.need(4)?;
        Ok(self.0.get_u32())
    }

    fn u64(&mut self) -> Result<u64, EntryError> {
        self.need(8)?;
        Ok(self.0.get_u64())
    }

    fn take(&mut self, n: usize) -> Result<Bytes, EntryError> {
        self.need(n)?;
        Ok(self.0.split_to(n))
    }

    fn u32_prefixed(&mut self) -> Result<Bytes, EntryError> {
        self.need(4)?;
        let len = self.0.get_u32() as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        Entry {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(br#"{"home":0.5}"#),
            stored_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            ttl: Duration::from_secs(60),
            stale_while_revalidate: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(600),
            compute: Duration::ZERO,
            identity: Bytes::from_static(b"/matches/1"),
        }
    }

    #[test]
    fn round_trips() {
        let entry = sample();
        assert_eq!(Entry::decode(entry.encode()), Ok(entry));
    }

    #[test]
    fn max_encoded_len_is_the_size_of_what_encode_writes() {
        let mut entry = sample();
        let bound = |entry: &Entry| {
            let headers = entry.headers.iter().map(|(n, v)| header_len(n, v)).sum();
            max_encoded_len(headers, entry.identity.len(), entry.body.len())
        };
        // Uncompressed, without a compute time, the body-encoding byte and the compute field
        // are not written; with one, only the body-encoding byte.
        assert_eq!(entry.encode().len() + 1 + 4, bound(&entry));
        let timed = entry.clone().with_compute_time(Duration::from_millis(150));
        assert_eq!(timed.encode().len() + 1, bound(&timed));
        entry.body = Bytes::from(br#"{"minute":1,"home":0.5}"#.repeat(256));
        let compressed = entry.encode_with(Compression::lz4_above(1));
        assert_eq!(compressed[3], COMPRESSED_VERSION);
        assert!(compressed.len() <= bound(&entry));
        assert_eq!(entry.encode().len() + 1 + 4, bound(&entry));
    }

    #[test]
    fn a_compute_time_round_trips_in_versions_4_and_5_only() {
        let timed = sample().with_compute_time(Duration::from_millis(150));
        let plain = timed.encode();
        assert_eq!(plain[3], VERSION + WITH_COMPUTE);
        assert_eq!(Entry::decode(plain), Ok(timed.clone()));
        let mut big = timed;
        big.body = Bytes::from(br#"{"minute":1,"home":0.5}"#.repeat(256));
        let compressed = big.encode_with(Compression::lz4_above(1));
        assert_eq!(compressed[3], COMPRESSED_VERSION + WITH_COMPUTE);
        assert_eq!(Entry::decode(compressed), Ok(big));
        assert_eq!(
            sample().encode()[3],
            VERSION,
            "no compute time: version 2 as before"
        );
    }

    #[test]
    fn version_1_entries_are_read_without_stale_windows() {
        let entry = sample();
        let v2 = entry.encode();
        // Version 1: the same bytes without the two u32 windows after the TTL.
        let mut v1 = BytesMut::new();
        v1.put_slice(MAGIC);
        v1.put_u8(1);
        v1.put_slice(&v2[4..20]);
        v1.put_slice(&v2[28..]);
        let decoded = Entry::decode(v1.freeze()).unwrap();
        assert_eq!(decoded, entry.with_stale(Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn compressed_bodies_round_trip_and_only_they_use_version_3() {
        let mut entry = sample();
        assert_eq!(
            entry.encode_with(Compression::lz4_above(1024))[3],
            VERSION,
            "too small"
        );
        entry.body = Bytes::from(br#"{"minute":1,"home":0.5,"away":0.5}"#.repeat(64));
        let compressed = entry.encode_with(Compression::lz4_above(1024));
        assert_eq!(compressed[3], COMPRESSED_VERSION);
        assert!(compressed.len() < entry.encode().len() / 2);
        assert_eq!(Entry::decode(compressed.clone()), Ok(entry.clone()));
        for len in 0..compressed.len() {
            assert!(
                Entry::decode(compressed.slice(..len)).is_err(),
                "truncated to {len}"
            );
        }
        let mut unknown = BytesMut::from(&compressed[..]);
        // The encoding byte sits right before the body field (u32 length, then the body).
        let encoding_at = unknown.len() - body_len(&compressed) - 4 - 1;
        assert_eq!(unknown[encoding_at], LZ4);
        unknown[encoding_at] = 9;
        assert_eq!(
            Entry::decode(unknown.freeze()),
            Err(EntryError::Corrupt("body encoding"))
        );
    }

    /// The length of the last (body) field of an encoded entry, found by decoding forward.
    fn body_len(encoded: &Bytes) -> usize {
        let mut r = Reader(encoded.slice(4..));
        let windows = if encoded[3] == 1 { 16 } else { 24 };
        r.take(windows + 2).unwrap();
        r.u32_prefixed().unwrap();
        for _ in 0..r.u16().unwrap() {
            let n = usize::from(r.u16().unwrap());
            r.take(n).unwrap();
            r.u32_prefixed().unwrap();
        }
        if encoded[3] == COMPRESSED_VERSION {
            r.take(1).unwrap();
        }
        r.u32_prefixed().unwrap().len()
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                Entry::decode(bytes.slice(..len)).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = BytesMut::from(&bytes[..]);
        longer.put_u8(0);
        assert_eq!(
            Entry::decode(longer.freeze()),
            Err(EntryError::Corrupt("trailing bytes"))
        );
    }

    #[test]
    fn a_stale_mark_ends_freshness_now_and_keeps_the_rest() {
        let entry = sample();
        let now = entry.stored_at + Duration::from_secs(10);
        let marked = Entry::decode(marked_stale(&entry.encode(), now).unwrap()).unwrap();
        assert_eq!(marked.ttl, Duration::from_secs(10));
        assert_eq!(marked.with_ttl(entry.ttl), entry, "nothing else changed");
        let later = entry.stored_at + Duration::from_secs(120);
        let stale = Entry::decode(marked_stale(&entry.encode(), later).unwrap()).unwrap();
        assert_eq!(stale.ttl, entry.ttl, "an entry stale already keeps its TTL");
        assert_eq!(marked_stale(b"hello world, not an entry", now), None);
    }

    #[test]
    fn foreign_and_future_bytes_are_refused() {
        assert_eq!(
            Entry::decode(Bytes::from_static(b"hello world")),
            Err(EntryError::Foreign)
        );
        let mut future = BytesMut::from(&sample().encode()[..]);
        future[3] = 6;
        assert_eq!(
            Entry::decode(future.freeze()),
            Err(EntryError::UnknownVersion(6))
        );
    }

    #[test]
    fn a_huge_header_count_is_an_error_not_a_panic() {
        // identity length (4) + identity (10) follow the status; then the header count.
        let at = 30 + 4 + 10;
        let mut bytes = sample().encode()[..at].to_vec();
        bytes.truncate(at);
        bytes.extend_from_slice(&u16::MAX.to_be_bytes());
        // Distinct names: more than a `HeaderMap` can hold (32 768).
        for i in 0..u16::MAX {
            let name = format!("h{i:05}");
            bytes.extend_from_slice(&(name.len() as u16).to_be_bytes());
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&0u32.to_be_bytes());
        }
        bytes.extend_from_slice(&0u32.to_be_bytes());
        assert!(Entry::decode(bytes.into()).is_err());
    }

    #[test]
    fn invalid_fields_are_refused() {
        let mut entry = sample().encode().to_vec();
        // status lives after magic (4) + stored_at (8) + ttl (8) + stale windows (4 + 4)
        entry[28..30].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(
            Entry::decode(entry.into()),
            Err(EntryError::Corrupt("status"))
        );
    }

    #[test]
    fn remaining_ttl_counts_down() {
        let entry = sample();
        let later = entry.stored_at + Duration::from_secs(15);
        assert_eq!(entry.age(later), Duration::from_secs(15));
        assert_eq!(entry.remaining_ttl(later), Duration::from_secs(45));
        assert_eq!(
            entry.remaining_ttl(later + Duration::from_secs(100)),
            Duration::ZERO
        );
    }
}
