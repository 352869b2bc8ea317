"""The inner Docker daemon on a host socket: its directory and modes, every docker path going through it,
closing and reopening it, what the sandbox cannot reach, and its removal with the sandbox."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

import docker
import IPython
import pytest
from sandbox_test_support import unique_name

from jupyter_sandbox import apisocket, hostcli, imagecache
from jupyter_sandbox import labels as L
from jupyter_sandbox.bootstrap import API_DIR, HOST_READY
from jupyter_sandbox.errors import ImageExists, SandboxError
from jupyter_sandbox.sync import Sandbox, call

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sb(test_images):
    """One Docker-enabled sandbox, fresh (no pool), with the tiny image loaded over the socket."""
    sandbox = fresh()
    assert sandbox.docker.load(test_images["tiny"]).wait() == 0
    yield sandbox
    sandbox.terminate()


def fresh(**fields) -> Sandbox:
    """A new Docker-enabled sandbox, never a warm-pool member."""
    return Sandbox.start(Sandbox.prepare(unique_name("uds"), docker=True, owner="test", use_pool=False, **fields))


def execs_since(sandbox: Sandbox, since: float) -> list[str]:
    """The commands the host engine exec'd in the sandbox's container since ``since`` (from its events)."""
    events = docker.from_env().api.events(
        since=since, until=time.time() + 0.5, decode=True, filters={"container": sandbox.core.container_id, "event": "exec_create"}
    )
    return [event.get("Action", "") for event in events]


def mode(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_the_socket_and_its_directory_are_the_users_alone(sb):
    path = sb.docker.socket
    folder = os.path.dirname(path)
    labels = docker.from_env().containers.get(sb.core.container_id).labels
    assert labels[L.API_DIR] == folder and os.path.dirname(folder) == apisocket.root()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert mode(path) == (0o600, os.geteuid(), os.getegid())
    assert mode(folder) == (0o700, os.geteuid(), os.getegid())
    assert mode(apisocket.root())[0] == 0o711
    assert sorted(os.listdir(folder)) == ["docker.sock", HOST_READY]  # and the host-ready marker
    assert apisocket.ping(path)


def test_every_docker_path_goes_through_the_socket_not_exec(sb, test_images, tmp_path, capsys):
    from IPython.testing.globalipapp import start_ipython

    tiny = test_images["tiny"]
    since = time.time()
    sb.exec(["true"]).wait()
    assert len(execs_since(sb, since)) == 1  # the engine does report execs: the check below can tell

    since = time.time() + 0.01
    process = sb.docker.run(tiny, "sh", "-c", "echo out; echo err >&2; exit 3", rm=True)
    assert isinstance(process.core, hostcli.HostProcess)
    assert process.wait() == 3 and process.stdout.read() == "out\n" and process.stderr.read() == "err\n"
    named = sb.docker.run(tiny, "sh", "-c", "echo logged", name="uds-logged")
    assert named.wait() == 0
    logs = sb.docker.logs("uds-logged")
    assert logs.wait() == 0 and logs.stdout.read() == "logged\n"
    assert "uds-logged" in sb.docker.ps(all=True).stdout.read()
    assert tiny.split(":")[0] in sb.docker.images().stdout.read()
    failed = sb.docker.run("no-such-image:never", "true")
    assert failed.wait() == 125 and "sandbox.docker.load(IMAGE)" in failed.hint
    (tmp_path / "Dockerfile").write_text(f"FROM {tiny}\nRUN echo built > /built\n")
    assert sb.docker.build(tmp_path, tag="uds-built:1").wait() == 0
    saved = sb.docker.save("uds-built:1")
    assert saved.wait() == 0, saved.stderr.read()
    host = docker.from_env()
    copies = ("uds-built:1", "uds-copy:2", "uds-magic:3")
    try:
        assert host.containers.run("uds-built:1", "cat /built", remove=True, runtime="runsc", network_mode="none") == b"built\n"
        with pytest.raises(ImageExists, match="already has an image named 'uds-built:1'"):
            sb.docker.save("uds-built:1")  # never takes a host image's name unasked
        copy = sb.docker.save("uds-built:1", tag="uds-copy:2")
        assert copy.wait() == 0 and host.images.get("uds-copy:2").id == host.images.get("uds-built:1").id
        assert sb.docker.save("uds-built:1", replace=True).wait() == 0
        shell = start_ipython() or IPython.get_ipython()
        shell.run_line_magic("load_ext", "jupyter_sandbox")
        shell.run_line_magic("sandbox", f"use {sb.name}")
        shell.run_line_magic("sandbox", "save uds-built:1 --tag uds-magic:3")
        assert host.images.get("uds-magic:3")
        from jupyter_sandbox.notebook import session

        session().forget(sb.name)
    finally:
        for copy_name in copies:
            try:
                host.images.remove(copy_name, force=True)
            except docker.errors.ImageNotFound:
                pass
    assert sb.docker.client.containers.run(tiny, "echo via docker-py", remove=True, network_mode="none") == b"via docker-py\n"

    shell = start_ipython() or IPython.get_ipython()
    shell.run_line_magic("load_ext", "jupyter_sandbox")
    try:
        shell.run_line_magic("sandbox", f"use {sb.name}")
        # {{{{ in the cell is {{ after the magic's variable expansion: a Go template
        shell.run_cell(f"%%sandbox_docker\nversion --format 'server {{{{{{{{.Server.Version}}}}}}}}'\nrun --rm {tiny} echo from-magic\n")
        shell.run_line_magic("sandbox", f"load {tiny}")
    finally:
        from jupyter_sandbox.notebook import session

        session().forget(sb.name)
    captured = capsys.readouterr()
    assert "server 20.10" in captured.out and "from-magic\n" in captured.out
    assert shell.user_ns["_exit_code"] == 0
    assert execs_since(sb, since) == []  # not one docker command ran inside through exec


def test_plugins_the_host_lacks_still_run_inside(sb):
    compose = sb.docker.compose("version")
    if hostcli.has_plugin("compose"):
        assert isinstance(compose.core, hostcli.HostProcess)
    else:
        assert not isinstance(compose.core, hostcli.HostProcess)  # through exec, with the sandbox's plugin
    assert compose.wait() == 0 and compose.stdout.read().startswith("Docker Compose version")


def test_a_timeout_stops_the_host_cli_and_reports_it(sb, test_images):
    from jupyter_sandbox.errors import ExecTimeout

    process = sb.docker.run(test_images["tiny"], "sh", "-c", "trap 'exit 9' TERM; echo started; while :; do sleep 0.1; done", rm=True, timeout=3)
    with pytest.raises(ExecTimeout):
        process.wait()
    assert process.core.popen.poll() is not None  # the host CLI is gone
    deadline = time.monotonic() + 10
    while "sleep" in sb.docker.ps().stdout.read() and time.monotonic() < deadline:
        time.sleep(0.2)  # the CLI passed SIGTERM on to its container, which exits
    assert sb.docker.ps(quiet=True).stdout.read().strip() == ""


def test_close_and_reopen_the_socket_while_the_daemon_runs(sb, test_images):
    running = sb.docker.run(test_images["tiny"], "sleep", "600", detach=True, name="uds-survivor")
    assert running.wait() == 0
    path = sb.docker.socket
    sb.close_api()
    assert not os.path.exists(path)
    refused = sb.docker("ps")
    assert refused.wait() != 0 and "open_api" in refused.hint
    inside = sb.run(["docker", "ps", "--format", "{{.Names}}"])  # the daemon itself is untouched
    assert inside.stdout.read() == "uds-survivor\n"
    assert "sandbox-relay" not in sb.run(["ps", "-eo", "comm"]).stdout.read()  # nothing holds a host socket
    sb.close_api()  # twice is fine
    sb.open_api()
    assert mode(path) == (0o600, os.geteuid(), os.getegid())
    assert sb.docker("ps", "--format", "{{.Names}}").stdout.read() == "uds-survivor\n"
    assert sb.docker("rm", "-f", "uds-survivor").wait() == 0


def test_one_relay_serves_every_connection_and_a_stalled_reader_stalls_only_its_own(sb, test_images):
    """The relay is one process (no fork per connection, which made each new connection 10-17 ms late
    under gVisor): while one client neither reads nor closes a stream of 4 MB of output, others are answered."""
    relays = sb.run(["sh", "-c", "ps -eo comm | grep -cx sandbox-relay"]).stdout.read().strip()
    assert relays == "1"
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(sb.docker.socket)
    created = sb.docker.client.api.create_container(
        test_images["tiny"],
        ["sh", "-c", "head -c 4000000 /dev/zero | tr '\\0' x"],
        host_config=sb.docker.client.api.create_host_config(network_mode="none"),
    )
    try:
        sb.docker.client.api.start(created)
        sb.docker.client.api.wait(created, timeout=60)
        stalled.sendall(f"GET /containers/{created['Id']}/logs?stdout=1&follow=0 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(1)  # the relay now holds what the stalled client does not read
        for _ in range(5):
            assert apisocket.ping(sb.docker.socket, timeout=5)
    finally:
        stalled.close()
        sb.docker.client.api.remove_container(created, force=True)
    assert sb.run(["sh", "-c", "ps -eo comm | grep -cx sandbox-relay"]).stdout.read().strip() == "1"


def test_the_init_program_restarts_a_relay_that_died(sb):
    assert sb.run(["pkill", "-KILL", "-x", "sandbox-relay"]).wait() == 0
    deadline = time.monotonic() + 10
    while not apisocket.ping(sb.docker.socket) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert apisocket.ping(sb.docker.socket)
    assert sb.docker("version").wait() == 0


def connect_from_inside(sb: Sandbox, path: str) -> str:
    process = sb.run(["sh", "-c", f"socat -u OPEN:/dev/null UNIX-CONNECT:{path} 2>&1; echo exit=$?"])
    return process.stdout.read()


def test_the_sandbox_cannot_connect_to_host_sockets(sb):
    with tempfile.TemporaryDirectory() as folder, socket.socket(socket.AF_UNIX) as listener:
        elsewhere = os.path.join(folder, "host.sock")
        listener.bind(elsewhere)
        listener.listen()
        assert "exit=1" in connect_from_inside(sb, elsewhere)  # not mounted: not even there
    # A host socket put into the sandbox's own mounted directory: the sandbox sees it, cannot connect.
    planted = os.path.join(os.path.dirname(sb.docker.socket), "planted.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(planted)
        listener.listen()
        try:
            with socket.socket(socket.AF_UNIX) as host_side:
                host_side.connect(planted)  # it does accept connections from the host
            assert "planted.sock" in sb.run(["ls", API_DIR]).stdout.read()
            answer = connect_from_inside(sb, f"{API_DIR}/planted.sock")
            assert "exit=1" in answer and "refused" in answer.lower()
        finally:
            os.unlink(planted)


def test_env_points_the_host_docker_cli_at_the_sandbox(sb):
    cli = [sys.executable, "-m", "jupyter_sandbox.cli"]
    env = subprocess.run([*cli, "env", sb.name], capture_output=True, text=True, check=True).stdout
    assert f"export DOCKER_HOST=unix://{sb.docker.socket}\n" in env
    script = f'{env}\ndocker info --format "{{{{.Name}}}}"\ndocker ps -a --format "{{{{.Names}}}}"\n'
    if hostcli.has_plugin("compose"):
        script += "docker compose version\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == sb.name  # the inner daemon's host name is the sandbox's
    bad = subprocess.run([*cli, "env", "uds-no-such-sandbox"], capture_output=True, text=True)
    assert bad.returncode == 1 and "No sandbox named" in bad.stderr


def test_the_directory_goes_with_the_sandbox_and_gone_ones_are_reaped(test_images):
    from jupyter_sandbox.engine import Engine

    sandbox = fresh()
    folder = os.path.dirname(sandbox.docker.socket)
    assert os.path.isdir(folder)
    assert sandbox.terminate()
    assert not os.path.exists(folder)

    sandbox = fresh()
    folder = os.path.dirname(sandbox.docker.socket)
    # A sandbox removed behind the product's back leaves its directory...
    docker.from_env().api.remove_container(sandbox.core.container_id, force=True)
    assert os.path.isdir(folder)
    assert folder not in call(apisocket.reap, Engine.default())  # ...kept while young (it may be mid-create)
    reaped = call(lambda: apisocket.reap(Engine.default(), min_age=0))
    assert folder in reaped and not os.path.exists(folder)


def test_a_failed_create_leaves_no_directory(test_images):
    name = unique_name("uds")
    with pytest.raises(SandboxError):
        Sandbox.start(Sandbox.prepare(name, docker=True, image=test_images["no_dockerd"], owner="test", use_pool=False))
    assert not [entry for entry in os.listdir(apisocket.root()) if entry.startswith(name[:24] + "-")]


def test_a_copy_over_a_second_shows_its_progress_between_the_output(sb, test_images):
    host = docker.from_env()
    tar = b"".join(host.api.get_image(test_images["tiny"]))

    def slow() -> list[bytes]:  # the tiny image's save stream, stretched over ~3 s
        for start in range(0, len(tar), len(tar) // 6 + 1):
            time.sleep(0.5)
            yield tar[start : start + len(tar) // 6 + 1]

    process = call(sb.core.docker._copy, slow, sb.docker.socket, "tiny, slowly", None)
    assert call(process.wait) == 0
    err = process.stderr_text
    assert "copying tiny, slowly: " in err and " MB/s\n" in err
    assert f"copied tiny, slowly: {len(tar) / 1e6:.1f} MB" in err
    assert process.stdout_text.startswith("Loaded image")


def host_saves(image_id: str, since: float) -> int:
    """How many times the host engine saved this image since ``since`` (its events)."""
    events = docker.from_env().api.events(since=since, until=time.time() + 0.5, decode=True, filters={"type": "image", "event": "save"})
    return sum(1 for event in events if event.get("Actor", {}).get("ID") == image_id)


def test_a_second_load_reads_the_hosts_saved_copy_and_an_image_already_there_is_not_copied(test_images, no_leaks):
    tiny = test_images["tiny"]
    image_id = docker.from_env().images.get(tiny).id
    copy = imagecache.path_for(image_id, tiny)
    if os.path.exists(copy):
        os.unlink(copy)  # an earlier test of this run loaded it: start without a copy
    sandbox = fresh(network="none")
    try:
        since = time.time()
        assert sandbox.docker.load(tiny).wait() == 0
        assert host_saves(image_id, since) == 1
        assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600 and stat.S_IMODE(os.stat(os.path.dirname(copy)).st_mode) == 0o700
        removed = sandbox.docker("rmi", tiny)
        assert removed.wait() == 0, removed.stderr.read()
        since = time.time()
        loaded = sandbox.docker.load(tiny)
        assert loaded.wait() == 0, loaded.stderr.read()
        assert host_saves(image_id, since) == 0  # from the copy, not the engine
        ran = sandbox.docker.run(tiny, "echo", "from the copy", rm=True, network="none")
        assert ran.wait() == 0 and ran.stdout.read() == "from the copy\n"
        again = sandbox.docker.load(tiny)  # there already, same id: nothing to copy
        assert again.wait() == 0 and again.stdout.read() == f"Loaded image: {tiny} (already in the sandbox: nothing copied)\n"
    finally:
        sandbox.terminate()


def test_a_load_sends_only_the_layers_the_sandbox_lacks(test_images, no_leaks):
    tiny = test_images["tiny"]
    whole = sum(len(chunk) for chunk in docker.from_env().api.get_image(tiny))
    sandbox = fresh(network="none")
    try:
        first = sandbox.docker.load(tiny)
        assert first.wait() == 0, first.stderr.read()
        for argv in (["tag", tiny, "keeper:1"], ["rmi", tiny]):  # the image's name goes, its layer stays
            step = sandbox.docker(*argv)
            assert step.wait() == 0, step.stderr.read()
        sent: list[int] = []
        loaded = sandbox.docker.load(tiny, on_progress=lambda count, seconds: sent.append(count))
        assert loaded.wait() == 0, loaded.stderr.read()
        assert sent and max(sent) < whole / 10, (max(sent), whole)
        ran = sandbox.docker.run(tiny, "sh", "-c", "echo layers intact; ls /bin | wc -l", rm=True, network="none")
        assert ran.wait() == 0 and ran.stdout.read().startswith("layers intact\n"), ran.stderr.read()
    finally:
        sandbox.terminate()
