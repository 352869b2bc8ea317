"""jupyter-sandbox's Jupyter server extension: REST API under ``/sandbox/api/``, events on ``/api/events/subscribe``.

Enabled by ``etc/jupyter/jupyter_server_config.d/jupyter_sandbox.json``,
which ``pip install`` puts in place.
"""

from __future__ import annotations

from typing import Any

from .app import SandboxExtensionApp


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The extension point Jupyter server loads: this module, run by :class:`SandboxExtensionApp`."""
    return [{"module": "jupyter_sandbox_server", "app": SandboxExtensionApp}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Load the extension into a running ``ServerApp`` (for callers that use the module hook)."""
    SandboxExtensionApp._load_jupyter_server_extension(serverapp)
