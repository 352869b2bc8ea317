"""The server extension's REST API against real runsc sandboxes (pytest-jupyter's jp_fetch).

pytest-jupyter runs the ``async def`` tests on the server's own loop; this
suite does not use pytest-asyncio (its auto mode makes jp_fetch hang).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import docker
import pytest
from sandbox_test_support import container_exists, server_config, unique_name
from tornado.httpclient import HTTPClientError

from jupyter_sandbox import labels as L
from jupyter_sandbox.sandbox import AsyncSandbox

pytest_plugins = ["pytest_jupyter.jupyter_server"]

READY_TIMEOUT = 120.0


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """Enable the extension in the test server."""
    return server_config()


def new_name(tag: str) -> str:
    """A sandbox name no other test process uses."""
    return unique_name(f"srv-{tag}")


async def fetch_json(jp_fetch: Any, *parts: str, **kwargs: Any) -> Any:
    """A request whose answer is JSON."""
    response = await jp_fetch(*parts, **kwargs)
    return json.loads(response.body) if response.body else None


async def expect_error(jp_fetch: Any, status: int, *parts: str, **kwargs: Any) -> dict[str, Any]:
    """A request that must fail with ``status``; returns its JSON body."""
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*parts, **kwargs)
    assert caught.value.code == status, caught.value.response.body if caught.value.response else caught.value
    body = caught.value.response.body if caught.value.response else b""
    return json.loads(body) if body else {}


async def wait_for_state(jp_fetch: Any, name: str, states: tuple[str, ...] = ("ready", "failed")) -> dict[str, Any]:
    """Poll one sandbox until it reaches one of ``states``."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        info = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name)
        if info["state"] in states:
            return info
        assert time.monotonic() < deadline, f"{name} stuck in {info['state']}"
        await asyncio.sleep(0.2)


@pytest.mark.integration
async def test_create_use_and_delete_a_docker_sandbox(jp_fetch: Any, jp_serverapp: Any, test_images: dict[str, str], no_leaks: None) -> None:
    name = new_name("life")
    started = time.monotonic()
    response = await jp_fetch(
        "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": True, "memory": "1Gi", "cpu": 1})
    )
    accepted_after = time.monotonic() - started
    assert response.code == 202
    assert json.loads(response.body)["name"] == name
    try:
        right_after = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name)  # never a 404 after a 202
        assert right_after["name"] == name and right_after["state"] in ("starting", "ready")
        info = await wait_for_state(jp_fetch, name)
        print(f"POST answered in {accepted_after:.3f} s; ready after {time.monotonic() - started:.2f} s")
        assert info["state"] == "ready", info
        assert info["docker"] is True and info["memory"] == "1Gi" and info["cpu"] == 1
        assert info["owner"] == "server"
        assert info["runtime"].startswith("runsc")
        assert [p["phase"] for p in info["phases"]][-1] == "ready"

        listed = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes")
        assert name in [item["name"] for item in listed]

        labels = docker.from_env().containers.get(L.container_name(name)).labels
        assert labels[L.SERVER] == os.environ[L.SERVER_ENV]
        assert labels[L.OWNER_PID] == str(os.getpid())

        response = await jp_fetch(
            "sandbox", "api", "sandboxes", name, "exec", method="POST", body=json.dumps({"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
        )
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.body.decode().splitlines()]
        assert {"stream": "stdout", "text": "out\n"} in lines
        assert {"stream": "stderr", "text": "err\n"} in lines
        assert lines[-1] == {"exit_code": 3}

        log = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name, "logs", params={"lines": "50"})
        assert log["sandbox"] == name and "API listen on /var/run/docker.sock" in log["log"]

        assert await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name, "containers") == []
        sandbox = await AsyncSandbox.get(name)
        assert await (await sandbox.docker.load(test_images["tiny"])).wait() == 0
        run = await sandbox.docker.run(test_images["tiny"], "sleep", "600", detach=True, name="inner-one")
        assert await run.wait() == 0, run.stderr_text
        containers = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", name, "containers", params={"all": "true"})
        assert [c["Names"] for c in containers] == ["inner-one"]
        assert containers[0]["Image"] == test_images["tiny"]
    finally:
        response = await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
        assert response.code == 204
    error = await expect_error(jp_fetch, 404, "sandbox", "api", "sandboxes", name)
    assert error["error"] == "not_found"
    assert not container_exists(name)


@pytest.mark.integration
async def test_exec_output_is_streamed_as_it_arrives(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    name = new_name("stream")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name}))
    try:
        assert (await wait_for_state(jp_fetch, name))["state"] == "ready"
        deliveries: list[bytes] = []
        # The second line is written only after the first was read back: it must have been sent on its own.
        script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second"
        sandbox = await AsyncSandbox.get(name)

        async def release_when_first_arrives() -> None:
            while not any(b"first" in chunk for chunk in deliveries):
                await asyncio.sleep(0.05)
            await (await sandbox.exec(["touch", "/tmp/go"])).wait()

        release = asyncio.ensure_future(release_when_first_arrives())
        response = await jp_fetch(
            "sandbox",
            "api",
            "sandboxes",
            name,
            "exec",
            method="POST",
            body=json.dumps({"command": ["sh", "-c", script], "timeout": 60}),
            streaming_callback=deliveries.append,
        )
        await release
        assert response.code == 200
        first = next(i for i, chunk in enumerate(deliveries) if b"first" in chunk)
        second = next(i for i, chunk in enumerate(deliveries) if b"second" in chunk)
        assert first < second
        assert json.loads(b"".join(deliveries).decode().splitlines()[-1]) == {"exit_code": 0}
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")


async def test_bad_bodies_get_400_naming_the_field(jp_fetch: Any, jp_serverapp: Any) -> None:
    cases = [
        ({"cpu": "lots"}, "cpu"),
        ({"memory": "12 parsecs"}, "memory"),
        ({"network": "bridge"}, "network"),
        ({"name": "no spaces allowed"}, "name"),
        ({"docker": "yes"}, "docker"),
        ({"docker": True, "disk": "plenty"}, "disk"),
        ({"docker": True, "memory": "1Gi", "disk": "4Gi"}, "disk"),
        ({"docker": True, "images": "two words"}, "images"),
        ({"colour": "blue"}, "colour"),
        (["a", "list"], "body"),
    ]
    for body, field in cases:
        error = await expect_error(jp_fetch, 400, "sandbox", "api", "sandboxes", method="POST", body=json.dumps(body))
        assert error["field"] == field, error
        assert error["message"] and error["error"] == "bad_spec"
    error = await expect_error(jp_fetch, 400, "sandbox", "api", "sandboxes", method="POST", body="{not json")
    assert error["field"] == "body"
    error = await expect_error(jp_fetch, 400, "sandbox", "api", "sandboxes", "whatever", "exec", method="POST", body=json.dumps({"command": "ls -l"}))
    assert error["field"] == "command"
    error = await expect_error(jp_fetch, 400, "sandbox", "api", "sandboxes", "whatever", "logs", params={"lines": "many"})
    assert error["field"] == "lines"


@pytest.mark.integration
async def test_disk_and_preloaded_images_through_rest(jp_fetch: Any, jp_serverapp: Any, test_images: dict[str, str], no_leaks: None) -> None:
    name = new_name("disk")
    tiny = test_images["tiny"]
    body = {"name": name, "docker": True, "memory": "1Gi", "disk": "256Mi", "images": [tiny]}
    answer = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", method="POST", body=json.dumps(body))
    assert answer["spec"]["disk"] == 256 * 2**20 and answer["spec"]["images"] == [tiny]
    try:
        assert (await wait_for_state(jp_fetch, name))["state"] == "ready"

        async def run(*command: str) -> list[dict[str, Any]]:
            response = await jp_fetch(
                "sandbox", "api", "sandboxes", name, "exec", method="POST", body=json.dumps({"command": list(command), "timeout": 120})
            )
            return [json.loads(line) for line in response.body.decode().splitlines()]

        listed = await run("docker", "images", "--quiet", "--filter", f"reference={tiny}")
        assert listed[-1] == {"exit_code": 0} and any(line.get("text", "").strip() for line in listed[:-1]), listed
        full = (await run("dd", "if=/dev/zero", "of=/usr/fill", "bs=1M", "count=320"))[-1]
        assert full["exit_code"] != 0 and full["error"] == "disk_full", full
        assert "disk (256Mi) is full" in full["message"] and "disk=" in full["fix"]
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")


async def test_unknown_sandbox_gets_404_everywhere(jp_fetch: Any, jp_serverapp: Any) -> None:
    name = new_name("absent")
    for parts, method, body in [
        ((), "GET", None),
        ((), "DELETE", None),
        (("logs",), "GET", None),
        (("containers",), "GET", None),
        (("exec",), "POST", json.dumps({"command": ["true"]})),
    ]:
        error = await expect_error(jp_fetch, 404, "sandbox", "api", "sandboxes", name, *parts, method=method, body=body)
        assert error["error"] == "not_found" and name in error["message"] and error["fix"]


@pytest.mark.integration
async def test_name_clash_and_plain_sandbox_without_docker(jp_fetch: Any, jp_serverapp: Any, test_images: dict[str, str], no_leaks: None) -> None:
    name = new_name("plain")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "image": test_images["tiny"]}))
    try:
        assert (await wait_for_state(jp_fetch, name))["state"] == "ready"
        error = await expect_error(jp_fetch, 409, "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name}))
        assert error["error"] == "exists"
        error = await expect_error(jp_fetch, 409, "sandbox", "api", "sandboxes", name, "logs")
        assert error["error"] == "docker_not_enabled"
    finally:
        await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")


async def test_requests_without_a_valid_token_get_403_and_create_nothing(jp_fetch: Any, jp_serverapp: Any) -> None:
    name = new_name("noauth")
    for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
        await expect_error(jp_fetch, 403, "sandbox", "api", "sandboxes", headers=headers)
        await expect_error(
            jp_fetch, 403, "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": True}), headers=headers
        )
        await expect_error(
            jp_fetch, 403, "sandbox", "api", "sandboxes", name, "exec", method="POST", body=json.dumps({"command": ["true"]}), headers=headers
        )
        await expect_error(jp_fetch, 403, "sandbox", "api", "sandboxes", name, method="DELETE", headers=headers)
    await asyncio.sleep(0)  # a create would have been scheduled by now
    manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
    assert name not in [s["name"] for s in manager.watcher.snapshot()]
    assert not container_exists(name)


@pytest.mark.integration
async def test_shutdown_removes_this_servers_sandboxes(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    name = new_name("shutdown")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name}))
    assert (await wait_for_state(jp_fetch, name))["state"] == "ready"
    await jp_serverapp.web_app.settings["jupyter_sandbox_manager"].stop()
    assert not container_exists(name)


KEEP_CONFIG = server_config(keep_on_exit=True, docker=True, memory="768Mi")


@pytest.mark.integration
@pytest.mark.parametrize("jp_server_config", [KEEP_CONFIG])
async def test_configured_defaults_and_keep_on_exit(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
    assert manager.keep_on_exit is True
    name = new_name("keep")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name}))
    try:
        info = await wait_for_state(jp_fetch, name)
        assert info["state"] == "ready" and info["docker"] is True and info["memory"] == "768Mi"
        await manager.stop()
        assert container_exists(name)
    finally:
        await (await AsyncSandbox.get(name)).terminate()


@pytest.mark.integration
async def test_another_servers_sandboxes_are_neither_listed_nor_touched(
    jp_fetch: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> None:
    mine = os.environ[L.SERVER_ENV]
    name = new_name("foreign")
    monkeypatch.setenv(L.SERVER_ENV, "other-host:1:feedbeef")  # as a kernel of another server would create it
    foreign = await AsyncSandbox.create(name=name, owner="kernel")
    monkeypatch.setenv(L.SERVER_ENV, mine)
    user_name = new_name("user")
    monkeypatch.delenv(L.SERVER_ENV)  # a plain shell's CLI: the user's, visible to every server
    users = await AsyncSandbox.create(name=user_name, owner="cli")
    monkeypatch.setenv(L.SERVER_ENV, mine)
    try:
        listed = [s["name"] for s in await fetch_json(jp_fetch, "sandbox", "api", "sandboxes")]
        assert name not in listed and user_name in listed
        await expect_error(jp_fetch, 404, "sandbox", "api", "sandboxes", name)
        await expect_error(jp_fetch, 404, "sandbox", "api", "sandboxes", name, method="DELETE")
        await expect_error(jp_fetch, 404, "sandbox", "api", "sandboxes", name, "exec", method="POST", body=json.dumps({"command": ["true"]}))
        assert (await foreign.status()).state == "ready"  # untouched
        manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
        assert name not in [s["name"] for s in manager.watcher.snapshot()]
    finally:
        await foreign.terminate()
        await users.terminate()


POOL_CONFIG = server_config(pool_size=1, docker=True, memory="640Mi")


@pytest.mark.integration
@pytest.mark.warm_pool
@pytest.mark.parametrize("jp_server_config", [POOL_CONFIG])
async def test_server_warm_pool_serves_creates_and_empties_on_stop(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
    manager.start()

    def members() -> list[Any]:
        return [
            c
            for c in docker.from_env().containers.list(filters={"label": f"{L.POOL}=1"})
            if L.in_pool(c.name) and c.labels.get(L.OWNER_PID) == str(os.getpid())
        ]

    deadline = time.monotonic() + READY_TIMEOUT
    while not members() or (await AsyncSandbox.from_container(members()[0]).status()).state != "ready":
        assert time.monotonic() < deadline, "the server's pool never got a ready member"
        await asyncio.sleep(0.1)
    member_id = members()[0].id
    name = new_name("pooled")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name}))
    info = await wait_for_state(jp_fetch, name)
    assert info["state"] == "ready" and info["container_id"] == member_id and info["memory"] == "640Mi"
    await manager.stop()
    assert not members(), "stopping the server must empty its pool"
    assert not container_exists(name)


@pytest.mark.integration
async def test_delete_while_starting_cancels_the_create_and_leaves_nothing(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    name = new_name("cancel")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, "docker": True}))
    response = await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
    assert response.code == 204
    assert not container_exists(name)
    await expect_error(jp_fetch, 404, "sandbox", "api", "sandboxes", name)
