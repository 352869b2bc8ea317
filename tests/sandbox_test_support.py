"""Helpers shared by test modules (a module of its own: `conftest` is ambiguous next to notebooks/conftest.py)."""

from __future__ import annotations

import io
import os
from typing import Any

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

