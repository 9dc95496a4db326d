//! The JSON body the benches serve: every server of `benches/load.rs` (its own variants and the
//! peers' binary, `benches/peers`, alike: one definition, so the warm-up can check the exact
//! bytes whichever binary serves them) and `benches/hit.rs`. Included with `#[path]`.

use bytes::Bytes;
use std::fmt::Write as _;

/// A JSON body of exactly `size` bytes: an object of prediction markets, padded with spaces.
pub fn json_body(size: usize) -> Bytes {
    let mut s = String::with_capacity(size);
    s.push_str(r#"{"match":12345,"model":"v2","markets":["#);
    let mut i = 0;
    while s.len() + 120 < size {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"id":{i},"home":0.{:03},"draw":0.{:03},"away":0.{:03},"confidence":"high"}}"#,
            (i * 37) % 1000,
            (i * 53) % 1000,
            (i * 71) % 1000
        );
        i += 1;
    }
    s.push_str("]}");
    while s.len() < size {
        s.push(' ');
    }
    assert_eq!(s.len(), size);
    Bytes::from(s)
}
