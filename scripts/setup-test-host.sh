#!/usr/bin/env bash
# Debian packages only the tests need (idempotent): chromium for the browser tests
# (busybox-static, for the tiny offline images, comes with setup-host.sh).
set -euo pipefail
log() { printf '\033[1m[setup-test-host]\033[0m %s\n' "$*"; }
missing=()
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "test packages ok"
