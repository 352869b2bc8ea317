"""The leak checks (conftest's ``no_leaks``, sandbox_test_support's ``run_resources`` and ``leaks``) see
exactly what this test run made: nothing that other processes have on the shared engine, and every
labelled leftover of this run, including a sandbox's volume."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from sandbox_test_support import RUN_ID, leaks, run_resources, unique_name

from jupyter_sandbox import labels as L
from jupyter_sandbox.sync import Sandbox

pytestmark = pytest.mark.integration

VOLUME_IMAGE = "jupyter-sandbox-test/volume:1"


@pytest.fixture(scope="module")
def volume_image(engine_client, test_images) -> str:
    """The tiny image plus a ``VOLUME /data`` that holds a file (COPY only: the build runs nothing)."""
    files = {"Dockerfile": f"FROM {test_images['tiny']}\nCOPY seed /data/seed\nVOLUME /data\n", "seed": "seeded\n"}
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for path, text in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    context.seek(0)
    engine_client.images.build(fileobj=context, custom_context=True, tag=VOLUME_IMAGE, rm=True)
    return VOLUME_IMAGE


def remove(*objects) -> None:
    for thing in objects:
        try:
            thing.remove(force=True) if hasattr(thing, "start") else thing.remove()
        except Exception:  # already gone
            pass


def test_others_objects_do_not_count_and_this_runs_leftovers_do(engine_client, test_images):
    name = unique_name("leakcheck")
    other = {L.MANAGED: "1", L.NAME: name + "-other", L.OWNER: "test", L.OWNER_PID: "1", L.RUN: "test-1-another"}
    before = run_resources(engine_client)
    made = []
    try:
        # another process's: unlabelled (any other user of the engine), and a sandbox of another test run
        made += [
            engine_client.networks.create(name + "-net"),
            engine_client.volumes.create(name + "-vol"),
            engine_client.volumes.create(name + "-othervol", labels=other),
            engine_client.containers.create(test_images["tiny"], ["true"], name=L.container_name(name + "-other"), labels=other),
        ]
        assert leaks(before, run_resources(engine_client)) == []
        # this run's: a volume and a network with its label, a sandbox container of this process
        volume = engine_client.volumes.create(name + "-myvol", labels={L.RUN: RUN_ID})
        network = engine_client.networks.create(name + "-mynet", labels={L.RUN: RUN_ID})
        container = engine_client.containers.create(
            test_images["tiny"], ["true"], name=L.container_name(name + "-mine"), labels={L.MANAGED: "1", L.OWNER_PID: str(os.getpid())}
        )
        made += [volume, network, container]
        assert leaks(before, run_resources(engine_client)) == [
            f"sandbox containers left behind: {[container.id]}",
            f"volumes left behind: {[volume.name]}",
            f"networks left behind: {[network.name]}",
        ]
        # one of this run's removed meanwhile hides no other: sets, not counts
        assert (
            leaks({**before, "volumes": before["volumes"] | {"gone-meanwhile"}}, run_resources(engine_client))[1]
            == f"volumes left behind: {[volume.name]}"
        )
    finally:
        remove(*made)
    assert leaks(before, run_resources(engine_client)) == []


def test_a_sandboxs_volume_carries_its_labels_and_goes_with_it(engine_client, volume_image):
    before = run_resources(engine_client)
    sandbox = Sandbox.create(unique_name("leakvol"), image=volume_image, network="none", owner="test", use_pool=False)
    try:
        assert sandbox.run(["cat", "/data/seed"]).stdout.read() == "seeded\n"  # the image's content, as the engine's own
        volumes = engine_client.volumes.list(filters={"label": f"{L.NAME}={sandbox.name}"})
        assert len(volumes) == 1
        labels = volumes[0].attrs["Labels"]
        assert labels[L.RUN] == RUN_ID and labels[L.OWNER_PID] == str(os.getpid()) and labels[L.MANAGED] == "1"
        assert L.SPEC not in labels  # ownership only: the spec stays on the container
        assert leaks(before, run_resources(engine_client)) == [
            f"sandbox containers left behind: {[sandbox.core.container_id]}",
            f"volumes left behind: {[volumes[0].name]}",
        ]
    finally:
        sandbox.terminate()
    assert leaks(before, run_resources(engine_client)) == []


def test_a_volume_its_container_left_behind_is_caught(engine_client, volume_image):
    before = run_resources(engine_client)
    sandbox = Sandbox.create(unique_name("leakvol"), image=volume_image, network="none", owner="test", use_pool=False)
    volumes = engine_client.volumes.list(filters={"label": f"{L.NAME}={sandbox.name}"})
    try:
        engine_client.containers.get(sandbox.core.container_id).remove(force=True)  # without v=True: the engine keeps the volume
        assert leaks(before, run_resources(engine_client)) == [f"volumes left behind: {[volumes[0].name]}"]
    finally:
        sandbox.terminate()
        remove(*volumes)
    assert leaks(before, run_resources(engine_client)) == []
