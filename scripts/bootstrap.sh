#!/usr/bin/env bash
# Creates .venv and installs journey with its development tools; a no-op when up to date.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "bootstrap: Python 3.11+ is required (set PYTHON=...)" >&2; exit 1; }
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing journey and its tools into .venv" >&2
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[dev]" >.venv/install.log 2>&1 \
    || { echo "bootstrap: pip install failed; see .venv/install.log" >&2; tail -n 20 .venv/install.log >&2; exit 1; }
  rm -f .venv/.installed-*
  touch "$stamp"
fi
