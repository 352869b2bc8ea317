"""Sandbox activity on jupyter-server's event bus (``jupyter_events``), delivered on ``/api/events/subscribe``.

The watcher's updates are emitted under :data:`SCHEMA_ID` (``event_schemas/sandbox/v1.yaml``
describes them), each numbered: ``{"kind", "stream", "seq", <kind>: payload}``.
The bus sends no state on connect and has no replay, so ``GET
/sandbox/api/watch`` answers the current state with the ``seq`` it includes
(:meth:`SandboxEventPublisher.state`): a subscriber applies later emissions
only, and reads the state again when ``seq`` skips (it was disconnected) or
``stream`` changes (the server restarted).  A heartbeat every
``heartbeat_interval`` seconds of silence makes either show within that time.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
from pathlib import Path
from typing import Any, Callable

from jupyter_events import EventLogger

from jupyter_sandbox.watch import SandboxWatcher, WatchUpdate

SCHEMA_ID = "https://events.jupyter.org/jupyter_sandbox/sandbox/v1"
SCHEMA_VERSION = "1"
SCHEMA_PATH = Path(__file__).parent / "event_schemas" / "sandbox" / "v1.yaml"


class SandboxEventPublisher:
    """Emits every :class:`~jupyter_sandbox.watch.SandboxWatcher` update on the server's event bus.

    Args:
        event_logger: The server's ``serverapp.event_logger`` (the schema is registered on it).
        watcher: The watcher whose updates are published.
        heartbeat_interval: Seconds of silence after which a ``heartbeat`` is emitted (0: none).
    """

    def __init__(self, event_logger: EventLogger, watcher: SandboxWatcher, heartbeat_interval: float = 10.0):
        self.event_logger = event_logger
        self.watcher = watcher
        self.heartbeat_interval = heartbeat_interval
        self.stream = secrets.token_hex(8)
        self.seq = 0
        if SCHEMA_ID not in event_logger.schemas:
            event_logger.register_event_schema(SCHEMA_PATH)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._quiet = asyncio.Event()
        self._later: collections.deque[WatchUpdate] = collections.deque()

    def start(self) -> None:
        """Publish from now on (idempotent; needs the running event loop)."""
        self._loop = asyncio.get_running_loop()
        if self._unsubscribe is None:
            self._unsubscribe = self.watcher.add_listener(self.publish)
        if self.heartbeat_interval > 0 and (self._heartbeat is None or self._heartbeat.done()):
            self._heartbeat = asyncio.ensure_future(self._beat())

    async def stop(self) -> None:
        """Stop publishing."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)

    def state(self) -> dict[str, Any]:
        """Every sandbox the watcher knows (phases included) and the engine's state, as of emission ``seq``."""
        return {
            "schema_id": SCHEMA_ID,
            "version": SCHEMA_VERSION,
            "stream": self.stream,
            "seq": self.seq,
            "heartbeat": self.heartbeat_interval,
            "sandboxes": self.watcher.snapshot(),
            "engine": {"connected": self.watcher.connected, "message": self.watcher.last_error},
        }

    def publish(self, update: WatchUpdate) -> None:
        """Emit one update; a phase event at once, anything else just after (order kept).

        The bus writes to subscribers in tasks that run once the current callback
        returns; the watcher follows a phase event with the sandbox's new state
        (the larger payload), so emitting that one from a later callback lets the
        phase event reach subscribers first (``benchmarks/events.py`` measures it).
        """
        if update.kind == "event" and not self._later:
            self.emit(update.kind, update.data)
            return
        self._later.append(update)
        if len(self._later) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._emit_later)
            except RuntimeError:  # another thread: emit() hands it to the server's loop
                self._emit_later()

    def _emit_later(self) -> None:
        while self._later:
            update = self._later.popleft()
            self.emit(update.kind, update.data)

    def emit(self, kind: str, payload: Any) -> None:
        """Number and emit one ``kind`` emission."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is None or (self._loop is not None and running is not self._loop):
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self.emit, kind, payload)
            return
        self.seq += 1
        self._quiet.set()
        self.event_logger.emit(schema_id=SCHEMA_ID, data={"kind": kind, "stream": self.stream, "seq": self.seq, kind: payload})

    async def _beat(self) -> None:
        while True:
            self._quiet.clear()
            try:
                await asyncio.wait_for(self._quiet.wait(), self.heartbeat_interval)
            except asyncio.TimeoutError:
                self.emit("heartbeat", self.heartbeat_interval)
