//! Whether to compress stored bodies: what `lz4_flex` and `zstd` save in Redis memory (entries
//! per GiB at `maxmemory`, so hit rate) and what they cost a hit (CPU, so throughput).
//!
//! ```text
//! taskset -c 0 cargo bench --bench compression
//! ```
//!
//! Bodies are JSON as the predictions example sends with `"detail": N` (a prediction and a
//! minute-by-minute timeline of varying numbers with repeating names), at 1, 4, 16, 64 and
//! 256 KiB. For each size the bench prints the compressed sizes, then measures, interleaved
//! (short batches in rotating order, many rounds, median per-round ratios):
//!
//! - `GET raw`: a fred `GET` of the uncompressed body from a private `redis-server`: the
//!   baseline, what a hit fetches today;
//! - `GET lz4 + decompress` and `GET zstd-1 + decompress`: the `GET` of the compressed body and
//!   its decompression, what a hit would cost with compression on;
//! - `lz4 compress`, `zstd-1 compress`: the write-back's extra work (off the response path).
//!
//! Needs `redis-server` on `PATH` (`apt-get install redis-server`).

#[path = "../tests/it/servers/mod.rs"]
mod servers;
#[path = "support/stats.rs"]
mod stats;

use bytes::Bytes;
use fred::prelude::*;
use serde_json::{json, Value};
use servers::RedisServer;
use stats::quartiles;
use std::{
    hint::black_box,
    time::{Duration, Instant},
};

const SIZES: [usize; 5] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10];
const ROUNDS: usize = 60;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches`: nothing to measure.
        return;
    }
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    rt.block_on(run(&redis.url()));
    drop(redis);
}

async fn run(url: &str) {
    let config = Config::from_url(url).expect("a Redis URL");
    let client = Builder::from_config(config)
        .with_connection_config(|c| c.tcp.nodelay = Some(true))
        .build()
        .expect("a fred client");
    client.init().await.expect("connect");

    println!(
        "{:>8} {:>10} {:>10} {:>10} | per hit, median ratio to GET raw [p25, p75]    | compress (µs)",
        "body", "lz4", "zstd-1", "zstd-3"
    );
    for size in SIZES {
        let body = timeline_json(size);
        let lz4 = Bytes::from(lz4_flex::compress_prepend_size(&body));
        let zstd1 = Bytes::from(zstd::bulk::compress(&body, 1).expect("zstd"));
        let zstd3 = zstd::bulk::compress(&body, 3).expect("zstd");
        let keys = [
            format!("raw{size}"),
            format!("lz4{size}"),
            format!("zstd{size}"),
        ];
        for (key, value) in keys.iter().zip([body.clone(), lz4.clone(), zstd1.clone()]) {
            let () = client
                .set(key, value, None, None, false)
                .await
                .expect("SET");
        }

        let batch = (4 << 20) / size.max(16 << 10) + 20;
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            for i in 0..3 {
                let row = (round + i) % 3;
                let start = Instant::now();
                for _ in 0..batch {
                    let fetched: Bytes = client.get(&keys[row]).await.expect("GET");
                    let served = match row {
                        0 => fetched,
                        1 => Bytes::from(lz4_flex::decompress_size_prepended(&fetched).unwrap()),
                        _ => Bytes::from(zstd::bulk::decompress(&fetched, size * 2).unwrap()),
                    };
                    assert_eq!(served.len(), body.len());
                    black_box(served);
                }
                times[row].push(start.elapsed().as_secs_f64() / batch as f64);
            }
        }
        let ratio = |row: usize| {
            let ratios: Vec<f64> = times[row]
                .iter()
                .zip(&times[0])
                .map(|(t, b)| t / b)
                .collect();
            quartiles(ratios)
        };
        let (l25, l, l75) = ratio(1);
        let (z25, z, z75) = ratio(2);
        let compress_lz4 = time_per(|| lz4_flex::compress_prepend_size(&body).len());
        let compress_zstd = time_per(|| zstd::bulk::compress(&body, 1).unwrap().len());
        let pct = |n: usize| format!("{:.1}%", n as f64 * 100.0 / body.len() as f64);
        println!(
            "{:>6}Ki {:>10} {:>10} {:>10} | raw {:>6.1} µs, lz4 {l:.3}x [{l25:.3}, {l75:.3}], zstd-1 {z:.3}x [{z25:.3}, {z75:.3}] | lz4 {:.1}, zstd-1 {:.1}",
            size >> 10,
            pct(lz4.len()),
            pct(zstd1.len()),
            pct(zstd3.len()),
            quartiles(times[0].clone()).1 * 1e6,
            compress_lz4.as_secs_f64() * 1e6,
            compress_zstd.as_secs_f64() * 1e6,
        );
    }
    let _ = client.quit().await;
}

/// The median time of one call of `f`, over batches.
fn time_per(mut f: impl FnMut() -> usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        for _ in 0..20 {
            black_box(f());
        }
        times.push(start.elapsed().as_secs_f64() / 20.0);
    }
    Duration::from_secs_f64(quartiles(times).1)
}

/// About `bytes` of the predictions example's JSON with a `"detail"` timeline (the example's
/// generator: varying numbers, repeating names).
fn timeline_json(bytes: usize) -> Bytes {
    let mut seed = 17u64;
    let mut points = Vec::new();
    let mut size = 120;
    let mut minute = 0u64;
    while size < bytes {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let home = (seed >> 33) % 1000;
        let draw = (seed >> 13) % (1000 - home);
        let point = json!({
            "minute": minute,
            "home": home as f64 / 1000.0,
            "draw": draw as f64 / 1000.0,
            "away": (1000 - home - draw) as f64 / 1000.0,
        });
        size += point.to_string().len() + 1;
        points.push(point);
        minute += 1;
    }
    let body = json!({
        "match_id": "12345",
        "config": {"risk": "high", "model": "v2", "detail": bytes},
        "prediction": {"home": 45, "draw": 27, "away": 28, "model": "v2", "timeline": Value::Array(points)},
    });
    Bytes::from(body.to_string())
}
