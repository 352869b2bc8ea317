"""Issue 10 (hardening) on real runsc sandboxes: process limits, default limits, safe downloads,
secrets out of labels, host network with Docker, and isolation checked by what boots."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox import Sandbox
from jupyter_sandbox import labels as L
from jupyter_sandbox.spec import host_pids_limit

pytestmark = pytest.mark.integration

FORK_BOMB = "n=0; while [ $n -lt 3000 ]; do sleep 600 & n=$((n+1)); echo $n > /tmp/spawned; done"
"""Spawns sleeps until a fork fails (the shell then exits) or 3,000 run; the count is left in /tmp/spawned."""


def host_pids(container_id: str) -> int:
    """Host PIDs (tasks) a sandbox's container holds, from its pids cgroup."""
    with open(f"/sys/fs/cgroup/pids/docker/{container_id}/pids.current") as f:
        return int(f.read())


def create(tag: str, **fields) -> Sandbox:
    """A fresh sandbox never taken from a warm pool (a unique env makes its pool key unique)."""
    name = unique_name(f"hd-{tag}")
    env = {**fields.pop("env", {}), "HD_TEST": name}
    return Sandbox.create(name, env=env, owner="test", **fields)


def test_a_fork_bomb_hits_the_sandbox_pids_limit_and_the_host_keeps_working(engine_client, no_leaks):
    with create("forkbomb", pids=64) as sandbox:
        cid = sandbox.core.container_id
        host = engine_client.api.inspect_container(cid)["HostConfig"]
        assert host["PidsLimit"] == host_pids_limit(64)
        assert {"Name": "nproc", "Soft": 64, "Hard": 64} in host["Ulimits"]
        before = host_pids(cid)
        bomb = sandbox.exec(["sh", "-c", FORK_BOMB], timeout=120)
        code = bomb.wait()
        err = bomb.stderr.read()
        held = host_pids(cid)
        assert subprocess.run(["true"]).returncode == 0  # the host still starts processes
        spawned = int(sandbox.run(["cat", "/tmp/spawned"]).stdout.read())
        print(f"fork bomb: {spawned} sleeps, then {err.strip()!r}; host PIDs of the sandbox {before} before, "
              f"{held} after (backstop {host_pids_limit(64)})")
        assert code != 0 and "Cannot fork" in err  # the clear error is the fork's: EAGAIN inside the sandbox
        assert 16 < spawned < 64  # stopped by the sandbox's own limit, not by the loop's end
        assert held <= host_pids_limit(64)
        assert sandbox.run(["pkill", "-f", "sleep 600"]).exit_code == 0
        again = sandbox.run(["sh", "-c", "echo alive; sleep 0.1 & wait"])  # the sandbox survived and forks again
        assert again.exit_code == 0 and again.stdout.read() == "alive\n"
        print(f"host PIDs still held after the sleeps exited: {host_pids(cid)}")


def test_every_sandbox_gets_default_limits_and_unlimited_is_explicit(engine_client, no_leaks):
    from jupyter_sandbox.spec import default_limit

    with create("defaults") as sandbox:
        host = engine_client.api.inspect_container(sandbox.core.container_id)["HostConfig"]
        assert host["Memory"] == default_limit("memory") and host["NanoCpus"] == int(default_limit("cpu") * 1e9)
        assert host["PidsLimit"] == host_pids_limit(default_limit("pids"))
        meminfo = sandbox.run(["grep", "MemTotal", "/proc/meminfo"]).stdout.read()
        assert int(meminfo.split()[1]) * 1024 == default_limit("memory")  # not the host's 24 GB
    with create("unlimited", cpu="unlimited", memory="unlimited", pids="unlimited") as sandbox:
        host = engine_client.api.inspect_container(sandbox.core.container_id)["HostConfig"]
        assert not host["Memory"] and not host["NanoCpus"] and not host.get("PidsLimit") and not host.get("Ulimits")
        assert sandbox.status().memory is None
