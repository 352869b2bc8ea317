"""A sandbox's state, derived from its container and the phases its init program reported."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import labels as L
from . import ownership
from .bootstrap import InitReport
from .network import NETWORK_NAME
from .spec import SandboxSpec, format_memory

STARTING, READY, FAILED, STOPPED, GONE = "starting", "ready", "failed", "stopped", "gone"
PAUSED = "paused"
STATES = (STARTING, READY, FAILED, STOPPED, GONE, PAUSED)


def derive_state(container_status: str | None, reports: Iterable[InitReport], *, oom_killed: bool = False) -> tuple[str, str]:
    """The sandbox state and a one-line reason.

    Args:
        container_status: The engine's status (``running``, ``exited``...) or
            ``None`` if the container no longer exists.
        reports: Everything the init program reported, oldest first.
    """
    if container_status is None:
        return GONE, "the sandbox container no longer exists"
    state, reason = STARTING, "starting"
    for report in reports:
        if report.state == "failed":
            state, reason = FAILED, report.message or f"{report.phase} failed"
        elif report.phase == "ready" and report.state == "done":
            state, reason = READY, report.message or "ready"
        elif report.phase == "daemon" and report.state == "started":
            state, reason = STARTING, report.message or "restarting dockerd"
    if container_status in ("exited", "dead"):
        if oom_killed:
            return STOPPED, "killed by the host: out of memory (it exceeded its memory limit)"
        return STOPPED, "the sandbox container has stopped" if state != FAILED else reason
    if container_status == "removing":
        return GONE, "the sandbox is being removed"
    if container_status == "paused":
        return PAUSED, "paused: its next use resumes it"
    return state, reason


@dataclass
class SandboxInfo:
    """What ``ls``, the panel and ``status`` show about one sandbox.

    Attributes:
        name: The sandbox's name.
        state: One of ``starting``, ``ready``, ``failed``, ``stopped``, ``gone``, ``paused``.
        reason: One line saying why it is in that state.
        container_id: The host engine's container id.
        image: The image it runs.
        docker: Whether it has a Docker daemon inside.
        cpu: CPU limit, if any.
        memory: Memory limit such as ``512Mi``, if any.
        disk: Size of the Docker disk store such as ``2Gi``, if it has one.
        network: Network mode.
        egress: For network ``sandbox``: its live egress policy (``public``, ``none`` or the allow-list).
        egress_resolved: For an allow-list, what each entry was resolved to (``entry``, ``cidr``, ``port``).
        address: Its address on the product's network (network ``sandbox``), if running.
        pids: Most processes and threads inside, if limited.
        owner: Who created it (``cli``, ``kernel``, ``server``, ``api``, ``pool``).
        owner_pid: The process id of its creator (or claimer), if recorded.
        kernel: For owner ``kernel``: the id of the Jupyter kernel that created it.
        pool: True while it waits in the warm pool.
        created: Unix time it was created.
        started_at: Unix time its container started, if it did.
        runtime: The engine runtime it runs under (always a runsc one).
        server: The id of the Jupyter server it belongs to (empty: the user's).
        phases: Its startup phases as reported so far.
        ttl: Its time to live in seconds, if it has one.
        expires: Unix time its ttl runs out (created + ttl), if it has one.
        idle_timeout: Seconds without use after which it is paused, if set.
        last_activity: Unix time of its last use seen on this host (or its start).
        ready_seconds: How long its create took, as its creator measured it (the ``ready in`` figure of
            every face; see :func:`record_ready`), once it is ready and when the record is readable.
    """

    name: str
    state: str
    reason: str = ""
    container_id: str = ""
    image: str = ""
    docker: bool = False
    cpu: float | None = None
    memory: str | None = None
    network: str = "none"
    egress: Any = ""
    egress_resolved: list[dict[str, Any]] = field(default_factory=list)
    address: str = ""
    pids: int | None = None
    disk: str | None = None
    owner: str = ""
    owner_pid: int | None = None
    kernel: str = ""
    pool: bool = False
    created: float | None = None
    started_at: float | None = None
    runtime: str = ""
    server: str = ""
    phases: list[dict[str, Any]] = field(default_factory=list)
    ttl: float | None = None
    expires: float | None = None
    idle_timeout: float | None = None
    last_activity: float | None = None
    ready_seconds: float | None = None

    @property
    def time_left(self) -> float | None:
        """Seconds until its ttl runs out (0 once it has), or None without a ttl."""
        return None if self.expires is None else max(0.0, self.expires - time.time())

    @property
    def idle_left(self) -> float | None:
        """Seconds of no use left before it is paused, while ready; None otherwise."""
        if self.idle_timeout is None or self.last_activity is None or self.state != READY:
            return None
        return max(0.0, self.last_activity + self.idle_timeout - time.time())

    @property
    def uptime(self) -> float | None:
        """Seconds since the container started, while it runs."""
        if self.started_at is None or self.state in (STOPPED, GONE):
            return None
        return max(0.0, time.time() - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (uptime included)."""
        data = {k: v for k, v in self.__dict__.items()}
        data["uptime"] = self.uptime
        data["time_left"] = self.time_left
        data["idle_left"] = self.idle_left
        return data


READY_FOLDER = "ready"


def _ready_record(container_id: str) -> str:
    from .lifecycle import state_dir

    return os.path.join(state_dir(), READY_FOLDER, f"{container_id}.json")


def record_ready(container_id: str, seconds: float) -> None:
    """Record how long a sandbox's create took (its creator's clock), so that every face, in any
    process, says the same ``ready in`` figure: ``<state dir>/ready/<container id>.json``.

    Best effort: without the record, other processes show no figure (never another one).
    """
    path = _ready_record(container_id)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump({"seconds": seconds}, f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass


def ready_seconds_of(container_id: str) -> float | None:
    """The create's duration recorded by :func:`record_ready`, or None."""
    if not container_id:
        return None
    try:
        with open(_ready_record(container_id)) as f:
            seconds = json.load(f).get("seconds")
    except (OSError, ValueError, AttributeError):
        return None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def forget_ready(container_id: str) -> None:
    """Remove a sandbox's ready record (it was removed)."""
    try:
        os.unlink(_ready_record(container_id))
    except OSError:
        pass


def time_left_text(info: "SandboxInfo") -> str:
    """The ``TIME LEFT`` cell: until the ttl removes it, and until idleness pauses it (``-``: no limit)."""
    from .spec import format_duration

    parts = []
    if info.time_left is not None:
        parts.append(f"{format_duration(info.time_left)} ttl")
    if info.idle_left is not None:
        parts.append(f"{format_duration(info.idle_left)} idle")
    return ", ".join(parts) or "-"


def parse_engine_time(text: str | None) -> float | None:
    """Parse the engine's RFC 3339 timestamps (nanoseconds allowed) into Unix time."""
    if not text or text.startswith("0001-"):
        return None
    from datetime import datetime

    main, _, rest = text.rstrip("Z").partition(".")
    fraction = float("0." + "".join(ch for ch in rest if ch.isdigit())[:6]) if rest else 0.0
    try:
        moment = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    from datetime import timezone

    return moment.replace(tzinfo=timezone.utc).timestamp() + fraction


def spec_from_labels_or_none(labels: Mapping[str, str]) -> SandboxSpec | None:
    """The spec recorded in a container's labels, or None if they are missing or damaged."""
    try:
        return L.spec_from_labels(labels)
    except (ValueError, TypeError):
        return None


def _egress_fields(spec: SandboxSpec | None, container_id: str) -> dict[str, Any]:
    """The live egress policy (the firewall's state), else the one in the labels; only for network ``sandbox``."""
    if spec is None or spec.network != "sandbox":
        return {}
    from .egress import live

    record = live(container_id) if container_id else None
    if record is None:
        return {"egress": spec.egress if isinstance(spec.egress, str) else list(spec.egress)}
    return {"egress": record["egress"], "egress_resolved": record["resolved"], "address": record["ip"]}


def info_from_container(attrs: Mapping[str, Any], reports: list[InitReport], phases: list[dict[str, Any]] | None = None) -> SandboxInfo:
    """Build a :class:`SandboxInfo` from ``docker inspect`` data and the init program's reports."""
    labels = attrs.get("Config", {}).get("Labels") or {}
    owned = ownership.labels_of(attrs.get("Id", ""), labels)  # a claimed pool member's are its claimer's
    spec = spec_from_labels_or_none(labels)
    status = (attrs.get("State") or {}).get("Status")
    state, reason = derive_state(status, reports, oom_killed=bool((attrs.get("State") or {}).get("OOMKilled")))
    egress = _egress_fields(spec, attrs.get("Id", ""))
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    if state == READY and NETWORK_NAME in networks and not egress.get("address"):
        state, reason = STARTING, "installing its firewall rules"  # its init program can say ready first
    return SandboxInfo(
        name=L.name_of(attrs.get("Name", ""), labels),
        state=state,
        reason=reason,
        container_id=attrs.get("Id", ""),
        image=spec.image if spec else attrs.get("Config", {}).get("Image", ""),
        docker=labels.get(L.DOCKER) == "1",
        cpu=spec.cpu if spec else None,
        memory=format_memory(spec.memory) if spec else None,
        network=spec.network if spec else "",
        **egress,
        pids=spec.pids if spec else None,
        disk=format_memory(spec.disk) if spec else None,
        owner=owned.get(L.OWNER, ""),
        owner_pid=int(owned[L.OWNER_PID]) if owned.get(L.OWNER_PID, "").isdigit() else None,
        kernel=owned.get(L.OWNER_KERNEL, ""),
        pool=L.in_pool(attrs.get("Name", "")),
        created=float(labels[L.CREATED]) if labels.get(L.CREATED) else None,
        started_at=parse_engine_time((attrs.get("State") or {}).get("StartedAt")),
        runtime=(attrs.get("HostConfig") or {}).get("Runtime", ""),
        server=owned.get(L.SERVER, ""),
        phases=phases or [],
        ready_seconds=ready_seconds_of(attrs.get("Id", "")) if state in (READY, PAUSED) else None,
        **_limits(attrs, labels),
    )


def _limits(attrs: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """The time-limit fields of a :class:`SandboxInfo` (see :mod:`jupyter_sandbox.lifecycle`)."""
    from . import lifecycle

    ttl, idle_timeout = lifecycle.limits_of(labels)
    return {
        "ttl": ttl,
        "expires": lifecycle.expires_at(labels),
        "idle_timeout": idle_timeout,
        "last_activity": lifecycle.last_activity(attrs) if idle_timeout is not None else None,
    }
