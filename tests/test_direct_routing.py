"""Which way a docker command goes (host socket or exec), image-copy progress and the hints, without sandboxes."""

from __future__ import annotations

import os

import pytest

from jupyter_sandbox import apisocket, hostcli
from jupyter_sandbox.docker import AsyncDocker, CopyMeter, explain_failure
from jupyter_sandbox.errors import SandboxError
from jupyter_sandbox.spec import SandboxSpec


class FakeSandbox:
    """Just what AsyncDocker reads to choose a route."""

    def __init__(self, api_socket: str | None):
        self.api_socket = api_socket
        self.spec = SandboxSpec.parse("uds-unit", docker=True)
        self.name = "uds-unit"


def test_commands_use_the_socket_and_plugins_the_host_lacks_use_exec(monkeypatch):
    monkeypatch.setattr(hostcli, "docker_cli", lambda: "/usr/bin/docker")
    monkeypatch.setattr(hostcli, "has_plugin", lambda name: name == "buildx")
    docker = AsyncDocker(FakeSandbox("/run/x/docker.sock"))
    assert docker.direct(["ps", "-a"]) and docker.direct(["load"]) and docker.direct(["--debug", "run", "img"])
    assert not docker.direct(["compose", "up"]) and not docker.direct(["--debug", "compose", "up"])
    assert docker.direct(["buildx", "ls"])  # the host has this plugin
    assert not AsyncDocker(FakeSandbox(None)).direct(["ps"])  # no socket: exec
    monkeypatch.setattr(hostcli, "docker_cli", lambda: None)
    assert not docker.direct(["ps"])  # no docker CLI on the host: exec


def test_the_client_environment_points_at_the_socket_only(monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "elsewhere")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    env = hostcli.environment("/run/x/docker.sock")
    assert env["DOCKER_HOST"] == "unix:///run/x/docker.sock"
    assert "DOCKER_CONTEXT" not in env and "DOCKER_TLS_VERIFY" not in env


def test_copy_progress_shows_megabytes_and_rate_only_past_a_second(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("jupyter_sandbox.docker.time.monotonic", lambda: now[0])
    written: list[str] = []
    meter = CopyMeter("img into sb", written.append)
    meter.add(10_000_000)
    now[0] = 100.5
    meter.add(10_000_000)
    assert written == []  # under a second: quiet
    now[0] = 101.0
    meter.add(30_000_000)
    assert written == ["copying img into sb: 50.0 MB, 50.0 MB/s\n"]
    now[0] = 102.0
    meter.add(50_000_000)  # under PROGRESS_EVERY since the last line
    assert len(written) == 1
    now[0] = 104.0
    meter.finish()
    assert written[-1] == "copied img into sb: 100.0 MB, 25.0 MB/s in 4.0 s\n"
    quick: list[str] = []
    fast = CopyMeter("small", quick.append)
    fast.add(5)
    fast.finish()
    assert quick == []


def test_a_dead_daemon_behind_the_relay_gets_the_restart_hint():
    stderr = (
        'error during connect: Get "http://%2Frun%2Fx%2Fdocker.sock/v1.50/containers/json": '
        "read unix @->/run/jupyter-sandbox/api/docker.sock: read: connection reset by peer\n"
    )
    assert "restart_daemon" in explain_failure(["docker", "ps"], stderr, "none")


@pytest.mark.parametrize("name", ["x" * 80])
def test_a_socket_path_too_long_is_refused_clearly(name, monkeypatch, tmp_path):
    monkeypatch.setenv(apisocket.ROOT_ENV, str(tmp_path / ("d" * 90)))
    with pytest.raises(SandboxError, match="too long"):
        apisocket.make_dir(name)
    assert not os.path.exists(tmp_path / ("d" * 90))


def test_doctor_fails_a_runtime_without_host_uds_create():
    from jupyter_sandbox.doctor import check_host_uds
    from jupyter_sandbox.runtimes import WANTED_RUNTIMES

    assert check_host_uds(WANTED_RUNTIMES).ok
    bare = {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}}
    check = check_host_uds(bare)
    assert not check.ok and "runsc" in check.detail and "setup-host.sh" in check.fix
