"""Live CPU and memory of sandboxes, from the host engine's stats (what ``docker stats`` shows).

Memory is the cgroup's usage minus its *inactive file* pages, as the docker
CLI computes it, and not usage minus *cache*: under gVisor a sandbox's
application memory lives in the sentry's memory file, which the kernel counts
as page cache (shared memory), so subtracting the cache would hide nearly all
of it (measured: a 150 MB string in a shell showed as 30 MB that way, 213 MB
this way).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, cast

import anyio
from docker.models.containers import Container

from .engine import Engine
from .errors import SandboxError


@dataclasses.dataclass
class Usage:
    """One sandbox's resource use at one moment.

    Attributes:
        name: The sandbox.
        cpu_percent: CPU used over the engine's last second, in percent of one CPU (150.0 is one and a half).
        cpu_limit: Its CPU limit in CPUs, or None without one.
        memory: Bytes in use (usage minus inactive file pages).
        memory_limit: Bytes it may use (its memory limit, or the host's memory without one).
        pids: Host processes and threads of the sandbox (gVisor's own, not the ones inside).
    """

    name: str
    cpu_percent: float
    cpu_limit: float | None
    memory: int
    memory_limit: int
    pids: int | None = None

    @property
    def memory_percent(self) -> float:
        """Memory in use, in percent of the limit."""
        return 100.0 * self.memory / self.memory_limit if self.memory_limit else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``memory_percent``."""
        return {**dataclasses.asdict(self), "memory_percent": round(self.memory_percent, 2)}


def cpu_percent(stats: Mapping[str, Any]) -> float:
    """CPU use between the two samples of one stats answer, in percent of one CPU (the docker CLI's formula)."""
    now, before = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    used = (now.get("cpu_usage") or {}).get("total_usage", 0) - (before.get("cpu_usage") or {}).get("total_usage", 0)
    elapsed = now.get("system_cpu_usage", 0) - before.get("system_cpu_usage", 0)
    cpus = now.get("online_cpus") or len((now.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    if used <= 0 or elapsed <= 0:
        return 0.0
    return float(used / elapsed * cpus * 100.0)


def memory_used(stats: Mapping[str, Any]) -> int:
    """Bytes in use: the cgroup's usage minus its inactive file pages (cgroup v1 and v2 names)."""
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    usage, inactive = int(memory.get("usage", 0)), int(inactive)
    return usage - inactive if 0 < inactive < usage else usage


def usage_from_stats(name: str, stats: Mapping[str, Any], host_config: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from one ``container.stats(stream=False)`` answer and the container's host config."""
    nano_cpus = host_config.get("NanoCpus") or 0
    limit = int((stats.get("memory_stats") or {}).get("limit") or host_config.get("Memory") or 0)
    return Usage(
        name=name,
        cpu_percent=round(cpu_percent(stats), 2),
        cpu_limit=nano_cpus / 1e9 if nano_cpus else None,
        memory=memory_used(stats),
        memory_limit=limit,
        pids=(stats.get("pids_stats") or {}).get("current"),
    )


async def usage_of(engine: Engine, containers: Iterable[tuple[str, Container]]) -> list[Usage]:
    """The resource use of running sandboxes, all read at once (each stats call takes the engine about a second).

    Args:
        containers: ``(sandbox name, container)`` pairs; stopped ones are left out, as are
            ones that vanish while their stats are read.
    """
    found: dict[str, Usage] = {}

    async def one(name: str, container: Container) -> None:
        try:
            stats = cast("dict[str, Any]", await engine.call(container.stats, stream=False))
        except SandboxError:
            return  # removed or stopped meanwhile: no figures, not an error
        found[name] = usage_from_stats(name, stats, container.attrs.get("HostConfig") or {})

    async with anyio.create_task_group() as group:
        for name, container in containers:
            if (container.attrs.get("State") or {}).get("Running"):
                group.start_soon(one, name, container)
    return [found[name] for name in sorted(found)]
