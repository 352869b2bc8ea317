"""Follow every managed sandbox on the engine and publish its progress, whoever created it.

The Jupyter server uses one :class:`SandboxWatcher` so that sandboxes made by
a kernel's magics or by the CLI in another process appear in the Lab panel
with their phases: it follows the engine's event stream (create, start, die,
destroy, rename of containers labelled ``io.jupyter.sandbox.managed=1``) and
the log of each running sandbox, where the init program reports its phases.
Every blocking docker-py stream is consumed off the event loop.  When the
engine goes away it reconnects with backoff and resynchronises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio
import anyio.abc
import docker.errors

from . import labels as L
from . import ownership
from .bootstrap import InitReport, follow_reports
from .engine import Engine
from .errors import SandboxError
from .events import Phase, ProgressEvent, State
from .spec import SandboxSpec, format_memory
from .status import FAILED, GONE, STARTING, SandboxInfo, info_from_container, parse_engine_time, ready_seconds_of
from .threads import follow

log = logging.getLogger(__name__)

ENGINE_EVENTS = ("create", "start", "die", "destroy", "rename", "pause", "unpause")


@dataclass(frozen=True)
class WatchUpdate:
    """One thing a watcher publishes.

    Attributes:
        kind: ``event`` (a :class:`ProgressEvent`), ``sandbox`` (a sandbox's
            new state, ``gone`` included) or ``engine`` (the engine connection changed).
        data: The JSON-ready payload.
    """

    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready message: ``{"type": kind, kind: data}``."""
        return {"type": self.kind, self.kind: self.data}


WatchListener = Callable[[WatchUpdate], None]


@dataclass
class _Tracked:
    """What the watcher knows of one sandbox (keyed by name)."""

    name: str
    container_id: str = ""
    attrs: dict[str, Any] | None = None
    spec: SandboxSpec | None = None
    owner: str = ""
    reports: list[InitReport] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    keys: set[tuple[Any, ...]] = field(default_factory=set)
    follower: anyio.CancelScope | None = None
    reports_seen: int = 0
    last_sent: tuple[str, str, float | None] | None = None
    last_activity_sent: float | None = None


def _event_key(event: ProgressEvent) -> tuple[Any, ...]:
    """Two sources (the creating process, the container log) report the same phase: one key for both."""
    uptime = None if event.uptime is None else round(event.uptime, 2)
    return (event.phase, event.state, uptime)


class SandboxWatcher:
    """Follows the engine's managed sandboxes and publishes their events to listeners.

    Run :meth:`run` in a task; read :meth:`snapshot` for the current state and
    :meth:`add_listener` for what changes.  Listeners are called on the event
    loop's thread and must not block.

    Args:
        engine: The host engine (the process-wide default if omitted).
        max_backoff: Longest wait, in seconds, between reconnection attempts.
        server_id: Follow only the sandboxes this Jupyter server may see (see ``labels.visible_to``).
    """

    def __init__(self, engine: Engine | None = None, *, max_backoff: float = 5.0, server_id: str | None = None):
        self.engine = engine or Engine.default()
        self.server_id = server_id
        self.max_backoff = max_backoff
        self.connected = False
        self.last_error = ""
        self._tracked: dict[str, _Tracked] = {}
        self._listeners: list[WatchListener] = []
        self._group: anyio.abc.TaskGroup | None = None
        self._synced = anyio.Event()

    # -- what others read -------------------------------------------------------

    def add_listener(self, callback: WatchListener) -> Callable[[], None]:
        """Call ``callback`` for every update from now on; returns an unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def snapshot(self) -> list[dict[str, Any]]:
        """Every known sandbox as ``SandboxInfo.to_dict()`` (phases included), oldest first."""
        infos = [self._info(tracked) for tracked in self._tracked.values()]
        return [info.to_dict() for info in sorted(infos, key=lambda i: (i.created or 0, i.name))]

    async def wait_synced(self) -> None:
        """Return once the first listing of the engine's sandboxes is in the snapshot."""
        await self._synced.wait()

    # -- what the creating process adds -------------------------------------------

    def announce(self, spec: SandboxSpec, owner: str) -> None:
        """Show a sandbox this process is about to create, before its container exists."""
        tracked = self._tracked.get(spec.name)
        if tracked is None or tracked.container_id:
            tracked = self._tracked[spec.name] = _Tracked(spec.name, spec=spec, owner=owner)
        self._publish_state(tracked, force=True)

    def record(self, event: ProgressEvent) -> None:
        """Add an event seen elsewhere (the creating process's own bus); duplicates are dropped."""
        tracked = self._tracked.get(event.sandbox)
        if tracked is None:
            tracked = self._tracked[event.sandbox] = _Tracked(event.sandbox)
        self._add_event(tracked, event)
        if event.phase == Phase.READY.value and event.state == State.DONE and tracked.container_id:
            self._publish_state(tracked)  # with the creator's ready_seconds (recorded just before)

    def forget(self, name: str) -> bool:
        """Drop a sandbox that never got a container (a failed create); True if there was one."""
        tracked = self._tracked.get(name)
        if tracked is None or tracked.container_id:
            return False
        del self._tracked[name]
        self._emit(WatchUpdate("sandbox", {**self._info(tracked).to_dict(), "state": GONE, "reason": "dismissed"}))
        return True

    def notice(self, update: WatchUpdate) -> None:
        """Publish a core notice (``{"type": "notice", "notice": ...}``: auto-resume, idle pause, expiry)."""
        self._emit(update)

    async def enforce_limits(self) -> None:
        """Apply ttl and idle_timeout to every followed sandbox that has one (the server calls this periodically).

        An expired sandbox is removed, a ready one idle past its timeout paused
        (each sends a notice); a sandbox whose last activity moved is published
        again, so views count its idle time from the right moment.
        """
        from . import lifecycle
        from .sandbox import AsyncSandbox

        for tracked in list(self._tracked.values()):
            labels = ((tracked.attrs or {}).get("Config") or {}).get("Labels") or {}
            if not tracked.container_id or labels.get(L.SPEC) is None or lifecycle.limits_of(labels) == (None, None):
                continue
            try:
                attrs = await self.engine.call(self.engine.client.api.inspect_container, tracked.container_id)
            except SandboxError:
                continue  # gone: the engine's events say so
            tracked.attrs = attrs
            info = self._info(tracked)
            sandbox = AsyncSandbox(L.spec_from_labels(labels), engine=self.engine, container_id=tracked.container_id)
            sandbox.spec = dataclasses.replace(sandbox.spec, name=tracked.name)
            try:
                await sandbox.enforce_limits(attrs, info.state)
            except SandboxError as error:
                log.warning("jupyter-sandbox: time limits of %s: %s", tracked.name, error.message)
            if info.last_activity != tracked.last_activity_sent and self._tracked.get(tracked.name) is tracked:
                tracked.last_activity_sent = info.last_activity
                self._publish_state(tracked, force=True)

    # -- following the engine ---------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the engine until cancelled, reconnecting with backoff when it goes away."""
        delay = 0.1
        async with anyio.create_task_group() as group:
            self._group = group
            task_status.started()
            while True:
                began = time.monotonic()
                try:
                    await self._follow_engine()
                except SandboxError as error:
                    self._set_connected(False, error.message)
                except Exception as error:  # the stream broke in a way docker-py does not translate
                    self._set_connected(False, f"{type(error).__name__}: {error}")
                else:
                    self._set_connected(False, "the engine's event stream ended")
                if time.monotonic() - began > 10:
                    delay = 0.1
                await anyio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    async def _follow_engine(self) -> None:
        since = int(time.time()) - 1  # events from here on are replayed, so none is lost while listing
        containers = await self.engine.containers()
        self._set_connected(True)
        await self._resync(containers)
        self._synced.set()
        filters = {"label": f"{L.MANAGED}=1", "type": "container", "event": list(ENGINE_EVENTS)}
        async with contextlib.aclosing(follow(lambda: self.engine.client.events(decode=True, since=since, filters=filters))) as stream:
            async for message in stream:
                await self._on_engine_event(message)

    async def _resync(self, containers: list[Any]) -> None:
        """Make the snapshot match the engine's list (after connecting or reconnecting)."""
        present = {c.id for c in containers}
        for tracked in list(self._tracked.values()):
            if tracked.container_id and tracked.container_id not in present:
                self._drop(tracked, "the sandbox container no longer exists")
        for container in containers:
            await self._refresh(container.id)

    async def _on_engine_event(self, message: dict[str, Any]) -> None:
        action = str(message.get("Action") or message.get("status") or "")
        container_id = str((message.get("Actor") or {}).get("ID") or message.get("id") or "")
        if not container_id:
            return
        if action == "destroy":
            tracked = self._by_id(container_id)
            if tracked is not None:
                self._drop(tracked, "the sandbox was removed")
            return
        await self._refresh(container_id, created=action == "create")

    def _by_id(self, container_id: str) -> _Tracked | None:
        return next((t for t in self._tracked.values() if t.container_id == container_id), None)

    async def _refresh(self, container_id: str, *, created: bool = False) -> None:
        """Re-read a container's state; start following its log while it runs."""
        try:
            attrs = await self.engine.call(self.engine.client.api.inspect_container, container_id)
        except SandboxError as error:
            tracked = self._by_id(container_id)
            if tracked is not None and isinstance(error.__cause__, docker.errors.NotFound):
                self._drop(tracked, "the sandbox container no longer exists")
            return  # anything else is the engine going away: the reconnect resynchronises
        labels = ownership.labels_of(container_id, (attrs.get("Config") or {}).get("Labels") or {})
        if not L.visible_to(labels, self.server_id):
            return  # another Jupyter server's sandbox
        name = L.name_of(attrs.get("Name", ""), labels)
        tracked = self._by_id(container_id)
        if tracked is not None and tracked.name != name:  # a pool member claimed under a new name
            self._drop(tracked, "renamed")
            tracked = None
        if tracked is None:
            tracked = self._tracked.get(name)
            if tracked is None or (tracked.container_id and tracked.container_id != container_id):
                tracked = self._tracked[name] = _Tracked(name)
            tracked.container_id = container_id
        tracked.attrs = attrs
        tracked.owner = labels.get(L.OWNER, tracked.owner)
        if created:
            self._add_event(tracked, self._host_event(tracked, Phase.SANDBOX_START, State.STARTED, "container created"))
        running = bool((attrs.get("State") or {}).get("Running"))
        if running:
            self._add_event(tracked, self._host_event(tracked, Phase.SANDBOX_START, State.DONE, f"container {container_id[:12]} running"))
            if tracked.follower is None and self._group is not None:
                tracked.follower = anyio.CancelScope()
                self._group.start_soon(self._follow_log, tracked, tracked.follower)
        self._publish_state(tracked)

    def _host_event(self, tracked: _Tracked, phase: Phase, state: State, message: str) -> ProgressEvent:
        return ProgressEvent(tracked.name, phase.value, state.value, round(self._elapsed(tracked, 0.0), 4), message)

    def _elapsed(self, tracked: _Tracked, uptime: float) -> float:
        """Seconds since the create began: container start (host clock) plus the sandbox's own uptime."""
        attrs = tracked.attrs or {}
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        created = float(labels.get(L.CREATED) or 0) or None
        started = parse_engine_time((attrs.get("State") or {}).get("StartedAt"))
        if created is None:
            return uptime
        if started is None:
            return max(0.0, time.time() - created)
        return max(0.0, started - created) + uptime

    async def _follow_log(self, tracked: _Tracked, scope: anyio.CancelScope) -> None:
        """Turn the init program's protocol lines (the container log) into progress events."""
        container_id = tracked.container_id
        ended_cleanly = False
        try:
            with scope:
                async with contextlib.aclosing(follow_reports(self.engine.client, container_id, skip=tracked.reports_seen)) as reports:
                    async for report in reports:
                        tracked.reports_seen += 1
                        self._on_report(tracked, report)
            ended_cleanly = not scope.cancel_called
        except Exception as error:  # a vanished container or a dropped engine: the event stream says which
            log.debug("log of sandbox %s ended: %r", tracked.name, error)
        finally:
            if tracked.follower is scope:
                tracked.follower = None
        if ended_cleanly and self._tracked.get(tracked.name) is tracked:
            await self._refresh(container_id)  # the log ends when the sandbox stops

    def _on_report(self, tracked: _Tracked, report: InitReport) -> None:
        tracked.reports.append(report)
        uptime = report.uptime or 0.0
        event = ProgressEvent(
            tracked.name, report.phase, report.state, round(self._elapsed(tracked, uptime), 4), report.message, report.log_tail, uptime=report.uptime
        )
        self._add_event(tracked, event)
        self._publish_state(tracked)
        if report.phase == Phase.READY.value and report.state == State.DONE and self._group is not None:
            self._group.start_soon(self._await_ready_record, tracked)

    async def _await_ready_record(self, tracked: _Tracked) -> None:
        """The creating process records its ``ready in`` figure just after it reads the same "ready"
        line (:func:`~jupyter_sandbox.status.record_ready`): publish the state again when it appears."""
        for _ in range(40):
            if self._tracked.get(tracked.name) is not tracked or (tracked.last_sent and tracked.last_sent[2] is not None):
                return
            if ready_seconds_of(tracked.container_id) is not None:
                self._publish_state(tracked)
                return
            await anyio.sleep(0.25)

    # -- publishing ---------------------------------------------------------------

    def _add_event(self, tracked: _Tracked, event: ProgressEvent) -> None:
        key = _event_key(event)
        if key in tracked.keys:
            return
        tracked.keys.add(key)
        data = event.to_dict()
        tracked.phases.append(data)
        self._emit(WatchUpdate("event", data))
        if not tracked.container_id:
            self._publish_state(tracked)

    def _info(self, tracked: _Tracked) -> SandboxInfo:
        if tracked.attrs is not None:
            return info_from_container(tracked.attrs, tracked.reports, tracked.phases)
        spec = tracked.spec
        failed = next((p for p in reversed(tracked.phases) if p["state"] == State.FAILED), None)
        return SandboxInfo(
            name=tracked.name,
            state=FAILED if failed else STARTING,
            reason=(failed["message"] if failed else "starting"),
            image=spec.image if spec else "",
            docker=spec.docker if spec else False,
            cpu=spec.cpu if spec else None,
            memory=format_memory(spec.memory) if spec else None,
            network=spec.network if spec else "none",
            pids=spec.pids if spec else None,
            owner=tracked.owner,
            created=(tracked.phases[0]["time"] if tracked.phases else time.time()),
            phases=list(tracked.phases),
        )

    def _publish_state(self, tracked: _Tracked, *, force: bool = False) -> None:
        info = self._info(tracked)
        now = (info.state, info.reason, info.ready_seconds)
        if force or now != tracked.last_sent:
            tracked.last_sent = now
            self._emit(WatchUpdate("sandbox", info.to_dict()))

    def _drop(self, tracked: _Tracked, reason: str) -> None:
        if tracked.follower is not None:
            tracked.follower.cancel()
        self._tracked.pop(tracked.name, None)
        info = self._info(tracked)
        info.state, info.reason = GONE, reason
        self._emit(WatchUpdate("sandbox", info.to_dict()))

    def _set_connected(self, connected: bool, error: str = "") -> None:
        if connected != self.connected or error != self.last_error:
            if not connected:
                log.warning("jupyter-sandbox watcher lost the Docker engine (%s); reconnecting", error)
            self.connected, self.last_error = connected, error
            self._emit(WatchUpdate("engine", {"connected": connected, "message": error}))

    def _emit(self, update: WatchUpdate) -> None:
        for listener in list(self._listeners):
            try:
                listener(update)
            except Exception:  # one broken listener must not stop the others
                log.exception("jupyter-sandbox watcher listener failed")
