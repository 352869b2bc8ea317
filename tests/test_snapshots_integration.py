"""Issue 14 (snapshots and forks) on real runsc sandboxes and the real engine's checkpoints.

The only traffic off this machine is one small HTTP request to the Debian mirror the apt
sources use (a fork's egress).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
from sandbox_test_support import creates_nothing, unique_name

from jupyter_sandbox import Sandbox, firewall
from jupyter_sandbox.doctor import debian_mirror, egress_probe
from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.snapshots import SnapshotExists, SnapshotNotFound, root

pytestmark = pytest.mark.integration

BUILD = (
    "mkdir -p /tmp/ctx && printf 'FROM {tiny}\\nRUN echo built > /built\\n' > /tmp/ctx/Dockerfile && "
    "docker build -q --network=host -t snaptest/built:1 /tmp/ctx"
)


def images_of(sandbox: Sandbox) -> set[str]:
    return {tag for image in sandbox.docker.client.images.list() for tag in image.tags}


def running_of(sandbox: Sandbox) -> set[str]:
    return {container.name for container in sandbox.docker.client.containers.list()}


@pytest.fixture
def tag():
    """A unique snapshot tag, removed after the test whatever happened."""
    name = unique_name("snap")
    yield name
    try:
        Sandbox.remove_snapshot(name)
    except SnapshotNotFound:
        pass


def test_a_snapshot_forks_into_two_sandboxes_at_once_with_images_and_running_containers(test_images, tag, no_leaks):
    made: list[Sandbox] = []
    source = Sandbox.create(unique_name("snap-src"), docker=True, images=[test_images["tiny"]], owner="test", use_pool=False)
    made.append(source)
    try:
        built = source.run(["sh", "-c", BUILD.format(tiny=test_images["tiny"])], timeout=120)
        assert built.exit_code == 0, built.stderr.read()
        source.docker.client.containers.run(test_images["tiny"], "sleep 3600", detach=True, network_mode="host", name="kept")
        snapshot = source.snapshot(tag)
        assert snapshot.size > 0 and snapshot.source == source.name
        assert oct(os.stat(root()).st_mode & 0o777) == "0o700"
        assert running_of(source) == {"kept"}  # the source keeps running, its socket open again

        forks: dict[str, Sandbox] = {}
        errors: list[BaseException] = []

        def fork(name: str) -> None:
            try:
                forks[name] = Sandbox.create(name, snapshot=tag, owner="test")
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        names = [unique_name("snap-a"), unique_name("snap-b")]
        threads = [threading.Thread(target=fork, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        made.extend(forks.values())
        assert not errors, errors
        addresses = {source.status().address}
        for name in names:
            child = forks[name]
            info = child.status()
            assert info.state == "ready" and info.name == name, info
            assert {test_images["tiny"], "snaptest/built:1"} <= images_of(child)
            assert running_of(child) == {"kept"}
            hello = child.docker.client.containers.run("snaptest/built:1", "cat /built", remove=True, network_mode="host")
            assert hello == b"built\n"
            assert child.run(["hostname"]).stdout.read().strip() == name
            assert firewall.record_of(child.core.container_id)["ip"] == info.address
            addresses.add(info.address)
        assert len(addresses) == 3  # each fork its own address on the product network
        mirror = debian_mirror()
        assert mirror, "no http Debian mirror in the apt sources"
        probe = forks[names[0]].run(egress_probe(mirror))
        assert probe.exit_code == 0 and "HTTP/1.1 200" in probe.stdout.read(), probe.stderr.read()
        assert running_of(source) == {"kept"}
    finally:
        for sandbox in made:
            sandbox.terminate()


def test_bad_snapshot_input_is_refused_and_creates_nothing(test_images, tag, no_leaks, engine_client):
    with creates_nothing(engine_client):
        with pytest.raises(SnapshotNotFound, match="No snapshot tagged 'never-made'"):
            Sandbox.create(unique_name("snap-x"), snapshot="never-made", owner="test")
        with pytest.raises(SpecError, match="snapshot"):
            Sandbox.create(unique_name("snap-x"), snapshot="Bad Tag!", owner="test")
    sandbox = Sandbox.create(unique_name("snap-plain"), network="none", owner="test", use_pool=False)
    try:
        sandbox.snapshot(tag)
        with pytest.raises(SnapshotExists, match="never overwritten"):
            sandbox.snapshot(tag)
        with creates_nothing(engine_client):
            with pytest.raises(SpecError, match="comes from the snapshot"):
                Sandbox.create(unique_name("snap-x"), snapshot=tag, memory="1Gi", owner="test")
            with pytest.raises(SpecError, match="without Docker"):
                Sandbox.create(unique_name("snap-x"), snapshot=tag, docker=True, owner="test")
        fork = Sandbox.create(unique_name("snap-plainfork"), snapshot=tag, owner="test")
        try:
            assert fork.run(["echo", "forked"]).stdout.read() == "forked\n"
        finally:
            fork.terminate()
    finally:
        sandbox.terminate()
    with pytest.warns(Warning):
        host = Sandbox.create(unique_name("snap-host"), network="host", owner="test", use_pool=False)
    try:
        with pytest.raises(SpecError, match="cannot checkpoint"):
            host.snapshot(tag + "-host")
    finally:
        host.terminate()
    assert not any(name.startswith(tag + "-host") or ".partial-" in name for name in os.listdir(root()))


@pytest.mark.warm_pool
def test_the_warm_pool_keeps_forks_of_a_snapshot_ready(tag, no_leaks):
    from jupyter_sandbox.pool import WarmPool, pool_key
    from jupyter_sandbox.spec import SandboxSpec
    from jupyter_sandbox.sync import call

    source = Sandbox.create(unique_name("snap-poolsrc"), network="none", owner="test", use_pool=False)
    try:
        source.run(["sh", "-c", "echo prepared > /root/state"]).wait()
        source.snapshot(tag)
    finally:
        source.terminate()
    pool = WarmPool([SandboxSpec.parse("template", snapshot=tag)], size=1)
    try:
        call(pool.fill)
        assert pool.created == 1 and not pool.failures, pool.failures
        fork = Sandbox.create(unique_name("snap-pooled"), snapshot=tag, owner="test")
        try:
            assert fork.core.from_pool and fork.ready_seconds < 0.5
            assert fork.run(["cat", "/root/state"]).stdout.read() == "prepared\n"
        finally:
            fork.terminate()
        plain = SandboxSpec.parse("x", network="none")
        assert pool_key(plain) != pool_key(pool.templates[0])  # a plain create never takes a fork
    finally:
        call(pool.drain)


def test_the_cli_snapshots_lists_and_forks(test_images, tag, no_leaks):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["jupyter", "sandbox", *args], capture_output=True, text=True, timeout=300)

    source, fork = unique_name("snap-cli"), unique_name("snap-clifork")
    assert cli("create", "--docker", "--name", source).returncode == 0
    try:
        made = cli("snapshot", source, tag, "--json")
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["tag"] == tag
        again = cli("snapshot", source, tag)
        assert again.returncode == 1 and "never overwritten" in again.stderr and "Traceback" not in again.stderr
        listed = json.loads(cli("snapshots", "--json").stdout)
        assert [s["source"] for s in listed if s["tag"] == tag] == [source]
        bad = cli("create", "--snapshot", tag, "--memory", "1Gi", "--name", fork)
        assert bad.returncode == 2 and "comes from the snapshot" in bad.stderr
        created = cli("create", "--snapshot", tag, "--name", fork, "--json")
        assert created.returncode == 0, created.stderr
        lines = [json.loads(line) for line in created.stdout.splitlines()]
        assert [e["phase"] for e in lines if e.get("state") == "done"][-2:] == ["restored", "ready"]
        assert "ready" in cli("status", fork).stdout + cli("status", fork).stderr
        assert cli("snapshot", "rm", tag).returncode == 0
        assert tag not in cli("snapshots").stdout
    finally:
        cli("rm", source, fork)
