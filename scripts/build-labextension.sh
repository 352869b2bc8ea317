#!/usr/bin/env bash
# Install the JupyterLab extension's node_modules (npm ci, only when package-lock.json
# is newer than them) and build it (labextension/ -> jupyter_sandbox/labextension/),
# idempotently: the build is skipped when its output is newer than every source file,
# package.json and package-lock.json.  Then make sure Lab finds it for an
# editable install (a symlink in the environment's share/jupyter/labextensions).
#
#   bash scripts/build-labextension.sh          # build if needed
#   FORCE=1 bash scripts/build-labextension.sh  # always rebuild
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '\033[1m[build-labextension]\033[0m %s\n' "$*"; }

SRC=labextension
OUT=jupyter_sandbox/labextension
STAMP="$OUT/static/style.js"

command -v npm >/dev/null 2>&1 || {
  log "npm is missing: installing Debian's nodejs and npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}

# The npm build runs `jupyter-builder build` (PyPI's jupyter-builder; jupyterlab depends on it).
command -v jupyter-builder >/dev/null 2>&1 || {
  log "installing jupyter-builder"
  python3 -m pip install -q --disable-pip-version-check jupyter-builder 2>&1 | grep -v "Running pip as the 'root' user" || true
}

needs_build() {
  [ "${FORCE:-0}" = 1 ] && return 0
  [ -f "$STAMP" ] && [ -f "$OUT/package.json" ] || return 0
  # Any source newer than the built output means a rebuild.
  [ -n "$(find "$SRC/src" "$SRC/style" "$SRC/schema" "$SRC/package.json" "$SRC/package-lock.json" "$SRC/tsconfig.json" \
          -newer "$STAMP" -print -quit 2>/dev/null)" ]
}

# node_modules exactly as package-lock.json pins it, whether or not the build is current:
# scripts/test.sh lints with its eslint and prettier.  Skipped when already installed.
if [ ! -d "$SRC/node_modules" ] || [ "$SRC/package-lock.json" -nt "$SRC/node_modules/.package-lock.json" ]; then
  log "npm ci"
  (cd "$SRC" && npm ci --no-fund --no-audit --loglevel=error)
fi

if needs_build; then
  log "building the Lab extension"
  cd "$SRC"
  npm run --silent build:prod
  cd ..
  touch "$STAMP"
else
  log "Lab extension up to date"
fi

# Editable installs: Lab reads prebuilt extensions from share/jupyter/labextensions;
# point it at the build output so a rebuild needs no reinstall.
target="$(python3 -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/jupyter-sandbox"
# Asked from / so that this folder, first on sys.path when run from here, does not answer for the install.
if (here="$(pwd)"; cd / && python3 -c 'import jupyter_sandbox, pathlib, sys; sys.exit(0 if pathlib.Path(jupyter_sandbox.__file__).parent.resolve() == pathlib.Path(sys.argv[1], "jupyter_sandbox").resolve() else 1)' "$here") 2>/dev/null; then
  if [ "$(readlink -f "$target" 2>/dev/null)" != "$(readlink -f "$OUT")" ]; then
    log "linking $target -> $OUT (editable install)"
    mkdir -p "$(dirname "$target")"
    rm -rf "$target"
    ln -s "$(pwd)/$OUT" "$target"
  fi
fi
