#!/usr/bin/env bash
# Install everything jupyter-sandbox needs on this machine, idempotently:
# host pieces (scripts/setup-host.sh), the Python package with its Lab
# extension, and the default Docker-enabled sandbox image.
#
#   bash scripts/install.sh          # runtime only
#   bash scripts/install.sh --test   # plus what the test suite needs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }

WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

bash scripts/setup-host.sh
if [ "$WITH_TEST" = 1 ]; then
  bash scripts/setup-test-host.sh
fi

# Python package (editable, so the repo is what runs); skipped when nothing changed.
extras="lab"
[ "$WITH_TEST" = 1 ] && extras="lab,test"
stamp=".install-stamp-$extras"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$(python3 --version)"
# The import must resolve to this checkout (an editable install of another clone would not).
here_check='import os, sys, jupyter_sandbox as a, jupyter_sandbox_server as b
sys.exit(0 if all(os.path.realpath(m.__file__).startswith(sys.argv[1] + os.sep) for m in (a, b)) else 1)'
repo="$(pwd -P)"
# An install with the test extras also serves the runtime-only one: switching between
# run-lab.sh and test.sh does not reinstall.
stamp_current() {
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  [ "$WITH_TEST" = 0 ] && [ "$(cat ".install-stamp-lab,test" 2>/dev/null)" = "$want" ]
}
if ! stamp_current || ! (cd / && python3 -c "$here_check" "$repo") 2>/dev/null; then
  log "pip install -e .[$extras]"
  # build-labextension.sh links Lab's copy of the extension to this checkout; pip must not
  # write (or uninstall) through that link into the build output.
  lab_link="$(python3 -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/jupyter-sandbox"
  [ -L "$lab_link" ] && rm -f "$lab_link"
  python3 -m pip install -q --disable-pip-version-check -e ".[$extras]" 2>&1 | grep -v "Running pip as the 'root' user" || true
  # pip keeps an editable install of another clone of the same version: point it here.
  (cd / && python3 -c "$here_check" "$repo") 2>/dev/null || \
    python3 -m pip install -q --disable-pip-version-check --no-deps --force-reinstall -e "$repo" 2>&1 | grep -v "Running pip as the 'root' user" || true
  (cd / && python3 -c "$here_check" "$repo")
  echo "$want" > "$stamp"
else
  log "python package up to date"
fi

if [ -x scripts/build-labextension.sh ]; then
  bash scripts/build-labextension.sh
fi

# The default sandbox image: built offline (debootstrap) unless present.
jupyter-sandbox image build --docker --offline --if-missing
# A 2 MB image to load into sandboxes in demos and notebooks (no registry here).
docker image inspect jupyter-sandbox/tiny:latest >/dev/null 2>&1 || jupyter-sandbox image tiny
log "installed"
