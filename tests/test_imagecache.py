"""The host's saved copies of images (pure file logic, in a folder of the test's own)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from jupyter_sandbox import imagecache

ID = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    monkeypatch.setenv(imagecache.DIR_ENV, str(folder))
    monkeypatch.delenv(imagecache.SIZE_ENV, raising=False)
    monkeypatch.setattr(imagecache, "KEEP_FREE", 0)
    return folder


def test_a_whole_stream_becomes_a_private_copy_that_lookup_serves(cache_folder):
    assert imagecache.lookup(ID, "demo:1") is None
    assert b"".join(imagecache.keep(iter([b"abc", b"def"]), ID, "demo:1")) == b"abcdef"
    path = imagecache.lookup(ID, "demo:1")
    assert path is not None and open(path, "rb").read() == b"abcdef"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(cache_folder).st_mode) == 0o700
    assert b"".join(imagecache.read(path)) == b"abcdef"
    assert imagecache.lookup(ID, "other:1") is None  # the name is part of the key: docker save records it


def test_a_stream_cut_short_leaves_nothing(cache_folder):
    stream = imagecache.keep(iter([b"abc", b"def"]), ID, "demo:1")
    assert next(stream) == b"abc"
    stream.close()  # the consumer stopped (the load failed, or was cancelled)
    assert imagecache.lookup(ID, "demo:1") is None and os.listdir(cache_folder) == []


def test_a_failing_source_leaves_nothing(cache_folder):
    def broken():
        yield b"abc"
        raise OSError("engine gone")

    with pytest.raises(OSError):
        b"".join(imagecache.keep(broken(), ID, "demo:1"))
    assert os.listdir(cache_folder) == []


def test_size_zero_turns_the_cache_off(monkeypatch, cache_folder):
    monkeypatch.setenv(imagecache.SIZE_ENV, "0")
    assert b"".join(imagecache.keep(iter([b"abc"]), ID, "demo:1")) == b"abc"
    assert imagecache.lookup(ID, "demo:1") is None and not cache_folder.exists()


def test_an_image_larger_than_the_cache_is_streamed_but_not_kept(monkeypatch, cache_folder):
    monkeypatch.setenv(imagecache.SIZE_ENV, "4")
    assert b"".join(imagecache.keep(iter([b"abcdef"]), ID, "demo:1", expected=6)) == b"abcdef"
    assert b"".join(imagecache.keep(iter([b"abc", b"def"]), ID, "demo:2")) == b"abcdef"  # size not known up front
    assert imagecache.lookup(ID, "demo:1") is None and imagecache.lookup(ID, "demo:2") is None


def test_a_bad_size_setting_keeps_the_default(monkeypatch):
    monkeypatch.setenv(imagecache.SIZE_ENV, "lots")
    assert imagecache.limit() == imagecache.DEFAULT_LIMIT
    monkeypatch.setenv(imagecache.SIZE_ENV, "1Gi")
    assert imagecache.limit() == 1 << 30


def test_the_least_recently_used_copies_go_first_and_the_new_one_stays(monkeypatch, cache_folder):
    monkeypatch.setenv(imagecache.SIZE_ENV, "10")
    for n, name in enumerate(["a:1", "b:1"]):
        b"".join(imagecache.keep(iter([b"1234"]), ID, name))
        os.utime(imagecache.path_for(ID, name), (time.time() - 100 + n, time.time() - 100 + n))
    assert imagecache.lookup(ID, "a:1") is not None  # used just now: b is the least recently used
    b"".join(imagecache.keep(iter([b"1234"]), ID, "c:1"))  # 12 bytes > 10: one copy must go
    assert imagecache.lookup(ID, "b:1") is None
    assert imagecache.lookup(ID, "a:1") is not None and imagecache.lookup(ID, "c:1") is not None


def test_old_partial_copies_are_swept(cache_folder):
    cache_folder.mkdir()
    partial = cache_folder / ".partial-x.tar"
    partial.write_bytes(b"x")
    fresh = cache_folder / ".partial-y.tar"
    fresh.write_bytes(b"y")
    os.utime(partial, (time.time() - 7200, time.time() - 7200))
    assert imagecache.evict(100) == [str(partial)]
    assert fresh.exists()


def saved_image(path, layers: dict[str, bytes], diff_ids: list[str]) -> None:
    """A tar laid out as `docker save` writes one: a folder per layer, the config, manifest.json."""
    import io
    import json
    import tarfile

    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps([{"Config": "cfg.json", "RepoTags": ["demo:1"], "Layers": [f"{name}/layer.tar" for name in layers]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, content in [*((f"{n}/layer.tar", c) for n, c in layers.items()), ("cfg.json", config), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def test_layer_chains_are_every_prefix_of_every_image():
    assert imagecache.layer_chains([["a", "b"], ["a", "c"]]) == {("a",), ("a", "b"), ("a", "c")}


def test_a_thin_copy_empties_the_layers_the_daemon_has_and_keeps_the_rest(tmp_path):
    import io
    import tarfile

    path = tmp_path / "image.tar"
    saved_image(path, {"base": b"B" * 1000, "top": b"T" * 700}, ["sha256:b", "sha256:t"])
    stream, left_out = imagecache.without_layers(str(path), imagecache.layer_chains([["sha256:b", "sha256:other"]]))
    data = b"".join(stream)
    assert left_out == 1000
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        contents = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert contents["base/layer.tar"] == b"" and contents["top/layer.tar"] == b"T" * 700
    assert b"diff_ids" in contents["cfg.json"] and b"demo:1" in contents["manifest.json"]


def test_a_layer_is_there_only_with_everything_under_it(tmp_path):
    path = tmp_path / "image.tar"
    saved_image(path, {"base": b"B" * 10, "top": b"T" * 10}, ["sha256:b", "sha256:t"])
    _, left_out = imagecache.without_layers(str(path), imagecache.layer_chains([["sha256:t"]]))  # same diff id, other base
    assert left_out == 0


def test_a_copy_it_cannot_read_as_a_saved_image_is_sent_whole(tmp_path):
    path = tmp_path / "image.tar"
    path.write_bytes(b"not a tar at all" * 100)
    stream, left_out = imagecache.without_layers(str(path), {("sha256:b",)})
    assert left_out == 0 and b"".join(stream) == path.read_bytes()
