"""The warm pool: pre-booted, Docker-ready sandboxes handed out by ``create`` in milliseconds.

Pool members are ordinary sandboxes whose container is named
``jupyter-sandbox--pool-<id>`` and labelled with the key of their spec
(image, docker, cpu, memory, network, env, disk, storage, images).  ``create`` claims a ready member
with the same key by *renaming* its container to the sandbox's name: the
engine enforces unique names, and a host-wide file lock serialises claims, so
a member is never handed out twice, even to two processes at once.
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
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import anyio

from . import labels as L
from .bootstrap import InitReport
from .engine import Engine
from .errors import SandboxError, SandboxExists
from .events import Phase, State
from .locks import host_lock
from .spec import SandboxSpec
from .status import READY, derive_state
from .threads import iterate_in_thread

if TYPE_CHECKING:
    from docker.models.containers import Container

    from .sandbox import AsyncSandbox

log = logging.getLogger(__name__)
LOCK_PATH = os.path.join(tempfile.gettempdir(), "jupyter-sandbox-pool.lock")


def pool_key(spec: SandboxSpec) -> str:
    """What makes two sandboxes interchangeable: everything in the spec but name and timeout."""
    data = {"image": spec.image, "docker": spec.docker, "cpu": spec.cpu, "memory": spec.memory,
            "network": spec.network, "env": sorted(spec.env.items()), "disk": spec.disk, "storage": spec.storage,
            "images": list(spec.images)}
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


async def claim(sandbox: "AsyncSandbox") -> bool:
    """Give ``sandbox`` a ready pool member with the same spec, if there is one; True if it got one."""
    engine = sandbox.engine
    key = pool_key(sandbox.spec)
    candidates = await _members(engine, key)
    if not candidates:
        return False
    target = L.container_name(sandbox.name)
    for candidate in candidates:
        reports = await type(sandbox).from_container(candidate, engine=engine).reports()
        if derive_state("running", reports)[0] != READY:
            continue  # still starting, or its daemon failed

        def rename() -> str:
            with host_lock(LOCK_PATH):
                try:
                    engine.client.api.rename(candidate.name, target)
                    return "claimed"
                except Exception as error:  # translated below
                    status = getattr(error, "status_code", None)
                    return "exists" if status == 409 else "taken"

        with anyio.CancelScope(shield=True):  # a claimed member's id must not be lost to a cancellation
            outcome = await engine.call(rename)
            if outcome == "claimed":
                sandbox.container_id = candidate.id
                sandbox.api_dir = candidate.labels.get(L.API_DIR) or None
        if outcome == "exists":
            raise SandboxExists(f"A sandbox named {sandbox.name!r} already exists.",
                                fix=f"choose another name, or remove it first with `jupyter sandbox rm {sandbox.name}`")
        if outcome == "claimed":
            sandbox.from_pool = True
            _replay_phases(sandbox, candidate.name, reports)
            return True
    return False


def _replay_phases(sandbox: "AsyncSandbox", member: str, reports: list[InitReport]) -> None:
    sandbox._publish(Phase.IMAGE_CHECK, State.DONE, f"{sandbox.spec.image} (warm pool)")
    sandbox._publish(Phase.SANDBOX_START, State.DONE, f"taken from the warm pool ({member})")
    if sandbox.spec.snapshot is not None:
        sandbox._publish(Phase.RESTORED, State.DONE, f"pre-restored from snapshot {sandbox.spec.snapshot}")
    for report in reports:
        if report.state == "done" and report.phase not in (Phase.READY.value, Phase.DAEMON.value):
            sandbox._publish(report.phase, State.DONE, f"pre-booted: {report.message}".rstrip(": "), uptime=report.uptime)
    sandbox.ready_seconds = time.monotonic() - sandbox._started
    sandbox._ready = True
    what = "Docker daemon" if sandbox.spec.docker else "Sandbox"
    sandbox._publish(Phase.READY, State.DONE, f"{what} ready in {sandbox.ready_seconds:.2f} s (warm pool)")


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

    def __init__(self, templates: Sequence[SandboxSpec], *, size: int = 1, max_age: float | None = None,
                 engine: Engine | None = None):
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
        return container.labels.get(L.OWNER_PID) == str(os.getpid())

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
        holder: dict[str, Any] = {}

        def open_events() -> Any:
            holder["stream"] = self.engine.client.events(
                decode=True, filters={"type": "container", "label": f"{L.POOL}=1", "event": ["rename", "die", "destroy"]})
            return holder["stream"]

        def close() -> None:
            if holder.get("stream") is not None:
                holder["stream"].close()

        delay = 30.0 if self.max_age is None else max(1.0, min(30.0, self.max_age / 2))
        if self.failures:
            delay = min(delay, 5.0)
        with anyio.move_on_after(delay):
            async with contextlib.aclosing(iterate_in_thread(open_events, close=close)) as events:
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
