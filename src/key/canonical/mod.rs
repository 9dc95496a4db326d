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
//! that crate stays the oracle of the differential tests (JSON text generated with whitespace,
//! escapes, number spellings and breakages, against `serde_json` and the oracle) in `tests.rs`
//! and `tests/it/keys.rs`.
//!
//! Anything that is not such a document (invalid UTF-8 or JSON, duplicate member names,
//! numbers out of range or integers beyond 2^53, which a double cannot tell apart, nesting
//! deeper than 127 arrays and objects, where `serde_json`'s recursion limit stops) is reported
//! as `None`; callers then key the raw bytes in a domain of their own, so invalid bodies never
//! share one key.

mod emit;
mod numbers;
mod order;
mod parser;
mod strings;
#[cfg(test)]
mod tests;

pub(crate) use self::parser::canonicalize;
