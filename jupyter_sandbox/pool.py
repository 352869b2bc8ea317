"""The warm pool: pre-booted, Docker-ready sandboxes handed out by ``create`` in milliseconds.

Pool members are ordinary sandboxes whose container is named
``jupyter-sandbox--pool-<id>`` and labelled with the key of their spec
(image, docker, cpu, memory, network, env, disk, storage, images).  ``create`` claims a ready member
with the same key by *renaming* its container to the sandbox's name: the
engine enforces unique names, and a host-wide file lock serialises claims, so
a member is never handed out twice, even to two processes at once.  The claim
also records the claimer as the member's owner (:mod:`jupyter_sandbox.ownership`):
its labels, which cannot change, still say ``pool``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

import anyio

from . import labels as L
from . import ownership
from .bootstrap import InitReport, InitReportParser
from .engine import Engine
from .errors import SandboxError, SandboxExists
from .locks import host_lock
from .spec import SandboxSpec
from .status import READY, derive_state
from .threads import follow

if TYPE_CHECKING:
    from docker.models.containers import Container

log = logging.getLogger(__name__)
LOCK_PATH = os.path.join(tempfile.gettempdir(), "jupyter-sandbox-pool.lock")


def pool_key(spec: SandboxSpec) -> str:
    """What makes two sandboxes interchangeable: everything in the spec but name and timeout."""
    data = {
        "image": spec.image,
        "docker": spec.docker,
        "cpu": spec.cpu,
        "memory": spec.memory,
        "network": spec.network,
        "env": sorted(spec.env.items()),
        "disk": spec.disk,
        "storage": spec.storage,
        "images": list(spec.images),
    }
    if spec.egress != "public":
        data["egress"] = spec.egress if isinstance(spec.egress, str) else list(spec.egress)
    if spec.pids is not None:
        data["pids"] = spec.pids
    if spec.snapshot is not None:  # forks of one snapshot are interchangeable, and nothing else is
        data["snapshot"] = spec.snapshot
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


async def _members(engine: Engine, key: str | None = None) -> list[Any]:
    label = f"{L.POOL_KEY}={key}" if key else f"{L.POOL}=1"
    containers = await engine.call(lambda: engine.client.containers.list(filters={"label": label, "status": "running"}, ignore_removed=True))
    waiting = [c for c in containers if L.in_pool(c.name or "")]
    return sorted(waiting, key=lambda c: float(c.labels.get(L.CREATED, "0") or 0))


@dataclass(frozen=True)
class Claimed:
    """A ready pool member, renamed to its new sandbox's name and recorded as its claimer's.

    Attributes:
        container_id: Its container.
        api_dir: Its host socket directory (from its labels), if it has one.
        member: The pool name it had.
        reports: What its init program reported while it booted (replayed as the new sandbox's phases).
    """

    container_id: str
    api_dir: str | None
    member: str
    reports: list[InitReport]


async def claim(engine: Engine, spec: SandboxSpec, owner: str) -> Claimed | None:
    """Take a ready pool member interchangeable with ``spec`` as sandbox ``spec.name``, if there is one.

    The rename happens under a host-wide lock and, with it, the claimer's ownership
    record (see :mod:`jupyter_sandbox.ownership`): once renamed, the member is ``owner``'s.

    Raises:
        SandboxExists: If a sandbox of that name exists.
    """
    candidates = await _members(engine, pool_key(spec))
    target = L.container_name(spec.name)
    for candidate in candidates:
        try:
            logs = await engine.call(engine.client.api.logs, candidate.id, stdout=True, stderr=False)
        except SandboxError:
            continue  # removed meanwhile (a pool drained, or expired)
        reports = InitReportParser().feed(logs.decode("utf-8", errors="replace") + "\n")
        if derive_state("running", reports)[0] != READY:
            continue  # still starting, or its daemon failed

        def rename() -> str:
            with host_lock(LOCK_PATH):
                try:
                    engine.client.api.rename(candidate.name, target)
                except Exception as error:  # translated below
                    return "exists" if getattr(error, "status_code", None) == 409 else "taken"
                ownership.record_claim(candidate.id, owner)
                return "claimed"

        with anyio.CancelScope(shield=True):  # a claimed member must not be lost to a cancellation
            outcome = await engine.call(rename)
        if outcome == "exists":
            raise SandboxExists(
                f"A sandbox named {spec.name!r} already exists.", fix=f"choose another name, or remove it first with `jupyter sandbox rm {spec.name}`"
            )
        if outcome == "claimed":
            return Claimed(candidate.id, candidate.labels.get(L.API_DIR) or None, candidate.name, reports)
    return None


class WarmPool:
    """Keeps ``size`` ready sandboxes per template and replaces the ones claimed or too old.

    Run :meth:`run` as a background task (the server extension and
    ``jupyter sandbox pool fill`` do); cancelling it removes this pool's
    unclaimed members, so a stopped pool leaves nothing behind.

    Args:
        templates: Specs to keep ready (their ``name`` is ignored).
        size: Members to keep per template.
        max_age: Seconds after which an unclaimed member is replaced (None: never).
    """

    def __init__(self, templates: Sequence[SandboxSpec], *, size: int = 1, max_age: float | None = None, engine: Engine | None = None):
        if size < 0:
            raise ValueError("pool size must be 0 or more")
        self.templates = list(templates)
        self.size = size
        self.max_age = max_age
        self.engine = engine or Engine.default()
        self.created = 0
        self.failures: list[str] = []

    async def fill(self) -> None:
        """One pass: drop expired members, then create the missing ones (one at a time, to spare the CPU)."""
        from .sandbox import AsyncSandbox

        for template in self.templates:
            key = pool_key(template)
            members = await _members(self.engine, key)
            if self.max_age is not None:
                now = time.time()
                for member in list(members):
                    if now - float(member.labels.get(L.CREATED, now)) > self.max_age and self._mine(member):
                        await self.engine.remove(member.id)
                        members.remove(member)
            for _ in range(self.size - len(members)):
                spec = replace(template, name=f"{secrets.token_hex(4)}")
                member = AsyncSandbox(spec, engine=self.engine, owner="pool", pool_key=key)
                try:
                    await member.start()
                    self.created += 1
                except SandboxError as error:
                    self.failures.append(str(error))
                    log.warning("warm pool: could not create a member: %s", error)
                    return

    @staticmethod
    def _mine(container: Container) -> bool:
        return bool(container.labels.get(L.OWNER_PID) == str(os.getpid()))

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the pool full until cancelled, then drain it."""
        task_status.started()
        try:
            while True:
                await self.fill()
                await self._wait_for_change()
        finally:
            with anyio.CancelScope(shield=True):
                await self.drain()

    async def _wait_for_change(self) -> None:
        """Return when a member is claimed, removed or dies, or when one may have aged out."""
        filters = {"type": "container", "label": f"{L.POOL}=1", "event": ["rename", "die", "destroy"]}
        delay = 30.0 if self.max_age is None else max(1.0, min(30.0, self.max_age / 2))
        if self.failures:
            delay = min(delay, 5.0)
        with anyio.move_on_after(delay):
            async with contextlib.aclosing(follow(lambda: self.engine.client.events(decode=True, filters=filters))) as events:
                async for _ in events:
                    return

    async def drain(self) -> int:
        """Remove this process's unclaimed members; returns how many."""
        removed = 0
        for member in await _members(self.engine):
            if self._mine(member):
                removed += await self.engine.remove(member.id)
        return removed


async def drain_all(engine: Engine | None = None) -> int:
    """Remove every unclaimed pool member on the engine, whoever made it."""
    engine = engine or Engine.default()
    removed = 0
    for member in await _members(engine):
        removed += await engine.remove(member.id)
    return removed
