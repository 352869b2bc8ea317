"""The small synchronous facade over the async core, for notebooks, scripts and the CLI.

All async work runs on one event loop in a daemon thread (an anyio blocking
portal), so these calls work the same in a plain script, in a Jupyter kernel
(whose own loop is busy) and in a thread.  Ctrl-C / a kernel interrupt while
a call waits cancels the async work, which cleans up after itself (a
half-created sandbox is removed, a running command is killed inside).
"""

from __future__ import annotations

import builtins
import functools
import threading
import warnings
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from .errors import SandboxError
from .events import Listener, ProgressEvent
from .ports import ListeningPort
from .process import AsyncProcess, Chunk, TextDecoder
from .sandbox import AsyncSandbox
from .spec import SandboxSpec
from .status import SandboxInfo

if TYPE_CHECKING:
    from .docker import AsyncDocker
    from .snapshots import Snapshot

T = TypeVar("T")


class HostNetworkWarning(UserWarning):
    """``Sandbox.create(network="host")``: the sandbox shares the host's network and is not isolated on it."""


_portal_lock = threading.Lock()
_portal: BlockingPortal | None = None


def _run_loop(ready: "Future[BlockingPortal]") -> None:
    async def serve() -> None:
        async with BlockingPortal() as portal:
            ready.set_result(portal)
            await portal.sleep_until_stopped()

    anyio.run(serve)


def portal() -> BlockingPortal:
    """The process-wide portal to the background event loop (started on first use).

    The loop runs in a daemon thread, so it never keeps the process alive.
    """
    global _portal
    with _portal_lock:
        if _portal is None:
            ready: Future[BlockingPortal] = Future()
            threading.Thread(target=_run_loop, args=(ready,), name="jupyter-sandbox-loop", daemon=True).start()
            _portal = ready.result()
        return _portal


def start(function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> tuple["Future[T]", threading.Event]:
    """Start an async function on the background loop; returns its future and an event set once it has
    fully ended (a cancelled future reports at once, while the task may still be cleaning up)."""
    finished = threading.Event()

    async def runner() -> T:
        try:
            return await function(*args, **kwargs)
        finally:
            finished.set()

    return portal().start_task_soon(runner), finished


def cancel_and_wait(future: "Future[Any]", finished: threading.Event, timeout: float = 60) -> None:
    """Cancel a task started with :func:`start` and wait until its cleanup has run."""
    future.cancel()
    finished.wait(timeout)


def call(function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run an async function on the background loop and wait for it.

    Ctrl-C (or a kernel interrupt) cancels it and waits for its cleanup (a
    half-created sandbox removed, a command killed inside) before re-raising.
    """
    future, finished = start(function, *args, **kwargs)
    try:
        return future.result()
    except KeyboardInterrupt:
        cancel_and_wait(future, finished)
        raise


class OutputStream:
    """One stream (stdout or stderr) of a :class:`Process`, as text.

    Iterate it for lines as they arrive, or :meth:`read` all of it.
    """

    def __init__(self, process: "Process", name: str):
        self._process = process
        self._name = name

    def read(self) -> str:
        """Wait for the process to end and return everything it wrote here."""
        self._process.wait()
        core = self._process.core
        return core.stdout_text if self._name == "stdout" else core.stderr_text

    def __iter__(self) -> Iterator[str]:
        """Lines (with their newline) as the process writes them; the other stream is kept for later."""
        pending = ""
        for stream, text in self._process.iter_output():
            if stream != self._name:
                other = self._process.core._stderr if stream == "stderr" else self._process.core._stdout
                other.extend(text.encode())
                continue
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line + "\n"
        if pending:
            yield pending


class Process:
    """A command running in a sandbox (synchronous view of :class:`~jupyter_sandbox.process.AsyncProcess`).

    ``process.wait()`` then ``process.stdout.read()``; or ``for stream, text
    in process.iter_output()`` to see output the moment it is produced.
    """

    def __init__(self, core: AsyncProcess):
        self.core = core
        self.stdout = OutputStream(self, "stdout")
        self.stderr = OutputStream(self, "stderr")

    def __repr__(self) -> str:
        return f"<Process {' '.join(self.core.argv)!r} exit_code={self.exit_code}>"

    @property
    def argv(self) -> list[str]:
        """The command as given."""
        return self.core.argv

    @property
    def exit_code(self) -> int | None:
        """Its exit status once it ended, else ``None``."""
        return self.core.exit_code

    @property
    def token(self) -> str:
        """The ``JUPYTER_SANDBOX_EXEC`` value in its environment (and its children's)."""
        return self.core.token

    @property
    def hint(self) -> str | None:
        """Once it ended: after a failure, the likely cause and fix, if known; else advice on what will
        not work as meant (e.g. an inner ``-p``), if any."""
        return self.core.hint

    @property
    def error(self) -> SandboxError | None:
        """After a failure that printed "no space left on device", the typed :class:`DiskFull` error."""
        return self.core.error

    def wait(self) -> int:
        """Wait for it to end; returns the exit code (output kept in ``stdout``/``stderr``)."""
        return call(self.core.wait)

    def kill(self) -> None:
        """Stop it inside the sandbox."""
        call(self.core.kill)

    def iter_output(self) -> Iterator[tuple[str, str]]:
        """``(stream, text)`` pairs as the process produces them; nothing is kept."""
        decoder = TextDecoder()
        for chunk in self.iter_chunks():
            text = decoder.decode(chunk)
            if text:
                yield chunk.stream, text
        for stream in ("stdout", "stderr"):
            rest = decoder.flush(stream)
            if rest:
                yield stream, rest

    def iter_chunks(self) -> Iterator[Chunk]:
        """Raw output chunks as they arrive (bytes, for binary output)."""
        send, receive = anyio.create_memory_object_stream[Any](64)
        done = object()

        async def produce() -> None:
            async with send:
                try:
                    async for chunk in self.core.output():
                        await send.send(chunk)
                except BaseException as error:  # handed over to the consuming thread
                    await send.send(error)
                    return
                await send.send(done)

        future, finished = start(produce)
        try:
            while True:
                item = call(receive.receive)
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        except anyio.EndOfStream:
            return
        finally:
            if not finished.is_set():
                cancel_and_wait(future, finished)


def _wrap_result(value: Any) -> Any:
    return Process(value) if isinstance(value, AsyncProcess) else value


def _synchronous(method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """A blocking version of an async method of the wrapped object (same name and docstring)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _wrap_result(call(method, self._core, *args, **kwargs))

    return wrapper


class DockerCommands:
    """``sandbox.docker``: Docker commands in the sandbox's own daemon, each returning a running :class:`Process`.

    ``sb.docker("info")`` runs any docker command.
    """

    def __init__(self, core: AsyncDocker):
        self._core = core

    def __call__(self, *args: str, **kwargs: Any) -> Process:
        """Run ``docker ARGS...`` in the sandbox."""
        process: Process = _wrap_result(call(self._core.__call__, *args, **kwargs))
        return process

    from .docker import AsyncDocker as _A

    run = _synchronous(_A.run)
    pull = _synchronous(_A.pull)
    ps = _synchronous(_A.ps)
    images = _synchronous(_A.images)
    exec = _synchronous(_A.exec)
    logs = _synchronous(_A.logs)
    build = _synchronous(_A.build)
    compose = _synchronous(_A.compose)
    load = _synchronous(_A.load)
    save = _synchronous(_A.save)
    del _A

    @property
    def client(self) -> Any:
        """A docker-py client for the sandbox's own daemon, over its host socket."""
        return self._core.client

    @property
    def socket(self) -> str | None:
        """The host path of the daemon's API socket (``DOCKER_HOST=unix://<it>``), or None."""
        return self._core.socket


class Files:
    """``sandbox.files``: upload, download, read and write files in the sandbox."""

    def __init__(self, core: Any):
        self._core = core

    from .files import AsyncFiles as _F

    upload = _synchronous(_F.upload)
    download = _synchronous(_F.download)
    read = _synchronous(_F.read)
    write = _synchronous(_F.write)
    append = _synchronous(_F.append)
    list = _synchronous(_F.list)
    stat = _synchronous(_F.stat)
    mkdir = _synchronous(_F.mkdir)
    remove = _synchronous(_F.remove)
    rename = _synchronous(_F.rename)
    del _F


class Sandbox:
    """A gVisor sandbox, optionally with its own Docker daemon (blocking API).

    >>> sb = Sandbox.create(docker=True)            # doctest: +SKIP
    >>> sb.docker.run("alpine", "echo", "hi", rm=True).wait()   # doctest: +SKIP
    >>> sb.terminate()                              # doctest: +SKIP

    Use it as a context manager to terminate it at the end of a block.
    """

    def __init__(self, core: AsyncSandbox):
        self._core = core
        self.docker = DockerCommands(core.docker)
        self.files = Files(core.files)

    def __repr__(self) -> str:
        return f"<Sandbox {self.name!r} image={self.spec.image!r} docker={self.spec.docker} network={self.spec.network!r}>"

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    @property
    def core(self) -> AsyncSandbox:
        """The async sandbox underneath."""
        return self._core

    @property
    def name(self) -> str:
        """The sandbox's name."""
        return self._core.name

    @property
    def spec(self) -> SandboxSpec:
        """What it was created with."""
        return self._core.spec

    @property
    def ready_seconds(self) -> float | None:
        """Seconds its startup took, when this process created it."""
        return self._core.ready_seconds

    @property
    def events(self) -> list[ProgressEvent]:
        """The progress events seen so far."""
        return list(self._core.events.history)

    @classmethod
    def create(
        cls,
        name: str | None = None,
        *,
        docker: bool = False,
        image: str | None = None,
        cpu: Any = None,
        memory: Any = None,
        network: str | None = None,
        egress: Any = None,
        env: Any = None,
        timeout: Any = None,
        pids: Any = None,
        on_event: Listener | None = None,
        owner: str = "api",
        use_pool: bool = True,
        disk: Any = None,
        storage: str | None = None,
        images: Any = None,
        ttl: Any = None,
        idle_timeout: Any = None,
        snapshot: str | None = None,
    ) -> "Sandbox":
        """Create a sandbox and wait until it is ready.

        Args:
            name: Unique name (random if left out).
            docker: Start a Docker daemon inside.
            image: Host image (default: the Docker-enabled ``jupyter-sandbox/docker:bookworm``).
            cpu: CPU limit such as ``1`` or ``"500m"`` (default: half the host's CPUs; ``"unlimited"``: none).
            memory: Memory limit such as ``"512Mi"`` or ``"4Gi"`` (default ``4Gi``; ``"unlimited"``: none).
            network: ``"sandbox"`` (default: gVisor's own stack on the product's firewalled network),
                ``"none"`` (loopback only) or ``"host"`` (the host's network: not isolated, warns).
            egress: For network ``"sandbox"``: ``"public"`` (default), ``"none"``, or a list of allowed
                destinations (CIDRs or ``"host:port"``, resolved now).
            env: Environment variables (mapping or ``KEY=VALUE`` list).
            timeout: Seconds the startup may take (default 30).
            pids: Most processes and threads inside (default 512; ``"unlimited"``: none).
            on_event: Called with each :class:`ProgressEvent` (in the loop's thread).
            owner: Recorded in the labels (``api``, ``cli``, ``kernel``...).
            use_pool: Take a ready sandbox from a warm pool when one matches (False: always boot a new one).
            disk: Size of the Docker disk store such as ``"8Gi"`` (default: half of ``memory``, or 4Gi
                without a memory limit); it is sandbox memory, so it must leave 128Mi of ``memory`` free.
            storage: The inner dockerd's storage driver, ``"overlay2"`` (default) or ``"vfs"``.
            images: Host images loaded into the sandbox's daemon before it is ready, one progress phase each.
                A sandbox with a time limit never comes from the pool.
            ttl: Remove it this long after its creation: seconds or ``"30m"``, ``"2h"``, ``"1d"`` (default: never).
            idle_timeout: Pause it after this long without use (exec, docker, files, proxied requests);
                its next use resumes it (default: never).
            snapshot: Fork it from this snapshot (see :meth:`snapshot`): restored with the inner daemon,
                its images and running inner containers, under its own name and address.  A fork keeps
                the snapshot's image, Docker, limits, network mode and env; it sets only its name,
                timeout, ttl, idle_timeout and egress.
        """
        core = cls.prepare(
            name,
            docker=docker,
            image=image,
            cpu=cpu,
            memory=memory,
            network=network,
            egress=egress,
            env=env,
            timeout=timeout,
            pids=pids,
            owner=owner,
            use_pool=use_pool,
            disk=disk,
            storage=storage,
            images=images,
            ttl=ttl,
            idle_timeout=idle_timeout,
            snapshot=snapshot,
        )
        for warning in core.spec.warnings:  # network "host": the Python API's face of the warning
            warnings.warn(warning, HostNetworkWarning, stacklevel=2)
        if on_event is not None:
            core.events.add_listener(on_event)
        call(core.start)
        return cls(core)

    @staticmethod
    def prepare(name: str | None = None, *, owner: str = "api", use_pool: bool = True, **fields: Any) -> AsyncSandbox:
        """Validate a spec into an unstarted :class:`AsyncSandbox` (listen to ``.events``, then ``Sandbox.start``)."""
        return AsyncSandbox.prepare(None, owner=owner, use_pool=use_pool, name=name, **fields)

    @classmethod
    def start(cls, core: AsyncSandbox) -> "Sandbox":
        """Start a prepared sandbox and wait until it is ready."""
        call(core.start)
        return cls(core)

    @classmethod
    def get(cls, name: str) -> "Sandbox":
        """Attach to an existing sandbox by name."""
        return cls(call(AsyncSandbox.get, name))

    @staticmethod
    def list() -> list[SandboxInfo]:
        """Every sandbox in the engine, with its state."""
        return call(AsyncSandbox.list)

    def exec(
        self,
        command: str | Iterable[str],
        *,
        shell: bool = False,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        stdin: bytes | Iterable[bytes] | None = None,
    ) -> Process:
        """Start a command (an argv list, or one string with ``shell=True``) and return it while it runs."""
        return Process(call(self._core.exec, command, shell=shell, env=env, workdir=workdir, user=user, timeout=timeout, stdin=stdin))

    def run(self, command: str | Iterable[str], **options: Any) -> Process:
        """Run a command to its end and return the finished process (output in ``.stdout.read()``)."""
        process = self.exec(command, **options)
        process.wait()
        return process

    def status(self) -> SandboxInfo:
        """Its current state, read from the engine (its time limits enforced first: see ``AsyncSandbox.status``)."""
        return call(self._core.status, enforce=True)

    def snapshot(self, tag: str) -> "Snapshot":
        """Checkpoint it whole (inner daemon, images, running inner containers) under ``tag``; it keeps
        running.  ``Sandbox.create(snapshot=tag)`` forks it (see :mod:`jupyter_sandbox.snapshots`)."""
        return call(self._core.snapshot, tag)

    @staticmethod
    def snapshots() -> "builtins.list[Snapshot]":
        """Every snapshot on this host, oldest first."""
        from .snapshots import list_all

        return list_all()

    @staticmethod
    def remove_snapshot(tag: str) -> "Snapshot":
        """Delete a snapshot (forks made from it are not affected)."""
        from .snapshots import remove

        return remove(tag)

    def pause(self) -> bool:
        """Freeze it (no CPU; memory, inner daemon and containers kept); any use resumes it. True if paused now."""
        return call(self._core.pause)

    def resume(self) -> bool:
        """Unfreeze it (uses do this by themselves); True if it was paused."""
        return call(self._core.resume)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until it is ready (at once if it is)."""
        call(self._core.wait_ready, timeout)

    def restart_daemon(self, timeout: float | None = None) -> None:
        """Restart its Docker daemon and wait until it answers."""
        call(self._core.restart_daemon, timeout)

    def close_api(self, timeout: float = 10.0) -> None:
        """Close the host socket of its Docker daemon (before a checkpoint); the daemon keeps running."""
        call(self._core.close_api, timeout)

    def open_api(self, timeout: float = 10.0) -> None:
        """Open the host socket again and wait until the daemon answers on it."""
        call(self._core.open_api, timeout)

    def dockerd_log(self, lines: int = 200) -> str:
        """The last lines of its Docker daemon's log."""
        return call(self._core.dockerd_log, lines)

    def url(self, port: int, path: str = "", *, base_url: str | None = None) -> str:
        """The URL of one of its ports through the Jupyter server: ``<base_url>sandbox/proxy/NAME/PORT/PATH``.

        ``base_url`` defaults to the server's when this process runs under one, else ``/``.
        """
        return self._core.url(port, path, base_url=base_url)

    def address(self) -> str:
        """The address the host reaches its ports at (needs network ``sandbox`` or ``host``)."""
        return call(self._core.address)

    def listening_ports(self) -> builtins.list[ListeningPort]:
        """The TCP ports something listens on inside it."""
        return call(self._core.listening_ports)

    def terminate(self) -> bool:
        """Remove it and everything in it; True if it existed."""
        return call(self._core.terminate)

    def set_egress(self, egress: Any) -> dict[str, Any]:
        """Change its egress policy (``"public"``, ``"none"`` or a list) for new connections, without a restart."""
        return call(self._core.set_egress, egress)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """The status card (HTML, and its plain-text twin) with the inner containers, for ``display(sb)``."""
        from .display import sandbox_bundle

        return sandbox_bundle(self)

    def _repr_html_(self) -> str:
        from .display import status_card

        try:
            info = self.status()
        except SandboxError as error:
            return f"<pre>{error}</pre>"
        return status_card(info)
