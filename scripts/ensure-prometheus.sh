#!/usr/bin/env bash
# Installs Debian's prometheus package (prometheus and promtool) when promtool is missing.
# The tests run the real server and promtool; CI starts on a clean machine.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
echo "ensure-prometheus: installing Debian's prometheus package" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# The package's service is not wanted: tests start their own server on loopback.
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null && command -v prometheus >/dev/null \
  || { echo "ensure-prometheus: prometheus/promtool still missing after install" >&2; exit 1; }
