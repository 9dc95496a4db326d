#!/usr/bin/env bash
# The long run of the history checker (tests/it/history.rs, RELIABILITY.md "The history
# checker"): rounds of a graceful failover, a paused master, a live slot migration and a master
# killed with its replication link cut (then restarted as a replica), for HISTORY_SECS seconds
# (600 by default), with readers and writers on two instances; fails on any read that saw what
# an acknowledged invalidation dropped, any failed request, or an invalidation still failing
# after 30 s of retries. Loopback only; its redis-server processes stop with it.
#
#   bash scripts/history.sh                        # 10 minutes, Redis from PATH
#   HISTORY_SECS=120 REDIS_SERVER=/path/to/valkey-server bash scripts/history.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HISTORY_SECS=${HISTORY_SECS:-600}
cargo test --test it history::no_read_sees_what_an_acknowledged_invalidation_dropped \
  -- --exact --nocapture
