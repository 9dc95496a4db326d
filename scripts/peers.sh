#!/usr/bin/env bash
# The comparison with this crate's peers: the cached GET of benches/load.rs served by the floor,
# by `static` (no cache: the in-process ceiling), by two peer crates (tower-http-cache over
# Redis, axum-response-cache in memory; built from benches/peers, outside this crate's
# dev-dependencies) and by this crate's layer over RedisStore, MemoryStore and NearCache: wrk
# throughput and the CPU per request of the app and of Redis, interleaved in rounds, as ratios
# to the floor. Loopback only, on the bench's own private redis-server; stops by itself.
#
#   bash scripts/peers.sh                            # 5 rounds × 5 s (about 4 min after the builds)
#   LOAD_ROUNDS=1 LOAD_SECS=2 bash scripts/peers.sh  # a smoke run
#
# LOAD_ROUNDS, LOAD_SECS, LOAD_CONNECTIONS and LOAD_VARIANTS override the defaults (see the
# header of benches/load.rs). Needs redis-server and wrk on PATH (apt-get install redis-server
# wrk) and Linux's /proc.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --manifest-path benches/peers/Cargo.toml

LOAD_PEER_BIN="$PWD/benches/peers/target/release/load-peer" \
LOAD_ROUNDS=${LOAD_ROUNDS:-5} \
LOAD_SECS=${LOAD_SECS:-5} \
LOAD_VARIANTS=${LOAD_VARIANTS:-floor,static,peer:tower-http-cache,peer:axum-response-cache,layer,memory,near} \
  cargo bench --bench load
