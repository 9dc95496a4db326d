#!/usr/bin/env bash
# The step-6 figures (BENCHMARKS.md): the predictions example on a private redis-server with
# compose.yaml's cache settings (maxmemory 1gb, allkeys-lfu, no persistence), driven by the
# load generator. Loopback only; stops by itself; leaves nothing running.
#
#   bash scripts/step6.sh            # the loadgen at its defaults (30 s, 32 connections), then
#                                    # concurrency 1 at the defaults, and over 1 000 warmed keys
#                                    # (hits only), unpinned and pinned to one CPU
#
# Each run prints the loadgen's JSON report and the CPU time (utime+stime from /proc/PID/stat)
# the app and Redis spent per request. Needs redis-server on PATH (apt-get install redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-6497}
APP=127.0.0.1:${APP_PORT:-3097}
OUT=${OUT:-target/step6}
mkdir -p "$OUT"
cargo build --release --example predictions --example loadgen

APP_PID=
stop() {
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null || true
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}
trap stop EXIT

# start PIN: Redis and the app, on CPU list PIN ("" for no pinning).
start() {
  local pin=()
  [ -n "$1" ] && pin=(taskset -c "$1")
  "${pin[@]}" redis-server --port "$PORT" --save '' --appendonly no --maxmemory 1gb \
    --maxmemory-policy allkeys-lfu --lazyfree-lazy-eviction yes \
    --daemonize yes --pidfile "$PWD/$OUT/redis.pid" >/dev/null
  for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_URL=redis://127.0.0.1:$PORT BIND=$APP RUST_LOG=warn \
    "${pin[@]}" target/release/examples/predictions &
  APP_PID=$!
  for _ in $(seq 100); do curl -sf "http://$APP/health" >/dev/null && return; sleep 0.1; done
  echo "the example did not start" >&2
  exit 1
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# load LABEL PIN ARGS...: one loadgen run; its JSON report, then CPU per request.
load() {
  local label=$1 pin=$2
  shift 2
  local wrap=()
  [ -n "$pin" ] && wrap=(taskset -c "$pin")
  local redis_pid
  redis_pid=$(cat "$OUT/redis.pid")
  local a0 r0 a1 r1
  a0=$(ticks "$APP_PID")
  r0=$(ticks "$redis_pid")
  "${wrap[@]}" target/release/examples/loadgen --target "http://$APP" "$@" --json \
    | tee "$OUT/$label.txt" | tail -1 > "$OUT/$label.json"
  a1=$(ticks "$APP_PID")
  r1=$(ticks "$redis_pid")
  python3 - "$label" "$OUT/$label.json" "$((a1 - a0))" "$((r1 - r0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
label, path, app, redis, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = json.load(open(path))
n = r["requests"] + r["warmup_requests"]
print(f"{label}: requests {r['requests']} errors {r['errors']} rps {r['rps']:.0f} "
      f"hit_rate {r['hit_rate']:.3f} hit p50/p99/p999 {r['hit_p50_ms']}/{r['hit_p99_ms']}/{r['hit_p999_ms']} ms "
      f"miss p50/p99 {r['miss_p50_ms']}/{r['miss_p99_ms']} ms used_memory {r['redis_used_memory']} "
      f"evicted {r['redis_evicted_keys']} bytes/key {r['bytes_per_key']:.0f} handler_runs {r['handler_runs']} "
      f"CPU/request app {app / hz / n * 1e6:.0f} us redis {redis / hz / n * 1e6:.0f} us")
PY
}

start ""
load defaults "" "$@"
# One at a time at the defaults: a miss now and then (150 ms of idle CPUs), hits otherwise.
load c1-unpinned "" --concurrency 1 --duration 20s --warmup 2s
# One at a time over 1 000 keys, all cached by a first pass: hits only, CPUs never idle.
load c1-warm "" --duration 12s --warmup 1s --keys 1000
load c1-hits-unpinned "" --concurrency 1 --duration 20s --warmup 2s --keys 1000
stop
APP_PID=
start 0
load c1-warm-pinned 0 --duration 12s --warmup 1s --keys 1000
load c1-hits-pinned 0 --concurrency 1 --duration 20s --warmup 2s --keys 1000
