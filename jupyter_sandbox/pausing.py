"""Pause, resume and the time limits applied: the half of :class:`~jupyter_sandbox.sandbox.AsyncSandbox` that does them.

Where each thing is kept, and why, is in :mod:`jupyter_sandbox.lifecycle`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping

from .lifecycle import (
    EXPIRED,
    IDLE_PAUSED,
    RESUMED,
    Notice,
    expired,
    expired_message,
    forget,
    idle_for,
    in_use,
    is_paused,
    notify,
    touch,
)

if TYPE_CHECKING:
    from .engine import Engine


class LifecycleMixin:
    """Pause, resume and the time limits: half of :class:`~jupyter_sandbox.sandbox.AsyncSandbox`.

    :meth:`ensure_running` is the one place a use goes through: every exec
    (so files, logs, ports), every docker command whatever its transport, and
    the port proxy's target lookup await it before touching the sandbox.
    """

    engine: "Engine"
    container_id: str

    if TYPE_CHECKING:

        @property
        def name(self) -> str: ...  # StartupMixin's

    async def _inspect(self) -> dict[str, Any]:
        """The engine's inspect data; a vanished container is :class:`SandboxNotRunning`."""
        from .errors import SandboxError, SandboxNotRunning

        try:
            return await self.engine.call(self.engine.client.api.inspect_container, self.container_id)
        except SandboxError as error:
            import docker.errors

            if isinstance(error.__cause__, docker.errors.NotFound):
                raise SandboxNotRunning(f"Sandbox {self.name!r} is gone: the sandbox container no longer exists.", fix="create a new one") from None
            raise

    async def _remove_expired(self, labels: Mapping[str, str]) -> None:
        """Remove a sandbox whose ttl ran out, tell the user, and raise :class:`SandboxExpired`."""
        from .errors import SandboxExpired

        message = expired_message(self.name, labels)
        if await self.engine.remove(self.container_id):
            notify(Notice(self.name, EXPIRED, message))
        forget(self.container_id)
        raise SandboxExpired(
            f"Sandbox {self.name!r} has expired and was removed ({message.split(': ', 1)[1]}).",
            fix="create a new one; give it a longer ttl (--ttl) if it needs to live longer",
        )

    async def ensure_running(self, attrs: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """Make the sandbox usable now and record the use: called before every use.

        Removes it if its ttl ran out (:class:`SandboxExpired`), resumes it if it
        is paused (telling the user through :func:`notify`), and touches its
        activity marker.  Costs one engine inspect (about 2 ms here) unless the
        caller passes fresh ``attrs``.

        Returns:
            The inspect data it looked at.
        """
        if attrs is None:
            attrs = await self._inspect()
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if expired(labels):
            await self._remove_expired(labels)
        if is_paused(attrs):
            began = time.monotonic()
            if await self._unpause():
                notify(Notice(self.name, RESUMED, f"sandbox {self.name} was paused; resumed it for this use in {time.monotonic() - began:.2f} s"))
        touch(self.container_id)
        return attrs

    async def _unpause(self) -> bool:
        import docker.errors

        from .errors import SandboxError

        try:
            await self.engine.call(self.engine.client.api.unpause, self.container_id)
        except SandboxError as error:
            if isinstance(error.__cause__, docker.errors.APIError) and "not paused" in str(error.__cause__):
                return False  # resumed by someone else meanwhile
            raise
        return True

    async def pause(self) -> bool:
        """Freeze the sandbox: its processes stop using CPU; memory, the inner daemon and inner containers are kept.

        Any later use (exec, docker, files, a proxied request) resumes it.

        Returns:
            True if it was paused now, False if it already was.

        Raises:
            SandboxNotRunning: If it is stopped or gone.
            SandboxExpired: If its ttl ran out (it is removed).
        """
        import docker.errors

        from .errors import SandboxError, SandboxNotRunning

        attrs = await self._inspect_unexpired()
        if is_paused(attrs):
            return False
        if not (attrs.get("State") or {}).get("Running"):
            raise SandboxNotRunning(
                f"Sandbox {self.name!r} is not running, so it cannot be paused.",
                fix=f"create a new one (`jupyter sandbox rm {self.name}` clears the name)",
            )
        try:
            await self.engine.call(self.engine.client.api.pause, self.container_id)
        except SandboxError as error:
            if isinstance(error.__cause__, docker.errors.APIError) and "already paused" in str(error.__cause__):
                return False
            raise
        return True

    async def _inspect_unexpired(self) -> dict[str, Any]:
        """The container's inspect data; an expired sandbox is removed instead (:class:`SandboxExpired`)."""
        attrs = await self._inspect()
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if expired(labels):
            await self._remove_expired(labels)
        return attrs

    async def resume(self) -> bool:
        """Unfreeze a paused sandbox (uses do this by themselves); True if it was paused.

        Raises:
            SandboxNotRunning: If it is stopped or gone.
            SandboxExpired: If its ttl ran out (it is removed).
        """
        attrs = await self._inspect_unexpired()
        resumed = is_paused(attrs) and await self._unpause()
        touch(self.container_id)
        return resumed

    async def enforce_limits(self, attrs: Mapping[str, Any], state: str) -> str | None:
        """Apply the time limits to a sandbox a face is looking at; returns what was done, if anything.

        Args:
            attrs: Its fresh inspect data.
            state: Its derived state (only a ``ready`` sandbox is paused for being idle).

        Returns:
            ``expired`` (it was removed), ``idle-paused``, or None.
        """
        from .errors import SandboxExpired
        from .spec import format_duration

        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if expired(labels):
            try:
                await self._remove_expired(labels)
            except SandboxExpired:
                return EXPIRED
        idle_timeout, idle = idle_for(attrs)
        if state == "ready" and idle_timeout is not None and idle >= idle_timeout and not is_paused(attrs):
            if in_use(attrs):  # a long command or copy still running: idle time counts from its end
                touch(self.container_id)
                return None
            if await self.pause():
                notify(
                    Notice(
                        self.name,
                        IDLE_PAUSED,
                        f"paused sandbox {self.name}: idle for {format_duration(idle)} "
                        f"(idle timeout {format_duration(idle_timeout)}); its next use resumes it",
                    )
                )
                return IDLE_PAUSED
        return None
