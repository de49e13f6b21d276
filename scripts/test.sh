#!/usr/bin/env bash
# The whole test suite, on a fresh clone: install, lint, type-check, start the local Kafka
# broker, run unit and integration tests, stop the broker. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/bootstrap.sh
# promtool and the Prometheus server for the rule tests and the real-scrape test.
scripts/ensure-prometheus.sh

echo "== ruff ==" >&2
.venv/bin/ruff check journey tests
echo "== mypy ==" >&2
.venv/bin/mypy

# A port of its own, so a broker left running by scripts/run.sh does not get in the way.
export KAFKA_PORT=${JOURNEY_TEST_KAFKA_PORT:-19192}
export JOURNEY_TEST_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
# Every run starts from an empty test broker, so nothing a previous run left can interfere.
deploy/kafka/kafka.sh reset
deploy/kafka/kafka.sh start
trap 'deploy/kafka/kafka.sh stop' EXIT

# The report test opens the HTML report in Debian's headless Chromium; install it if missing.
scripts/chromium.sh >/dev/null

echo "== pytest ==" >&2
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
