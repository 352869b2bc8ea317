"""The runsc runtimes a sandbox can run under, one per network mode.

This module has no third-party imports on purpose: ``scripts/setup-host.sh``
runs it with the system Python, before the package is installed, to register
the runtimes in ``/etc/docker/daemon.json``::

    python3 -m jupyter_sandbox.runtimes /etc/docker/daemon.json
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Mapping

RUNSC_PATH = "/usr/bin/runsc"

WANTED_RUNTIMES: dict[str, dict[str, Any]] = {
    # loopback only: the safe default
    "runsc": {"path": RUNSC_PATH, "runtimeArgs": ["--network=none", "--net-raw", "--cpu-num-from-quota"]},
    # the host's network stack, as asked for with network="host"
    "runsc-host": {"path": RUNSC_PATH, "runtimeArgs": ["--network=host", "--net-raw", "--cpu-num-from-quota"]},
    # gVisor's own network stack on a Docker bridge (fails on runsc 20240729 + kernel >= 6)
    "runsc-sandbox": {"path": RUNSC_PATH, "runtimeArgs": ["--net-raw", "--cpu-num-from-quota"]},
}
"""The runtimes ``setup-host.sh`` registers, by name."""


def network_of(runtime: Mapping[str, Any]) -> str | None:
    """The network mode a registered runtime gives a sandbox, or ``None`` if it is not runsc.

    Args:
        runtime: One entry of ``docker info``'s ``Runtimes`` (``path`` and ``runtimeArgs``).
    """
    if os.path.basename(str(runtime.get("path", ""))) != "runsc":
        return None
    network = "sandbox"
    for arg in runtime.get("runtimeArgs") or []:
        if arg.startswith("--network="):
            network = arg.split("=", 1)[1]
    return network


def runtime_for(network: str, registered: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The name of a registered runsc runtime for a network mode, if the engine has one."""
    preferred = [name for name, wanted in WANTED_RUNTIMES.items() if network_of(wanted) == network]
    candidates = preferred + sorted(registered)
    for name in candidates:
        if name in registered and network_of(registered[name]) == network:
            return name
    return None


def merge_into(config: dict[str, Any]) -> bool:
    """Add the wanted runtimes to a daemon.json mapping; True if anything changed."""
    runtimes = config.setdefault("runtimes", {})
    changed = False
    for name, wanted in WANTED_RUNTIMES.items():
        if runtimes.get(name) != wanted:
            runtimes[name] = wanted
            changed = True
    return changed


def register(path: str = "/etc/docker/daemon.json") -> bool:
    """Merge the runtimes into a daemon.json file, keeping its other keys; True if it changed."""
    config: dict[str, Any] = {}
    if os.path.exists(path) and os.path.getsize(path):
        with open(path) as f:
            config = json.load(f)
    if not merge_into(config):
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return True


if __name__ == "__main__":
    print("changed" if register(*sys.argv[1:2]) else "unchanged")
