//! The stored entry: one response (status, headers, body), when it was stored, how long it is
//! fresh and may be served stale, and the identity of the request it answers; its versioned
//! binary encoding (its layout is in `codec.rs`), and the compression of its body.

mod codec;
mod compression;
mod fields;

pub use self::codec::EntryError;
pub(crate) use self::codec::{header_len, marked_stale, max_encoded_len};
pub use self::compression::Compression;
pub use self::fields::Entry;
