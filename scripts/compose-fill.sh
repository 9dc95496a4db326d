#!/usr/bin/env bash
# compose.yaml's memory limit, measured: a local redis-server with exactly the compose cache
# settings (maxmemory 1gb, allkeys-lfu, lazyfree-lazy-eviction, no persistence) filled past
# maxmemory by the loadgen through the predictions example (large bodies, many keys), then
# its memory as INFO and the kernel see it. Loopback only; stops by itself; leaves nothing
# running. docs/operations.md (compose.yaml) quotes the figures.
#
#   bash scripts/compose-fill.sh        # ~6 min; BODY_BYTES=262144 FILL_SECONDS=330 by default
#
# Needs redis-server and redis-cli on PATH (apt-get install redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-6495}
APP=127.0.0.1:${APP_PORT:-3095}
OUT=${OUT:-target/compose-fill}
BODY_BYTES=${BODY_BYTES:-262144}
FILL_SECONDS=${FILL_SECONDS:-330}
mkdir -p "$OUT"
cargo build --release --example predictions --example loadgen

APP_PID=
stop() {
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}
trap stop EXIT

redis-server --port "$PORT" --maxmemory 1gb --maxmemory-policy allkeys-lfu --save '' \
  --appendonly no --lazyfree-lazy-eviction yes --daemonize yes \
  --pidfile "$PWD/$OUT/redis.pid" >/dev/null
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL=redis://127.0.0.1:$PORT BIND=$APP RUST_LOG=warn target/release/examples/predictions \
  > "$OUT/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 100); do curl -sf "http://$APP/health" >/dev/null && break; sleep 0.1; done

# Uniform over many keys: every request a new entry until maxmemory, then evictions.
target/release/examples/loadgen --target "http://$APP" --duration "${FILL_SECONDS}s" --warmup 1s \
  --keys 1000000 --zipf 0 --concurrency 64 --body-bytes "$BODY_BYTES" --json \
  > "$OUT/loadgen.txt"
REDIS_PID=$(cat "$OUT/redis.pid")
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$REDIS_PID/status")
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$REDIS_PID/status")
redis-cli -p "$PORT" info memory > "$OUT/info-memory.txt"
redis-cli -p "$PORT" info stats > "$OUT/info-stats.txt"
keys=$(redis-cli -p "$PORT" dbsize)
field() { grep "^$1:" "$OUT/$2" | cut -d: -f2 | tr -d '\r'; }
echo "body bytes asked:         $BODY_BYTES (stored LZ4-compressed by default)"
echo "keys:                     $keys"
echo "evicted_keys:             $(field evicted_keys info-stats.txt)"
echo "maxmemory:                $(field maxmemory info-memory.txt)"
echo "used_memory:              $(field used_memory info-memory.txt)"
echo "used_memory_rss:          $(field used_memory_rss info-memory.txt)"
echo "used_memory_peak:         $(field used_memory_peak info-memory.txt)"
echo "mem_fragmentation_ratio:  $(field mem_fragmentation_ratio info-memory.txt)"
echo "process RSS now / peak:   $((rss_kib / 1024)) MiB / $((peak_kib / 1024)) MiB (VmRSS / VmHWM)"
tail -1 "$OUT/loadgen.txt" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("loadgen: requests", r["requests"], "errors", r["errors"], "rps", round(r["rps"]), "handler runs", r["handler_runs"])
'
