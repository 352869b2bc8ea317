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
