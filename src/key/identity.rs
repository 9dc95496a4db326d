//! [`Identity`]: the digest of the exact request inputs an entry answers.

use http::Method;
use sha2::{Digest, Sha256};

/// The digest of the exact request inputs an entry answers: a SHA-256, so that no crafted
/// input can collide with another (xxh3, the key's hash, does not resist that).
pub(crate) type Identity = [u8; 32];

/// The identity of a request for `method` (the method its entry is stored under) on `path`,
/// whose variant inputs encode as `variant`.
///
/// A digest, not the inputs themselves: entries stay small and hold no keyed credential. The
/// method is always part of it: two routes sharing a namespace must never answer a POST with a
/// GET's entry, even where the key leaves the method out. The raw path: a handler may tell
/// spellings of one path apart, so they share the entry key (and so an invalidation of the
/// entity) but never answer each other.
pub(crate) fn identity(method: &Method, path: &str, variant: &[u8]) -> Identity {
    let mut identity = Sha256::new();
    identity.update([method.as_str().len() as u8]);
    identity.update(method.as_str().as_bytes());
    identity.update((path.len() as u64).to_be_bytes());
    identity.update(path.as_bytes());
    identity.update(variant);
    identity.finalize().into()
}
