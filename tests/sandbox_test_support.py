"""Helpers shared by test modules (a module of its own: `conftest` is ambiguous next to notebooks/conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Any, Iterator

import docker

from jupyter_sandbox import labels as L


class Tripwire(io.StringIO):
    """A stdout that calls ``action`` once, the first time its text contains ``marker``."""

    def __init__(self, marker: str, action):
        super().__init__()
        self.marker, self.action, self.fired = marker, action, False

    def write(self, text: str) -> int:
        written = super().write(text)
        if not self.fired and self.marker in self.getvalue():
            self.fired = True
            self.action()
        return written


RUN_ID = f"test-{os.getpid()}-{os.urandom(4).hex()}"
"""This test process's :data:`labels.RUN_ENV` (conftest puts it in the environment): every sandbox, and
every volume of one, that this process or a process it starts (the CLI, a server, a kernel) creates
carries it, so the leak checks see exactly this run's objects and nobody else's."""


def run_resources(client: docker.DockerClient, run: str = RUN_ID, pid: int | None = None) -> dict[str, set[str]]:
    """The engine objects a test run made, found by their labels, never by counting the whole engine
    (other processes use it too): sandbox containers (by id), volumes and networks (by name: an engine
    restart renews network ids).  The product labels every volume of a sandbox with the sandbox's
    ownership labels (engine.py); it makes no network of its own per sandbox (its one network, made
    by setup-host.sh, is shared and stays), so a network labelled with this run is a leak whoever made it."""
    mine = f"{L.RUN}={run}"
    containers = {c.id for c in client.containers.list(all=True, filters={"label": [f"{L.MANAGED}=1", mine]})}
    # this process's own, also where a test dropped the run's variable from the environment
    by_pid = f"{L.OWNER_PID}={pid or os.getpid()}"
    containers |= {c.id for c in client.containers.list(all=True, filters={"label": [f"{L.MANAGED}=1", by_pid]})}
    return {
        "sandbox containers": containers,
        "volumes": {v.name for v in client.volumes.list(filters={"label": mine})},
        "networks": {n.name for n in client.networks.list(filters={"label": mine})},
    }


def leaks(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    """What ``after`` has that ``before`` had not, as messages (empty: nothing left behind).
    Sets, not counts: an object removed meanwhile cannot hide another left behind."""
    return [f"{kind} left behind: {sorted(after[kind] - before[kind])}" for kind in before if after[kind] - before[kind]]


@contextlib.contextmanager
def creates_nothing(client: docker.DockerClient) -> Iterator[None]:
    """Fails if this run creates a sandbox container inside the block, even one removed again before
    its end (the engine's events say so; comparing lists before and after would not)."""
    started = time.time_ns()
    yield
    ended = time.time_ns()
    events = client.events(
        since=f"{started // 10**9}.{started % 10**9:09d}",
        until=f"{ended // 10**9}.{ended % 10**9:09d}",
        decode=True,
        filters={"type": "container", "event": "create", "label": f"{L.RUN}={RUN_ID}"},
    )
    created = [event["Actor"]["Attributes"].get("name") for event in events]
    assert not created, f"sandbox containers were created: {created}"


def container_exists(name: str) -> bool:
    """Whether the host engine has a sandbox container of this name."""
    try:
        docker.from_env().containers.get(L.container_name(name))
        return True
    except docker.errors.NotFound:
        return False


def unique_name(prefix: str) -> str:
    """A sandbox name that no other test, or other test process, uses."""
    return f"{prefix}-{os.getpid()}-{os.urandom(2).hex()}"


def server_config(**sandbox_manager: Any) -> dict[str, Any]:
    """A test server's config: our extension enabled, plus ``SandboxManager`` settings if given."""
    config: dict[str, Any] = {"ServerApp": {"jpserver_extensions": {"jupyter_sandbox_server": True}}}
    if sandbox_manager:
        config["SandboxManager"] = sandbox_manager
    return config
