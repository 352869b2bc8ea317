"""The disk store on real sandboxes: overlay2 inside, a write past ``disk`` fails with ENOSPC inside
and a typed error outside, the host's disk is untouched, and images preloaded during startup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import docker
import pytest
from sandbox_test_support import container_exists, unique_name

from jupyter_sandbox import labels as L
from jupyter_sandbox.errors import DiskFull, SpecError
from jupyter_sandbox.events import ProgressEvent, image_phase
from jupyter_sandbox.sync import Sandbox

pytestmark = pytest.mark.integration

DISK = 256 * 2**20
NOISE = 2**30
"""How much other work on this shared machine may change the host's free space while the test runs."""


def host_free() -> int:
    """Free bytes on the filesystem holding the host engine's data (where runsc keeps a sandbox's files)."""
    root = docker.from_env().info().get("DockerRootDir", "/var/lib/docker")
    return shutil.disk_usage(root).free


def host_bytes(name: str) -> int:
    """Disk bytes in the sandbox container's own writable layer on the host.

    With runsc's default ``--overlay2=root:self`` a sandbox's writes land here, in a
    ``.gvisor.filestore.*`` file (checked on this host: 200 MB written inside, 200 MB here).
    """
    container = docker.from_env().containers.get(L.container_name(name))
    upper = container.attrs["GraphDriver"]["Data"]["UpperDir"]
    total = 0
    for folder, _, files in os.walk(upper):
        for file in files:
            try:
                total += os.lstat(os.path.join(folder, file)).st_blocks * 512
            except OSError:
                pass
    return total


def fill(sandbox: Sandbox, path: str, megabytes: int) -> tuple[int, str, object]:
    """Write ``megabytes`` of zeros to ``path`` inside; returns (exit code, its output, its typed error)."""
    process = sandbox.exec(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={megabytes}"])
    code = process.wait()
    return code, process.stderr.read() + process.stdout.read(), process.error


def test_writes_past_the_disk_fail_inside_with_enospc_and_a_typed_error_outside(test_images: dict[str, str], no_leaks: None) -> None:
    tiny = test_images["tiny"]
    events: list[ProgressEvent] = []
    name = unique_name("st-disk")
    free = host_free()
    with Sandbox.create(name, docker=True, memory="1Gi", disk=DISK, images=[tiny], owner="test", timeout=120, on_event=events.append) as sandbox:
        # Preloaded: one phase for the image, done before ready, and the image is there at once.
        loads = [e for e in events if e.phase == image_phase(tiny)]
        assert [e.state for e in loads][0] == "started" and loads[-1].state == "done", loads
        order = [e.phase for e in events if e.state == "done"]
        assert order.index(image_phase(tiny)) < order.index("ready")
        assert len({e.phase for e in events if e.phase.startswith("load:")}) == 1
        # Every observer (the container log) sees ready only after the load: the init program waits for it.
        logged = {p["phase"]: p["uptime"] for p in sandbox.status().phases if p["state"] == "done"}
        assert logged["ready"] - logged["answering"] >= 0.9 * (loads[-1].elapsed - loads[0].elapsed), logged
        images = sandbox.docker.images(quiet=True, filter=f"reference={tiny}")
        images.wait()
        assert images.stdout.read().strip(), "the preloaded image is not in the sandbox's daemon"

        driver = sandbox.docker("info", "--format", "{{.Driver}}")
        driver.wait()
        assert driver.stdout.read().strip() == "overlay2"

        layer = host_bytes(name)
        # dockerd's data root, then the image's own directories (overlays on the store)
        for path in ("/var/lib/docker/fill", "/usr/fill", "/etc/fill"):
            code, output, error = fill(sandbox, path, DISK // 2**20 + 64)
            assert code != 0 and "No space left on device" in output, output
            assert isinstance(error, DiskFull), output
            assert "disk (256Mi) is full" in error.message and "disk=" in (error.fix or "")
            assert host_bytes(name) - layer < 16 * 2**20, "the sandbox's writes reached its layer on the host's disk"
            assert host_free() > free - DISK - NOISE, "the host's free space fell by more than the disk bound"
            assert sandbox.run(["rm", "-f", path]).exit_code == 0

        # The CLI face: the same typed error, as the hint after the command's own exit code.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        cli = subprocess.run(
            [sys.executable, "-m", "jupyter_sandbox.cli", "exec", name, "--", "dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=400"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert cli.returncode != 0 and "disk (256Mi) is full" in cli.stderr, cli.stderr
        assert sandbox.run(["rm", "-f", "/tmp/fill"]).exit_code == 0

        # Everything still works after the store was full.
        run = sandbox.docker.run(tiny, "echo", "still-running", rm=True, network="none")
        assert run.wait() == 0, run.stderr.read()
        assert run.stdout.read().strip() == "still-running"
    assert not container_exists(name)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"disk": "lots"}, "disk"),
        ({"disk": "1Mi"}, "disk"),
        ({"memory": "1Gi", "disk": "1Gi"}, "disk"),
        ({"memory": "150Mi"}, "memory"),
        ({"images": ["has space"]}, "images"),
    ],
)
def test_bad_disk_values_are_refused_before_anything_is_created(fields: dict, field: str, no_leaks: None) -> None:
    name = unique_name("st-bad")
    with pytest.raises(SpecError) as caught:
        Sandbox.create(name, docker=True, owner="test", **fields)
    assert caught.value.field == field and caught.value.fix
    assert not container_exists(name)


def test_cli_refuses_an_impossible_disk_with_exit_2(no_leaks: None) -> None:
    name = unique_name("st-bad")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cli = subprocess.run(
        [sys.executable, "-m", "jupyter_sandbox.cli", "create", "--docker", "--name", name, "--memory", "1Gi", "--disk", "2Gi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert cli.returncode == 2, cli.stderr
    assert "disk" in cli.stderr and "raise memory to at least" in cli.stderr
    assert not container_exists(name)


def test_a_missing_preload_image_is_refused_before_anything_is_created(no_leaks: None) -> None:
    name = unique_name("st-noimg")
    from jupyter_sandbox.errors import ImageNotFound

    with pytest.raises(ImageNotFound):
        Sandbox.create(name, docker=True, owner="test", images=["jupyter-sandbox-test/not-there:0"])
    assert not container_exists(name)


def test_a_preload_bigger_than_the_disk_fails_the_create_with_disk_full(no_leaks: None) -> None:
    from jupyter_sandbox.spec import DEFAULT_IMAGE

    name = unique_name("st-full")
    events: list[ProgressEvent] = []
    with pytest.raises(DiskFull) as caught:
        Sandbox.create(name, docker=True, memory="1Gi", disk="256Mi", images=[DEFAULT_IMAGE], owner="test", timeout=180, on_event=events.append)
    assert "disk (256Mi) is full" in caught.value.message and "disk='2Gi'" in (caught.value.fix or "")
    assert events[-1].phase == image_phase(DEFAULT_IMAGE) and events[-1].state == "failed"
    assert not container_exists(name)
