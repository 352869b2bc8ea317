"""The server extension: one :class:`SandboxManager` in the web app's settings, one route table
(the REST API under ``sandbox/api/``, the port proxy under ``sandbox/proxy/``)."""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join

from jupyter_sandbox.labels import SERVER_ENV
from jupyter_sandbox.ports import BASE_URL_ENV

from .files import DownloadHandler, FilesHandler
from .handlers import (
    MANAGER_SETTING,
    ContainersHandler,
    EgressHandler,
    ExecHandler,
    InnerContainerHandler,
    InnerContainerLogsHandler,
    InnerContainerStopHandler,
    LogsHandler,
    PauseHandler,
    PhasesHandler,
    PortsHandler,
    SandboxesHandler,
    SandboxHandler,
    SandboxSnapshotsHandler,
    SnapshotsHandler,
    TerminalHandler,
    UsageHandler,
    WatchHandler,
)
from .manager import SandboxManager
from .proxy import SandboxProxyHandler
from .proxy import route as proxy_route

NAMESPACE = "sandbox/api"
"""Every route lives under ``<base_url>/sandbox/api/``."""
NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,62})"
CONTAINER = r"(?P<container>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})"
"""An inner container's id or name, as its Docker daemon accepts them."""
FILE_PATH = r"(?P<path>(?:/.*)?)"
"""The absolute path inside the sandbox after ``files`` or ``download`` (none: ``/``)."""


def routes() -> list[tuple[str, Any]]:
    """The extension's route table, relative to the server's base URL."""
    one = url_path_join(NAMESPACE, "sandboxes", NAME)
    return [
        (url_path_join(NAMESPACE, "sandboxes"), SandboxesHandler),
        (one, SandboxHandler),
        (url_path_join(one, "exec"), ExecHandler),
        (url_path_join(one, "egress"), EgressHandler),
        (url_path_join(one, "logs"), LogsHandler),
        (url_path_join(one, "containers"), ContainersHandler),
        (url_path_join(one, "containers", CONTAINER), InnerContainerHandler),
        (url_path_join(one, "containers", CONTAINER, "stop"), InnerContainerStopHandler),
        (url_path_join(one, "containers", CONTAINER, "logs"), InnerContainerLogsHandler),
        (url_path_join(one, "ports"), PortsHandler),
        (url_path_join(one, r"(?P<action>pause|resume)"), PauseHandler),
        (url_path_join(one, "snapshots"), SandboxSnapshotsHandler),
        (url_path_join(one, "terminal"), TerminalHandler),
        (url_path_join(NAMESPACE, "stats"), UsageHandler),
        (url_path_join(one, "files") + FILE_PATH, FilesHandler),
        (url_path_join(one, "download") + FILE_PATH, DownloadHandler),
        (url_path_join(NAMESPACE, "snapshots"), SnapshotsHandler),
        (url_path_join(NAMESPACE, "snapshots", r"(?P<tag>[^/]+)"), SnapshotsHandler),
        (url_path_join(NAMESPACE, "watch"), WatchHandler),
        (url_path_join(NAMESPACE, "phases"), PhasesHandler),
        (proxy_route(), SandboxProxyHandler),
    ]


class SandboxExtensionApp(ExtensionApp):
    """jupyter-sandbox's server side: REST API, sandbox events on the server's event bus, cleanup at shutdown.

    Configure the create defaults and ``keep_on_exit`` on ``SandboxManager``.
    """

    name = "jupyter_sandbox_server"
    load_other_extensions = True
    classes = [SandboxManager]

    def initialize_settings(self) -> None:
        """Create the manager and mark this server in the environment kernels inherit."""
        os.environ[SERVER_ENV] = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        os.environ[BASE_URL_ENV] = self.serverapp.base_url  # so sb.url(port) in its kernels knows it
        manager = SandboxManager(parent=self.serverapp, log=self.log)
        self.settings[MANAGER_SETTING] = manager
        self.log.info("jupyter-sandbox: REST API at %s", url_path_join(self.serverapp.base_url, NAMESPACE))

    def initialize_handlers(self) -> None:
        """Add the route table (the base URL is prepended by ExtensionApp)."""
        self.handlers.extend(routes())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the event loop runs: start following every sandbox on the engine."""
        self.settings[MANAGER_SETTING].start()

    async def stop_extension(self) -> None:
        """At server shutdown: stop watching and remove this server's sandboxes (unless kept)."""
        manager: SandboxManager | None = self.settings.get(MANAGER_SETTING)
        if manager is not None:
            await manager.stop()
