#!/usr/bin/env bash
# The soak of RELIABILITY.md: the loadgen against the predictions example for 10 minutes while
# its Redis (compose.yaml's cache settings, a private port) is killed and restarted twice and
# paused once. Checks zero errors, the app's RSS flat after warm-up (within 5%), and write-backs
# in flight back to zero. Loopback only; stops by itself; leaves nothing running.
#
#   bash scripts/soak.sh                 # 600 s; SOAK_SECONDS=120 for a short run
#
# Needs redis-server and redis-cli on PATH (apt-get install redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${SOAK_SECONDS:-600}
PORT=${PORT:-6496}
APP=127.0.0.1:${APP_PORT:-3096}
OUT=${OUT:-target/soak}
mkdir -p "$OUT"
cargo build --release --example predictions --example loadgen

APP_PID=
LOAD_PID=
stop() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  [ -f "$OUT/redis.pid" ] && kill -CONT "$(cat "$OUT/redis.pid")" 2>/dev/null || true
}
trap stop EXIT

redis_up() {
  redis-server --port "$PORT" --save '' --appendonly no --maxmemory 1gb \
    --maxmemory-policy allkeys-lfu --lazyfree-lazy-eviction yes \
    --daemonize yes --pidfile "$PWD/$OUT/redis.pid" >/dev/null
  for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
}
log() { echo "$(date +%T) +$(( $(date +%s) - START ))s $*" | tee -a "$OUT/events.log"; }

: > "$OUT/events.log"
: > "$OUT/rss.log"
START=$(date +%s)
redis_up
REDIS_URL=redis://127.0.0.1:$PORT BIND=$APP RUST_LOG=warn target/release/examples/predictions \
  > "$OUT/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 100); do curl -sf "http://$APP/health" >/dev/null && break; sleep 0.1; done
target/release/examples/loadgen --target "http://$APP" --duration "${SECONDS_TOTAL}s" \
  --warmup 30s --json > "$OUT/loadgen.txt" &
LOAD_PID=$!
log "load started (app pid $APP_PID)"

# The faults, at fractions of the run: kill at 15% and 40% (restart 10 s later), pause at 65%.
at() { echo $(( SECONDS_TOTAL * $1 / 100 )); }
declare -A EVENTS=(
  [$(at 15)]=kill [$(( $(at 15) + 10 ))]=restart
  [$(at 40)]=kill [$(( $(at 40) + 10 ))]=restart
  [$(at 65)]=pause [$(( $(at 65) + 10 ))]=resume
)
while kill -0 "$LOAD_PID" 2>/dev/null; do
  now=$(( $(date +%s) - START ))
  case "${EVENTS[$now]:-}" in
    kill) kill -9 "$(cat "$OUT/redis.pid")"; log "redis killed"; unset "EVENTS[$now]" ;;
    restart) redis_up; log "redis restarted (empty)"; unset "EVENTS[$now]" ;;
    pause) kill -STOP "$(cat "$OUT/redis.pid")"; log "redis paused"; unset "EVENTS[$now]" ;;
    resume) kill -CONT "$(cat "$OUT/redis.pid")"; log "redis resumed"; unset "EVENTS[$now]" ;;
  esac
  if (( now % 10 == 0 )); then
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$APP_PID/status")
    flight=$(curl -s -m 2 "http://$APP/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["writes_in_flight"])' 2>/dev/null || echo "?")
    echo "$now $rss $flight" >> "$OUT/rss.log"
  fi
  sleep 1
done
wait "$LOAD_PID" || true
LOAD_PID=
log "load finished"
sleep 1
curl -s "http://$APP/stats" > "$OUT/stats-end.json"
python3 - "$OUT" "$SECONDS_TOTAL" <<'PY'
import json, sys
out, total = sys.argv[1], int(sys.argv[2])
report = json.loads(open(f"{out}/loadgen.txt").read().strip().splitlines()[-1])
stats = json.load(open(f"{out}/stats-end.json"))
samples = [line.split() for line in open(f"{out}/rss.log")]
# After warm-up: past the first 10% of the run. Flat: every sample within 5% of their median,
# and no drift (the median of the last tenth of the samples against that of the first).
settled = [int(rss) for t, rss, _ in samples if int(t) >= total // 10]
median = lambda xs: sorted(xs)[len(xs) // 2]
mid = median(settled)
worst = max(abs(x - mid) / mid for x in settled)
tenth = max(1, len(settled) // 10)
drift = (median(settled[-tenth:]) - median(settled[:tenth])) / median(settled[:tenth])
low, high = min(settled), max(settled)
t = stats["totals"]
print(f"requests {report['requests']} (+{report['warmup_requests']} warm-up), errors {report['errors']}, "
      f"rps {report['rps']:.0f}, hit rate {report['hit_rate']:.3f}, hit p99 {report['hit_p99_ms']} ms, "
      f"handler runs {report['handler_runs']}")
print(f"app RSS after warm-up: median {mid} KiB, {low} to {high} KiB (at most {worst:.1%} from the median), "
      f"drift first to last tenth {drift:+.1%}, {len(settled)} samples")
print(f"write-backs in flight at the end: {t['writes_in_flight']} ({t['write_bytes_in_flight']} bytes); "
      f"writes {t['writes']}, write errors {t['write_errors']}, dropped {t['writes_dropped']}, "
      f"lookup errors {t['lookup_errors']}")
ok = report["errors"] == 0 and worst <= 0.05 and abs(drift) <= 0.05 and t["writes_in_flight"] == 0
print("SOAK", "PASSED" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
