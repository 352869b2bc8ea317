"""The kernel's side of the notebook face: creates with live progress, and the kernel's own sandboxes.

The magics are a thin layer over this module, and everything here is usable
directly from a cell::

    from jupyter_sandbox.notebook import create_with_progress
    sb = create_with_progress(docker=True)          # the same widget as %sandbox create --docker

A create runs on the core's event loop (the sync facade's portal) while the
calling thread waits and renders.  A kernel interrupt cancels it, and the
wait lasts until the core has removed the half-made sandbox: nothing keeps
running behind the user's back.  Sandboxes a kernel creates are owned by it
and terminated when it shuts down, unless kept.
"""

from __future__ import annotations

import atexit
import queue
import sys
import threading
from typing import Any, Callable

from .errors import SandboxError
from .events import EventBus, ProgressEvent
from .pool import pool_key
from .progress import choose_mode, make_view
from .sandbox import AsyncSandbox
from .streaming import CLEANUP_SECONDS, END, wait_for_items
from .sync import Sandbox, call, cancel_and_wait, portal, start

OWNER = "kernel"
KEPT_OWNER = "kernel-kept"
"""Kept sandboxes outlive their kernel, so they are not labelled as owned by its process (no orphan reaping)."""


def listen(bus: EventBus, callback: Callable[[ProgressEvent], None]) -> Callable[[], None]:
    """Subscribe to a sandbox's events on the loop thread (past events replayed first, none twice)."""
    return portal().call(bus.add_listener, callback)


class CreateJob:
    """One create running on the core's loop; any number of cells may watch it.

    Args:
        core: A prepared, unstarted sandbox.
    """

    def __init__(self, core: AsyncSandbox):
        self.core = core
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._watchers: list["queue.Queue[Any]"] = []
        self._future, self._ended = start(self._run)

    async def _run(self) -> None:
        try:
            await self.core.start()
        except BaseException as error:
            self.error = error
            raise
        finally:
            with self._lock:
                self.finished.set()
                watchers = list(self._watchers)
            for watcher in watchers:
                watcher.put(END)

    def watch(self, view: Any) -> None:
        """Render the create in ``view`` until it ends; on KeyboardInterrupt cancel it and wait for the cleanup.

        Raises:
            SandboxError: The core's error if the create failed.
            KeyboardInterrupt: If interrupted (the half-made sandbox is removed).
        """
        events: "queue.Queue[Any]" = queue.Queue()
        unsubscribe = listen(self.core.events, view if view.live_events else events.put)
        with self._lock:
            self._watchers.append(events)
            if self.finished.is_set():
                events.put(END)
        view.show()
        try:
            for event in wait_for_items(events):
                view(event)
        except KeyboardInterrupt as interrupt:
            self.cancel()
            view.finish(interrupt)
            raise
        finally:
            unsubscribe()
        view.finish(self.failure())
        failure = self.failure()  # None exactly when self.error is
        if failure is not None:
            raise failure from None

    def failure(self) -> BaseException | None:
        """The error to show for a failed create (a cancellation elsewhere becomes a SandboxError)."""
        if self.error is None or isinstance(self.error, SandboxError):
            return self.error
        return SandboxError(f"Creating sandbox {self.core.name!r} was interrupted; what it had started was removed.", fix="run the create again")

    def cancel(self) -> None:
        """Cancel the create and wait (bounded) until the core has cleaned up."""
        cancel_and_wait(self._future, self._ended, CLEANUP_SECONDS)


class KernelSandboxes:
    """This kernel's sandboxes: the ones it created (terminated at shutdown unless kept),
    the ones it attached to, the current one, and the creates still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sandboxes: dict[str, Sandbox] = {}
        self.owned: set[str] = set()
        self.jobs: dict[str, CreateJob] = {}
        self.views: dict[str, Any] = {}
        """The progress view of each create (``display(views[name])`` shows a widget again)."""
        self.current: str | None = None

    def create(self, name: str | None = None, *, keep: bool = False, progress: str | None = "auto", **fields: Any) -> Sandbox:
        """Create a sandbox showing its startup live, make it current and return it.

        A create of the same name already running (in another cell or thread)
        is watched rather than started twice; a sandbox of that name and the
        same spec this kernel created before is returned as it is.

        Args:
            name: Unique name (random if left out).
            keep: Leave it running when the kernel shuts down.
            progress: ``auto``, ``widget`` or ``text``.
            fields: The spec: ``docker``, ``image``, ``cpu``, ``memory``, ``network``, ``egress``, ``env``, ``timeout``, ``pids``,
                ``disk``, ``storage``, ``images``.

        Raises:
            SpecError: Before anything is created, for a bad field.
            SandboxError: If the create failed (nothing is left behind).
        """
        mode = choose_mode(progress)
        core = Sandbox.prepare(name, owner=KEPT_OWNER if keep else OWNER, **fields)
        for warning in core.spec.warnings:
            print(f"Warning: {warning}", file=sys.stderr)
        with self._lock:
            new = core.name not in self.jobs and core.name not in self.owned
        if new:
            call(core.check_name_free)  # a name another sandbox has is said once, before any view
        with self._lock:
            job = self.jobs.get(core.name)
            existing = self.sandboxes.get(core.name) if core.name in self.owned else None
            if job is None and existing is None:
                job = self.jobs[core.name] = CreateJob(core)
        if existing is not None and job is None:
            if pool_key(existing.spec) != pool_key(core.spec):  # the same spec but for name and timeout
                raise SandboxError(
                    f"This kernel already created a sandbox named {core.name!r} with another spec.",
                    fix=f"remove it first (%sandbox rm {core.name}) or choose another name",
                )
            print(f"Sandbox {core.name} already exists in this kernel: using it.")
            return self.use(existing)
        assert job is not None
        view = self.views[job.core.name] = make_view(mode, job.core.name, job.core.spec.docker, restored=job.core.spec.snapshot is not None)
        try:
            job.watch(view)
        finally:
            with self._lock:
                if self.jobs.get(job.core.name) is job and job.finished.is_set():
                    del self.jobs[job.core.name]
        with self._lock:
            sandbox = self.sandboxes.get(job.core.name)
            if sandbox is None or sandbox.core is not job.core:
                sandbox = self.sandboxes[job.core.name] = Sandbox(job.core)
            if job.core.owner == OWNER:
                self.owned.add(job.core.name)
            self.current = job.core.name
        return sandbox

    def use(self, target: str | Sandbox) -> Sandbox:
        """Make a sandbox current, attaching to it by name if this kernel does not know it yet."""
        sandbox = target if isinstance(target, Sandbox) else self.sandboxes.get(target) or Sandbox.get(target)
        with self._lock:
            self.sandboxes.setdefault(sandbox.name, sandbox)
            self.current = sandbox.name
        return self.sandboxes[sandbox.name]

    def get(self, name: str | None = None) -> Sandbox:
        """A sandbox by name (attaching if needed), or the current one.

        Raises:
            SandboxError: If no name is given and there is no current sandbox.
        """
        if name:
            return self.sandboxes.get(name) or Sandbox.get(name)
        if self.current is None:
            raise SandboxError("No current sandbox in this kernel.", fix="create one (%sandbox create --docker) or pick one (%sandbox use NAME)")
        return self.sandboxes[self.current]

    def forget(self, name: str) -> None:
        """Drop a sandbox from this kernel's lists (after it was removed)."""
        with self._lock:
            self.sandboxes.pop(name, None)
            self.owned.discard(name)
            if self.current == name:
                self.current = None

    def shutdown(self) -> list[str]:
        """Cancel running creates and terminate the sandboxes this kernel owns; returns their names."""
        with self._lock:
            jobs = list(self.jobs.values())
            owned = [self.sandboxes[name] for name in sorted(self.owned) if name in self.sandboxes]
        for job in jobs:
            if not job.finished.is_set():
                job.cancel()
        removed = []
        for sandbox in owned:
            try:
                sandbox.terminate()
                removed.append(sandbox.name)
            except Exception:  # at exit: the engine may be gone too; nothing to report to
                pass
            self.forget(sandbox.name)
        return removed


_session: KernelSandboxes | None = None
_session_lock = threading.Lock()


def session() -> KernelSandboxes:
    """This process's :class:`KernelSandboxes` (created on first use, cleaned up at exit)."""
    global _session
    with _session_lock:
        if _session is None:
            _session = KernelSandboxes()
            atexit.register(_session.shutdown)
        return _session


def create_with_progress(
    name: str | None = None, *, docker: bool = False, keep: bool = False, progress: str | None = "auto", **fields: Any
) -> Sandbox:
    """Create a sandbox with a live progress view, owned by this kernel (see :meth:`KernelSandboxes.create`).

    Args:
        name: Unique name (random if left out).
        docker: Start a Docker daemon inside.
        keep: Leave it running when the kernel shuts down.
        progress: ``auto`` (widget in a kernel, text elsewhere), ``widget`` or ``text``.
        fields: ``image``, ``cpu``, ``memory``, ``network``, ``env``, ``timeout``, ``pids`` as for ``Sandbox.create``.
    """
    return session().create(name, docker=docker, keep=keep, progress=progress, **fields)
