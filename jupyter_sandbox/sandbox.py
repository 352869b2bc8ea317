"""AsyncSandbox: create, find, run commands in and terminate gVisor sandboxes."""

from __future__ import annotations

import builtins
import dataclasses
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Iterable, cast

import anyio
import docker.errors
from docker.models.containers import Container

from . import apisocket, ownership
from . import labels as L
from .bootstrap import CLOSE_SIGNAL, DOCKERD_LOG, OPEN_SIGNAL, RESTART_SIGNAL, InitReport, InitReportParser
from .engine import Engine
from .errors import (
    DaemonTimeout,
    DockerdCrashed,
    SandboxError,
    SandboxExists,
    SandboxNotFound,
    SandboxNotRunning,
    disk_full,
)
from .events import EventBus, Listener, Phase, ProgressEvent, State
from .lifecycle import EXPIRED, expired, forget, prune
from .pausing import LifecycleMixin
from .ports import PROC_NET_FILES, ListeningPort, parse_listening, sandbox_address
from .ports import url as port_url
from .process import AsyncProcess
from .spec import SandboxSpec
from .startup import Startup, failure
from .status import GONE, PAUSED, READY, SandboxInfo, info_from_container, record_ready
from .threads import poll_until, run_sync

if TYPE_CHECKING:
    from .snapshots import Snapshot

log = logging.getLogger(__name__)


class AsyncSandbox(LifecycleMixin):
    """A gVisor sandbox on the host's Docker engine, optionally with its own Docker daemon.

    Make one with :meth:`create` (or :meth:`prepare` then :meth:`start` to
    listen to its events from the first one), or find one with :meth:`get`.

    Attributes:
        spec: What it was created with.
        events: Its progress events (startup phases, later daemon changes).
        container_id: The host engine's container id (empty before it exists).
    """

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        engine: Engine | None = None,
        container_id: str = "",
        owner: str = "api",
        pool_key: str | None = None,
        use_pool: bool = True,
        api_dir: str | None = None,
    ):
        self.spec = spec
        self.api_dir = api_dir
        """The host directory of its Docker API socket (see :attr:`api_socket`), if it has one."""
        self.engine = engine or Engine.default()
        self.container_id = container_id
        self.owner = owner
        self.pool_key = pool_key
        """Set for a warm-pool member: it is created under a pool name with this key."""
        self.use_pool = use_pool and pool_key is None and spec.ttl is None and spec.idle_timeout is None
        """Whether :meth:`start` may take a matching ready sandbox from a warm pool."""
        self.from_pool = False
        self.events = EventBus()
        self.ready_seconds: float | None = None
        """How long its create took (set when it became ready in this process)."""
        self._ready = False
        self._prepared_at = time.monotonic()
        from .docker import AsyncDocker
        from .files import AsyncFiles

        self.docker = AsyncDocker(self)
        self.files = AsyncFiles(self)

    def __repr__(self) -> str:
        return f"<AsyncSandbox {self.name!r} image={self.spec.image!r} docker={self.spec.docker}>"

    @property
    def name(self) -> str:
        """The sandbox's name."""
        return self.spec.name

    @property
    def api_socket(self) -> str | None:
        """The host path of the socket on which the inner Docker daemon answers (None without one)."""
        return os.path.join(self.api_dir, apisocket.SOCKET_NAME) if self.api_dir else None

    # -- creating ---------------------------------------------------------

    @classmethod
    def prepare(
        cls, spec: SandboxSpec | None = None, *, engine: Engine | None = None, owner: str = "api", use_pool: bool = True, **fields: Any
    ) -> "AsyncSandbox":
        """Validate a spec and return an unstarted sandbox, so listeners can subscribe before :meth:`start`.

        Args:
            spec: A ready spec, or None to build one from ``fields``
                (``name``, ``image``, ``docker``, ``cpu``, ``memory``, ``network``, ``env``, ``timeout``, ``pids``).
            owner: Who creates it, recorded in its labels.
            use_pool: Take a ready sandbox from a warm pool when one matches.
        """
        if spec is None:
            name = fields.pop("name", None)
            spec = SandboxSpec.parse(name, **fields)
        elif fields:
            raise TypeError(f"pass either a spec or fields, not both ({', '.join(fields)})")
        return cls(spec, engine=engine, owner=owner, use_pool=use_pool)

    @classmethod
    async def create(
        cls,
        spec: SandboxSpec | None = None,
        *,
        engine: Engine | None = None,
        owner: str = "api",
        on_event: Listener | None = None,
        use_pool: bool = True,
        **fields: Any,
    ) -> "AsyncSandbox":
        """Create a sandbox and wait until it is ready (its Docker daemon answering, if asked for).

        Raises:
            SpecError: Before anything is created, if a field is wrong.
            SandboxError: A subclass saying what failed and how to fix it; the
                half-created sandbox has been removed.
        """
        sandbox = cls.prepare(spec, engine=engine, owner=owner, use_pool=use_pool, **fields)
        if on_event is not None:
            sandbox.events.add_listener(on_event)
        await sandbox.start()
        return sandbox

    async def start(self) -> None:
        """Make this prepared sandbox ready: claim a matching warm-pool member (if ``use_pool``) or boot
        a new container; progress goes to :attr:`events` (see :class:`jupyter_sandbox.startup.Startup`).

        Raises:
            SandboxError: A subclass saying what failed and how to fix it; whatever was created has been removed.
        """
        await Startup(self).run()

    def adopt(self, container_id: str, *, api_dir: str | None = None, ready_seconds: float | None = None, from_pool: bool = False) -> None:
        """Become the ready sandbox of an existing container: the one its startup booted, or a warm-pool
        member claimed for it (``from_pool``; :func:`jupyter_sandbox.pool.claim` renamed it and recorded its owner).

        Args:
            container_id: The container, already named and ready.
            api_dir: Its host socket directory, if it has one.
            ready_seconds: How long the create took.
            from_pool: It is a claimed warm-pool member.
        """
        self.container_id = container_id
        self.api_dir = api_dir
        self.ready_seconds = ready_seconds
        self.from_pool = from_pool
        if ready_seconds is not None:
            record_ready(container_id, ready_seconds)  # the same figure for every process's views
        self._ready = True

    @classmethod
    async def get(cls, name: str, *, engine: Engine | None = None) -> "AsyncSandbox":
        """Attach to an existing sandbox by name (created by any process).

        Raises:
            SandboxNotFound: If the engine has no sandbox of that name.
            SandboxExpired: If its ttl ran out (it is removed now).
        """
        engine = engine or Engine.default()
        container = await engine.find(name)
        if container is None:
            raise SandboxNotFound(f"No sandbox named {name!r}.", fix="`jupyter sandbox ls` lists the sandboxes")
        sandbox = cls.from_container(container, engine=engine)
        if expired(container.labels):
            await sandbox._remove_expired(container.labels)
        return sandbox

    @classmethod
    def from_container(cls, container: Container, *, engine: Engine | None = None) -> "AsyncSandbox":
        """Wrap a managed container (as found through its labels)."""
        assert container.id is not None and container.name is not None  # the engine's containers have both
        environment = (container.attrs.get("Config") or {}).get("Env")
        spec = dataclasses.replace(L.spec_from_labels(container.labels, environment), name=L.name_of(container.name, container.labels))
        owner = ownership.labels_of(container.id, container.labels).get(L.OWNER, "")
        return cls(spec, engine=engine, container_id=container.id, owner=owner, api_dir=apisocket.dir_of(container.labels))

    @classmethod
    async def list(cls, *, engine: Engine | None = None) -> list[SandboxInfo]:
        """Every sandbox in the engine, with its state, oldest first.

        Time limits are enforced on the way (see :meth:`enforce_limits`): an
        expired sandbox is removed and left out, an idle one is paused.
        """
        engine = engine or Engine.default()
        containers = await engine.containers()
        infos: list[SandboxInfo] = []

        async def one(container: Container) -> None:
            info = await cls.from_container(container, engine=engine).status(enforce=True)
            if info.state != GONE:
                infos.append(info)

        async with anyio.create_task_group() as group:
            for container in containers:
                group.start_soon(one, container)
        await run_sync(prune, {c.id for c in containers})
        return sorted(infos, key=lambda i: (i.created or 0, i.name))

    async def reports(self) -> builtins.list[InitReport]:
        """Everything the init program reported so far (read from the container log)."""
        try:
            raw = await self.engine.call(self.engine.client.api.logs, self.container_id, stdout=True, stderr=False)
        except SandboxError as error:
            if _vanished(error):
                return []
            raise
        return InitReportParser().feed(raw.decode("utf-8", errors="replace") + "\n")

    async def status(self, *, enforce: bool = False) -> SandboxInfo:
        """The sandbox's current state, read from the engine.

        Args:
            enforce: Apply its time limits first, as a face looking at it does
                (an expired sandbox is removed and shows as ``gone``, an idle one is paused).
        """
        try:
            attrs = await self.engine.call(self.engine.client.api.inspect_container, self.container_id)
        except SandboxError as error:
            if _vanished(error):
                return SandboxInfo(
                    name=self.name,
                    state=GONE,
                    reason="the sandbox container no longer exists",
                    image=self.spec.image,
                    docker=self.spec.docker,
                    network=self.spec.network,
                )
            raise
        reports = await self.reports()
        phases = [ProgressEvent(self.name, r.phase, r.state, r.uptime or 0.0, r.message, r.log_tail, uptime=r.uptime).to_dict() for r in reports]
        info = info_from_container(attrs, reports, phases)
        if enforce:
            try:
                done = await self.enforce_limits(attrs, info.state)
            except SandboxError as error:  # e.g. it stopped meanwhile: show what is, do not fail the listing
                log.warning("time limits of sandbox %s: %s", self.name, error.message)
                done = None
            if done == EXPIRED:
                info.state, info.reason = GONE, "its ttl ran out: removed"
            elif done is not None:
                return await self.status()
        return info

    @property
    def daemon_known_ready(self) -> bool:
        """Whether this object has seen the sandbox ready (then :meth:`wait_ready` costs one engine
        inspect: it still resumes a paused sandbox and removes an expired one)."""
        return self._ready

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the sandbox is ready (at once if it already is), for a use that follows.

        Every docker command, image copy and ``save`` waits here first, whatever
        route it then takes to the inner daemon (exec, or the host socket where a
        frozen daemon would make it hang), so this is where they are made safe:
        :meth:`ensure_running` resumes a paused sandbox and removes an expired one.

        Raises:
            SandboxNotRunning: If it is stopped or gone.
            SandboxExpired: If its ttl ran out (it is removed).
            DockerdCrashed: If its Docker daemon failed.
            DaemonTimeout: If it is still starting after ``timeout`` seconds.
        """
        await self.ensure_running()
        if self._ready:
            return
        last: list[SandboxInfo] = []

        async def ready() -> bool:
            info = await self.status()
            last[:] = [info]
            if info.state == PAUSED:
                await self.ensure_running()
                return await ready()
            self._raise_if_unusable(info)
            return info.state == READY

        if not await poll_until(ready, timeout if timeout is not None else self.spec.timeout):
            info = last[0]
            raise DaemonTimeout(
                f"Sandbox {self.name!r} is still starting ({info.reason}).",
                phase=info.phases[-1]["phase"] if info.phases else "sandbox_start",
                elapsed=info.uptime or 0.0,
                fix="wait longer, or look at `jupyter sandbox logs " + self.name + "`",
            )
        self._ready = True

    def _raise_if_unusable(self, info: SandboxInfo) -> None:
        if info.state in ("stopped", "gone"):
            raise SandboxNotRunning(
                f"Sandbox {self.name!r} is {info.state}: {info.reason}.", fix=f"create a new one (`jupyter sandbox rm {self.name}` clears the name)"
            )
        if info.state == "failed":
            tail = next((p["detail"] for p in reversed(info.phases) if p.get("detail")), "")
            raise DockerdCrashed(
                f"The Docker daemon of sandbox {self.name!r} has failed: {info.reason}. Its inner containers stopped with it.",
                exit_code=None,
                log_tail=tail,
                fix=f"restart it with sb.restart_daemon() or `jupyter sandbox restart-daemon {self.name}` "
                "(containers started with --restart=always come back by themselves)",
            )

    # -- using ----------------------------------------------------------------

    async def exec(
        self,
        command: str | Iterable[str],
        *,
        shell: bool = False,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        stdin: bytes | Iterable[bytes] | None = None,
    ) -> AsyncProcess:
        """Start a command in the sandbox and return it while it runs.

        Args:
            command: An argv list (run as is, no shell), or with ``shell=True`` one string for ``/bin/sh -c``.
            env: Extra environment variables.
            workdir: Working directory inside the sandbox.
            user: User to run as (default root).
            timeout: Seconds after which it is killed (:class:`ExecTimeout` on wait).
            stdin: Bytes, or an iterable of byte chunks, fed to its stdin.
        """
        if shell:
            if not isinstance(command, str):
                raise SandboxError("With shell=True the command must be one string.", fix="pass e.g. 'ls -l | wc -l'")
            argv = ["/bin/sh", "-c", command]
        elif isinstance(command, str):
            raise SandboxError(
                f"A command string needs shell=True; without it pass a list (got {command!r}).", fix=f"use {command.split()!r} or shell=True"
            )
        else:
            argv = list(command)
        await self.ensure_running()
        try:
            process = await AsyncProcess.start(
                self.engine, self.container_id, argv, env=env, workdir=workdir, user=user, timeout=timeout, stdin=stdin, sandbox=self.name
            )
        except SandboxError as error:
            raise await self._explain_exec_failure(error) from None
        process.explain = lambda text: fork_failure_hint(text, self.spec.pids)
        process.disk_full = self.disk_full_error
        return process

    def disk_full_error(self, tail: str) -> SandboxError:
        """The typed error (:class:`DiskFull`) for a command here whose output says "no space left on device"."""
        return disk_full(self.name, self.spec.disk, self.spec.memory, detail=tail.strip()[-2000:] or None)

    async def _explain_exec_failure(self, error: SandboxError) -> SandboxError:
        cause = error.__cause__
        if isinstance(cause, docker.errors.NotFound) or (isinstance(cause, docker.errors.APIError) and cause.status_code == 409):
            info = await self.status()
            return SandboxNotRunning(
                f"Sandbox {self.name!r} is {info.state}: {info.reason}.", fix=f"create a new one (`jupyter sandbox rm {self.name}` clears the name)"
            )
        return error

    async def run(self, command: str | Iterable[str], **options: Any) -> AsyncProcess:
        """Run a command to its end, keeping its output; returns the finished process."""
        process = await self.exec(command, **options)
        await process.wait()
        return process

    async def restart_daemon(self, timeout: float | None = None) -> None:
        """Restart the Docker daemon inside (after a crash, or to reset it) and wait until it answers."""
        if not self.spec.docker:
            from .errors import DockerNotEnabled

            raise DockerNotEnabled(f"Sandbox {self.name!r} has no Docker daemon.", fix="create one with docker=True")
        before = len(await self.reports())
        try:
            await self.engine.call(self.engine.client.api.kill, self.container_id, signal=RESTART_SIGNAL)
        except SandboxError as error:
            raise await self._explain_exec_failure(error) from None
        self._ready = False

        async def answers() -> bool:
            for report in (await self.reports())[before:]:
                if report.state == "failed":
                    raise failure(report, self.spec)
                if report.phase == Phase.READY.value and report.state == "done":
                    return True
            return False

        if await poll_until(answers, timeout or self.spec.timeout, most=0.1):
            self._ready = True
            return
        raise DaemonTimeout(
            f"dockerd in sandbox {self.name!r} did not answer after a restart.",
            phase="answering",
            elapsed=timeout or self.spec.timeout,
            fix=f"look at `jupyter sandbox logs {self.name}`",
        )

    async def set_egress(self, egress: Any) -> dict[str, Any]:
        """Change the egress policy of this running network-``sandbox`` sandbox; new connections follow it at once.

        Args:
            egress: ``"public"``, ``"none"`` or a list of CIDRs / ``"host:port"`` (resolved now).

        Returns:
            The live policy: ``egress``, ``resolved`` and the sandbox's ``ip``.
        """
        from .egress import set_egress

        record = await set_egress(self.engine, self.spec, self.container_id, egress)
        return {"egress": record["egress"], "resolved": record["resolved"], "ip": record["ip"]}

    async def snapshot(self, tag: str, *, owner: str | None = None, server: str = "") -> "Snapshot":
        """Checkpoint it whole (memory and filesystem: inner daemon, images, running inner containers)
        under ``tag``; it keeps running.  ``AsyncSandbox.create(snapshot=tag)`` forks it.

        Raises:
            SpecError: A malformed tag, or a sandbox on network ``host`` (runsc cannot checkpoint it).
            SnapshotExists: If the tag is taken (snapshots are never overwritten).
            SnapshotFailed: If snapshots are off on this host, or the engine failed.
        """
        from .snapshots import take

        return await take(self, tag, owner=owner or self.owner, server=server or os.environ.get(L.SERVER_ENV, ""))

    async def check_name_free(self) -> None:
        """Refuse, before anything starts, a name another sandbox has, so that a view need not show a
        create that never began (the engine still refuses a clash that comes later).

        Raises:
            SandboxExists: If a sandbox of this name exists.
        """
        if await self.engine.find(self.name) is not None:
            raise SandboxExists(
                f"A sandbox named {self.name!r} already exists; nothing was created.",
                fix=f"choose another name, or remove it first with `jupyter sandbox rm {self.name}`",
            )

    async def close_api(self, timeout: float = 10.0) -> None:
        """Close the host socket of the inner Docker daemon (before a checkpoint: gVisor cannot save a bound host socket).

        The daemon and its containers keep running; commands that need the socket
        fail until :meth:`open_api`.  Safe to call twice.

        Raises:
            SandboxError: If the sandbox has no host socket, or it is not closable (an image without perl or socat).
        """
        path = self._api_socket_or_raise()
        await self._signal(CLOSE_SIGNAL)
        if not await poll_until(lambda: run_sync(lambda: not apisocket.is_socket(path)), timeout, interval=0.02, most=0.02):
            raise SandboxError(
                f"The host socket of sandbox {self.name!r} did not close.",
                fix="the image needs perl or socat for a closable socket (the default image has both)",
            )

    async def open_api(self, timeout: float = 10.0) -> None:
        """Open the host socket again (after :meth:`close_api`, a restore or a fork) and wait until it answers."""
        path = self._api_socket_or_raise()
        await self._signal(OPEN_SIGNAL)
        if not await poll_until(lambda: run_sync(lambda: apisocket.is_socket(path) and apisocket.ping(path)), timeout, interval=0.02, most=0.02):
            raise SandboxError(
                f"The host socket of sandbox {self.name!r} did not answer after opening it.",
                fix=f"look at `jupyter sandbox logs {self.name}`, or restart its daemon",
            )
        await run_sync(apisocket.secure, path)

    def _api_socket_or_raise(self) -> str:
        if self.api_socket is None:
            raise SandboxError(
                f"Sandbox {self.name!r} has no host socket for its Docker daemon.",
                fix="create it with docker=True (sandboxes created by older versions have none)",
            )
        return self.api_socket

    async def _signal(self, signal: str) -> None:
        try:
            await self.engine.call(self.engine.client.api.kill, self.container_id, signal=signal)
        except SandboxError as error:
            raise await self._explain_exec_failure(error) from None

    async def dockerd_log(self, lines: int = 200) -> str:
        """The last lines of the Docker daemon's log inside the sandbox."""
        process = await self.run(["tail", "-n", str(lines), DOCKERD_LOG])
        return process.stdout_text + process.stderr_text

    async def follow_dockerd_log(self, lines: int = 200) -> AsyncProcess:
        """Its last ``lines`` lines, then each new one as dockerd writes it (``tail -F``), until killed.

        The process ends by itself when the sandbox goes away.
        """
        return await self.exec(["tail", "-n", str(lines), "-F", DOCKERD_LOG])

    # -- ports ----------------------------------------------------------------

    async def address(self, attrs: dict[str, Any] | None = None) -> str:
        """The address the host reaches this sandbox's ports at (read from the engine: any network it is on).

        Args:
            attrs: The engine's inspect data of its container when the caller has it fresh (saves a call).

        Raises:
            NetworkUnavailable: If the sandbox has network ``none`` (ports need network ``sandbox``).
            SandboxNotRunning: If it is stopped or gone.
        """
        if self.spec.network == "none":
            return sandbox_address("none", {}, self.name)
        if attrs is None:
            try:  # types-docker leaves inspect_container's result unannotated
                attrs = cast("dict[str, Any]", await self.engine.call(self.engine.client.api.inspect_container, self.container_id))
            except SandboxError as error:
                raise await self._explain_exec_failure(error) from None
        if not (attrs.get("State") or {}).get("Running"):
            info = await self.status()
            raise SandboxNotRunning(
                f"Sandbox {self.name!r} is {info.state}: {info.reason}.", fix=f"create a new one (`jupyter sandbox rm {self.name}` clears the name)"
            )
        return sandbox_address(self.spec.network, attrs, self.name)

    async def listening_ports(self) -> builtins.list[ListeningPort]:
        """The TCP ports something listens on inside (its own processes and inner ``--network=host`` containers)."""
        process = await self.run(["cat", *PROC_NET_FILES], timeout=30)
        return parse_listening([process.stdout_text])

    def url(self, port: int, path: str = "", *, base_url: str | None = None) -> str:
        """The URL of a port of this sandbox through the Jupyter server (``<base_url>sandbox/proxy/NAME/PORT/``).

        The base URL is the server's when this process runs under one (see
        :func:`jupyter_sandbox.ports.server_base_url`), else ``/``.
        """
        return port_url(self.name, port, path, base_url=base_url)

    async def terminate(self) -> bool:
        """Remove the sandbox and everything it holds; True if it existed (safe to call twice)."""
        existed = False
        self.docker.close()
        if self.container_id:
            existed = await self.engine.remove(self.container_id)
            forget(self.container_id)
        self.events.publish(
            ProgressEvent(
                self.name, Phase.REMOVED.value, State.DONE.value, round(time.monotonic() - self._prepared_at, 4), f"sandbox {self.name} removed"
            )
        )
        self.events.close()
        return existed


FORK_FAILURES = ("cannot fork", "can't fork", "fork: retry", "fork: resource temporarily unavailable")


def fork_failure_hint(text: str, pids: int | None) -> str | None:
    """A hint when a command failed because a fork did (the sandbox's ``pids`` limit), or None."""
    if not any(marker in text.lower() for marker in FORK_FAILURES):
        return None
    limit = f"its limit of {pids} processes and threads" if pids else "a process limit"
    return (
        f"A fork failed: the sandbox reached {limit} (the host and other sandboxes are unaffected). "
        "Create it with a larger pids= (`--pids`), or pids='unlimited'."
    )


def _vanished(error: SandboxError) -> bool:
    """Whether an engine error means the container is gone or on its way out (removed concurrently)."""
    cause = error.__cause__
    return isinstance(cause, docker.errors.NotFound) or (
        isinstance(cause, docker.errors.APIError) and cause.status_code == 409 and "removal" in str(cause)
    )
