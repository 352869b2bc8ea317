"""Sandbox events on jupyter-server's event bus: live phases of every sandbox, whoever made it.

A real server (pytest-jupyter) and real sandboxes: the tests subscribe to
``/api/events/subscribe`` as Lab's event manager does, keep the emissions of
our schema, and read the state they apply to from ``GET /sandbox/api/watch``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest
from jupyter_events import EventLogger
from jupyter_sandbox_server.events import SCHEMA_ID, SCHEMA_VERSION, SandboxEventPublisher
from sandbox_test_support import server_config, unique_name
from tornado.httpclient import HTTPClientError

from jupyter_sandbox import events as E
from jupyter_sandbox.watch import SandboxWatcher, WatchUpdate

pytest_plugins = ["pytest_jupyter.jupyter_server"]

MESSAGE_TIMEOUT = 120.0
HEARTBEAT = 1.0


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """Enable the extension in the test server, with a fast heartbeat."""
    return server_config(heartbeat_interval=HEARTBEAT)


def new_name(tag: str) -> str:
    """A sandbox name no other test process uses."""
    return unique_name(f"ev-{tag}")


class Emissions:
    """Reads the event bus's websocket, keeping our schema's emissions (as Lab's panel filters them)."""

    def __init__(self, connection: Any):
        self.connection = connection
        self.seen: list[dict[str, Any]] = []
        self.others = 0

    async def next(self) -> dict[str, Any]:
        """The next emission of our schema (fails the test if none comes in time)."""
        while True:
            text = await asyncio.wait_for(self.connection.read_message(), MESSAGE_TIMEOUT)
            assert text is not None, "the event bus websocket closed"
            message = json.loads(text)
            if message.get("schema_id") != SCHEMA_ID:
                self.others += 1
                continue
            message["received"] = time.time()
            self.seen.append(message)
            return message

    async def until_state(self, name: str, *states: str) -> dict[str, Any]:
        """Read until a sandbox emission puts ``name`` in one of ``states``."""
        while True:
            message = await self.next()
            if message["kind"] == "sandbox" and message["sandbox"]["name"] == name and message["sandbox"]["state"] in states:
                return message["sandbox"]

    def phases(self, name: str) -> list[tuple[str, str]]:
        """(phase, state) of every progress event seen for ``name``."""
        return [(m["event"]["phase"], m["event"]["state"]) for m in self.seen if m["kind"] == "event" and m["event"]["sandbox"] == name]

    def first(self, name: str) -> float | None:
        """When the first emission about ``name`` arrived."""
        for m in self.seen:
            if (m["kind"] == "event" and m["event"]["sandbox"] == name) or (m["kind"] == "sandbox" and m["sandbox"]["name"] == name):
                return m["received"]
        return None

    def assert_numbered(self) -> None:
        """One stream, numbered 1, 2, 3... without gaps (what lets a subscriber detect missed emissions)."""
        assert len({m["stream"] for m in self.seen}) == 1
        seqs = [m["seq"] for m in self.seen]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


async def subscribe(jp_ws_fetch: Any, jp_fetch: Any) -> Emissions:
    """A subscriber to the server's event bus that has read the state, as the Lab panel starts.

    (pytest-jupyter's server never runs the extension's start hook, which starts
    the watcher in a real server; reading the state starts it.)
    """
    emissions = Emissions(await jp_ws_fetch("api", "events", "subscribe"))
    await watched(jp_fetch)
    return emissions


async def watched(jp_fetch: Any) -> dict[str, Any]:
    """``GET /sandbox/api/watch``."""
    return json.loads((await jp_fetch("sandbox", "api", "watch")).body)


async def cli(*args: str) -> int:
    """Run ``jupyter-sandbox ARGS`` in another process, without blocking the server's loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_sandbox.cli", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return process.returncode


async def test_the_server_serves_the_phases_of_events_py(jp_fetch: Any, jp_serverapp: Any) -> None:
    served = json.loads((await jp_fetch("sandbox", "api", "phases")).body)
    assert served["docker"] == [p.value for p in E.DOCKER_PHASES]
    assert served["plain"] == [p.value for p in E.PLAIN_PHASES]
    assert served["fork"] == [p.value for p in E.FORK_PHASES]
    assert served["labels"] == {p.value: E.PHASE_LABELS[p] for p in E.Phase}
    assert served["image_prefix"] == E.IMAGE_PHASE_PREFIX
    assert served["image_label"] + "alpine:3" == E.phase_label(E.image_phase("alpine:3"))


async def test_the_schema_is_registered_and_the_bus_is_never_silent_past_a_heartbeat(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    schema = jp_serverapp.event_logger.schemas.get(SCHEMA_ID)
    assert str(schema.version) == SCHEMA_VERSION
    emissions = await subscribe(jp_ws_fetch, jp_fetch)
    state = await watched(jp_fetch)
    assert state["schema_id"] == SCHEMA_ID and state["engine"]["connected"] is True
    assert isinstance(state["sandboxes"], list) and state["heartbeat"] == HEARTBEAT
    arrivals = [time.monotonic()]
    while arrivals[-1] - arrivals[0] < 3.5 * HEARTBEAT:  # sandboxes of other processes on this engine may emit too
        await emissions.next()
        arrivals.append(time.monotonic())
    assert max(b - a for a, b in zip(arrivals, arrivals[1:])) < 2 * HEARTBEAT
    assert {m["stream"] for m in emissions.seen} == {state["stream"]}
    assert all(m["heartbeat"] == HEARTBEAT for m in emissions.seen if m["kind"] == "heartbeat")
    emissions.assert_numbered()
    emissions.connection.close()


async def test_a_heartbeat_after_each_silence_numbered_with_the_rest() -> None:
    logger = EventLogger()
    received: list[dict[str, Any]] = []

    async def listen(logger: EventLogger, schema_id: str, data: dict[str, Any]) -> None:
        received.append(data)

    watcher = SandboxWatcher()
    publisher = SandboxEventPublisher(logger, watcher, heartbeat_interval=0.6)
    logger.add_listener(schema_id=SCHEMA_ID, listener=listen)
    publisher.start()
    try:
        await asyncio.sleep(1.4)  # heartbeats at 0.6 and 1.2 s
        watcher.notice(WatchUpdate("notice", {"sandbox": "x", "action": "paused", "message": "paused x", "time": 1.0}))
        await asyncio.sleep(0.5)  # 1.9 s: a heartbeat not restarted by the notice would have come at 1.8 s
        assert [m["kind"] for m in received] == ["heartbeat", "heartbeat", "notice"]
        assert [m["seq"] for m in received] == [1, 2, 3] and received[0]["heartbeat"] == 0.6
        assert publisher.state()["seq"] == 3
        await asyncio.sleep(0.4)  # 2.3 s: 0.6 s after the notice
        assert [m["kind"] for m in received][3:] == ["heartbeat"] and received[3]["seq"] == 4
    finally:
        await publisher.stop()


@pytest.mark.integration
async def test_state_then_live_phases_of_a_server_create(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    emissions = await subscribe(jp_ws_fetch, jp_fetch)
    name = new_name("srv")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": True}))
    try:
        ready = await emissions.until_state(name, "ready", "failed")
        assert ready["state"] == "ready", ready
        phases = emissions.phases(name)
        for expected in [
            ("image_check", "done"),
            ("sandbox_start", "done"),
            ("booted", "done"),
            ("cgroups", "done"),
            ("socket", "done"),
            ("answering", "done"),
            ("ready", "done"),
        ]:
            assert expected in phases, phases
        assert len(phases) == len(set(phases)), f"duplicate events: {phases}"
        assert all(m["event"]["label"] == E.phase_label(m["event"]["phase"]) for m in emissions.seen if m["kind"] == "event")

        # A late client reads the sandbox with its phases from the state endpoint, numbered after what was emitted.
        state = await watched(jp_fetch)
        assert state["seq"] >= emissions.seen[-1]["seq"] and state["stream"] == emissions.seen[-1]["stream"]
        mine = next(s for s in state["sandboxes"] if s["name"] == name)
        assert mine["state"] == "ready"
        assert [p["phase"] for p in mine["phases"]][-1] == "ready"
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    gone = await emissions.until_state(name, "gone")
    assert gone["name"] == name
    emissions.assert_numbered()
    emissions.connection.close()


@pytest.mark.integration
async def test_a_sandbox_made_by_another_process_appears_with_its_phases(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    emissions = await subscribe(jp_ws_fetch, jp_fetch)
    name = new_name("cli")
    try:
        create = asyncio.ensure_future(cli("create", "--docker", "--name", name))
        ready = await emissions.until_state(name, "ready", "failed")  # read while the other process works
        await create
        assert ready["state"] == "ready" and ready["owner"] == "cli"
        first = emissions.first(name)
        assert first is not None and ready["created"] is not None
        print(f"\nthe CLI's sandbox reached the event bus {first - ready['created']:.3f} s after its container was created")
        phases = emissions.phases(name)
        for expected in [("sandbox_start", "done"), ("booted", "done"), ("dockerd_started", "done"), ("answering", "done"), ("ready", "done")]:
            assert expected in phases, phases
    finally:
        await cli("rm", name)
    await emissions.until_state(name, "gone")
    emissions.connection.close()


@pytest.mark.integration
async def test_a_create_that_fails_before_its_container_shows_failed_until_dismissed(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    emissions = await subscribe(jp_ws_fetch, jp_fetch)
    name = new_name("noimage")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "image": "jupyter-sandbox-test/absent:0"}))
    failed = await emissions.until_state(name, "failed")
    assert "not in the host Docker engine" in failed["reason"]
    assert ("image_check", "failed") in emissions.phases(name)
    shown = json.loads((await jp_fetch("sandbox", "api", "sandboxes", name)).body)
    assert shown["state"] == "failed" and shown["container_id"] == ""
    assert next(s for s in (await watched(jp_fetch))["sandboxes"] if s["name"] == name)["state"] == "failed"
    response = await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    assert response.code == 204
    await emissions.until_state(name, "gone")
    assert name not in [s["name"] for s in (await watched(jp_fetch))["sandboxes"]]
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    assert caught.value.code == 404
    emissions.connection.close()


@pytest.mark.integration
async def test_a_dockerd_crash_after_ready_reaches_the_panel(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    emissions = await subscribe(jp_ws_fetch, jp_fetch)
    name = new_name("crash")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": True}))
    try:
        assert (await emissions.until_state(name, "ready", "failed"))["state"] == "ready"
        await jp_fetch(
            "sandbox",
            "api",
            "sandboxes",
            name,
            "exec",
            method="POST",
            body=json.dumps({"command": ["sh", "-c", "kill -9 $(cat /run/jupyter-sandbox/dockerd.pid)"]}),
        )
        failed = await emissions.until_state(name, "failed")
        assert "dockerd exited" in failed["reason"]
        assert ("daemon", "failed") in emissions.phases(name)
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    emissions.connection.close()


async def test_the_event_bus_and_the_state_need_a_valid_token(jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
        with pytest.raises(HTTPClientError) as caught:
            await jp_ws_fetch("api", "events", "subscribe", headers=headers)
        assert caught.value.code == 403
        for path in ("watch", "phases"):
            with pytest.raises(HTTPClientError) as caught:
                await jp_fetch("sandbox", "api", path, headers=headers)
            assert caught.value.code == 403
