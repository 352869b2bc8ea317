"""The events websocket: snapshot on connect, live phases of every sandbox, whoever made it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest
from sandbox_test_support import server_config, unique_name
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]

MESSAGE_TIMEOUT = 120.0


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """Enable the extension in the test server."""
    return server_config()


def new_name(tag: str) -> str:
    """A sandbox name no other test process uses."""
    return unique_name(f"ev-{tag}")


class Messages:
    """Reads a websocket's JSON messages, remembering all of them."""

    def __init__(self, connection: Any):
        self.connection = connection
        self.seen: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        """The next message (fails the test if none comes in time)."""
        text = await asyncio.wait_for(self.connection.read_message(), MESSAGE_TIMEOUT)
        assert text is not None, "the events websocket closed"
        message = json.loads(text)
        message["received"] = time.time()
        self.seen.append(message)
        return message

    async def until_state(self, name: str, *states: str) -> dict[str, Any]:
        """Read until a sandbox update puts ``name`` in one of ``states``."""
        while True:
            message = await self.next()
            if message["type"] == "sandbox" and message["sandbox"]["name"] == name and message["sandbox"]["state"] in states:
                return message["sandbox"]

    def phases(self, name: str) -> list[tuple[str, str]]:
        """(phase, state) of every progress event seen for ``name``."""
        return [(m["event"]["phase"], m["event"]["state"]) for m in self.seen
                if m["type"] == "event" and m["event"]["sandbox"] == name]

    def first(self, name: str) -> float | None:
        """When the first message about ``name`` arrived."""
        for m in self.seen:
            if (m["type"] == "event" and m["event"]["sandbox"] == name) or (m["type"] == "sandbox" and m["sandbox"]["name"] == name):
                return m["received"]
        return None


async def cli(*args: str) -> int:
    """Run ``jupyter-sandbox ARGS`` in another process, without blocking the server's loop."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "jupyter_sandbox.cli", *args,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return process.returncode


@pytest.mark.integration
async def test_snapshot_then_live_phases_of_a_server_create(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any,
                                                             no_leaks: None) -> None:
    messages = Messages(await jp_ws_fetch("sandbox", "api", "events"))
    snapshot = await messages.next()
    assert snapshot["type"] == "snapshot" and isinstance(snapshot["sandboxes"], list)
    assert snapshot["engine"]["connected"] is True
    name = new_name("srv")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": True}))
    try:
        ready = await messages.until_state(name, "ready", "failed")
        assert ready["state"] == "ready", ready
        phases = messages.phases(name)
        for expected in [("image_check", "done"), ("sandbox_start", "done"), ("booted", "done"),
                         ("cgroups", "done"), ("socket", "done"), ("answering", "done"), ("ready", "done")]:
            assert expected in phases, phases
        assert len(phases) == len(set(phases)), f"duplicate events: {phases}"

        # A second client gets the same sandbox with its phases replayed.
        late = Messages(await jp_ws_fetch("sandbox", "api", "events"))
        replay = await late.next()
        mine = next(s for s in replay["sandboxes"] if s["name"] == name)
        assert mine["state"] == "ready"
        assert [p["phase"] for p in mine["phases"]][-1] == "ready"
        late.connection.close()
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    gone = await messages.until_state(name, "gone")
    assert gone["name"] == name
    messages.connection.close()


@pytest.mark.integration
async def test_a_sandbox_made_by_another_process_appears_with_its_phases(jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    messages = Messages(await jp_ws_fetch("sandbox", "api", "events"))
    await messages.next()
    name = new_name("cli")
    try:
        create = asyncio.ensure_future(cli("create", "--docker", "--name", name))
        ready = await messages.until_state(name, "ready", "failed")  # read while the other process works
        await create
        assert ready["state"] == "ready" and ready["owner"] == "cli"
        first = messages.first(name)
        assert first is not None and ready["created"] is not None
        print(f"\nthe CLI's sandbox reached the websocket {first - ready['created']:.3f} s after its container was created")
        phases = messages.phases(name)
        for expected in [("sandbox_start", "done"), ("booted", "done"), ("dockerd_started", "done"),
                         ("answering", "done"), ("ready", "done")]:
            assert expected in phases, phases
    finally:
        await cli("rm", name)
    await messages.until_state(name, "gone")
    messages.connection.close()


@pytest.mark.integration
async def test_a_create_that_fails_before_its_container_shows_failed_until_dismissed(
        jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    messages = Messages(await jp_ws_fetch("sandbox", "api", "events"))
    await messages.next()
    name = new_name("noimage")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST",
                   body=json.dumps({"name": name, "image": "jupyter-sandbox-test/absent:0"}))
    failed = await messages.until_state(name, "failed")
    assert "not in the host Docker engine" in failed["reason"]
    assert ("image_check", "failed") in messages.phases(name)
    shown = json.loads((await jp_fetch("sandbox", "api", "sandboxes", name)).body)
    assert shown["state"] == "failed" and shown["container_id"] == ""
    response = await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    assert response.code == 204
    await messages.until_state(name, "gone")
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    assert caught.value.code == 404
    messages.connection.close()


@pytest.mark.integration
async def test_a_dockerd_crash_after_ready_reaches_the_panel(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any,
                                                             no_leaks: None) -> None:
    messages = Messages(await jp_ws_fetch("sandbox", "api", "events"))
    await messages.next()
    name = new_name("crash")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": True}))
    try:
        assert (await messages.until_state(name, "ready", "failed"))["state"] == "ready"
        await jp_fetch("sandbox", "api", "sandboxes", name, "exec", method="POST",
                       body=json.dumps({"command": ["sh", "-c", "kill -9 $(cat /run/jupyter-sandbox/dockerd.pid)"]}))
        failed = await messages.until_state(name, "failed")
        assert "dockerd exited" in failed["reason"]
        assert ("daemon", "failed") in messages.phases(name)
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    messages.connection.close()


async def test_the_events_websocket_needs_a_valid_token(jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
        with pytest.raises(HTTPClientError) as caught:
            await jp_ws_fetch("sandbox", "api", "events", headers=headers)
        assert caught.value.code == 403
