#!/usr/bin/env bash
# Run the unit tests (those without the `integration` marker: no sandbox; the server ones need the host
# engine to answer) on every Python the package claims (requires-python >=3.10) other than the main one,
# which runs them with everything else in scripts/test.sh.  Idempotent: one venv per version under .venvs/ (git-ignored),
# reused while the requirements are unchanged.
#
# The venvs get the package's runtime dependencies and only what the unit tests import (pytest,
# hypothesis, pytest-jupyter's server fixtures, ipykernel): not playwright, nbval or jupyterlab, which
# only the integration, notebook and browser tests use; and the package, editable from this checkout
# without its Lab extension build (a venv's own install: the main interpreter's is untouched).
# Installs go through uv (in the test extras) when the main Python has it, else pip.
#
# Usage: scripts/unit-pythons.sh [VERSION...]   (default: 3.10 3.12 3.13)
# Each VERSION is found as pythonVERSION on PATH or under ~/.pyenv/versions/VERSION*/bin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.12 3.13)

find_python() {
  local version=$1 candidate
  for candidate in "$HOME"/.pyenv/versions/"$version".*/bin/python"$version" "$(command -v "python$version" || true)"; do
    if [ -x "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# The requirements: pyproject.toml's dependencies plus the unit tests' imports (read by the main
# Python: 3.10 has no tomllib).
requirements=$(python3 - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
extra = ("pytest", "hypothesis", "pytest-jupyter", "ipykernel")
test = [r for r in project["optional-dependencies"]["test"] if r.split("[")[0].split(">")[0].split("=")[0] in extra]
print("\n".join(project["dependencies"] + test))
print("# and the package itself, editable")  # (in the stamp: a venv made before that is redone)
PY
)

# One version's venv and run (the versions go in parallel: the unit tests spend
# most of their time waiting, not computing, and the installs mostly download).
one_version() {
  local version=$1 python venv stamp started
  python=$(find_python "$version") || { echo "unit-pythons: no Python $version on this machine"; return 1; }
  venv=$root/.venvs/py$version
  stamp=$venv/.requirements
  started=$(date +%s)
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$requirements" ]; then
    echo "unit-pythons: installing the unit tests' requirements into .venvs/py$version"
    printf '%s\n' "$requirements" > "$venv/requirements.txt"
    # The package itself goes in editable (its metadata gives __version__), without building the Lab
    # extension (no unit test needs it) and without its dependencies (installed just before).
    if python3 -m uv --version >/dev/null 2>&1; then  # uv (the test extras): ~10 s where pip takes minutes
      python3 -m uv pip install --quiet --python "$venv/bin/python" -r "$venv/requirements.txt"
      SKIP_JUPYTER_BUILDER=1 python3 -m uv pip install --quiet --python "$venv/bin/python" --no-deps -e "$root"
    else
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$venv/requirements.txt" 2>&1 \
        | { grep -v "^WARNING: Location" || true; }
      SKIP_JUPYTER_BUILDER=1 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root" 2>&1 \
        | { grep -v "^WARNING: Location" || true; }
    fi
    "$venv/bin/python" -c "import jupyter_sandbox, sys; sys.exit(jupyter_sandbox.__version__ == '0+unknown')" \
      || { echo "unit-pythons: the install into .venvs/py$version failed"; return 1; }
    printf '%s' "$requirements" > "$stamp"
  fi
  echo "unit-pythons: Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())') ready in $(( $(date +%s) - started )) s"
  # The server tests' servers list their sandboxes on the host engine when they stop: it must be up,
  # as for the main run.  PYTHONPATH as in the main run, so the tests import this checkout.
  PYTHONPATH="$root:$root/server_ext" "$venv/bin/python" -m pytest -p no:cacheprovider -q -m "not integration" tests
}

started=$(date +%s)
mkdir -p "$root/.venvs"
pids=()
for version in "${versions[@]}"; do
  one_version "$version" > "$root/.venvs/py$version.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!versions[@]}"; do
  code=0
  wait "${pids[$i]}" || code=$?
  echo "=== unit tests on Python ${versions[$i]} (exit $code) ==="
  if [ "$code" = 0 ]; then tail -n 3 "$root/.venvs/py${versions[$i]}.log"; else cat "$root/.venvs/py${versions[$i]}.log"; status=1; fi
done
echo "unit-pythons: ${versions[*]} in $(( $(date +%s) - started )) s"
exit "$status"
