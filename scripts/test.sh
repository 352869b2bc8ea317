#!/usr/bin/env bash
# Install everything, then run every test: unit, integration (real runsc
# sandboxes), notebooks (nbval), server and browser tests.  CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh --test

# Sandboxes left by an interrupted earlier run would only confuse the leak checks.
jupyter-sandbox rm --orphans >/dev/null 2>&1 || true

# Lint first (pyproject.toml's [tool.ruff]: pycodestyle, pyflakes, import order): seconds, and a
# failure names the file and line.
python3 -m ruff check .
# Layout (pyproject.toml's [tool.ruff.format]): `ruff format .` fixes what this finds.
python3 -m ruff format --check .
# Types (pyproject.toml's [tool.mypy]: strict, on jupyter_sandbox/): seconds once cached.
python3 -m mypy
# The Lab extension's TypeScript: prettier --check and eslint (node_modules from install.sh).
(cd labextension && npm run --silent lint:check)

# The unit tests on the other Pythons the package claims (requires-python >=3.10: 3.10, 3.12, 3.13;
# this run's own Python runs them below with everything else).  Venvs under .venvs/, reused.
bash scripts/unit-pythons.sh

status=0
started=$(date +%s)
python3 -m pytest -p no:cacheprovider -ra "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
# The browser tests' screenshots (test-output/): each one this run wrote decodes and is not blank; a
# whole run (no arguments) writes at least 30 of them.
if [ "$#" = 0 ]; then
  python3 scripts/check-screenshots.py --since "$started" --at-least 30 || status=1
fi
exit "$status"
