"""The REST routes behind the panel's live detail views, and ``used_by`` (pytest-jupyter's jp_fetch).

A followed log is a stream that ends when the client leaves (its follower process in the
sandbox is killed then) or when the sandbox goes.  ``used_by`` names the notebook whose
kernel created a sandbox, from the server's sessions.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from sandbox_test_support import container_exists, server_config, unique_name
from tornado.httpclient import HTTPClientError
from tornado.simple_httpclient import HTTPStreamClosedError

from jupyter_sandbox import labels as L
from jupyter_sandbox.daemonlog import HARMLESS, harmless
from jupyter_sandbox.sandbox import AsyncSandbox

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.integration

TIMEOUT = 120.0


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """Enable the extension in the test server."""
    return server_config()


class Left(Exception):
    """Raised in a streaming callback to leave a stream (as a closed browser tab does)."""


async def follow(jp_fetch: Any, *parts: str, until: Any, **params: str) -> list[dict[str, Any]]:
    """Read an NDJSON stream until ``until(lines)`` holds, then leave it; the lines read."""
    buffer = bytearray()
    lines: list[dict[str, Any]] = []

    def take(chunk: bytes) -> None:
        buffer.extend(chunk)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            lines.append(json.loads(line))
        if until(lines):
            raise Left()

    try:
        await jp_fetch(*parts, params=params, streaming_callback=take, request_timeout=TIMEOUT)
    except (Left, HTTPStreamClosedError):  # raising in the callback closes the connection
        if not until(lines):
            raise
    return lines


async def processes_named(sandbox: AsyncSandbox, word: str) -> int:
    """How many processes in the sandbox have ``word`` in their command line."""
    pattern = f"[{word[0]}]{word[1:]}"  # a pattern that does not match this script's own command line
    script = f"for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done | grep -c -- '{pattern}' || true"
    process = await sandbox.run(["sh", "-c", script])
    return int(process.stdout_text.strip() or 0)


async def test_dockerd_log_follows_with_its_notes_and_inner_containers_have_logs_stop_and_remove(
    jp_fetch: Any, jp_serverapp: Any, test_images: dict[str, str], no_leaks: None
) -> None:
    name = unique_name("dt-srv")
    sandbox = await AsyncSandbox.create(name=name, docker=True, owner="test", use_pool=False)
    api = ("sandbox", "api", "sandboxes", name)
    try:
        lines = await follow(
            jp_fetch, *api, "logs", follow="true", lines="500", until=lambda got: any("API listen" in line.get("text", "") for line in got)
        )
        assert lines[0] == {"notes": [entry._asdict() for entry in HARMLESS]}
        text = "".join(line.get("text", "") for line in lines[1:])
        assert any(harmless(line) for line in text.splitlines()), "no expected gVisor warning in a dockerd log"
        deadline = time.monotonic() + 10  # the follower in the sandbox ends with the request
        while await processes_named(sandbox, "tail -n 500 -F"):
            assert time.monotonic() < deadline, "the log follower outlived its request"
            await asyncio.sleep(0.2)

        assert await (await sandbox.docker.load(test_images["tiny"])).wait() == 0
        script = "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done"
        run = await sandbox.docker.run(test_images["tiny"], "busybox", "sh", "-c", script, detach=True, name="ticker")
        assert await run.wait() == 0
        got = await follow(
            jp_fetch,
            *api,
            "containers",
            "ticker",
            "logs",
            follow="true",
            lines="1",
            until=lambda got: "line 5" in "".join(line.get("text", "") for line in got),
        )
        assert "line 5" in "".join(line.get("text", "") for line in got)

        await jp_fetch(*api, "containers", "ticker", "stop", method="POST", body="")
        listed = json.loads((await jp_fetch(*api, "containers", params={"all": "true"})).body)
        assert [c["Status"].split()[0] for c in listed if c["Names"] == "ticker"] == ["Exited"]
        ended = (await jp_fetch(*api, "containers", "ticker", "logs")).body.decode().splitlines()
        assert json.loads(ended[-1]) == {"exit_code": 0}  # not following: the output so far, then the end
        response = await jp_fetch(*api, "containers", "ticker", method="DELETE")
        assert response.code == 204
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch(*api, "containers", "ticker", method="DELETE")
        assert caught.value.code == 404
        assert json.loads(caught.value.response.body)["error"] == "inner_container_not_found"

        # A followed log ends when its sandbox goes.
        streaming = asyncio.ensure_future(follow(jp_fetch, *api, "logs", follow="true", lines="1", until=lambda got: False))
        await asyncio.sleep(2)
        await sandbox.terminate()
        final = await asyncio.wait_for(streaming, 30)
        assert "exit_code" in final[-1] or "error" in final[-1], final[-1]
    finally:
        await sandbox.terminate()


async def test_used_by_names_the_notebook_whose_kernel_created_the_sandbox(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    name = unique_name("dt-used")
    session = json.loads(
        (
            await jp_fetch(
                "api",
                "sessions",
                method="POST",
                body=json.dumps({"path": "work/analysis.ipynb", "type": "notebook", "name": "analysis.ipynb", "kernel": {"name": "python3"}}),
            )
        ).body
    )
    kernel_id = session["kernel"]["id"]
    client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        outputs: list[str] = []
        reply = await client.execute_interactive(
            f"%load_ext jupyter_sandbox\n%sandbox create --name {name} --progress text",
            timeout=TIMEOUT,
            output_hook=lambda msg: outputs.append(json.dumps(msg["content"])),
        )
        assert reply["content"]["status"] == "ok", outputs
        info = json.loads((await jp_fetch("sandbox", "api", "sandboxes", name)).body)
        assert info["owner"] == "kernel" and info["kernel"] == kernel_id
        assert info["used_by"] == "work/analysis.ipynb"
        listed = json.loads((await jp_fetch("sandbox", "api", "sandboxes")).body)
        assert [s["used_by"] for s in listed if s["name"] == name] == ["work/analysis.ipynb"]
        labels = (await AsyncSandbox.get(name)).engine.client.containers.get(L.container_name(name)).labels
        assert labels[L.OWNER_KERNEL] == kernel_id
    finally:
        client.stop_channels()
        await jp_fetch("api", "sessions", session["id"], method="DELETE")  # the kernel removes its sandboxes
        deadline = time.monotonic() + 30
        while container_exists(name) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        if container_exists(name):
            await (await AsyncSandbox.get(name)).terminate()
