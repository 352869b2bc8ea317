"""Pause and resume, ttl and idle_timeout on real runsc sandboxes (issue 14, items 4 and 5)."""

from __future__ import annotations

import glob
import json
import subprocess
import time

import docker
import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox import Sandbox, lifecycle
from jupyter_sandbox import labels as L
from jupyter_sandbox.errors import SandboxExpired, SpecError

pytestmark = pytest.mark.integration


@pytest.fixture
def notices():
    """Every notice the core sends in this process during the test."""
    seen: list[lifecycle.Notice] = []
    remove = lifecycle.add_notice_listener(seen.append)
    yield seen
    remove()


def cpu_usage_ns(container_id: str) -> int:
    """The container's cgroup CPU time so far (cgroup v1 cpuacct, or v2 cpu.stat)."""
    v1 = glob.glob(f"/sys/fs/cgroup/cpuacct/**/{container_id}/cpuacct.usage", recursive=True)
    if v1:
        return int(open(v1[0]).read())
    v2 = glob.glob(f"/sys/fs/cgroup/**/*{container_id}*/cpu.stat", recursive=True)
    assert v2, "no cgroup found for the sandbox container"
    usage = next(line for line in open(v2[0]) if line.startswith("usage_usec"))
    return int(usage.split()[1]) * 1000


def inner_sleeper_up(sb: Sandbox, name: str) -> bool:
    ps = sb.docker.ps(filter=f"name={name}", format="{{.Status}}")
    ps.wait()
    return ps.stdout.read().startswith("Up")


def test_pause_then_exec_resumes_and_inner_containers_survive(test_images, notices, no_leaks):
    with Sandbox.create(unique_name("lc"), docker=True, owner="test", use_pool=False) as sb:
        assert sb.docker.load(test_images["tiny"]).wait() == 0
        assert sb.docker.run(test_images["tiny"], "sleep", "3600", detach=True, name="sleeper", network="none").wait() == 0
        assert sb.pause() is True
        assert sb.pause() is False  # already paused
        info = sb.status()
        assert info.state == "paused", info
        assert docker.from_env().api.inspect_container(sb.core.container_id)["State"]["Paused"]
        assert any(i.name == sb.name and i.state == "paused" for i in Sandbox.list())

        echo = sb.exec(["echo", "back"])  # a use resumes it
        assert echo.wait() == 0 and echo.stdout.read() == "back\n"
        assert [n.action for n in notices if n.sandbox == sb.name] == ["resumed"]
        assert sb.status().state == "ready"
        assert inner_sleeper_up(sb, "sleeper")

        sb.pause()  # a docker command resumes it too, before it is sent anywhere
        assert inner_sleeper_up(sb, "sleeper")
        sb.pause()  # and a file transfer
        sb.files.write("/root/x.txt", "hello")
        assert sb.files.read("/root/x.txt") == b"hello"
        sb.pause()  # and an image copy over the daemon's host socket, which a frozen daemon would leave hanging
        assert sb.docker.load(test_images["tiny"]).wait() == 0
        assert [n.action for n in notices if n.sandbox == sb.name] == ["resumed"] * 4
        assert sb.resume() is False


def test_a_paused_sandbox_uses_no_cpu(notices, no_leaks):
    with Sandbox.create(unique_name("lc"), owner="test", use_pool=False) as sb:
        spinner = sb.exec(["sh", "-c", "while :; do :; done"])
        container_id = sb.core.container_id
        time.sleep(0.5)
        before = cpu_usage_ns(container_id)
        time.sleep(2)
        running = cpu_usage_ns(container_id) - before
        sb.pause()
        time.sleep(0.5)
        before = cpu_usage_ns(container_id)
        time.sleep(2)
        paused = cpu_usage_ns(container_id) - before
        # Measured here: ~2.1 s of CPU in 2 s spinning, ~0.04 s paused (the Go runtime's own upkeep).
        assert running > 0.5e9, running
        assert paused < running / 10, (paused, running)
        sb.resume()
        spinner.kill()


def test_ttl_from_the_cli_is_removed_by_the_next_ls_with_nothing_watching(no_leaks):
    name = unique_name("lc")
    created = subprocess.run(["jupyter", "sandbox", "create", "--name", name, "--ttl", "5s"], capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    labels = docker.from_env().containers.get(L.container_name(name)).labels
    deadline = float(labels[L.EXPIRES])
    assert deadline == pytest.approx(float(labels[L.CREATED]) + 5, abs=0.01)
    try:
        if time.time() < deadline - 1:  # before the deadline, looking keeps it and shows the time left
            early = subprocess.run(["jupyter", "sandbox", "ls"], capture_output=True, text=True, timeout=120)
            assert name in early.stdout and " ttl" in early.stdout, early.stdout
            assert container_exists(name)
        time.sleep(max(0.0, deadline - time.time()) + 0.5)
        assert container_exists(name)  # no process of ours watched it: it is still there...
        listed = subprocess.run(["jupyter", "sandbox", "ls"], capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert f"removed sandbox {name}: its ttl of 5s ran out" in listed.stderr
        assert name not in listed.stdout
        assert not container_exists(name)  # ...until the next face looked
    finally:
        subprocess.run(["jupyter", "sandbox", "rm", name], capture_output=True, timeout=120)


def test_get_and_use_of_an_expired_sandbox_remove_it_and_say_so(notices, no_leaks):
    sb = Sandbox.create(unique_name("lc"), ttl=2, owner="test", use_pool=False)
    try:
        assert sb.exec(["true"]).wait() == 0
        time.sleep(2.2)
        with pytest.raises(SandboxExpired, match="has expired and was removed"):
            sb.exec(["true"])
        assert not container_exists(sb.name)
        assert [n.action for n in notices if n.sandbox == sb.name] == ["expired"]
    finally:
        sb.terminate()
    again = Sandbox.create(unique_name("lc"), ttl=1, owner="test", use_pool=False)
    try:
        time.sleep(1.2)
        with pytest.raises(SandboxExpired):
            Sandbox.get(again.name)
        assert not container_exists(again.name)
    finally:
        again.terminate()


def test_idle_timeout_pauses_and_an_exec_resumes(test_images, notices, no_leaks):
    with Sandbox.create(unique_name("lc"), docker=True, idle_timeout=4, owner="test", use_pool=False) as sb:
        loaded = sb.docker.load(test_images["tiny"])
        assert loaded.wait() == 0, loaded.stderr.read()
        sleeper = sb.docker.run(test_images["tiny"], "sleep", "3600", detach=True, name="sleeper", network="none")
        assert sleeper.wait() == 0, sleeper.stderr.read()
        assert sb.status().state == "ready"  # just used (idle time counts from the end of a use, however long it ran)
        time.sleep(4.5)
        states = {i.name: i.state for i in Sandbox.list()}  # a face looks: the idle sandbox is paused
        assert states[sb.name] == "paused"
        assert [n.action for n in notices if n.sandbox == sb.name] == ["idle-paused"]
        assert sb.exec(["echo", "hi"]).stdout.read() == "hi\n"
        assert [n.action for n in notices if n.sandbox == sb.name] == ["idle-paused", "resumed"]
        assert sb.status().state == "ready"
        assert inner_sleeper_up(sb, "sleeper")


def test_idle_time_counts_from_the_end_of_a_long_use(notices, no_leaks):
    with Sandbox.create(unique_name("lc"), idle_timeout=2, owner="test", use_pool=False) as sb:
        assert sb.exec(["sleep", "3"]).wait() == 0  # longer than the idle timeout, and nobody looked meanwhile
        states = {i.name: i.state for i in Sandbox.list()}
        assert states[sb.name] == "ready"
        assert [n.action for n in notices if n.sandbox == sb.name] == []


@pytest.mark.parametrize(
    "field,value", [("ttl", -5), ("ttl", "-1h"), ("ttl", "40d"), ("idle_timeout", 0), ("idle_timeout", "soon"), ("ttl", float("inf"))]
)
def test_bad_times_are_refused_before_anything_is_created(field, value, engine_client, no_leaks):
    name = unique_name("lc")
    with pytest.raises(SpecError) as caught:
        Sandbox.create(name, use_pool=False, **{field: value})
    assert caught.value.field == field and caught.value.fix
    assert not container_exists(name)
    flag = "--" + field.replace("_", "-")
    cli = subprocess.run(["jupyter", "sandbox", "create", "--name", name, f"{flag}={value}"], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2, cli.stderr
    assert f"{field}:" in cli.stderr and "How to fix" in cli.stderr and "Traceback" not in cli.stderr
    assert not container_exists(name)


def test_a_long_command_keeps_an_idle_sandbox_running(notices, no_leaks):
    with Sandbox.create(unique_name("lc"), idle_timeout=2, owner="test", use_pool=False) as sb:
        long = sb.exec(["sleep", "6"])
        time.sleep(3)
        assert {i.name: i.state for i in Sandbox.list()}[sb.name] == "ready"  # in use: its exec still runs
        assert long.wait() == 0
        time.sleep(2.5)
        assert {i.name: i.state for i in Sandbox.list()}[sb.name] == "paused"  # idle since the command ended
        assert [n.action for n in notices if n.sandbox == sb.name] == ["idle-paused"]


def test_cli_pause_resume_and_a_cli_exec_says_it_resumed(no_leaks):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["jupyter", "sandbox", *args], capture_output=True, text=True, timeout=120)

    name = unique_name("lc")
    assert cli("create", "--name", name, "--ttl", "1h", "--idle-timeout", "30m").returncode == 0
    try:
        paused = cli("pause", name)
        assert paused.returncode == 0 and f"paused {name}" in paused.stderr
        assert "already paused" in cli("pause", name).stderr
        listed = {i["name"]: i for i in json.loads(cli("ls", "--json").stdout)}
        assert listed[name]["state"] == "paused" and 3500 < listed[name]["time_left"] <= 3600
        assert listed[name]["idle_timeout"] == 1800 and listed[name]["idle_left"] is None  # paused: not counting
        status = cli("status", name)
        assert "ttl: 1h (removed in 59m" in status.stdout and "idle timeout: 30m (paused)" in status.stdout
        used = cli("exec", name, "--", "echo", "hi")
        assert used.returncode == 0 and used.stdout == "hi\n"
        assert f"jupyter-sandbox: sandbox {name} was paused; resumed it for this use" in used.stderr
        assert f"{name} was not paused" in cli("resume", name).stderr
        table = cli("ls").stdout
        assert "TIME LEFT" in table and "59m" in table and ("29m" in table or "30m idle" in table)  # 30m within its first second
    finally:
        cli("rm", name)
