"""Snapshots and forks: a running sandbox checkpointed whole, and new sandboxes restored from it.

A snapshot is runsc's checkpoint of a sandbox (its memory and its filesystem, so the inner
Docker daemon, its images and its running inner containers), taken through the engine's
checkpoint API while the sandbox keeps running.  A *fork* is a new sandbox restored from one:
a new container with the snapshot's image, limits and network mode, under its own name and
(network ``sandbox``) its own address and firewall rules.

Where things live:

- ``<root>/<tag>/checkpoint/``: runsc's checkpoint files; ``<root>/<tag>/snapshot.json``: who
  made it, from which sandbox, when, and the source's spec (env values included: they are in
  the checkpointed memory anyway).  ``<root>`` is ``$JUPYTER_SANDBOX_SNAPSHOTS``, else
  ``/var/lib/docker/jupyter-sandbox-snapshots``: on the engine's own filesystem, so a fork
  hard-links the files into its container's ``checkpoints/`` folder instead of copying them,
  and they survive engine restarts.  The folder is 0700: only root reads a snapshot.
- A snapshot is written under a temporary name and renamed into place when complete, so a
  failed or interrupted one never lists.

gVisor cannot checkpoint a bound host socket, so the inner daemon's host socket is closed for
the checkpoint and opened again after (:meth:`AsyncSandbox.close_api`); a fork opens its own.
The engine needs experimental mode (``scripts/setup-host.sh`` turns it on).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import anyio

from .errors import SandboxError, SpecError
from .threads import run_sync

if TYPE_CHECKING:
    from .engine import Engine
    from .sandbox import AsyncSandbox
    from .spec import SandboxSpec

ROOT_ENV = "JUPYTER_SANDBOX_SNAPSHOTS"
DEFAULT_ROOT = "/var/lib/docker/jupyter-sandbox-snapshots"
CHECKPOINT = "checkpoint"
"""The name of the engine checkpoint inside a snapshot (and in a fork's container)."""
META = "snapshot.json"
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
HOST_NETNS = "/run/docker/netns/default"
"""dockerd's handle on the sandbox's network namespace (an nsfs bind mount made for the first
``--network=host`` inner container); runsc 20240729 cannot checkpoint it once such a container
was removed (a nil-pointer encoding error, measured), so it is unmounted for the checkpoint."""
RELEASE_NETNS = f"umount {HOST_NETNS} 2>/dev/null; exit 0"
REBIND_NETNS = f"if [ -e {HOST_NETNS} ] && ! grep -q ' {HOST_NETNS} ' /proc/self/mountinfo; then mount --bind /proc/1/ns/net {HOST_NETNS}; fi"
"""Puts it back (after the checkpoint, and in every fork): inner host-network containers need it."""
FORK_FIELDS = ("name", "timeout", "ttl", "idle_timeout", "egress")
"""What a fork may set itself; everything else is the snapshot's."""


class SnapshotNotFound(SandboxError):
    """No snapshot of that tag exists."""

    code = "snapshot_not_found"
    http_status = 404


class SnapshotExists(SandboxError):
    """A snapshot of that tag exists already (snapshots are never overwritten)."""

    code = "snapshot_exists"
    http_status = 409


class SnapshotFailed(SandboxError):
    """The engine could not checkpoint the sandbox (or snapshots are off on this host)."""

    code = "snapshot_failed"
    http_status = 409


@dataclass(frozen=True)
class Snapshot:
    """A snapshot on disk.

    Attributes:
        tag: Its name.
        source: The sandbox it was taken of.
        owner: Who took it (``cli``, ``api``, ``kernel``, ``server``...).
        server: The Jupyter server that took it (empty outside one).
        created: Unix time it was taken.
        seconds: How long the checkpoint took.
        size: Bytes on disk.
        spec: The source's spec (``SandboxSpec.to_dict``), env values included.
        path: Its folder.
    """

    tag: str
    source: str
    owner: str
    server: str
    created: float
    seconds: float
    size: int
    spec: dict[str, Any] = field(repr=False)
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (env names only, as in labels)."""
        spec = dict(self.spec)
        spec["env"] = sorted(spec.get("env") or {})
        return {
            "tag": self.tag,
            "source": self.source,
            "owner": self.owner,
            "server": self.server,
            "created": self.created,
            "seconds": self.seconds,
            "size": self.size,
            "spec": spec,
        }


def root() -> str:
    """The folder holding every snapshot."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def parse_tag(tag: Any) -> str:
    """Check a snapshot tag.

    Raises:
        SpecError: If it is not 1-63 lowercase letters, digits, ``_``, ``.`` or ``-`` (first a letter or digit).
    """
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
        raise SpecError(
            "snapshot",
            f"{tag!r} is not a snapshot tag: use 1-63 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit",
            fix="use e.g. 'with-images'",
        )
    return tag


def _size(path: str) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _read(path: str) -> Snapshot | None:
    try:
        with open(os.path.join(path, META)) as f:
            data = json.load(f)
        return Snapshot(path=path, **data)
    except (OSError, ValueError, TypeError):
        return None


def load(tag: Any) -> Snapshot:
    """The snapshot of a tag.

    Raises:
        SpecError: If the tag is malformed.
        SnapshotNotFound: If there is none.
    """
    tag = parse_tag(tag)
    snapshot = _read(os.path.join(root(), tag))
    if snapshot is None:
        raise SnapshotNotFound(f"No snapshot tagged {tag!r}.", fix="`jupyter sandbox snapshots` lists them")
    return snapshot


def list_all() -> list[Snapshot]:
    """Every complete snapshot, oldest first."""
    try:
        names = os.listdir(root())
    except OSError:
        return []
    found = [s for s in (_read(os.path.join(root(), n)) for n in names if TAG_PATTERN.match(n)) if s is not None]
    return sorted(found, key=lambda s: s.created)


def remove(tag: Any) -> Snapshot:
    """Delete a snapshot (forks already made are not affected); returns what was removed.

    Raises:
        SnapshotNotFound: If there is none.
    """
    snapshot = load(tag)
    gone = snapshot.path + ".removing-" + secrets.token_hex(4)
    os.rename(snapshot.path, gone)  # unlisted at once, then deleted
    shutil.rmtree(gone, ignore_errors=True)
    return snapshot


def fork_spec(tag: Any, *, name: str | None, docker: Any, egress: Any, timeout: Any, ttl: Any, idle_timeout: Any, given: list[str]) -> "SandboxSpec":
    """The spec of a fork: the snapshot's, with the fork's own name, timeout, time limits and egress.

    Raises:
        SpecError: If a field the snapshot fixes was given (``given``), or ``docker`` disagrees.
        SnapshotNotFound: If there is no such snapshot.
    """
    from dataclasses import replace

    from .spec import SandboxSpec, new_name, parse_duration, parse_egress, parse_timeout

    if given:
        raise SpecError(
            given[0],
            f"comes from the snapshot: a fork keeps its image, Docker daemon, limits, "
            f"network mode and env (it may set only {', '.join(FORK_FIELDS)})",
            fix=f"leave out {', '.join(given)}",
        )
    snapshot = load(tag)
    data = dict(snapshot.spec)
    if docker is True and not data.get("docker"):
        raise SpecError(
            "docker",
            f"snapshot {snapshot.tag!r} is of a sandbox without Docker",
            fix="leave out --docker / docker=True, or snapshot a Docker-enabled sandbox",
        )
    if isinstance(data.get("egress"), list):
        data["egress"] = tuple(data["egress"])
    base = SandboxSpec(**{**data, "images": tuple(data.get("images") or ()), "snapshot": None})
    return replace(
        base,
        name=new_name() if name is None else name,
        egress=parse_egress(egress, base.network) if egress is not None else base.egress,
        timeout=parse_timeout(timeout),
        ttl=parse_duration(ttl, "ttl"),
        idle_timeout=parse_duration(idle_timeout, "idle_timeout"),
        images=(),
        snapshot=snapshot.tag,
    )


def _checkpoint(engine: "Engine", container_id: str, folder: str) -> None:
    api: Any = engine.client.api  # docker-py has no checkpoint call: its private helpers, not in types-docker
    with engine_errors():
        response = api._post_json(
            api._url("/containers/{0}/checkpoints", container_id), data={"CheckpointID": CHECKPOINT, "CheckpointDir": folder, "Exit": False}
        )
        api._raise_for_status(response)


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turns the engine's errors into :class:`SnapshotFailed`."""
    import docker.errors

    try:
        yield
    except docker.errors.APIError as error:
        text = str(getattr(error, "explanation", "") or error)
        raise SnapshotFailed(
            f"The engine could not checkpoint the sandbox: {text}", fix="read the message; `jupyter sandbox doctor` checks that snapshots work here"
        ) from None


def experimental(engine: "Engine") -> bool:
    """Whether the engine runs in experimental mode (its checkpoint API exists only then)."""
    return bool(engine.client.info().get("ExperimentalBuild"))


def _not_experimental() -> SnapshotFailed:
    return SnapshotFailed(
        "Snapshots need the Docker engine's experimental mode (its checkpoint API), and it is off.",
        fix="run `JUPYTER_SANDBOX_RESTART_ENGINE=1 bash scripts/setup-host.sh` (it turns it on and restarts "
        "dockerd, which stops every running container)",
    )


async def take(sandbox: "AsyncSandbox", tag: Any, *, owner: str = "api", server: str = "") -> Snapshot:
    """Checkpoint a running sandbox under ``tag``; it keeps running.

    Raises:
        SpecError: For a malformed tag, or a sandbox on network ``host`` (runsc cannot checkpoint it).
        SnapshotExists: If the tag is taken.
        SnapshotFailed: If snapshots are off on this host, or the engine failed.
    """
    from . import apisocket

    tag = parse_tag(tag)
    if sandbox.spec.network == "host":
        raise SpecError(
            "network",
            f"sandbox {sandbox.name!r} is on the host's network, which this runsc cannot checkpoint",
            fix="snapshot a sandbox on network 'sandbox' or 'none'",
        )
    target = os.path.join(root(), tag)
    if os.path.exists(target):
        raise SnapshotExists(
            f"A snapshot tagged {tag!r} exists already (snapshots are never overwritten).",
            fix=f"choose another tag, or remove it first: `jupyter sandbox snapshot rm {tag}`",
        )
    if not await sandbox.engine.call(experimental, sandbox.engine):
        raise _not_experimental()
    await sandbox.ensure_running()
    os.makedirs(root(), mode=0o700, exist_ok=True)
    os.chmod(root(), 0o700)
    partial = f"{target}.partial-{secrets.token_hex(4)}"
    os.mkdir(partial, 0o700)
    reopen = sandbox.api_socket is not None and await run_sync(apisocket.is_socket, sandbox.api_socket)
    try:
        if sandbox.spec.docker:
            await sandbox.run(["sh", "-c", RELEASE_NETNS])
        if reopen:
            await sandbox.close_api()
        started = time.monotonic()
        await sandbox.engine.call(_checkpoint, sandbox.engine, sandbox.container_id, partial)
        seconds = round(time.monotonic() - started, 3)
        snapshot = Snapshot(
            tag=tag,
            source=sandbox.name,
            owner=owner,
            server=server,
            created=round(time.time(), 3),
            seconds=seconds,
            size=await run_sync(_size, partial),
            spec=sandbox.spec.to_dict(),
            path=target,
        )
        with open(os.path.join(partial, META), "w") as f:
            data = snapshot.__dict__.copy()
            data.pop("path")
            json.dump(data, f)
        try:
            os.rename(partial, target)
        except OSError:  # taken meanwhile by someone else
            raise SnapshotExists(f"A snapshot tagged {tag!r} was made meanwhile.", fix="choose another tag") from None
        return snapshot
    finally:
        if os.path.exists(partial):
            shutil.rmtree(partial, ignore_errors=True)
        with anyio.CancelScope(shield=True):
            if sandbox.spec.docker:
                await sandbox.run(["sh", "-c", REBIND_NETNS + "; exit 0"])
            if reopen:
                await sandbox.open_api()


def place(tag: str, container_dir: str) -> None:
    """Put a snapshot's checkpoint into a new container's ``checkpoints/`` folder (hard links; a copy
    across filesystems), where the engine's ``start --checkpoint`` finds it."""
    snapshot = load(tag)
    source = os.path.join(snapshot.path, CHECKPOINT)
    target = os.path.join(container_dir, "checkpoints", CHECKPOINT)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        shutil.copytree(source, target, copy_function=os.link)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
