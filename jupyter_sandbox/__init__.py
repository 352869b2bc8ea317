"""jupyter-sandbox: gVisor sandboxes with their own Docker daemon, from Jupyter and the terminal.

The package root holds only the extension hooks and lazy exports, so that
importing it (as Jupyter does to find the hooks) stays cheap.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("jupyter-sandbox")
    """The installed version: labextension/package.json's, the one source of it (see pyproject.toml)."""
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["AsyncSandbox", "Sandbox", "SandboxSpec", "SandboxError", "ProgressEvent", "Phase", "__version__"]

_LAZY = {
    "AsyncSandbox": ".sandbox",
    "Sandbox": ".sync",
    "SandboxSpec": ".spec",
    "SandboxError": ".errors",
    "ProgressEvent": ".events",
    "Phase": ".events",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'jupyter_sandbox' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_sandbox``: register the ``%sandbox`` and ``%%sandbox_docker`` magics."""
    from .magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Terminate the sandboxes this kernel created (unless kept)."""
    from .magics import unregister

    unregister(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt Lab extension lives in the installed package."""
    return [{"src": "labextension", "dest": "jupyter-sandbox"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension (its module is installed from ``server_ext/``)."""
    return [{"module": "jupyter_sandbox_server"}]
