#!/usr/bin/env bash
# Install everything, then start JupyterLab with the jupyter-sandbox extension
# on http://127.0.0.1:8888 (the token is printed below), opened on notebooks/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
exec jupyter lab --ip=127.0.0.1 --port="${PORT:-8888}" --no-browser --allow-root --notebook-dir=notebooks "$@"
