#!/usr/bin/env bash
# The short tour, on a fresh clone: install, start the local Kafka broker, run a worker on the
# sample touchpoints and explain each stage change, trigger, audit record and dead letter, then
# the metrics; then stop everything. The main job is scripts/run.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/bootstrap.sh
export KAFKA_PORT=${KAFKA_PORT:-19092}
export JOURNEY_KAFKA_BOOTSTRAP=${JOURNEY_KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
started_here=0
if ! deploy/kafka/kafka.sh status; then
  deploy/kafka/kafka.sh start
  started_here=1
fi
# Leave a broker that was already running alone; stop the one this script started.
trap '[ "$started_here" = 1 ] && deploy/kafka/kafka.sh stop' EXIT
.venv/bin/journey demo "$@"
