//! A small memo of request-body digests: the canonical form of a body seen before is found by
//! the SHA-256 of its raw bytes instead of being parsed and written again.
//!
//! Clients send the same configs byte for byte, again and again, and canonicalising a 1 KiB
//! body costs several times what hashing it does (BENCHMARKS.md). The memo holds digests only
//! (about 80 bytes a slot, whatever the body), is direct-mapped (a body's slot is picked by its
//! digest, a newer body replaces an older one) and is keyed by SHA-256, so no crafted body can
//! be taken for another.

use super::BodyDigest;
use sha2::{Digest, Sha256};
use std::sync::{Mutex, PoisonError};

/// How many bodies the memo remembers.
const SLOTS: usize = 1024;

/// Raw-body digest -> the body's [`BodyDigest`], for the bodies seen most recently.
pub(crate) struct BodyMemo {
    slots: Box<[Mutex<Option<Remembered>>]>,
}

/// One slot: the SHA-256 of a body's raw bytes, and the body's digest.
type Remembered = ([u8; 32], BodyDigest);

impl BodyMemo {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The digest of `body`, from the memo when it was seen before.
    pub(crate) fn digest(&self, body: &[u8]) -> BodyDigest {
        let raw: [u8; 32] = Sha256::digest(body).into();
        let index = usize::from(u16::from_le_bytes([raw[0], raw[1]])) % SLOTS;
        let slot = &self.slots[index];
        let lock = || slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, digest)) = *lock() {
            if seen == raw {
                return digest;
            }
        }
        // Computed without holding the slot: another request may be waiting for it.
        let digest = BodyDigest::with_raw_digest(body, raw);
        *lock() = Some((raw, digest));
        digest
    }
}

impl std::fmt::Debug for BodyMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyMemo")
            .field("slots", &self.slots.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_json_body_would_compute() {
        let memo = BodyMemo::new();
        for body in [
            &br#"{"risk":"high","model":"v2"}"#[..],
            br#"{ "model": "v2", "risk": "high" }"#,
            b"not json",
            b"[1, 2.50, -0]",
        ] {
            let fresh = BodyDigest::of(body);
            assert_eq!(memo.digest(body), fresh, "computed");
            assert_eq!(memo.digest(body), fresh, "remembered");
        }
        assert_eq!(
            memo.digest(br#"{"risk":"high","model":"v2"}"#),
            memo.digest(br#"{"model":"v2","risk":"high"}"#),
            "equal documents, one digest"
        );
    }

    #[test]
    fn many_bodies_stay_within_the_slots() {
        let memo = BodyMemo::new();
        for i in 0..5 * SLOTS {
            let body = format!("{{\"i\":{i}}}");
            assert_eq!(
                memo.digest(body.as_bytes()),
                BodyDigest::of(body.as_bytes())
            );
        }
        assert_eq!(memo.slots.len(), SLOTS);
    }
}
