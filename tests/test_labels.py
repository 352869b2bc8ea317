"""Ownership labels of sandboxes and of their volumes (no engine: a stand-in client answers the image inspect)."""

from __future__ import annotations

from types import SimpleNamespace

from jupyter_sandbox import labels as L
from jupyter_sandbox.bootstrap import DISK_PATH
from jupyter_sandbox.engine import Engine
from jupyter_sandbox.spec import SandboxSpec


def test_the_run_id_of_the_environment_is_recorded_and_absent_without_it(monkeypatch):
    monkeypatch.setenv(L.RUN_ENV, "ci-42")
    assert L.sandbox_labels(SandboxSpec.parse("a"), "test")[L.RUN] == "ci-42"
    monkeypatch.delenv(L.RUN_ENV)
    assert L.RUN not in L.sandbox_labels(SandboxSpec.parse("a"), "test")


def test_volumes_carry_the_ownership_labels_only(monkeypatch):
    monkeypatch.setenv(L.RUN_ENV, "ci-42")
    container = L.sandbox_labels(SandboxSpec.parse("a", ttl="1h"), "test", pool_key="k")
    volume = L.volume_labels(container)
    assert volume[L.NAME] == "a" and volume[L.RUN] == "ci-42" and volume[L.OWNER_PID] == container[L.OWNER_PID]
    assert volume[L.MANAGED] == "1"
    assert not {L.SPEC, L.POOL, L.POOL_KEY, L.EXPIRES, L.CREATED} & set(volume)


def engine_with_image_volumes(volumes: dict | None) -> Engine:
    api = SimpleNamespace(inspect_image=lambda image: {"Config": {"Volumes": volumes}})
    return Engine(client=SimpleNamespace(api=api))  # type: ignore[arg-type]


def test_the_images_volumes_are_mounted_with_labels_except_where_something_is_mounted():
    engine = engine_with_image_volumes({"/data": {}, "/cache": {}, DISK_PATH: {}, "/run/api": {}})
    options = {
        "image": "x",
        "labels": {L.MANAGED: "1", L.NAME: "a", L.SPEC: "{}"},
        "tmpfs": {DISK_PATH: "size=1"},
        "mounts": [{"Target": "/run/api", "Source": "/host/api", "Type": "bind"}],
    }
    mounts = engine._labelled_volumes(options)["mounts"]
    assert [m["Target"] for m in mounts] == ["/run/api", "/cache", "/data"]
    for mount in mounts[1:]:
        assert mount["Type"] == "volume" and mount["Source"] is None
        assert mount["VolumeOptions"]["Labels"] == {L.MANAGED: "1", L.NAME: "a"}


def test_an_image_without_volumes_leaves_the_options_as_they_are():
    options = {"image": "x", "labels": {L.MANAGED: "1"}}
    assert engine_with_image_volumes(None)._labelled_volumes(options) is options
