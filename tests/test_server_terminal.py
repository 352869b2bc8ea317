"""A shell inside a sandbox through the server's own terminals, and the live CPU/memory route (real server, real sandboxes).

The terminal is a standard Jupyter terminal (terminado behind ``/terminals/websocket/<name>``),
so it is driven here with terminado's JSON protocol, as Lab's xterm.js drives it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from sandbox_test_support import server_config, unique_name
from test_server_api import expect_error, fetch_json
from tornado.httpclient import HTTPClientError

from jupyter_sandbox.errors import TerminalsDisabled
from jupyter_sandbox.sandbox import AsyncSandbox

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.integration

MEMORY = 768 << 20


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """The extension enabled."""
    return server_config()


class Terminal:
    """One terminado websocket: send keys, read the screen's text until something appears."""

    def __init__(self, socket: Any):
        self.socket = socket
        self.text = ""

    def send(self, *message: Any) -> None:
        self.socket.write_message(json.dumps(list(message)))

    def type(self, keys: str) -> None:
        self.send("stdin", keys)

    async def until(self, wanted: str, timeout: float = 20.0) -> str:
        """Read output until ``wanted`` shows up after what was read before; returns everything read since."""
        start = len(self.text)
        deadline = time.monotonic() + timeout
        while wanted not in self.text[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"{wanted!r} never appeared; the terminal showed: {self.text[start:][-2000:]!r}"
            try:
                raw = await asyncio.wait_for(self.socket.read_message(), left)
            except asyncio.TimeoutError:
                continue
            assert raw is not None, f"the terminal closed; it showed: {self.text[-2000:]!r}"
            kind, *rest = json.loads(raw)
            if kind == "stdout":
                self.text += rest[0]
            elif kind == "disconnect":
                raise AssertionError(f"the terminal's process ended; it showed: {self.text[-2000:]!r}")
        return self.text[start:]


async def test_a_terminal_runs_a_real_tty_shell_inside(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    sandbox = await AsyncSandbox.create(name=unique_name("term"), memory=MEMORY, cpu=1, owner="test", use_pool=False)
    base = ("sandbox", "api", "sandboxes", sandbox.name)
    try:
        await fetch_json(jp_fetch, *base, "pause", method="POST", body="")
        opened = await fetch_json(jp_fetch, *base, "terminal", method="POST", body="")  # a use: resumes it first
        assert opened["sandbox"] == sandbox.name and opened["terminal"], opened
        assert (await fetch_json(jp_fetch, *base))["state"] == "ready"
        listed = await fetch_json(jp_fetch, "api", "terminals")
        assert opened["terminal"] in [t["name"] for t in listed]  # one of the server's own terminals

        terminal = Terminal(await jp_ws_fetch("terminals", "websocket", opened["terminal"]))
        terminal.send("set_size", 24, 80, 480, 800)
        terminal.type("echo hi-$((6*7)) in $(hostname) as $TERM\r")
        assert "hi-42 in" in await terminal.until("xterm-256color\r\n")
        terminal.send("set_size", 33, 111, 660, 1110)
        terminal.type("stty size\r")
        await terminal.until("33 111")
        terminal.type("sleep 300\r")
        await asyncio.sleep(0.5)
        terminal.type("\x03")  # Ctrl-C stops the foreground command, not the shell
        terminal.type("echo after-$((1+1))\r")
        await terminal.until("after-2")
        terminal.type("ls --color=always /\r")
        assert "\x1b[" in await terminal.until("etc")  # colours: escape sequences reach the terminal
        terminal.type("exit\r")
        terminal.socket.close()
    finally:
        await sandbox.terminate()


async def test_terminal_errors_are_4xx_with_the_fix(jp_fetch: Any, jp_serverapp: Any, engine_client: Any, no_leaks: None) -> None:
    missing = await expect_error(jp_fetch, 404, "sandbox", "api", "sandboxes", "no-such-sandbox", "terminal", method="POST", body="")
    assert "no-such-sandbox" in missing["message"] and missing["fix"], missing
    with pytest.raises(HTTPClientError) as caught:  # not a sandbox name at all: no route takes it
        await jp_fetch("sandbox", "api", "sandboxes", "-bad name", "terminal", method="POST", body="")
    assert caught.value.code == 404 and caught.value.response is not None and b"404" in caught.value.response.body

    sandbox = await AsyncSandbox.create(name=unique_name("term"), owner="test", use_pool=False)
    base = ("sandbox", "api", "sandboxes", sandbox.name)
    settings = jp_serverapp.web_app.settings
    try:
        terminals = settings["terminal_manager"]
        before = set(terminals.terminals)
        for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
            await expect_error(jp_fetch, 403, *base, "terminal", method="POST", body="", headers=headers)
            await expect_error(jp_fetch, 403, "sandbox", "api", "stats", headers=headers)
        assert set(terminals.terminals) == before  # no terminal was started
        available = settings.get("terminals_available")
        settings["terminals_available"] = False
        try:
            disabled = await expect_error(jp_fetch, 403, *base, "terminal", method="POST", body="")
        finally:
            settings["terminals_available"] = available
        assert disabled["error"] == TerminalsDisabled.code and "terminals_enabled" in disabled["fix"], disabled
        assert f"jupyter sandbox shell {sandbox.name}" in disabled["fix"]

        engine_client.containers.get(sandbox.container_id).stop(timeout=1)
        stopped = await expect_error(jp_fetch, 409, *base, "terminal", method="POST", body="")
        assert "not running" in stopped["message"] and stopped["fix"], stopped
    finally:
        await sandbox.terminate()


async def test_stats_give_live_cpu_and_memory_against_the_limits(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    sandbox = await AsyncSandbox.create(name=unique_name("stats"), memory=MEMORY, cpu=0.5, owner="test", use_pool=False)
    try:
        busy = await sandbox.exec(["sh", "-c", "timeout 4 sh -c 'while :; do :; done'"])
        await asyncio.sleep(1.5)
        began = time.monotonic()
        figures = {entry["name"]: entry for entry in await fetch_json(jp_fetch, "sandbox", "api", "stats")}
        seconds = time.monotonic() - began
        await busy.wait()
        mine = figures[sandbox.name]
        assert mine["memory"] > 1 << 20 and mine["memory_limit"] == MEMORY, mine
        assert 0 < mine["memory_percent"] < 100 and mine["cpu_limit"] == 0.5, mine
        assert 10 < mine["cpu_percent"] <= 60, mine  # a busy loop under a half-CPU limit
        assert seconds < 5, f"the stats took {seconds:.1f} s"  # every sandbox's one-second sample taken at once
    finally:
        await sandbox.terminate()
    assert sandbox.name not in {entry["name"] for entry in await fetch_json(jp_fetch, "sandbox", "api", "stats")}
