#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium, installing Debian's `chromium` package if it is
# missing (root or sudo needed then). Used by the report test; idempotent.
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; exit 0; fi
done
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "chromium.sh: chromium is missing; install it as root: apt-get install -y chromium" >&2; exit 1; }
  as_root=(sudo -n)
fi
echo "chromium.sh: installing Debian's chromium package" >&2
# Another install may hold the dpkg lock; wait for it rather than fail.
"${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
  --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
