"""Startup phases, progress events and their fan-out to any number of listeners."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, AsyncIterator, Callable

import anyio
from anyio.streams.memory import MemoryObjectSendStream

log = logging.getLogger(__name__)


class Phase(str, Enum):
    """A step of a sandbox's life, in the order a Docker-enabled create runs them."""

    IMAGE_CHECK = "image_check"
    SANDBOX_START = "sandbox_start"
    BOOTED = "booted"
    DOCKERD_PRESENT = "dockerd_present"
    CGROUPS = "cgroups"
    STORAGE = "storage"
    DOCKERD_STARTED = "dockerd_started"
    SOCKET = "socket"
    ANSWERING = "answering"
    RESTORED = "restored"
    """A fork only: its memory and filesystem restored from a snapshot (replaces booting)."""
    READY = "ready"
    DAEMON = "daemon"
    """dockerd's state after ready: it exited, or it is being restarted."""
    REMOVED = "removed"

    @property
    def label(self) -> str:
        """A short human title for the phase."""
        return PHASE_LABELS[self]


PHASE_LABELS = {
    Phase.IMAGE_CHECK: "Image found",
    Phase.SANDBOX_START: "Sandbox container started",
    Phase.BOOTED: "Sandbox booted (gVisor)",
    Phase.DOCKERD_PRESENT: "dockerd found in image",
    Phase.CGROUPS: "cgroups prepared",
    Phase.STORAGE: "Disk store mounted",
    Phase.DOCKERD_STARTED: "dockerd started",
    Phase.SOCKET: "Docker socket up",
    Phase.ANSWERING: "Daemon answering",
    Phase.RESTORED: "Restored from snapshot",
    Phase.READY: "Ready",
    Phase.DAEMON: "Docker daemon",
    Phase.REMOVED: "Removed",
}

DOCKER_PHASES = [
    Phase.IMAGE_CHECK,
    Phase.SANDBOX_START,
    Phase.BOOTED,
    Phase.DOCKERD_PRESENT,
    Phase.CGROUPS,
    Phase.STORAGE,
    Phase.DOCKERD_STARTED,
    Phase.SOCKET,
    Phase.ANSWERING,
    Phase.READY,
]
"""The startup phases of a sandbox with Docker inside, in order."""

PLAIN_PHASES = [Phase.IMAGE_CHECK, Phase.SANDBOX_START, Phase.BOOTED, Phase.READY]
"""The startup phases of a sandbox without Docker, in order."""

FORK_PHASES = [Phase.IMAGE_CHECK, Phase.SANDBOX_START, Phase.RESTORED, Phase.READY]
"""The startup phases of a fork (a sandbox created from a snapshot), with or without Docker."""


def phases_for(docker: bool, restored: bool = False) -> list[Phase]:
    """The startup phases a create runs (without the per-image load phases, see :func:`image_phase`);
    ``restored``: a fork's."""
    if restored:
        return FORK_PHASES
    return DOCKER_PHASES if docker else PLAIN_PHASES


IMAGE_PHASE_PREFIX = "load:"


def image_phase(image: str) -> str:
    """The phase name of loading one preloaded image (``load:IMAGE``), run between answering and ready."""
    return IMAGE_PHASE_PREFIX + image


@dataclass(frozen=True)
class ImagePhase:
    """A row for one preloaded image's load, shaped like a :class:`Phase` (``value`` and ``label``)."""

    value: str

    @property
    def label(self) -> str:
        """``Image loaded: NAME``."""
        return "Image loaded: " + self.value[len(IMAGE_PHASE_PREFIX) :]


def phase_catalog() -> dict[str, Any]:
    """The phase lists and titles as JSON, for views that draw phase rows (the Lab panel reads them
    from ``GET /sandbox/api/phases``): one definition, here.

    ``docker``, ``plain`` and ``fork`` are the startup orders; one ``load:IMAGE``
    phase per preloaded image runs just before ``ready`` (titled ``image_label`` + IMAGE).
    """
    return {
        "docker": [p.value for p in DOCKER_PHASES],
        "plain": [p.value for p in PLAIN_PHASES],
        "fork": [p.value for p in FORK_PHASES],
        "labels": {p.value: p.label for p in Phase},
        "image_prefix": IMAGE_PHASE_PREFIX,
        "image_label": ImagePhase(IMAGE_PHASE_PREFIX).label,
    }


def phase_label(phase: str) -> str:
    """The human title of any phase name, the per-image ones included."""
    if phase.startswith(IMAGE_PHASE_PREFIX):
        return ImagePhase(phase).label
    try:
        return Phase(phase).label
    except ValueError:
        return phase


class State(str, Enum):
    """The state of one phase in a progress event."""

    STARTED = "started"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a sandbox's startup (or later life), as every face renders it.

    Attributes:
        sandbox: The sandbox's name.
        phase: Which phase (a :class:`Phase` value).
        state: ``started``, ``done`` or ``failed``.
        elapsed: Seconds since the create began (host clock).
        message: One human line.
        detail: More text, such as a log tail (may be empty).
        time: Unix time the event was seen.
        uptime: The sandbox kernel's uptime when it reported the event, if it did.
    """

    sandbox: str
    phase: str
    state: str
    elapsed: float
    message: str = ""
    detail: str = ""
    time: float = field(default_factory=time.time)
    uptime: float | None = None

    @property
    def label(self) -> str:
        """The phase's human title."""
        return phase_label(self.phase)

    @property
    def is_final(self) -> bool:
        """True for the event that ends a startup (ready, or any failure)."""
        return self.state == State.FAILED or (self.phase == Phase.READY and self.state == State.DONE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, with the phase's label added."""
        data = asdict(self)
        data["label"] = self.label
        return data


Listener = Callable[[ProgressEvent], None]


class EventBus:
    """Fans progress events out to any number of listeners, replaying history to late ones.

    Publish from the event loop's thread.  Listeners either iterate
    :meth:`subscribe` (async) or register a callback with :meth:`add_listener`
    (called in the publisher's thread).  A callback that raises is logged and
    skipped: a broken view never stops (or removes) the sandbox it shows.
    """

    def __init__(self) -> None:
        self.history: list[ProgressEvent] = []
        self._streams: list[MemoryObjectSendStream[ProgressEvent]] = []
        self._callbacks: list[Listener] = []
        self.closed = False

    def publish(self, event: ProgressEvent) -> None:
        """Record an event and hand it to every listener."""
        self.history.append(event)
        for stream in list(self._streams):
            try:
                stream.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._streams.remove(stream)
        for callback in list(self._callbacks):
            _call_listener(callback, event)

    def add_listener(self, callback: Listener, *, replay: bool = True) -> Callable[[], None]:
        """Call ``callback`` for every event (past ones first if ``replay``); returns an unsubscribe function."""
        if replay:
            for event in self.history:
                _call_listener(callback, event)
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def subscribe(self, *, replay: bool = True) -> AsyncIterator[ProgressEvent]:
        """Iterate events as they are published, until the bus is closed."""
        send, receive = anyio.create_memory_object_stream[ProgressEvent](math.inf)
        if replay:
            for event in self.history:
                send.send_nowait(event)
        if self.closed:
            send.close()
        else:
            self._streams.append(send)
        async with receive:
            async for event in receive:
                yield event

    def close(self) -> None:
        """End every subscription (after the events already published)."""
        self.closed = True
        for stream in self._streams:
            stream.close()
        self._streams.clear()


def _call_listener(callback: Listener, event: ProgressEvent) -> None:
    try:
        callback(event)
    except Exception:
        log.exception("a progress listener (%r) failed on %s/%s; the sandbox goes on", callback, event.phase, event.state)


@dataclass
class PhaseRow:
    """One row of a startup view: a phase with its status and timing.

    Attributes:
        phase: The phase.
        status: ``pending``, ``running``, ``done`` or ``failed``.
        started: Elapsed seconds when it started (None while pending).
        duration: Seconds it took (None until done or failed).
        message: The latest message for it.
        detail: Extra text (a log tail on failure).
    """

    phase: Phase | ImagePhase
    status: str = "pending"
    started: float | None = None
    duration: float | None = None
    message: str = ""
    detail: str = ""
    announced: bool = False
    """Whether its own ``started`` event arrived (later ones only update the message)."""


class PhaseTracker:
    """Folds progress events into one row per startup phase: the model every view renders.

    A phase counts as running from the end of the previous one (or its own
    ``started`` event), so the spinner always sits on the phase being waited for.
    """

    def __init__(self, docker: bool, images: tuple[str, ...] | list[str] = (), restored: bool = False):
        self.rows: list[PhaseRow] = [PhaseRow(phase) for phase in phases_for(docker, restored)]
        for image in images:
            self._row(image_phase(image))
        self.final: ProgressEvent | None = None
        self.elapsed = 0.0

    def _row(self, phase: str) -> PhaseRow | None:
        for row in self.rows:
            if row.phase.value == phase:
                return row
        if phase.startswith(IMAGE_PHASE_PREFIX) and self.rows and self.rows[-1].phase == Phase.READY:
            row = PhaseRow(ImagePhase(phase))  # an image load: a row of its own just before ready
            self.rows.insert(len(self.rows) - 1, row)
            return row
        return None

    def update(self, event: ProgressEvent) -> None:
        """Apply one event."""
        self.elapsed = max(self.elapsed, event.elapsed)
        row = self._row(event.phase)
        if row is None:
            return
        index = self.rows.index(row)
        if event.state == State.STARTED:
            if not row.announced:  # a repeated started is a progress update: the phase began at the first
                row.started, row.announced = event.elapsed, True
            row.status = "running"
        else:
            if row.started is None:
                ends = [r.started + r.duration for r in self.rows[:index] if r.duration is not None and r.started is not None]
                row.started = ends[-1] if ends else 0.0
            row.status = "done" if event.state == State.DONE else "failed"
            row.duration = max(0.0, event.elapsed - row.started)
            if index + 1 < len(self.rows) and row.status == "done" and self.rows[index + 1].status == "pending":
                self.rows[index + 1].status, self.rows[index + 1].started = "running", event.elapsed
        if event.message:
            row.message = event.message
        if event.detail:
            row.detail = event.detail
        if event.is_final:
            self.final = event
            if event.state == State.FAILED:
                for other in self.rows:
                    if other.status == "running" and other is not row:
                        other.status = "pending"

    @property
    def fraction(self) -> float:
        """Share of phases done, 0 to 1."""
        return sum(row.status == "done" for row in self.rows) / len(self.rows)

    @property
    def current(self) -> PhaseRow | None:
        """The phase being waited for, if any."""
        return next((row for row in self.rows if row.status == "running"), None)
