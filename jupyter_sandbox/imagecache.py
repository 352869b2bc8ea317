"""Saved copies of host images, so that loading an image again skips the host engine's ``docker save``.

Every load of a host image into a sandbox (``sb.docker.load``, ``images=[...]``
at create) streams ``docker save`` from the host engine.  That save re-packs
every layer each time and, on a machine with few cores, runs at the same time
as the sandbox's own ``docker load`` (measured on 2 cores: 9.3 s for the 580 MB
default image, against 5.4 s for a ``cat`` of a tar already saved).  So the
first load of an image keeps the stream it sent in a file, and later loads of
the same image under the same name read that file instead.

- **Keyed by content**: a copy is found by the image's id on the host engine
  and the name it was asked by (``docker save`` records the name), so a
  rebuilt or re-tagged image is never served stale.
- **Bounded**: at most :func:`limit` bytes in all (``JUPYTER_SANDBOX_IMAGE_CACHE_SIZE``,
  default 4 GiB, ``0`` turns the cache off); the least recently used copies go
  first, and no copy is written that would leave the disk with less than
  :data:`KEEP_FREE` bytes.  Sandboxes never write here: only the host engine's
  own images are kept.
- **Private**: the folder (``JUPYTER_SANDBOX_IMAGE_CACHE``, default
  ``/var/cache/jupyter-sandbox/images`` for root, ``~/.cache/jupyter-sandbox/images``
  otherwise) is made ``0700`` and each copy ``0600``; an image can hold secrets.
- **Whole or nothing**: a copy is written under a temporary name and renamed
  only once the whole stream was read; a copy cut short is deleted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from typing import IO, Iterable, Iterator, NamedTuple

from .files import iterate_file

log = logging.getLogger(__name__)

DIR_ENV = "JUPYTER_SANDBOX_IMAGE_CACHE"
SIZE_ENV = "JUPYTER_SANDBOX_IMAGE_CACHE_SIZE"
DEFAULT_LIMIT = 4 << 30
"""Bytes of saved copies kept by default (4 GiB)."""
KEEP_FREE = 2 << 30
"""A copy is not kept if the disk would have fewer free bytes than this afterwards."""
CHUNK = 1 << 20


class Spool(NamedTuple):
    """A copy being written: its open file and its temporary path."""

    file: IO[bytes]
    path: str


def folder() -> str:
    """Where the saved copies live (see the module docstring)."""
    configured = os.environ.get(DIR_ENV)
    if configured:
        return configured
    if os.geteuid() == 0:
        return "/var/cache/jupyter-sandbox/images"
    return os.path.join(os.path.expanduser("~"), ".cache", "jupyter-sandbox", "images")


def limit() -> int:
    """The most bytes kept in all (0: the cache is off)."""
    from .errors import SpecError
    from .spec import parse_size

    raw = os.environ.get(SIZE_ENV, "").strip()
    if not raw:
        return DEFAULT_LIMIT
    try:
        return parse_size(int(raw) if raw.isdigit() else raw, SIZE_ENV) or 0
    except SpecError as error:
        log.warning("ignoring %s=%r (%s): the image cache keeps the default %d bytes", SIZE_ENV, raw, error.message, DEFAULT_LIMIT)
        return DEFAULT_LIMIT


def path_for(image_id: str, name: str) -> str:
    """The file of the copy of image ``image_id`` saved under ``name``."""
    digest = image_id.split(":", 1)[-1][:64]
    return os.path.join(folder(), f"{digest}-{hashlib.sha256(name.encode()).hexdigest()[:16]}.tar")


def lookup(image_id: str, name: str) -> str | None:
    """The path of a saved copy, if there is one (marked as just used), else None."""
    if limit() <= 0:
        return None
    path = path_for(image_id, name)
    try:
        os.utime(path)
    except OSError:
        return None
    return path


def read(path: str) -> Iterator[bytes]:
    """A saved copy's bytes, a chunk at a time (opened at once: a missing file raises here, not later)."""
    return iterate_file(open(path, "rb"))


def keep(stream: Iterable[bytes], image_id: str, name: str, expected: int | None = None) -> Iterator[bytes]:
    """Pass ``stream`` through, keeping a copy of it as the saved copy of ``image_id`` under ``name``.

    The copy takes its place only if the whole stream was read; it is skipped (the
    stream still flows) when the cache is off, or the folder cannot be written, or
    the disk is short of space.

    Args:
        expected: The stream's size if known (checked against the free space first).
    """
    budget = limit()
    target = path_for(image_id, name)
    spool = _open_spool(target, budget, expected)
    complete = False
    written = 0
    try:
        for chunk in stream:
            if spool is not None:
                written += len(chunk)
                try:
                    if written > budget:
                        raise OSError(f"larger than the cache ({budget} bytes)")
                    spool.file.write(chunk)
                except OSError as error:  # e.g. the disk filled meanwhile: the load goes on without a copy
                    log.info("not keeping a copy of %s: %s", name, error)
                    _discard(spool)
                    spool = None
            yield chunk
        complete = True
    finally:
        if spool is not None:
            if complete:
                _commit(spool, target, budget)
            else:
                _discard(spool)


def _open_spool(target: str, budget: int, expected: int | None) -> Spool | None:
    if budget <= 0:
        return None
    directory = os.path.dirname(target)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        free = shutil.disk_usage(directory).free
        if expected is not None and (expected > budget or free - expected < KEEP_FREE):
            return None
        if free < KEEP_FREE:
            return None
        handle, path = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=".tar")  # mode 0600
        return Spool(os.fdopen(handle, "wb"), path)
    except OSError as error:
        log.info("image cache unavailable in %s: %s", directory, error)
        return None


def _discard(spool: Spool) -> None:
    try:
        spool.file.close()
        os.unlink(spool.path)
    except OSError:
        pass


def _commit(spool: Spool, target: str, budget: int) -> None:
    try:
        spool.file.close()  # never over the budget: keep() stops spooling past it
        os.replace(spool.path, target)
    except OSError as error:
        log.info("could not keep %s: %s", target, error)
        _discard(spool)
        return
    evict(budget, keep_path=target)


def evict(budget: int, keep_path: str | None = None) -> list[str]:
    """Remove the least recently used copies (never ``keep_path``) until they fit in ``budget`` bytes;
    returns the removed paths.  Copies cut short by a crash (``.partial-*`` older than an hour) go too."""
    directory = folder()
    try:
        entries = [entry for entry in os.scandir(directory) if entry.is_file()]
    except OSError:
        return []
    removed: list[str] = []
    copies: list[tuple[float, int, str]] = []
    for entry in entries:
        info = entry.stat()
        if entry.name.startswith(".partial-"):
            if time.time() - info.st_mtime > 3600:
                removed.append(entry.path)
            continue
        copies.append((info.st_mtime, info.st_size, entry.path))  # lookup() touches a copy it serves
    total = sum(size for _, size, _ in copies)
    for _, size, path in sorted(copies):  # least recently used first
        if total <= budget:
            break
        if path != keep_path:
            removed.append(path)
            total -= size
    for path in removed:
        try:
            os.unlink(path)
        except OSError:
            pass
    return removed


# -- thin copies ---------------------------------------------------------------------


def layer_chains(layer_lists: Iterable[Iterable[str]]) -> set[tuple[str, ...]]:
    """Every layer chain a daemon has, from its images' ``RootFS.Layers`` (diff ids, base first).

    A daemon keeps a layer by its chain (the layer with everything under it), so an image's
    ``i``-th layer is there when its first ``i + 1`` diff ids are a prefix of some image's list.
    """
    chains: set[tuple[str, ...]] = set()
    for layers in layer_lists:
        diff_ids = tuple(layers)
        chains.update(diff_ids[: n + 1] for n in range(len(diff_ids)))
    return chains


def without_layers(path: str, chains: set[tuple[str, ...]]) -> tuple[Iterator[bytes], int]:
    """A saved copy as a stream in which every layer the target daemon already has is an empty file,
    and how many layer bytes that leaves out.

    ``docker load`` looks up each layer by its chain (from the image's config, which is sent
    whole) and opens a layer's file only when it does not have it, so those files are never read
    (moby ``image/tarexport/load.go``).  A copy whose layout is not the plain one (``manifest.json``
    naming each layer's file, no links between layer files) is streamed whole.
    """
    skip = _present_layer_files(path, chains)
    if not skip:
        return read(path), 0
    return _rewrite(path, set(skip)), sum(skip.values())


def _present_layer_files(path: str, chains: set[tuple[str, ...]]) -> dict[str, int]:
    """The layer files of the copy at ``path`` whose layers are in ``chains``, with their sizes
    (none when the copy is not laid out plainly)."""
    try:
        with tarfile.open(path) as tar:
            members = {member.name: member for member in tar.getmembers()}
            manifest = json.load(_member(tar, members, "manifest.json"))
            skip: set[str] = set()
            for entry in manifest:
                config = json.load(_member(tar, members, entry["Config"]))
                diff_ids = list(config["rootfs"]["diff_ids"])
                layer_files = list(entry["Layers"])
                if len(diff_ids) != len(layer_files):
                    return {}
                for n, layer_file in enumerate(layer_files):
                    if tuple(diff_ids[: n + 1]) in chains:
                        skip.add(layer_file)
            if any(members[name].issym() or members[name].islnk() for name in members if name.endswith("layer.tar")):
                return {}  # a link between layer files: leave the layout alone
            if any(name not in members or not members[name].isfile() for name in skip):
                return {}
            return {name: members[name].size for name in skip}
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError):
        return {}


def _member(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> IO[bytes]:
    member = members.get(name)
    opened = tar.extractfile(member) if member is not None else None
    if opened is None:
        raise KeyError(name)
    return opened


def _rewrite(path: str, skip: set[str]) -> Iterator[bytes]:
    """The tar at ``path`` again, member by member, with the members in ``skip`` emptied (opened at
    once: a missing file raises here, not later)."""
    tar = tarfile.open(path)
    raw = open(path, "rb")

    def chunks() -> Iterator[bytes]:
        with tar, raw:
            yield from _members(tar, raw, path, skip)

    return chunks()


def _members(tar: tarfile.TarFile, raw: IO[bytes], path: str, skip: set[str]) -> Iterator[bytes]:
    for member in tar:
        if member.name in skip:
            empty = copy.copy(member)
            empty.size = 0
            yield empty.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            continue
        yield member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if member.isfile() and member.size:
            raw.seek(member.offset_data)
            left = member.size
            while left:
                chunk = raw.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{path} ends inside {member.name}")
                left -= len(chunk)
                yield chunk
            if member.size % tarfile.BLOCKSIZE:
                yield tarfile.NUL * (tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)
