#!/usr/bin/env bash
# Ensures Debian's chromium (the headless browser of the compare report's test,
# tests/integration/sdk/test_compare_browser.py) is installed and prints its path.
#
# Usage: scripts/get-chromium.sh     prints e.g. /usr/bin/chromium
# When CHROMIUM_BIN is set and executable it is printed as is. Run it outside the private
# network namespace (apt-get needs the archive; root installs a missing package); inside it,
# the browser only ever opens file:// pages whose images are data: URIs.
set -euo pipefail

if [ -n "${CHROMIUM_BIN:-}" ] && [ -x "$CHROMIUM_BIN" ]; then
  echo "$CHROMIUM_BIN"; exit 0
fi

log() { echo "[get-chromium] $*" >&2; }
if ! dpkg -s chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "Debian's chromium is not installed: run 'apt-get install -y chromium' as root"
    exit 1
  fi
  log "installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium >&2
fi
command -v chromium
