//! Content negotiation: responses that `Vary`. A namespace learns the request headers its
//! responses vary on (`learned.rs`) and keys its requests by their normalised values from then
//! on (`key/normalize.rs`), with a bound on the variants of one key (`variants.rs`). What a
//! response's `Vary` means for storing it is `vary.rs`; an entry's content coding must be one
//! the request accepts (`coding.rs`).

pub(crate) mod coding;
pub(crate) mod learned;
pub(crate) mod variants;
pub(crate) mod vary;

pub(crate) use learned::Negotiation;
