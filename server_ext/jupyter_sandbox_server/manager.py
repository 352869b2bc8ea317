"""SandboxManager: the server's one object that creates, finds and removes sandboxes.

Handlers stay thin and call this; it runs every core call on the server's
event loop (the core keeps docker-py in threads), starts creates in the
background so a POST answers at once, and owns the cross-process
:class:`~jupyter_sandbox.watch.SandboxWatcher` whose updates the
:class:`~.events.SandboxEventPublisher` puts on the server's event bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
from typing import Any

import anyio
from traitlets import Bool, Float, Int, List, Unicode, Union
from traitlets.config import LoggingConfigurable

from jupyter_sandbox import labels as L
from jupyter_sandbox import lifecycle, ownership, snapshots
from jupyter_sandbox.engine import Engine
from jupyter_sandbox.errors import (
    DockerNotEnabled,
    NetworkNotAllowed,
    PortUnreachable,
    SandboxError,
    SandboxExists,
    SandboxExpired,
    SandboxNotFound,
    SpecError,
    TerminalsDisabled,
)
from jupyter_sandbox.files import AsyncFiles
from jupyter_sandbox.pool import WarmPool
from jupyter_sandbox.ports import check_port
from jupyter_sandbox.process import AsyncProcess
from jupyter_sandbox.progress import ready_text
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.shell import shell_command
from jupyter_sandbox.spec import DEFAULT_DAEMON_TIMEOUT, DEFAULT_IMAGE, SandboxSpec, format_duration, parse_duration
from jupyter_sandbox.usage import usage_of
from jupyter_sandbox.watch import SandboxWatcher, WatchUpdate

from .events import SandboxEventPublisher

OWNER = "server"


class SandboxManager(LoggingConfigurable):
    """Creates and removes sandboxes for the REST API and the Lab panel.

    The create defaults below apply to fields a request leaves out; they are
    named as ``jupyter sandbox create``'s options.  Configure them as
    ``c.SandboxManager.docker = True`` in ``jupyter_server_config.py``.
    """

    image = Unicode(DEFAULT_IMAGE, help="Host image a sandbox runs when a create does not name one (--image).").tag(config=True)
    docker = Bool(False, help="Start a Docker daemon inside sandboxes whose create does not say (--docker).").tag(config=True)
    cpu = Union(
        [Float(), Unicode()],
        default_value=None,
        allow_none=True,
        help="CPU limit for creates that give none, e.g. 1, 0.5, '500m' or 'unlimited' (--cpu). "
        "Unset: $JUPYTER_SANDBOX_DEFAULT_CPU, else half the host's CPUs.",
    ).tag(config=True)
    memory = Unicode(
        None,
        allow_none=True,
        help="Memory limit for creates that give none, e.g. '512Mi' or 'unlimited' (--memory). Unset: $JUPYTER_SANDBOX_DEFAULT_MEMORY, else 4Gi.",
    ).tag(config=True)
    pids = Union(
        [Int(), Unicode()],
        default_value=None,
        allow_none=True,
        help="Most processes and threads inside sandboxes whose create gives none, e.g. 512 or 'unlimited' "
        "(--pids). Unset: $JUPYTER_SANDBOX_DEFAULT_PIDS, else 512.",
    ).tag(config=True)
    network = Unicode("sandbox", help="Network mode for creates that give none: sandbox, none or host (--network).").tag(config=True)
    allowed_networks = List(
        Unicode(),
        default_value=["sandbox", "none"],
        help="Network modes a create may ask for; others are refused with 403. Add 'host' only if "
        "users of this server may reach the host's own services (it is not isolated).",
    ).tag(config=True)
    timeout = Float(DEFAULT_DAEMON_TIMEOUT, help="Seconds a startup may take for creates that give none (--timeout).").tag(config=True)
    keep_on_exit = Bool(False, help="Keep the sandboxes this server created when it stops (by default they are removed).").tag(config=True)
    pool_size = Int(
        0,
        help="Warm pool: Docker-ready sandboxes to keep booted for creates with the default spec "
        "(0: no pool). A matching create takes one in milliseconds; the pool is emptied when the server stops.",
    ).tag(config=True)
    proxy_csp = Unicode(
        "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads; frame-ancestors 'self'",
        help="Content-Security-Policy added to every answer of sandbox/proxy/. The default 'sandbox' directive gives "
        "pages from a sandbox an origin of their own, so their scripts cannot use your Jupyter session (they reach "
        "their own app through the link's capability path); '' serves them at Jupyter's origin, where their "
        "scripts can act as you: only for apps you trust.",
    ).tag(config=True)
    pool_max_age = Float(None, allow_none=True, help="Warm pool: replace members older than this many seconds.").tag(config=True)
    default_ttl = Union(
        [Float(), Unicode()],
        default_value=None,
        allow_none=True,
        help="Time to live of sandboxes whose create gives none: seconds or '30m', '2h', '1d' "
        "(--ttl; None: they live until removed). A sandbox with a time limit never comes from the warm pool.",
    ).tag(config=True)
    max_ttl = Union(
        [Float(), Unicode()],
        default_value=None,
        allow_none=True,
        help="Longest ttl a create may ask for; creates that give none get the default_ttl, or this (None: no maximum).",
    ).tag(config=True)
    idle_timeout = Union(
        [Float(), Unicode()],
        default_value=None,
        allow_none=True,
        help="Pause sandboxes whose create gives no idle_timeout after this long without use "
        "(--idle-timeout; None: never). Their next use resumes them.",
    ).tag(config=True)
    heartbeat_interval = Float(
        10.0,
        help="Seconds of silence after which a heartbeat goes on the event bus, so "
        "the Lab panel notices within that time that it missed events (0: none).",
    ).tag(config=True)
    limits_interval = Float(
        5.0, help="Seconds between two checks of every sandbox's ttl and idle timeout (expired ones are removed, idle ones paused)."
    ).tag(config=True)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.engine = Engine.default()
        self.server_id = os.environ.get(L.SERVER_ENV) or None
        self.watcher = SandboxWatcher(self.engine, server_id=self.server_id)
        self._watch_task: asyncio.Task[None] | None = None
        self._pool_task: asyncio.Task[None] | None = None
        self._limits_task: asyncio.Task[None] | None = None
        self._stop_notices: Any = None
        self._creates: dict[str, asyncio.Task[None]] = {}
        self.publisher: SandboxEventPublisher | None = None
        event_logger = getattr(self.parent, "event_logger", None)
        if event_logger is not None:
            self.publisher = SandboxEventPublisher(event_logger, self.watcher, self.heartbeat_interval)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start following the engine's sandboxes and publishing them (idempotent; needs the running event loop)."""
        if self.publisher is not None:
            self.publisher.start()
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = asyncio.ensure_future(self.watcher.run())
        if self._limits_task is None or self._limits_task.done():
            self._limits_task = asyncio.ensure_future(self._enforce_limits())
        if self._stop_notices is None:
            self._stop_notices = lifecycle.add_notice_listener(self._on_notice)
        if self.pool_size > 0 and (self._pool_task is None or self._pool_task.done()):
            template = self.spec_from_body({"name": "pool-template", "docker": True})
            if template.ttl is not None or template.idle_timeout is not None:
                self.log.warning(
                    "jupyter-sandbox: creates get a ttl or idle timeout by default here, and a sandbox "
                    "with a time limit never comes from the warm pool: pool_size has no effect"
                )
                return
            pool = WarmPool([template], size=self.pool_size, max_age=self.pool_max_age, engine=self.engine)
            self._pool_task = asyncio.ensure_future(pool.run())

    async def stop(self) -> None:
        """Stop the watcher and pending creates; remove this server's sandboxes unless ``keep_on_exit``."""
        if self._stop_notices is not None:
            self._stop_notices()
            self._stop_notices = None
        tasks = [t for t in [self._watch_task, self._pool_task, self._limits_task, *self._creates.values()] if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.publisher is not None:
            await self.publisher.stop()
        if self.keep_on_exit:
            return
        removed = 0
        try:
            containers = await self.engine.containers()
        except SandboxError as error:  # no engine: nothing to remove here, and the server must still stop
            self.log.warning("jupyter-sandbox: could not look for this server's sandboxes to remove them: %s", error.message)
            return
        for container in containers:
            labels = ownership.labels_of(container.id, container.labels)  # pool members it claimed are its own too
            if labels.get(L.OWNER) == OWNER and labels.get(L.OWNER_PID) == str(os.getpid()) and labels.get(L.OWNER_HOST) == socket.gethostname():
                removed += await self.engine.remove(container.id)
        if removed:
            self.log.info("jupyter-sandbox: removed %d sandbox(es) this server created", removed)

    # -- requests ------------------------------------------------------------------

    def spec_from_body(self, body: Any) -> SandboxSpec:
        """Validate a create request's JSON body, filling left-out fields from the configured defaults.

        Raises:
            SpecError: Naming the wrong field.
        """
        if not isinstance(body, dict):
            return SandboxSpec.from_dict(body)  # raises, naming the body
        defaults = {
            "image": self.image,
            "docker": self.docker,
            "cpu": self.cpu,
            "memory": self.memory,
            "network": self.network,
            "timeout": self.timeout,
            "pids": self.pids,
            "ttl": self.default_ttl,
            "idle_timeout": self.idle_timeout,
        }
        if body.get("snapshot") is not None:  # a fork: the rest is the snapshot's
            defaults = {k: v for k, v in defaults.items() if k in ("timeout", "ttl", "idle_timeout")}
            self.snapshot(body["snapshot"])  # one this server may see, else 404
        filled = {**{k: v for k, v in defaults.items() if v is not None}, **body}
        spec = self._bounded(SandboxSpec.from_dict(filled))
        if spec.network not in self.allowed_networks:
            raise NetworkNotAllowed(
                f"network {spec.network!r} is not allowed on this server (allowed: {', '.join(self.allowed_networks) or 'none'}).",
                fix="use network 'sandbox' (isolated, with egress) or 'none'; an administrator can change c.SandboxManager.allowed_networks",
            )
        return spec

    # -- snapshots -------------------------------------------------------------------

    def snapshot(self, tag: Any) -> snapshots.Snapshot:
        """A snapshot this server may see (made outside any server, or by this one)."""
        found = snapshots.load(tag)
        if not L.visible_to({L.SERVER: found.server}, self.server_id):
            raise snapshots.SnapshotNotFound(f"No snapshot tagged {found.tag!r}.", fix="GET /sandbox/api/snapshots lists them")
        return found

    def snapshots(self) -> list[dict[str, Any]]:
        """The snapshots this server may see, oldest first."""
        return [s.to_dict() for s in snapshots.list_all() if L.visible_to({L.SERVER: s.server}, self.server_id)]

    async def take_snapshot(self, name: str, tag: Any) -> dict[str, Any]:
        """Checkpoint a sandbox under ``tag`` (it keeps running)."""
        sandbox = await self.find(name)
        return (await sandbox.snapshot(tag, owner=OWNER, server=self.server_id or "")).to_dict()

    def remove_snapshot(self, tag: Any) -> None:
        """Delete a snapshot this server may see."""
        snapshots.remove(self.snapshot(tag).tag)

    async def set_egress(self, name: str, egress: Any) -> dict[str, Any]:
        """Change a running sandbox's egress policy (new connections follow it at once)."""
        return await (await self.find(name)).set_egress(egress)

    def _bounded(self, spec: SandboxSpec) -> SandboxSpec:
        """Apply ``max_ttl``: a longer ttl is refused, a create without one gets the maximum."""
        most = parse_duration(self.max_ttl, "max_ttl")
        if most is None:
            return spec
        if spec.ttl is None:
            return dataclasses.replace(spec, ttl=most)
        if spec.ttl > most:
            raise SpecError(
                "ttl",
                f"{format_duration(spec.ttl)} is more than this server's maximum of {format_duration(most)}",
                fix=f"ask for at most {format_duration(most)} (c.SandboxManager.max_ttl)",
            )
        return spec

    # -- pause, resume, time limits --------------------------------------------------

    async def pause(self, name: str) -> dict[str, Any]:
        """Pause a sandbox; its state afterwards."""
        sandbox = await self.find(name)
        await sandbox.pause()
        return (await sandbox.status()).to_dict()

    async def resume(self, name: str) -> dict[str, Any]:
        """Resume a paused sandbox; its state afterwards."""
        sandbox = await self.find(name)
        await sandbox.resume()
        return (await sandbox.status()).to_dict()

    def _on_notice(self, notice: lifecycle.Notice) -> None:
        """A notice from the core (auto-resume, idle pause, expiry): a log line, and an update on the event bus."""
        self.log.info("jupyter-sandbox: %s", notice.message)
        self.watcher.notice(WatchUpdate("notice", notice.to_dict()))

    async def _enforce_limits(self) -> None:
        """Every ``limits_interval`` seconds: remove expired sandboxes and pause idle ones (see the watcher)."""
        while True:
            await asyncio.sleep(self.limits_interval)
            try:
                await self.watcher.enforce_limits()
            except SandboxError as error:
                self.log.warning("jupyter-sandbox: checking time limits failed: %s", error.message)

    async def watched(self, wait: float = 5.0) -> dict[str, Any]:
        """What the watcher sees (every sandbox with its phases, the engine's state), as of emission ``seq``.

        Waits up to ``wait`` seconds for the watcher's first listing of the engine.
        """
        self.start()
        with anyio.move_on_after(wait):
            await self.watcher.wait_synced()
        if self.publisher is None:
            raise SandboxError("This server has no event bus (jupyter-server's event_logger).")
        return self.publisher.state()

    async def list(self) -> list[dict[str, Any]]:
        """Every sandbox on the engine, as JSON-ready dicts (with ``used_by``, see :meth:`with_used_by`)."""
        infos = await AsyncSandbox.list(engine=self.engine)
        visible = [info.to_dict() for info in infos if L.visible_to({L.SERVER: info.server}, self.server_id)]
        return await self.with_used_by(visible)

    async def notebooks(self) -> dict[str, str]:
        """Kernel id -> the path of the notebook (or console) whose session runs it, from the session manager."""
        sessions = getattr(self.parent, "session_manager", None)
        if sessions is None:
            return {}
        try:
            listed = await sessions.list_sessions()
        except Exception as error:  # a session store problem must not fail a listing
            self.log.warning("jupyter-sandbox: cannot list the sessions: %s", error)
            return {}
        return {s["kernel"]["id"]: s.get("path") or s.get("name") or "" for s in listed if s.get("kernel")}

    async def with_used_by(self, infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add ``used_by`` to each sandbox: the notebook whose kernel created it (null if none, or its session ended)."""
        paths = await self.notebooks() if any(info.get("kernel") for info in infos) else {}
        return [{**info, "used_by": paths.get(info.get("kernel") or "") or None} for info in infos]

    async def find(self, name: str) -> AsyncSandbox:
        """The sandbox called ``name``, if this server may see it (raises :class:`SandboxNotFound`).

        One whose ttl ran out is removed now (:class:`SandboxExpired`, 410).
        """
        container = await self._container(name)
        sandbox = AsyncSandbox.from_container(container, engine=self.engine)
        if lifecycle.expired(container.labels):
            await sandbox._remove_expired(container.labels)
        return sandbox

    async def _container(self, name: str) -> Any:
        container = await self.engine.find(name)
        if container is None or not L.visible_to(ownership.labels_of(container.id, container.labels), self.server_id):
            raise SandboxNotFound(f"No sandbox named {name!r}.", fix="GET /sandbox/api/sandboxes lists the sandboxes")
        return container

    async def status(self, name: str) -> dict[str, Any]:
        """One sandbox's state and phases, as a JSON-ready dict.

        A create this server accepted shows as ``starting`` (or ``failed``)
        before its container exists, so a GET right after the 202 never 404s.
        """
        try:
            return (await self.with_used_by([(await (await self.find(name)).status(enforce=True)).to_dict()]))[0]
        except SandboxNotFound:
            pending = next((s for s in self.watcher.snapshot() if s["name"] == name and not s["container_id"]), None)
            if pending is None:
                raise
            return pending

    async def create(self, spec: SandboxSpec) -> None:
        """Start creating a sandbox in the background; progress goes to the watcher's listeners.

        Raises:
            SandboxExists: If the name is taken (checked before anything starts).
        """
        if spec.name in self._creates or await self.engine.find(spec.name) is not None:
            raise SandboxExists(
                f"A sandbox named {spec.name!r} already exists.",
                fix=f"choose another name, or remove it first (DELETE /sandbox/api/sandboxes/{spec.name})",
            )
        self.start()
        sandbox = AsyncSandbox.prepare(spec, engine=self.engine, owner=OWNER)
        self.watcher.announce(spec, OWNER)
        sandbox.events.add_listener(self.watcher.record)
        self._creates[spec.name] = asyncio.ensure_future(self._run_create(sandbox))

    async def _run_create(self, sandbox: AsyncSandbox) -> None:
        try:
            await sandbox.start()
            self.log.info(
                "jupyter-sandbox: %s",
                ready_text(
                    sandbox.spec.docker, sandbox.ready_seconds or 0, name=sandbox.name, pool=sandbox.from_pool, snapshot=sandbox.spec.snapshot
                ),
            )
        except SandboxError as error:  # already published as a failed phase
            self.log.warning("jupyter-sandbox: creating %s failed: %s", sandbox.name, error.message)
        finally:
            self._creates.pop(sandbox.name, None)

    async def terminate(self, name: str) -> None:
        """Remove a sandbox (or dismiss a create that failed before its container existed)."""
        task = self._creates.get(name)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            sandbox = await self.find(name)
        except SandboxExpired:
            return  # its ttl had run out: finding it removed it, as asked
        except SandboxNotFound:
            forgotten = self.watcher.forget(name)  # a cancelled or failed create: dismiss it from the panel
            if task is None and not forgotten:
                raise
            return
        await sandbox.terminate()

    async def exec(self, name: str, command: Any, timeout: Any = None) -> AsyncProcess:
        """Start an argv list in a sandbox and return the running process."""
        if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
            raise SpecError("command", f"must be a non-empty list of strings, got {json.dumps(command)}", fix='send e.g. {"command": ["ls", "-l"]}')
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise SpecError("timeout", f"must be a positive number of seconds, got {json.dumps(timeout)}", fix="use e.g. 30")
        sandbox = await self.find(name)
        return await sandbox.exec(command, timeout=timeout)

    async def files(self, name: str) -> AsyncFiles:
        """A visible sandbox's files (``sb.files``), for the files routes; a paused one resumes on first use."""
        return (await self.find(name)).files

    async def dockerd_log(self, name: str, lines: int) -> str:
        """The last ``lines`` lines of a sandbox's dockerd log."""
        sandbox = await self._docker_sandbox(name)
        return await sandbox.dockerd_log(lines)

    async def follow_dockerd_log(self, name: str, lines: int) -> AsyncProcess:
        """A process printing the last ``lines`` lines of a sandbox's dockerd log, then each new one."""
        sandbox = await self._docker_sandbox(name)
        return await sandbox.follow_dockerd_log(lines)

    async def container_logs(self, name: str, container: str, lines: int, follow: bool) -> AsyncProcess:
        """``docker logs --tail LINES [--follow] CONTAINER`` of an inner container, as a running process."""
        sandbox = await self._docker_sandbox(name)
        return await sandbox.docker.logs(container, tail=lines, follow=follow, timestamps=False)

    async def stop_container(self, name: str, container: str) -> None:
        """Stop an inner container (:class:`InnerContainerNotFound` if there is none)."""
        await (await self._docker_sandbox(name)).docker.stop(container)

    async def remove_container(self, name: str, container: str) -> None:
        """Remove an inner container, running or not (:class:`InnerContainerNotFound` if there is none)."""
        await (await self._docker_sandbox(name)).docker.remove(container, force=True)

    async def containers(self, name: str, include_stopped: bool) -> list[dict[str, Any]]:
        """The sandbox's inner containers (``docker ps --format '{{json .}}'``)."""
        sandbox = await self._docker_sandbox(name)
        process = await sandbox.docker.ps(all=include_stopped, format="{{json .}}")
        await process.wait()
        if process.exit_code != 0:
            raise SandboxError(
                f"`docker ps` failed in sandbox {name!r}: {process.stderr_text.strip()}",
                fix=f"look at its dockerd log (GET /sandbox/api/sandboxes/{name}/logs)",
            )
        return [json.loads(line) for line in process.stdout_text.splitlines() if line.strip()]

    async def proxy_target(self, name: str, port: int) -> tuple[str, str]:
        """The address to reach a visible sandbox's ports at, and its container id.

        Raises:
            SandboxNotFound: If this server may not see it.
            NetworkUnavailable: For network ``none``.
        """
        check_port(port)
        container = await self._container(name)  # one engine call: its inspect data gives the address too
        sandbox = AsyncSandbox.from_container(container, engine=self.engine)
        await sandbox.ensure_running(container.attrs)  # a request is a use: resume if paused (no extra engine call otherwise)
        return await sandbox.address(container.attrs), container.id

    async def ports(self, name: str) -> list[dict[str, Any]]:
        """The sandbox's listening TCP ports, each with its proxy URL."""
        sandbox = await self.find(name)
        await sandbox.address()  # network 'none': say so instead of listing unreachable ports
        base = self.parent.base_url if self.parent is not None else "/"
        return [{**p.to_dict(), "url": sandbox.url(p.port, base_url=base)} for p in await sandbox.listening_ports()]

    async def port_unreachable(self, name: str, port: int, detail: str) -> PortUnreachable:
        """The error for a port that refused the proxy's connection, saying why when the sandbox shows it."""
        fix = f"start a server on port {port} in {name!r} that listens on 0.0.0.0 (for an inner container: `docker run --network=host ...`)"
        try:
            listening = {p.port: p for p in await (await self.find(name)).listening_ports()}
        except SandboxError:
            listening = {}
        found = listening.get(port)
        if found is not None and not found.reachable:
            message = (
                f"Port {port} in sandbox {name!r} listens only on {', '.join(found.addresses)}, which cannot be reached from outside the sandbox."
            )
            fix = "make the server listen on 0.0.0.0 (all addresses) instead of the loopback address"
        elif found is None:
            others = ", ".join(str(p) for p, lp in sorted(listening.items()) if lp.reachable) or "none"
            message = f"Nothing listens on port {port} in sandbox {name!r} (listening ports: {others})."
        else:
            message = f"Port {port} in sandbox {name!r} did not answer."
        return PortUnreachable(message, fix=fix, detail=detail)

    async def open_terminal(self, name: str, terminals: Any) -> dict[str, Any]:
        """Start a Jupyter terminal running a login shell in the sandbox (resumed first if paused).

        Args:
            terminals: The server's terminal manager, or None when the server runs without terminals.

        Returns:
            ``{"sandbox", "terminal"}``: the terminal's name, for ``/terminals/websocket/<name>`` and Lab's ``terminal:open``.
        """
        if terminals is None:
            raise TerminalsDisabled(
                "This Jupyter server runs without terminals, so it cannot open a shell in a sandbox.",
                fix="start it with terminals on (c.ServerApp.terminals_enabled = True, jupyter_server_terminals "
                f"installed), or run `jupyter sandbox shell {name}` in a shell on the host",
            )
        argv = await shell_command(await self.find(name))
        model = terminals.create(shell_command=argv)
        self.log.info("jupyter-sandbox: terminal %s opened a shell in %s", model["name"], name)
        return {"sandbox": name, "terminal": model["name"]}

    async def usage(self) -> list[dict[str, Any]]:
        """CPU and memory of every running sandbox this server may see (one engine stats call each, at once)."""
        containers = [(L.name_of(c.name or "", c.labels), c) for c in await self.engine.containers() if L.visible_to(c.labels, self.server_id)]
        return [usage.to_dict() for usage in await usage_of(self.engine, containers)]

    async def _docker_sandbox(self, name: str) -> AsyncSandbox:
        sandbox = await self.find(name)
        if not sandbox.spec.docker:
            raise DockerNotEnabled(
                f"Sandbox {name!r} was created without Docker inside, so it has no dockerd.", fix='create one with Docker on ("docker": true)'
            )
        return sandbox
