#!/usr/bin/env bash
# The main job, on a fresh clone: install, start the local Kafka broker, simulate a population,
# feed it to the touchpoints topic, let a worker process it, collect its output topics and draw
# the backtest report from them. Prints the report's path and where the metrics are. Extra
# arguments go to `journey simulate` (e.g. --customers 5000 --seed 7). scripts/demo-sample.sh
# is the short tour: a handful of sample touchpoints, each output explained.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/bootstrap.sh
export KAFKA_PORT=${KAFKA_PORT:-19092}
export JOURNEY_KAFKA_BOOTSTRAP=${JOURNEY_KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
export JOURNEY_DEFINITIONS=${JOURNEY_DEFINITIONS:-touchpoint_journey,dentist,wedding_photographer}
export JOURNEY_EXTRA_EVENT_TYPES=${JOURNEY_EXTRA_EVENT_TYPES:-diagnosis}  # the dentist's own type
export JOURNEY_HOLDOUT_SHARE=${JOURNEY_HOLDOUT_SHARE:-0.1}
export JOURNEY_TICK_INTERVAL_MS=${JOURNEY_TICK_INTERVAL_MS:-1000}
export JOURNEY_WEB_PORT=${JOURNEY_WEB_PORT:-6066}
# A fresh prefix per run, so a previous demo's records never mix in.
export JOURNEY_TOPIC_PREFIX=${JOURNEY_TOPIC_PREFIX:-sim$(date +%s)-}
export JOURNEY_APP_ID=${JOURNEY_APP_ID:-${JOURNEY_TOPIC_PREFIX}journey}
out=.local/demo/${JOURNEY_TOPIC_PREFIX%-}
mkdir -p "$out"

started_here=0
worker_pid=
cleanup() {
  if [ -n "$worker_pid" ]; then kill "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
  if [ "$started_here" = 1 ]; then deploy/kafka/kafka.sh stop; fi
}
trap cleanup EXIT
if ! deploy/kafka/kafka.sh status; then
  deploy/kafka/kafka.sh start
  started_here=1
fi

echo "== simulating a population ==" >&2
.venv/bin/journey topics --create >/dev/null
.venv/bin/journey simulate --out "$out/simulated.jsonl" --kafka "$@"
events=$(grep -c . "$out/simulated.jsonl")

echo "== a worker processes the $events touchpoints (log: $out/worker.log) ==" >&2
.venv/bin/journey worker >"$out/worker.log" 2>&1 &
worker_pid=$!
metrics=http://127.0.0.1:$JOURNEY_WEB_PORT/metrics
processed=0
for _ in $(seq 1 600); do
  processed=$(curl -fsS "$metrics" 2>/dev/null \
    | awk '/^journey_events_processed_total/ {s += $NF} END {printf "%d", s}') || processed=0
  printf '\r%s of %s processed' "${processed:-0}" "$events" >&2
  [ "${processed:-0}" -ge "$events" ] && break
  kill -0 "$worker_pid" 2>/dev/null || { echo; echo "the worker stopped; see $out/worker.log" >&2; exit 1; }
  sleep 1
done
echo >&2
[ "${processed:-0}" -ge "$events" ] || { echo "the worker did not finish in 10 minutes" >&2; exit 1; }

echo "== collecting the worker's output topics ==" >&2
.venv/bin/journey collect --out-dir "$out/worker-run" --idle 5
.venv/bin/journey report --input "$out/simulated.jsonl" --outputs "$out/worker-run"
# The worker stops with this script: keep what its metrics said at the end.
curl -fsS "$metrics" >"$out/metrics.txt" 2>/dev/null || true
echo
echo "metrics: $out/metrics.txt (the worker's $metrics at the end; it stops with this"
echo "         script: run 'journey worker' with the same JOURNEY_* settings to keep it up)"
echo "the same run in-process, no broker: .venv/bin/journey run --input $out/simulated.jsonl \\"
echo "    --journey touchpoint_journey --journey dentist --journey wedding_photographer --holdout 0.1"
