"""``/sandbox/api/events``: every sandbox's progress pushed to the Lab panel over a websocket.

On connect the client first gets ``{"type": "snapshot", "sandboxes": [...],
"engine": {...}}`` (every known sandbox with its phases so far), then one
message per change: ``{"type": "event", "event": ProgressEvent.to_dict()}``,
``{"type": "sandbox", "sandbox": SandboxInfo.to_dict()}`` (state changes,
``gone`` included) and ``{"type": "engine", "engine": {"connected": ...}}``.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import anyio
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket

from jupyter_sandbox.watch import WatchUpdate

from .handlers import AUTH_RESOURCE, MANAGER_SETTING
from .manager import SandboxManager

SNAPSHOT_WAIT = 5.0
"""Seconds a new client waits at most for the watcher's first listing of the engine."""


class SandboxEventsHandler(WebSocketMixin, websocket.WebSocketHandler, JupyterHandler):
    """Pushes the :class:`~jupyter_sandbox.watch.SandboxWatcher`'s updates to one client.

    Authentication happens in ``prepare()`` (``WebSocketMixin`` answers 403,
    never a login redirect); authorization to read the ``sandbox`` resource
    in :meth:`pre_get`, before the upgrade.
    """

    auth_resource = AUTH_RESOURCE

    def initialize(self) -> None:
        """Per-connection state."""
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def manager(self) -> SandboxManager:
        """The server's one :class:`SandboxManager`."""
        return self.settings[MANAGER_SETTING]

    def set_default_headers(self) -> None:
        """No JupyterHandler page headers on a websocket upgrade."""

    async def pre_get(self) -> None:
        """Refuse users who may not read sandboxes."""
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE))
        if not allowed:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Authorize, then upgrade to a websocket."""
        await self.pre_get()
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        """Send the snapshot, then every update as it happens."""
        super().open(*args, **kwargs)
        manager = self.manager
        manager.start()
        with anyio.move_on_after(SNAPSHOT_WAIT):
            await manager.watcher.wait_synced()
        watcher = manager.watcher
        # No await between the snapshot and the subscription: nothing falls in between.
        snapshot = {"type": "snapshot", "sandboxes": watcher.snapshot(),
                    "engine": {"connected": watcher.connected, "message": watcher.last_error}}
        self._unsubscribe = watcher.add_listener(self._forward)
        self._send(snapshot)

    def _forward(self, update: WatchUpdate) -> None:
        self._send(update.to_dict())

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.write_message(json.dumps(message))
        except websocket.WebSocketClosedError:
            self._stop_listening()

    def on_message(self, message: str | bytes) -> None:
        """Clients only listen; anything they send is ignored."""

    def on_close(self) -> None:
        """Stop forwarding updates."""
        self._stop_listening()
        super().on_close()

    def _stop_listening(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
