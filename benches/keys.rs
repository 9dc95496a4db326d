//! What a canonical cache key costs, against hashing the raw request bytes.
//!
//! One group, "key derivation": [`KeyFactory::key`] with a [`Variant`] for a request with no
//! body (the `default` variant), a ~1 KiB and a ~16 KiB JSON config body, each next to the
//! baseline a non-canonicalising cache would pay — plain `xxh3_64` of the raw bytes (the path
//! when there is no body). A `sha256 (identity)` row gives the cost of the SHA-256 digest the
//! request path adds over about the same bytes (the entry's identity; not part of
//! `KeyFactory::key`). For the bodies, three more rows put the canonical key in perspective:
//! `serde_json` parsing into an owned `Value` tree, `serde_json_canonicalizer::to_vec` of an
//! already parsed `Value` (the off-the-shelf RFC 8785 crate), and `serde_json` validating the
//! body into `IgnoredAny` (the floor for any canonicaliser, which must at least parse).
//!
//! The bodies are generated deterministically: compact JSON as a client would send it, members
//! not in sorted order, nested objects and arrays, strings (some non-ASCII), integers, decimals,
//! booleans and nulls.
//!
//! Run with `cargo bench --bench keys` (add `-- --quick` for a rough pass). See BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use std::{fmt::Write, hint::black_box, time::Duration};
use tower_redis_cache::{KeyFactory, Variant};
use xxhash_rust::xxh3::xxh3_64;

/// The request path of the no-body case (what the baseline hashes there).
const PATH: &str = "/matches/12345/prediction";

fn key_derivation(c: &mut Criterion) {
    let keys = KeyFactory::new("monps", "prod", "v1");
    let inputs = [
        ("path only", None),
        ("1 KiB JSON", Some(config_body(1024))),
        ("16 KiB JSON", Some(config_body(16 * 1024))),
    ];

    let mut group = c.benchmark_group("key derivation");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);

    for (_, body) in &inputs {
        if let Some(body) = body {
            // Guard against benchmarking the wrong path: a body that failed to canonicalise
            // would be keyed by its raw bytes, and then reformatting it would change its key.
            let value: serde_json::Value = serde_json::from_slice(body).unwrap();
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            assert_eq!(
                Variant::new().json_body(body).id(),
                Variant::new().json_body(&pretty).id(),
                "the body must take the canonical JSON path"
            );
        }
    }

    for (name, body) in &inputs {
        let raw: &[u8] = body.as_deref().unwrap_or(PATH.as_bytes());
        group.throughput(Throughput::Bytes(raw.len() as u64));

        group.bench_with_input(BenchmarkId::new("raw xxh3_64", name), raw, |b, raw| {
            b.iter(|| xxh3_64(black_box(raw)))
        });
        // The request path also digests the path and variant encoding (about these bytes) into
        // the entry's identity; `KeyFactory::key` alone does not.
        group.bench_with_input(
            BenchmarkId::new("sha256 (identity)", name),
            raw,
            |b, raw| b.iter(|| Sha256::digest(black_box(raw))),
        );

        match body {
            None => {
                // The key of a route where nothing varies: no body, the `default` variant.
                group.bench_function(BenchmarkId::new("canonical key", name), |b| {
                    b.iter(|| keys.key("pred", black_box("m_12345"), &Variant::new()))
                });
            }
            Some(body) => {
                group.bench_with_input(
                    BenchmarkId::new("canonical key", name),
                    body.as_slice(),
                    |b, body| {
                        b.iter(|| {
                            let variant = Variant::new().json_body(black_box(body));
                            keys.key("pred", "m_12345", &variant)
                        })
                    },
                );
                // Where the time goes, and the floor for any canonicaliser that must parse.
                group.bench_with_input(
                    BenchmarkId::new("parse to Value", name),
                    body.as_slice(),
                    |b, body| {
                        b.iter(|| {
                            serde_json::from_slice::<serde_json::Value>(black_box(body)).unwrap()
                        })
                    },
                );
                let value: serde_json::Value = serde_json::from_slice(body).unwrap();
                group.bench_with_input(
                    BenchmarkId::new("jcs to_vec of parsed Value", name),
                    &value,
                    |b, value| {
                        b.iter(|| serde_json_canonicalizer::to_vec(black_box(value)).unwrap())
                    },
                );
                group.bench_with_input(
                    BenchmarkId::new("validate only (IgnoredAny)", name),
                    body.as_slice(),
                    |b, body| {
                        b.iter(|| {
                            serde_json::from_slice::<serde::de::IgnoredAny>(black_box(body))
                                .unwrap()
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

/// A prediction request's config: compact JSON of at most `target` bytes (within ~200 of it).
///
/// Deterministic: the same bytes on every run and machine.
fn config_body(target: usize) -> Vec<u8> {
    let mut rng = Lcg(0x5eed_0000 + target as u64);
    let mut s = String::with_capacity(target + 512);
    s.push_str(r#"{"risk":"high","model":"v2","horizon_minutes":90,"include_live":true,"#);
    s.push_str(
        r#""weights":{"form":0.35,"h2h":0.2,"home_advantage":0.15,"xg":0.3,"injuries":null},"#,
    );
    s.push_str(r#""markets":["#);
    for (i, market) in ["1x2", "btts", "over_under_2.5", "correct_score"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"id":"{market}","enabled":{},"min_odds":{}.{:02},"max_odds":{}"#,
            rng.below(4) != 0,
            1 + rng.below(2),
            rng.below(100),
            3 + rng.below(20),
        );
        s.push_str(r#","selections":["home","draw","away"]}"#);
    }
    s.push_str(r#"],"players":["#);
    const POSITIONS: [&str; 4] = ["GK", "DF", "MF", "FW"];
    const NAMES: [&str; 6] = ["Müller", "Silva", "Kane", "Dembélé", "Ødegaard", "Smith"];
    // Add players while the document, closed with `]}`, stays within the target.
    let mut player = String::new();
    for i in 0.. {
        player.clear();
        let _ = write!(
            player,
            r#"{}{{"name":"{} {}","id":{},"position":"{}","xg_per90":0.{:03},"minutes":{},"injured":{},"tags":["starter","set_pieces"],"form":[{},{},{}]}}"#,
            if i == 0 { "" } else { "," },
            NAMES[rng.below(NAMES.len() as u64) as usize],
            rng.below(100),
            100_000 + rng.below(900_000),
            POSITIONS[rng.below(4) as usize],
            rng.below(1000),
            rng.below(3420),
            rng.below(8) == 0,
            rng.below(10),
            rng.below(10),
            rng.below(10),
        );
        if s.len() + player.len() + 2 > target {
            break;
        }
        s.push_str(&player);
    }
    s.push_str("]}");
    serde_json::from_str::<serde_json::Value>(&s).expect("the generated body is valid JSON");
    assert!(
        s.len() <= target && s.len() + 256 > target,
        "{} bytes",
        s.len()
    );
    s.into_bytes()
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): enough for test data.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

criterion_group!(benches, key_derivation);
criterion_main!(benches);
