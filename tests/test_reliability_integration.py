"""Faults survived on real sandboxes: a daemon killed, a sandbox killed behind our back, owners gone,
creates cancelled half-way, limits hit.  Each waits for its outcome with a bound, never a timing assert."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox import labels as L
from jupyter_sandbox.bootstrap import API_DIR
from jupyter_sandbox.engine import Engine
from jupyter_sandbox.errors import NotIsolated, SandboxDied, SandboxNotRunning
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.sync import Sandbox, call

pytestmark = pytest.mark.integration


def wait_for(predicate, seconds: float = 30.0, step: float = 0.02):
    """Poll ``predicate`` until it is truthy or ``seconds`` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_killed_dockerd_is_reported_and_restart_brings_it_back(test_images, no_leaks):
    with Sandbox.create(docker=True, owner="test") as sandbox:
        assert sandbox.docker.load(test_images["tiny"]).wait() == 0
        assert sandbox.docker.run(test_images["tiny"], "sleep", "600", detach=True, name="inner", network="host").wait() == 0
        sandbox.run(["sh", "-c", "kill -9 $(cat /run/jupyter-sandbox/dockerd.pid)"])
        info = wait_for(lambda: (i := sandbox.status()).state == "failed" and i, seconds=10)
        assert info, "the killed daemon was not reported"
        assert info.reason == "dockerd exited with code 137"
        ps = sandbox.docker.ps()
        assert ps.wait() != 0 and "restart_daemon" in ps.hint and "inner containers stopped" in ps.hint
        sandbox.restart_daemon()
        assert sandbox.status().state == "ready"
        listing = sandbox.docker.ps(all=True, format="{{.Names}} {{.Status}}")
        assert listing.wait() == 0 and listing.stdout.read().startswith("inner Exited")


def test_sandbox_killed_behind_our_back(engine_client, no_leaks):
    sandbox = Sandbox.create(owner="test")
    engine_client.api.kill(sandbox.core.container_id)
    assert wait_for(lambda: sandbox.status().state == "stopped", seconds=10)
    with pytest.raises(SandboxNotRunning, match="is stopped"):
        sandbox.exec(["true"])
    engine_client.api.remove_container(sandbox.core.container_id, force=True)
    assert sandbox.status().state == "gone"
    assert sandbox.name not in [info.name for info in Sandbox.list()]
    assert sandbox.terminate() is False


def test_sandboxes_survive_their_creator_and_orphans_are_removed(engine_client):
    name = f"orphan-{os.getpid()}"
    script = textwrap.dedent(f"""
        from jupyter_sandbox.sync import Sandbox
        Sandbox.create({name!r}, owner="kernel")
        Sandbox.create({name + "-kept"!r}, owner="cli")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)  # exits without cleaning up
    try:
        found = Sandbox.get(name)  # another process finds both through the engine's labels
        assert found.status().state == "ready" and found.status().owner == "kernel"
        removed = subprocess.run(["jupyter", "sandbox", "rm", "--orphans"], capture_output=True, text=True, timeout=120)
        assert f"removed {name}\n" in removed.stderr
        assert Sandbox.get(name + "-kept").status().state == "ready", "a CLI sandbox belongs to the user, not a process"
    finally:
        for leftover in (name, name + "-kept"):
            subprocess.run(["jupyter", "sandbox", "rm", leftover], capture_output=True, timeout=120)


def test_ctrl_c_during_cli_create_leaves_nothing(engine_client):
    name = f"interrupted-{os.getpid()}"
    process = subprocess.Popen(["jupyter", "sandbox", "create", "--docker", "--name", name, "--json"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if '"sandbox_start", "state": "done"' in line:
            process.send_signal(signal.SIGINT)  # the sandbox exists now and dockerd is starting
            break
    assert process.wait(timeout=120) == 130
    assert not container_exists(name)


def test_cancelling_an_async_create_half_way_leaves_nothing(no_leaks):
    seen: list[str] = []

    async def create_and_cancel() -> None:
        with anyio.CancelScope() as scope:

            def on_event(event) -> None:
                seen.append(event.phase)
                if event.phase == "cgroups":
                    scope.cancel()

            await AsyncSandbox.create(docker=True, owner="test", on_event=on_event)
        assert scope.cancelled_caught

    call(create_and_cancel)
    assert "cgroups" in seen


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.005, 0.01, 0.02, 0.04])
def test_cancelling_while_the_engine_creates_the_container_leaves_nothing(delay, engine_client, no_leaks):
    """A cancel landing during the engine's create call (a DELETE from the panel, a Ctrl-C) must not
    lose the new container's id: the container appears a moment later and has to be removed too."""
    name = unique_name(f"race-{int(delay * 1000)}")

    async def create_and_cancel() -> None:
        creating = anyio.Event()

        def on_event(event) -> None:
            if event.phase == "sandbox_start" and event.state == "started":
                creating.set()

        async def cancel_soon(scope: anyio.CancelScope) -> None:
            await creating.wait()
            await anyio.sleep(delay)
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_soon, group.cancel_scope)
            await AsyncSandbox.create(name=name, docker=True, owner="test", on_event=on_event)

    call(create_and_cancel)
    # An abandoned create call would make its container a moment after the cancel: look for a while.
    leaked = wait_for(lambda: container_exists(name), seconds=1.5)
    if leaked:
        engine_client.containers.get(L.container_name(name)).remove(force=True)
    assert not leaked, "the cancelled create left its container behind"


def test_memory_limit_hit_kills_only_that_sandbox(no_leaks):
    with Sandbox.create(memory="256Mi", owner="test") as bystander:
        with Sandbox.create(memory="256Mi", owner="test") as hungry:
            process = hungry.exec(["dd", "if=/dev/zero", "of=/dev/null", "bs=400M", "count=1"])
            with pytest.raises(SandboxDied) as caught:
                process.wait()
            assert "memory limit (256Mi)" in str(caught.value) and "host was not affected" in str(caught.value)
            assert hungry.status().reason.startswith("killed by the host: out of memory")
        assert bystander.run(["echo", "still here"]).stdout.read() == "still here\n"
    assert call(Engine.default().ping) is None


def test_a_container_not_under_runsc_is_destroyed_and_reported(monkeypatch, engine_client, no_leaks):
    async def runc(self, network):  # the engine hands back runc: as a misconfigured default-runtime would
        return "runc"

    monkeypatch.setattr(Engine, "runsc_runtime", runc)
    with pytest.raises(NotIsolated, match="not runsc; it was removed"):
        Sandbox.create(owner="test")


def test_nothing_of_the_host_is_given_unless_asked(engine_client):
    from jupyter_sandbox.network import NETWORK_NAME, RESOLV_CONF

    with Sandbox.create(docker=True, owner="test") as sandbox:
        attrs = engine_client.api.inspect_container(sandbox.core.container_id)
        host = attrs["HostConfig"]
        # network "sandbox" (the default): one read-only file, its resolv.conf, and the product's own network;
        # with Docker, the sandbox's own socket directory, where it may create (never open) a socket.
        assert sorted((m["Destination"], m["RW"], m["Source"]) for m in attrs["Mounts"]) == sorted(
            [("/etc/resolv.conf", False, RESOLV_CONF), (API_DIR, True, os.path.dirname(sandbox.docker.socket))]
        )
        assert not host.get("Binds")
        assert host["NetworkMode"] == NETWORK_NAME and not host["Privileged"]
        assert host["Runtime"] == "runsc-sandbox"
        assert not host.get("PortBindings")
        inner_socket = sandbox.run(["test", "-S", "/var/run/docker.sock"])
        assert inner_socket.exit_code == 0  # the daemon's socket lives inside the sandbox only


def test_resource_limits_asked_for_are_enforced(engine_client):
    with Sandbox.create(cpu=1, memory="512Mi", owner="test") as sandbox:
        host = engine_client.api.inspect_container(sandbox.core.container_id)["HostConfig"]
        assert host["NanoCpus"] == 10**9 and host["Memory"] == 512 * 2**20
        meminfo = sandbox.run(["grep", "MemTotal", "/proc/meminfo"]).stdout.read()
        assert meminfo.split()[1] == str(512 * 1024)  # the sandbox's kernel sees its limit
        cgroup = f"/sys/fs/cgroup/cpu/docker/{sandbox.core.container_id}/cpu.cfs_quota_us"
        if os.path.exists(cgroup):  # the host kernel enforces the CPU share
            with open(cgroup) as f:
                assert f.read().strip() == "100000"


@pytest.mark.slow
@pytest.mark.restarts_engine
def test_host_engine_restart_is_survived(engine_client, no_leaks):
    """dockerd restarted under live sandboxes: they read as stopped, everything keeps answering, new ones start."""
    sandbox = Sandbox.create(owner="test", network="none", use_pool=False)
    tag = unique_name("restart-snap")
    sandbox.run(["sh", "-c", "echo kept > /root/kept"]).wait()
    sandbox.snapshot(tag)  # snapshots survive the engine's restart
    pid = int(subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True, check=True).stdout.split()[0])
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), seconds=60)
    subprocess.run(["bash", "scripts/setup-host.sh"], check=True, capture_output=True, timeout=300)
    assert wait_for(lambda: sandbox.status().state in ("stopped", "gone"), seconds=30)
    with pytest.raises(SandboxNotRunning):
        sandbox.exec(["true"])
    sandbox.terminate()
    with Sandbox.create(docker=True, owner="test") as fresh:  # the same Engine object reconnects by itself
        assert fresh.docker.ps().wait() == 0
    try:
        with Sandbox.create(unique_name("restart-fork"), snapshot=tag, owner="test") as fork:
            assert fork.run(["cat", "/root/kept"]).stdout.read() == "kept\n"
    finally:
        Sandbox.remove_snapshot(tag)
