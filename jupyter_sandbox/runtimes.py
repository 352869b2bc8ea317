"""The runsc runtimes a sandbox can run under, one per network mode.

This module has no third-party imports on purpose: ``scripts/setup-host.sh``
runs it with the system Python, before the package is installed, to register
the runtimes in ``/etc/docker/daemon.json``::

    python3 -m jupyter_sandbox.runtimes /etc/docker/daemon.json
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Mapping

RUNSC_PATH = "/usr/bin/runsc"
WRAPPER_PATH = "/usr/local/lib/jupyter-sandbox/runsc"
"""``scripts/runsc-netns-wrapper``, installed by ``setup-host.sh`` where the runsc needs it."""

NETNS_FIXED = 20240807
"""The first gVisor release whose root-netns check works on kernels >= 6.11 (it reads ``dev_weight``)."""

COMMON_ARGS = [
    "--net-raw",
    "--cpu-num-from-quota",
    # The sandbox's root filesystem writes are sandbox memory, so the memory limit bounds them
    # (the default, root:self, keeps them in an unbounded hidden file on the host's disk).
    "--overlay2=root:memory",
    # Lets the inner dockerd *create* a socket on a host directory given to it; never "open"/"all",
    # which would let code inside connect to host sockets.
    "--host-uds=create",
]


def runsc_release(path: str = RUNSC_PATH) -> int:
    """The release date of a runsc binary (e.g. ``20240729``), or 0 when it cannot be read."""
    import re
    import subprocess

    try:
        text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.search(r"(20\d{6})", text)
    return int(match.group(1)) if match else 0


SETNS_FIXED = 20250707
"""The first gVisor release that can ``setns`` into a nested PID namespace (``docker exec`` inside)."""


@functools.lru_cache(maxsize=8)
def release_of(path: str) -> int:
    """:func:`runsc_release`, asked once per binary per process."""
    return runsc_release(path)


def needs_shared_pid(release: int) -> bool:
    """Whether inner containers must share the sandbox's PID namespace for ``docker exec`` to work."""
    return release < SETNS_FIXED


def needs_wrapper(release: int) -> bool:
    """Whether network mode ``sandbox`` needs the wrapper: runsc before 2024-08-07 on kernel 6.x or later."""
    major = int((os.uname().release.split(".") or ["0"])[0] or 0)
    return release < NETNS_FIXED and major >= 6


def wanted_runtimes(sandbox_path: str = RUNSC_PATH) -> dict[str, dict[str, Any]]:
    """The runtimes ``setup-host.sh`` registers, by name.

    Args:
        sandbox_path: The binary for network mode ``sandbox``: runsc itself, or the wrapper
            where this runsc refuses that mode (see :func:`needs_wrapper`).
    """
    return {
        # loopback only
        "runsc": {"path": RUNSC_PATH, "runtimeArgs": ["--network=none", *COMMON_ARGS]},
        # the host's network stack, as asked for with network="host"
        "runsc-host": {"path": RUNSC_PATH, "runtimeArgs": ["--network=host", *COMMON_ARGS]},
        # gVisor's own network stack, on the product's own bridge network
        "runsc-sandbox": {"path": sandbox_path, "runtimeArgs": ["--network=sandbox", *COMMON_ARGS]},
    }


WANTED_RUNTIMES = wanted_runtimes()
"""The runtimes as they look with runsc itself for every mode (what error messages suggest)."""


_VERSIONS: dict[tuple[str, int, int, int], str] = {}


def version_text(path: str) -> str:
    """The first line a runtime binary prints for ``--version`` (cached while the file is unchanged), or ``""``.

    A bare name (``"runsc"``) is looked up on ``PATH``, as dockerd does.
    """
    import shutil
    import subprocess

    if path and not os.path.isabs(path):
        path = shutil.which(path) or path
    try:
        status = os.stat(path)
    except OSError:
        return ""
    key = (path, status.st_ino, status.st_size, status.st_mtime_ns)
    if key not in _VERSIONS:
        try:
            result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
            _VERSIONS[key] = (result.stdout.strip().splitlines() or [""])[0] if result.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            _VERSIONS[key] = ""
    return _VERSIONS[key]


def is_gvisor(path: str) -> bool:
    """Whether a runtime binary is gVisor's runsc, by what it says of itself (``runsc version ...``).

    The file's name proves nothing: any binary can be called ``runsc``.  A wrapper that
    execs runsc (such as :data:`WRAPPER_PATH`) passes, since runsc itself answers.
    """
    return version_text(path).startswith("runsc version ")


def declared_network(runtime: Mapping[str, Any]) -> str:
    """The network mode a runtime's ``--network=`` argument asks runsc for (runsc's default: ``sandbox``)."""
    network = "sandbox"
    for arg in runtime.get("runtimeArgs") or []:
        if isinstance(arg, str) and arg.startswith("--network="):
            network = arg.split("=", 1)[1]
    return network


def network_of(runtime: Mapping[str, Any]) -> str | None:
    """The network mode a registered runtime gives a sandbox, or ``None`` if it is not gVisor.

    Args:
        runtime: One entry of ``docker info``'s ``Runtimes`` (``path`` and ``runtimeArgs``);
            its binary must say it is runsc (:func:`is_gvisor`).
    """
    if not is_gvisor(str(runtime.get("path", ""))):
        return None
    return declared_network(runtime)


def runtime_for(network: str, registered: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The name of a registered gVisor runtime for a network mode, if the engine has one."""
    preferred = [name for name, wanted in WANTED_RUNTIMES.items() if declared_network(wanted) == network]
    candidates = preferred + sorted(registered)
    for name in candidates:
        if name in registered and network_of(registered[name]) == network:
            return name
    return None


OUR_FLAGS = frozenset(
    {
        "--network=none",
        "--network=host",
        "--network=sandbox",
        "--net-raw",
        "--cpu-num-from-quota",
        "--overlay2=root:memory",
        "--host-uds=create",
    }
)
"""Every runtime flag a version of jupyter-sandbox has registered: an entry made only of these is ours to update."""
REPLACE_ENV = "JUPYTER_SANDBOX_REPLACE_RUNTIMES"


class RuntimeConflict(Exception):
    """daemon.json has a runtime of one of our names that an admin set up differently."""


def is_ours(entry: Mapping[str, Any]) -> bool:
    """Whether a daemon.json runtime entry was written by (some version of) jupyter-sandbox."""
    args = entry.get("runtimeArgs") or []
    return (
        set(entry) <= {"path", "runtimeArgs"}
        and entry.get("path") in (RUNSC_PATH, WRAPPER_PATH)
        and isinstance(args, list)
        and set(args) <= OUR_FLAGS
    )


def merge_into(config: dict[str, Any], wanted_by_name: Mapping[str, dict[str, Any]] | None = None, *, replace_foreign: bool = False) -> list[str]:
    """Add or update the wanted runtimes in a daemon.json mapping, keeping every other key.

    Returns:
        One line per change (empty when nothing changed).

    Raises:
        RuntimeConflict: If a runtime of one of our names was set up by someone else (and
            ``replace_foreign`` is not set): it is never replaced silently.
    """
    runtimes = config.setdefault("runtimes", {})
    changes: list[str] = []
    for name, wanted in (wanted_by_name or WANTED_RUNTIMES).items():
        current = runtimes.get(name)
        if current == wanted:
            continue
        if current is not None and not is_ours(current) and not replace_foreign:
            raise RuntimeConflict(
                f"daemon.json already has a runtime named {name!r} that jupyter-sandbox did not write: "
                f"{json.dumps(current)}. It would be replaced by {json.dumps(wanted)}. Rename yours, or set "
                f"{REPLACE_ENV}=1 to let jupyter-sandbox replace it."
            )
        changes.append(
            f"{'updated' if current else 'added'} runtime {name}: {json.dumps(wanted)}" + (f" (was {json.dumps(current)})" if current else "")
        )
        runtimes[name] = wanted
    return changes


def enable_experimental(config: dict[str, Any]) -> list[str]:
    """Turn on the engine's experimental mode in a daemon.json mapping (snapshots need its checkpoints).

    Returns:
        One line when it changed (the engine must then restart: a reload does not apply it).
    """
    if config.get("experimental") is True:
        return []
    before = config.get("experimental")
    config["experimental"] = True
    return ["set experimental: true (checkpoints, for snapshots and forks)" + (f" (was {json.dumps(before)})" if before is not None else "")]


def register(path: str = "/etc/docker/daemon.json", sandbox_path: str = RUNSC_PATH) -> list[str]:
    """Merge the runtimes and experimental mode into a daemon.json file, keeping its other keys;
    returns the changes made.

    Raises:
        RuntimeConflict: See :func:`merge_into` (``JUPYTER_SANDBOX_REPLACE_RUNTIMES=1`` overrides).
    """
    config: dict[str, Any] = {}
    if os.path.exists(path) and os.path.getsize(path):
        with open(path) as f:
            config = json.load(f)
    changes = merge_into(config, wanted_runtimes(sandbox_path), replace_foreign=os.environ.get(REPLACE_ENV) == "1")
    changes += enable_experimental(config)
    if not changes:
        return []
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return changes


if __name__ == "__main__":
    # python3 -m jupyter_sandbox.runtimes DAEMON_JSON [SANDBOX_RUNTIME_PATH]: the changes on stderr,
    # "changed" or "unchanged" on stdout; exit 1 (saying why) rather than replace an admin's runtime.
    try:
        made = register(*sys.argv[1:3])
    except RuntimeConflict as conflict:
        print(f"error: {conflict}", file=sys.stderr)
        sys.exit(1)
    for change in made:
        print(change, file=sys.stderr)
    print("changed" if made else "unchanged")
