#!/usr/bin/env bash
# What one entry of the load bench's negotiating variants takes in Redis (BENCHMARKS.md,
# "Content negotiation: what Vary and compression cost a hit"): each variant's server child of
# benches/load.rs is started against a private redis-server, warmed with the bench's request
# headers, and the STRLEN of its entry for /matches/0/markets is printed.
# Needs redis-server, redis-cli and curl on PATH. Uses port 6391 (override: PORT=...).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-6391}
bin=$(cargo bench --bench load --no-run 2>&1 | grep -o 'target/release/deps/load-[0-9a-f]*' | head -1)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --logfile /dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true' EXIT
sleep 0.5
for variant in layer vary gzip-inside gzip-outside; do
  coproc server { LOAD_SERVE=$variant LOAD_PORT=0 LOAD_REDIS_URL=redis://127.0.0.1:$port exec "$bin"; }
  read -r ready <&"${server[0]}"
  for _ in 1 2 3; do
    curl -s -o /dev/null -H 'Accept-Encoding: gzip' -H 'Accept-Language: en' \
      "http://127.0.0.1:${ready#LOAD_READY }/matches/0/markets"
    sleep 0.3
  done
  kill "$server_PID"; wait "$server_PID" 2>/dev/null || true
done
redis-cli -p "$port" --scan --pattern '*{m_0}:*' | sort | while read -r key; do
  echo "$key $(redis-cli -p "$port" strlen "$key") bytes"
done
