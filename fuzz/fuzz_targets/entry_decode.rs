//! `Entry::decode` on arbitrary bytes (what a hostile or corrupted Redis value can hold).
//!
//! Each input is decoded twice: as it is, and behind this crate's magic and version
//! (`TRC 01`), so the fuzzer spends its time past the magic check.
//!
//! Properties: decoding never panics; whatever decodes re-encodes to bytes that decode to an
//! equal entry, and that re-encoding is a fixed point (encode . decode . encode = encode).
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run entry_decode -- -max_total_time=180`
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tower_redis_cache::store::Entry;

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));
    check([&b"TRC\x01"[..], data].concat().into());
    check([&b"TRC\x02"[..], data].concat().into());
});

fn check(bytes: Bytes) {
    let Ok(entry) = Entry::decode(bytes) else {
        return;
    };
    let encoded = entry.encode();
    let again = Entry::decode(encoded.clone()).expect("a re-encoded entry decodes");
    assert_eq!(again, entry, "decode . encode is not the identity");
    assert_eq!(
        again.encode(),
        encoded,
        "encode . decode . encode != encode"
    );
}
