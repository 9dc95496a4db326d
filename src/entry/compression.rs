//! [`Compression`]: how stored bodies are compressed (LZ4, above a size), a detail of the
//! entry encoding that clients never see.

/// How the bodies of stored entries are compressed. Default: LZ4 for bodies of 4 KiB and more.
///
/// Measured on JSON bodies (BENCHMARKS.md, `benches/compression.rs`, `benches/hit.rs`): LZ4
/// stores 4–256 KiB bodies in 30–40% of their size, so `maxmemory` holds two to three times the
/// entries, and a hit through Redis costs about what an uncompressed one does (less to
/// transfer, then the decompression). Below 4 KiB the transfer saved is small and the
/// decompression is not (a 1 KiB hit through Redis paid ~4 µs more), so smaller bodies are
/// stored as they are. zstd stores bodies in 17–30% but makes a hit 1.3–2.3x as costly, so it
/// is not offered. A body is stored compressed only when that saves at least an eighth of it;
/// hits are decompressed before they are served, whatever the client accepts. With
/// [`MemoryStore`](crate::MemoryStore) alone there is no transfer to save:
/// [`Compression::none`] trades its memory for the fastest hits.
///
/// ```
/// use tower_redis_cache::{CacheLayer, Compression, KeyFactory, MemoryStore};
///
/// let cache = CacheLayer::builder(MemoryStore::default(), KeyFactory::new("a", "b", "c"))
///     .compression(Compression::none())
///     .build()
///     .unwrap();
/// # let _ = cache;
/// assert_eq!(Compression::default(), Compression::lz4_above(4096));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// The smallest body compressed; `None`: never.
    min_body: Option<usize>,
}

impl Compression {
    /// Bodies are stored as they are.
    pub const fn none() -> Self {
        Self { min_body: None }
    }

    /// Bodies of `min_body` bytes or more are stored compressed with LZ4.
    pub const fn lz4_above(min_body: usize) -> Self {
        Self {
            min_body: Some(min_body),
        }
    }

    /// `body` compressed (LZ4 block, its length prepended), if it is to be and that pays.
    pub(crate) fn compress(self, body: &[u8]) -> Option<Vec<u8>> {
        let min_body = self.min_body?;
        if body.len() < min_body.max(1) || body.len() > MAX_COMPRESSED_BODY {
            return None;
        }
        let compressed = lz4_flex::compress_prepend_size(body);
        (compressed.len() <= body.len() - body.len() / 8).then_some(compressed)
    }
}

impl Default for Compression {
    fn default() -> Self {
        Self::lz4_above(4096)
    }
}

/// The largest body stored compressed; larger ones are stored as they are. It bounds what a
/// decoder may allocate for one entry, whatever the store holds.
pub(crate) const MAX_COMPRESSED_BODY: usize = 16 << 20;

/// The body `compressed` encodes, or `None` if it is corrupt. The length it claims is checked
/// before anything is allocated: at most [`MAX_COMPRESSED_BODY`] and what LZ4 can expand the
/// bytes present to (255 per byte); and the body must have exactly that length.
pub(crate) fn decompress(compressed: &[u8]) -> Option<Vec<u8>> {
    let claimed = u32::from_le_bytes(compressed.get(..4)?.try_into().ok()?) as usize;
    if claimed > MAX_COMPRESSED_BODY
        || claimed > compressed.len().saturating_mul(255).saturating_add(16)
    {
        return None;
    }
    let body = lz4_flex::decompress_size_prepended(compressed).ok()?;
    (body.len() == claimed).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_incompressible_bodies_stay_as_they_are() {
        let lz4 = Compression::lz4_above(64);
        assert_eq!(lz4.compress(&[b'a'; 63]), None, "below the threshold");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert_eq!(lz4.compress(&noise), None, "saves less than an eighth");
        assert_eq!(Compression::none().compress(&[b'a'; 1 << 20]), None);
    }

    #[test]
    fn round_trips_and_refuses_corruption() {
        let body = br#"{"minute":1,"home":0.5,"draw":0.25,"away":0.25}"#.repeat(100);
        let compressed = Compression::lz4_above(1).compress(&body).unwrap();
        assert!(compressed.len() < body.len() / 4);
        assert_eq!(decompress(&compressed).as_deref(), Some(&body[..]));
        assert_eq!(decompress(&compressed[..compressed.len() - 1]), None);
        assert_eq!(decompress(&[1, 2]), None);
        // A claimed length past what LZ4 can expand to, or past the cap: refused before any
        // allocation; one that the bytes do not fill: refused.
        let mut bomb = compressed.clone();
        bomb[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decompress(&bomb), None);
        let zeros = lz4_flex::compress_prepend_size(&vec![0; MAX_COMPRESSED_BODY + 1]);
        assert_eq!(
            decompress(&zeros),
            None,
            "over the cap, though LZ4 could expand to it"
        );
        let mut short = compressed.clone();
        short[..4].copy_from_slice(&((body.len() - 1) as u32).to_le_bytes());
        assert_eq!(decompress(&short), None);
        assert_eq!(
            Compression::lz4_above(1).compress(&vec![0; MAX_COMPRESSED_BODY + 1]),
            None
        );
    }
}
