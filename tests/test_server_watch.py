"""The cross-process watcher survives its engine going away, and sandboxes vanishing meanwhile.

The watcher talks to the real host engine through a small unix-socket relay
that the test can cut and restore: to the watcher that is the engine
restarting, while the engine (and every other process using it) is untouched.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from typing import Any

import anyio
import docker
import pytest
from sandbox_test_support import unique_name

from jupyter_sandbox.engine import Engine
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.watch import SandboxWatcher, WatchUpdate

ENGINE_SOCKET = "/var/run/docker.sock"
WAIT = 120.0


class SocketRelay:
    """Forwards connections from ``path`` to the engine's socket until :meth:`cut`."""

    def __init__(self, path: str):
        self.path = path
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Start accepting (again)."""
        if os.path.exists(self.path):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Drop every connection and stop accepting, as a dying engine would."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            listener.close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(ENGINE_SOCKET)
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.mark.integration
def test_watcher_reconnects_and_resynchronises(test_images: dict[str, str], no_leaks: None) -> None:
    relay = SocketRelay(os.path.join(tempfile.mkdtemp(prefix="jsb-relay-"), "docker.sock"))
    relay.open()
    engine = Engine(docker.DockerClient(base_url=f"unix://{relay.path}", timeout=30))
    watcher = SandboxWatcher(engine, max_backoff=0.5)
    updates: list[WatchUpdate] = []
    watcher.add_listener(updates.append)
    name = unique_name("watch")

    def state_of(wanted: str) -> Any:
        return next((u for u in reversed(updates) if u.kind == "sandbox" and u.data["name"] == name and u.data["state"] == wanted), None)

    async def wait_for(condition: Any) -> None:
        with anyio.fail_after(WAIT):
            while not condition():
                await anyio.sleep(0.05)

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            await group.start(watcher.run)
            await watcher.wait_synced()
            sandbox = await AsyncSandbox.create(name=name, image=test_images["tiny"], owner="test")
            try:
                await wait_for(lambda: state_of("ready"))
                phases = [(e["phase"], e["state"]) for e in (u.data for u in updates if u.kind == "event") if e["sandbox"] == name]
                assert ("booted", "done") in phases and ("ready", "done") in phases

                relay.cut()  # the engine "goes away" for the watcher only
                await wait_for(lambda: not watcher.connected)
                assert any(u.kind == "engine" and not u.data["connected"] for u in updates)
                await sandbox.terminate()  # the sandbox vanishes while the watcher cannot see
                failures_while_down = sum(u.kind == "engine" and not u.data["connected"] for u in updates)
                relay.open()
                await wait_for(lambda: watcher.connected and state_of("gone") is not None)
                assert name not in [s["name"] for s in watcher.snapshot()]
                assert failures_while_down <= 3, "one notice per distinct failure, not one per retry"
            finally:
                await sandbox.terminate()
                group.cancel_scope.cancel()

    try:
        anyio.run(scenario)
    finally:
        relay.cut()
