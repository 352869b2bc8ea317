#!/usr/bin/env bash
# Install everything, then start JupyterLab with the jupyter-sandbox extension
# on http://127.0.0.1:8888 (the token is printed below).
#
#   bash scripts/run-lab.sh                 # the example notebooks, as a working copy
#   bash scripts/run-lab.sh FOLDER [ARGS]   # your own folder; ARGS go to `jupyter lab`
#
# The example notebooks are tests (nbval compares their stored outputs), so Lab
# opens a copy of them in $JUPYTER_SANDBOX_WORKDIR (default ~/jupyter-sandbox-notebooks;
# files already there are kept), never the tracked files themselves.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
folder=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  folder=$1; shift
  [ -d "$folder" ] || { echo "run-lab.sh: $folder is not a folder" >&2; exit 2; }
else
  folder=${JUPYTER_SANDBOX_WORKDIR:-$HOME/jupyter-sandbox-notebooks}
  mkdir -p "$folder"
  cp -rn notebooks/. "$folder"/
  echo "[run-lab] the example notebooks, copied to $folder (the repo's own stay untouched)"
fi
exec jupyter lab --ip=127.0.0.1 --port="${PORT:-8888}" --no-browser --allow-root --notebook-dir="$folder" "$@"
