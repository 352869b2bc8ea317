"""Pause, resume and time limits through a real Jupyter server (REST, the port proxy, the watcher's checks)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import docker
import pytest
from sandbox_test_support import container_exists, server_config, unique_name
from test_server_api import fetch_json, wait_for_state
from tornado.httpclient import HTTPClientError

from jupyter_sandbox.sandbox import AsyncSandbox

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.integration

PAGE = "served while paused\n"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """The extension, with a short limits check interval and an admin maximum ttl."""
    return server_config(limits_interval=0.5, max_ttl="1h")


async def test_bad_times_and_the_maximum_are_refused_with_the_field(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    for field, value in (("ttl", -5), ("ttl", "40d"), ("idle_timeout", "soon"), ("idle_timeout", 0), ("ttl", "2h")):
        name = unique_name("lc")
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name, field: value}))
        body = json.loads(caught.value.response.body)
        assert caught.value.code == 400 and body["field"] == field and body["fix"], body
        assert not container_exists(name)
    manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
    assert manager.spec_from_body({"name": "x"}).ttl == 3600  # no ttl asked: the server's maximum
    assert manager.spec_from_body({"name": "x", "ttl": "10m", "idle_timeout": 60}).ttl == 600


async def test_pause_resume_routes_and_a_proxied_request_resumes(
    jp_fetch: Any, jp_serverapp: Any, test_images: dict[str, str], no_leaks: None
) -> None:
    sandbox = await AsyncSandbox.create(name=unique_name("lc"), docker=True, network="sandbox", owner="test", use_pool=False)
    notices: list[dict[str, Any]] = []
    manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
    manager.start()
    stop = manager.watcher.add_listener(lambda update: notices.append(update.data) if update.kind == "notice" else None)
    try:
        assert await (await sandbox.docker.load(test_images["tiny"])).wait() == 0
        setup = await sandbox.run(["sh", "-c", f"mkdir -p /root/www && printf '{PAGE}' > /root/www/index.html"])
        assert setup.exit_code == 0
        web = await sandbox.docker.run(
            test_images["tiny"],
            "busybox",
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/www",
            detach=True,
            network="host",
            volume="/root/www:/www",
            name="web",
        )
        assert await web.wait() == 0
        base = ("sandbox", "api", "sandboxes", sandbox.name)

        paused = await fetch_json(jp_fetch, *base, "pause", method="POST", body="")
        assert paused["state"] == "paused"
        assert (await fetch_json(jp_fetch, *base))["state"] == "paused"
        page = await jp_fetch("sandbox", "proxy", sandbox.name, "8080", "index.html")  # a use: resumes it
        assert page.body.decode() == PAGE
        assert (await fetch_json(jp_fetch, *base))["state"] == "ready"
        assert [n["action"] for n in notices if n["sandbox"] == sandbox.name] == ["resumed"]

        await fetch_json(jp_fetch, *base, "pause", method="POST", body="")
        resumed = await fetch_json(jp_fetch, *base, "resume", method="POST", body="")
        assert resumed["state"] == "ready"
        ps = await fetch_json(jp_fetch, *base, "containers")
        assert [c["Names"] for c in ps] == ["web"]
    finally:
        stop()
        await sandbox.terminate()


async def test_the_server_pauses_an_idle_sandbox_and_removes_an_expired_one(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
    manager.start()
    idle, short = unique_name("lc"), unique_name("lc")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": idle, "idle_timeout": 3}))
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": short, "ttl": 4}))
    try:
        info = await wait_for_state(jp_fetch, idle, ("ready",))
        assert info["idle_timeout"] == 3 and info["idle_left"] is not None
        ready_short = await wait_for_state(jp_fetch, short, ("ready",))
        assert ready_short["ttl"] == 4 and 0 < ready_short["time_left"] <= 4
        # Nobody lists or asks for them: the server's own periodic check acts (the watcher's snapshot shows it).
        deadline = time.monotonic() + 30
        while True:
            states = {s["name"]: s["state"] for s in manager.watcher.snapshot()}
            if states.get(idle) == "paused" and short not in states:
                break
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.2)
        assert not container_exists(short)
        gone = await jp_fetch("sandbox", "api", "sandboxes", short, method="DELETE", raise_error=False)
        assert gone.code == 404  # removed by the server itself; a DELETE finds nothing left
        out = await jp_fetch("sandbox", "api", "sandboxes", idle, "exec", method="POST", body=json.dumps({"command": ["echo", "hi"]}))
        lines = [json.loads(line) for line in out.body.decode().splitlines()]
        assert lines[-1] == {"exit_code": 0} and {"stream": "stdout", "text": "hi\n"} in lines
        assert (await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", idle))["state"] == "ready"
    finally:
        for name in (idle, short):
            try:
                await jp_fetch("sandbox", "api", "sandboxes", name, method="DELETE")
            except HTTPClientError:
                pass


@pytest.mark.parametrize("jp_server_config", [server_config(limits_interval=3600)])
async def test_get_of_an_expired_sandbox_is_410_and_delete_is_204(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    looked, deleted = (
        await AsyncSandbox.create(name=unique_name("lc"), ttl=1, owner="test", use_pool=False),
        await AsyncSandbox.create(name=unique_name("lc"), ttl=1, owner="test", use_pool=False),
    )
    try:
        await asyncio.sleep(1.2)  # nothing of ours checks in between (the server's interval is an hour)
        assert container_exists(looked.name) and container_exists(deleted.name)
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("sandbox", "api", "sandboxes", looked.name)
        body = json.loads(caught.value.response.body)
        assert caught.value.code == 410 and body["error"] == "expired" and "has expired and was removed" in body["message"]
        assert not container_exists(looked.name)
        answer = await jp_fetch("sandbox", "api", "sandboxes", deleted.name, method="DELETE")
        assert answer.code == 204 and not container_exists(deleted.name)
    finally:
        await looked.terminate()
        await deleted.terminate()


async def test_snapshot_routes_fork_list_refuse_and_remove(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    from test_server_api import expect_error

    source = await AsyncSandbox.create(name=unique_name("lc-snap"), network="none", owner="test", use_pool=False)
    tag, fork = unique_name("lc-tag"), unique_name("lc-fork")
    try:
        taken = await fetch_json(jp_fetch, "sandbox", "api", "sandboxes", source.name, "snapshots", method="POST", body=json.dumps({"tag": tag}))
        assert taken["tag"] == tag and taken["source"] == source.name and taken["size"] > 0
        again = await expect_error(
            jp_fetch, 409, "sandbox", "api", "sandboxes", source.name, "snapshots", method="POST", body=json.dumps({"tag": tag})
        )
        assert again["error"] == "snapshot_exists" and again["fix"]
        bad = await expect_error(
            jp_fetch, 400, "sandbox", "api", "sandboxes", source.name, "snapshots", method="POST", body=json.dumps({"tag": "No Good"})
        )
        assert bad["field"] == "snapshot"
        assert tag in [s["tag"] for s in await fetch_json(jp_fetch, "sandbox", "api", "snapshots")]
        unknown = await expect_error(
            jp_fetch, 404, "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": fork, "snapshot": "never-made"})
        )
        assert unknown["error"] == "snapshot_not_found" and not container_exists(fork)
        clash = await expect_error(
            jp_fetch, 400, "sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": fork, "snapshot": tag, "cpu": 1})
        )
        assert clash["field"] == "cpu" and not container_exists(fork)
        await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": fork, "snapshot": tag}))
        info = await wait_for_state(jp_fetch, fork)
        assert info["state"] == "ready" and [p["phase"] for p in info["phases"]][-1] == "ready", info
        await jp_fetch("sandbox", "api", "snapshots", tag, method="DELETE")
        await expect_error(jp_fetch, 404, "sandbox", "api", "snapshots", tag)
    finally:
        await source.terminate()
        await jp_fetch("sandbox", "api", "sandboxes", fork, method="DELETE", raise_error=False)
        from jupyter_sandbox import snapshots

        try:
            snapshots.remove(tag)
        except snapshots.SnapshotNotFound:
            pass


@pytest.mark.warm_pool
@pytest.mark.parametrize("jp_server_config", [server_config(pool_size=1, docker=True, memory="640Mi", keep_on_exit=True)])
async def test_a_member_the_server_claimed_is_its_own_after_a_restart(jp_fetch: Any, jp_serverapp: Any, no_leaks: None) -> None:
    """Ownership of a claimed pool member is read from the engine side (its claim record), not kept in the
    server's memory: a new manager (a restarted server's, same server id) lists it as the server's and removes it."""
    from jupyter_sandbox_server.manager import SandboxManager

    from jupyter_sandbox import labels as L

    manager = jp_serverapp.web_app.settings["jupyter_sandbox_manager"]
    manager.start()

    def members() -> list[Any]:
        return [
            c
            for c in docker.from_env().containers.list(filters={"label": f"{L.POOL}=1"})
            if L.in_pool(c.name) and c.labels.get(L.OWNER_PID) == str(os.getpid())
        ]

    deadline = time.monotonic() + 120
    while not members() or (await AsyncSandbox.from_container(members()[0]).status()).state != "ready":
        assert time.monotonic() < deadline, "the server's pool never got a ready member"
        await asyncio.sleep(0.1)
    member_id = members()[0].id
    name = unique_name("claimed")
    await jp_fetch("sandbox", "api", "sandboxes", method="POST", body=json.dumps({"name": name}))
    try:
        info = await wait_for_state(jp_fetch, name)
        assert info["container_id"] == member_id and info["owner"] == "server" and info["server"] == manager.server_id, info
        await manager.stop()  # keep_on_exit: the server's sandboxes stay (its pool's unclaimed members go)
        assert container_exists(name) and not members()
        restarted = SandboxManager(parent=jp_serverapp, log=manager.log)  # nothing in memory
        listed = {s["name"]: s for s in await restarted.list()}
        assert listed[name]["owner"] == "server" and not listed[name]["pool"], listed.get(name)
        restarted.keep_on_exit = False
        await restarted.stop()  # removes this server's sandboxes, as its labels say: the claimed one too
        assert not container_exists(name)
    finally:
        if container_exists(name):
            await (await AsyncSandbox.get(name)).terminate()
