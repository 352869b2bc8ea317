"""Real runsc sandboxes with Docker inside: create, load, run, build, compose, exec, files, terminate."""

from __future__ import annotations

import contextlib
import textwrap

import anyio
import pytest

from jupyter_sandbox.errors import DockerNotEnabled, ExecTimeout, SandboxNotFound, SandboxNotRunning
from jupyter_sandbox.events import DOCKER_PHASES
from jupyter_sandbox.sync import Sandbox, call

pytestmark = pytest.mark.integration


def test_create_reports_every_phase_in_order(docker_sandbox, engine_client):
    done = [e.phase for e in docker_sandbox.events if e.state == "done" and e.phase != "removed"]
    assert done == [p.value for p in DOCKER_PHASES]
    booted = next(e for e in docker_sandbox.events if e.phase == "booted")
    assert "gVisor kernel 4.4.0" in booted.message
    assert docker_sandbox.ready_seconds and docker_sandbox.ready_seconds > 0
    attrs = engine_client.api.inspect_container(docker_sandbox.core.container_id)
    assert attrs["HostConfig"]["Runtime"].startswith("runsc")
    assert attrs["Config"]["Labels"]["io.jupyter.sandbox.name"] == docker_sandbox.name


def test_inner_run_with_host_and_none_network(docker_sandbox, test_images):
    for network in ("host", "none"):
        process = docker_sandbox.docker.run(test_images["tiny"], "echo", f"hi from {network}", rm=True, network=network)
        assert process.wait() == 0, process.stderr.read()
        assert process.stdout.read() == f"hi from {network}\n"


def test_inner_build_from_a_local_context(docker_sandbox, test_images, tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM {test_images['tiny']}\nCOPY message.txt /message.txt\nRUN cat /message.txt > /built.txt\n")
    (tmp_path / "message.txt").write_text("built inside gVisor\n")
    build = docker_sandbox.docker.build(tmp_path, tag="inner-built:1", network="host")
    assert build.wait() == 0, build.stdout.read() + build.stderr.read()
    run = docker_sandbox.docker.run("inner-built:1", "cat", "/built.txt", rm=True, network="host")
    assert run.wait() == 0
    assert run.stdout.read() == "built inside gVisor\n"


def test_compose_run_a_service(docker_sandbox, test_images, tmp_path):
    (tmp_path / "compose.yaml").write_text(
        textwrap.dedent(f"""\
        services:
          hello:
            image: {test_images["tiny"]}
            network_mode: host
            command: ["echo", "hello from compose"]
    """)
    )
    process = docker_sandbox.docker.compose("run", "--rm", "hello", project_dir=tmp_path)
    assert process.wait() == 0, process.stderr.read()
    assert "hello from compose" in process.stdout.read()


def test_exec_output_streams_before_the_process_ends(docker_sandbox):
    """The command prints, then waits for a file the test writes only after seeing the line."""
    process = docker_sandbox.exec(["sh", "-c", "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second"], timeout=60)
    lines = []
    for stream, text in process.iter_output():
        lines.append(text)
        if text == "first\n":
            assert process.exit_code is None
            docker_sandbox.files.write("/tmp/go", "")
    assert "".join(lines) == "first\nsecond\n"
    assert process.wait() == 0


def test_exec_exit_code_stderr_and_argv_without_shell(docker_sandbox):
    process = docker_sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert process.wait() == 3
    assert process.stdout.read() == "out\n" and process.stderr.read() == "err\n"
    literal = docker_sandbox.run(["echo", "; rm -rf / $(id) `id`"])
    assert literal.stdout.read() == "; rm -rf / $(id) `id`\n"


def _running_commands(sandbox: Sandbox) -> str:
    return sandbox.run(["ps", "-eo", "args"]).stdout.read()


def test_exec_timeout_kills_the_process_inside(docker_sandbox):
    process = docker_sandbox.exec(["sleep", "4242"], timeout=1)
    with pytest.raises(ExecTimeout, match="timeout"):
        process.wait()
    assert "sleep 4242" not in _running_commands(docker_sandbox)


def test_closing_a_reader_early_kills_the_process_tree_inside(docker_sandbox):
    async def start_and_leave() -> None:
        process = await docker_sandbox.core.exec(["sh", "-c", "echo started; sleep 4343"])
        async with contextlib.aclosing(process.output()) as chunks:
            async for chunk in chunks:
                assert chunk.data == b"started\n"
                break  # leaving early = the reader is gone

    call(start_and_leave)
    assert "sleep 4343" not in _running_commands(docker_sandbox)


def test_cancelling_a_waiting_task_kills_the_process_inside(docker_sandbox):
    async def start_and_cancel() -> None:
        process = await docker_sandbox.core.exec(["sh", "-c", "sleep 4444; echo never"])
        with anyio.move_on_after(1):
            await process.wait()
        assert process.killed

    call(start_and_cancel)
    assert "sleep 4444" not in _running_commands(docker_sandbox)


def test_files_round_trip(docker_sandbox, tmp_path):
    docker_sandbox.files.write("/root/data/hello.txt", "héllo\n")
    assert docker_sandbox.files.read("/root/data/hello.txt") == "héllo\n".encode()
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("A")
    docker_sandbox.files.upload(folder, "/root/project")
    assert docker_sandbox.run(["cat", "/root/project/sub/a.txt"]).stdout.read() == "A"
    docker_sandbox.files.download("/root/project", tmp_path / "back")
    assert (tmp_path / "back" / "sub" / "a.txt").read_text() == "A"


def test_get_and_list_find_it_through_labels(docker_sandbox):
    again = Sandbox.get(docker_sandbox.name)  # as another process would
    assert again.status().state == "ready"
    assert docker_sandbox.name in [info.name for info in Sandbox.list()]
    ps = again.docker.ps()
    assert ps.wait() == 0 and "CONTAINER ID" in ps.stdout.read()


def test_plain_sandbox_runs_commands_but_has_no_docker(no_leaks):
    with Sandbox.create(docker=False, owner="test") as sandbox:
        assert sandbox.run(["cat", "/proc/version"]).stdout.read().startswith("Linux version 4.4.0")
        with pytest.raises(DockerNotEnabled, match="without Docker"):
            sandbox.docker.ps()


def test_terminate_leaves_nothing_and_is_idempotent(engine_client, no_leaks):
    sandbox = Sandbox.create(docker=True, owner="test")
    container_id = sandbox.core.container_id
    assert sandbox.terminate() is True
    assert sandbox.terminate() is False
    assert not engine_client.containers.list(all=True, filters={"id": container_id})
    with pytest.raises(SandboxNotFound):
        Sandbox.get(sandbox.name)
    with pytest.raises(SandboxNotRunning):
        sandbox.exec(["true"])


def test_exec_into_inner_containers(docker_sandbox, test_images):
    """gVisor 20240729 cannot join a nested PID namespace: every inner container shares the sandbox's, so exec
    works into containers started any way (plain, privileged, by compose: see the next test)."""
    for name, options in (("plain-inner", {}), ("privileged-inner", {"privileged": True})):
        assert docker_sandbox.docker.run(test_images["tiny"], "sleep", "300", detach=True, name=name, **options).wait() == 0
        accepted = docker_sandbox.docker.exec(name, "echo", "ok")
        assert accepted.wait() == 0 and accepted.stdout.read() == "ok\n"
    stopped = docker_sandbox.docker("stop", "-t", "5", "plain-inner")
    assert stopped.wait() == 0
    state = docker_sandbox.docker("inspect", "-f", "{{.State.ExitCode}}", "plain-inner")
    assert state.wait() == 0 and state.stdout.read().strip() == "143", "docker stop must reach the container's own init"
    privileged = docker_sandbox.docker.run(test_images["tiny"], "echo", "privileged", rm=True, privileged=True)
    assert privileged.wait() == 0 and privileged.stdout.read() == "privileged\n"


def test_a_compose_project_as_written_reaches_services_by_name_and_port(docker_sandbox, test_images, tmp_path):
    """No embedded DNS and no -p on this runsc: the project is rewritten onto the sandbox's stack, and says so."""
    tiny = test_images["tiny"]
    (tmp_path / "compose.yaml").write_text(f"""services:
  web:
    image: {tiny}
    command: ["sh", "-c", "mkdir -p /w && echo hello-from-web > /w/index.html && exec busybox httpd -f -p 8000 -h /w"]
    ports: ["8080:8000"]
    networks: [front]
  client:
    image: {tiny}
    depends_on: [web]
    command: ["sleep", "300"]
    networks: [front]
networks:
  front: {{}}
""")
    up = docker_sandbox.docker.compose("up", "-d", project_dir=tmp_path)
    assert up.wait() == 0, up.stderr.read()
    try:
        notes = up.stderr.read()
        assert "service web: port 8080->8000/tcp is not published" in notes and "127.0.0.1:8000" in notes
        by_name = docker_sandbox.docker.compose("exec", "-T", "client", "busybox", "wget", "-qO-", "http://web:8000/", project_dir=tmp_path)
        assert by_name.wait() == 0 and by_name.stdout.read() == "hello-from-web\n"
        assert "jupyter-sandbox:" not in by_name.stderr.read()
        by_port = docker_sandbox.docker.run(tiny, "busybox", "wget", "-qO-", "http://127.0.0.1:8000/", rm=True, network="host")
        assert by_port.wait() == 0 and by_port.stdout.read() == "hello-from-web\n"
    finally:
        assert docker_sandbox.docker.compose("down", "-t", "1", project_dir=tmp_path).wait() == 0


def test_compose_exec_into_a_service_started_with_up(docker_sandbox, test_images, tmp_path):
    (tmp_path / "compose.yaml").write_text(f"services:\n  app:\n    image: {test_images['tiny']}\n    command: sleep 300\n")
    assert docker_sandbox.docker.compose("up", "-d", project_dir=tmp_path).wait() == 0
    try:
        inside = docker_sandbox.docker.compose("exec", "-T", "app", "echo", "from-compose", project_dir=tmp_path)
        assert inside.wait() == 0 and inside.stdout.read() == "from-compose\n"
    finally:
        assert docker_sandbox.docker.compose("down", "-t", "1", project_dir=tmp_path).wait() == 0
