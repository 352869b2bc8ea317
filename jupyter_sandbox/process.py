"""Processes inside a sandbox: output streamed as it arrives, exit code, timeout, cancellation.

Every command gets a unique token in its environment (``JUPYTER_SANDBOX_EXEC``),
which its children inherit, so a timeout, a Ctrl-C or a cancelled task can
kill the whole process tree *inside* the sandbox by finding the token in
``/proc/*/environ``: killing the host's ``runsc exec`` alone would leave it
running, and a pid reported on an output stream can arrive after the output
that made someone give up on the command.
"""

from __future__ import annotations

import codecs
import secrets
import socket
import threading
import time
from typing import Any, AsyncGenerator, Callable, Iterable, Iterator, NamedTuple

import anyio
import docker.utils.socket as docker_socket

from .engine import Engine
from .errors import ENOSPC_TEXT, ExecTimeout, SandboxDied, SandboxError
from .lifecycle import touch
from .threads import iterate_in_thread, poll_until

RUNSC_GONE = b'urpc method "containerManager'
"""What runsc prints for an exec whose sandbox died under it."""
TOKEN_VARIABLE = "JUPYTER_SANDBOX_EXEC"
KILL_SCRIPT = r"""
for f in $(grep -l "$2=$3" /proc/[0-9]*/environ 2>/dev/null); do p=${f#/proc/}; kill -s "$1" "${p%/environ}" 2>/dev/null; done; :
"""
"""Signals every process whose environment carries the exec's token: the command and all its descendants."""
STREAM_NAMES = {docker_socket.STDOUT: "stdout", docker_socket.STDERR: "stderr"}


class Chunk(NamedTuple):
    """A piece of a process's output, in the order it was produced.

    Attributes:
        stream: ``"stdout"`` or ``"stderr"``.
        data: The raw bytes.
    """

    stream: str
    data: bytes


class TextDecoder:
    """Incremental UTF-8 decoding per stream; undecodable bytes become U+FFFD, never an error."""

    def __init__(self) -> None:
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in ("stdout", "stderr")}

    def decode(self, chunk: Chunk) -> str:
        """Decode a chunk, keeping a split multi-byte character for the next one."""
        return self._decoders[chunk.stream].decode(chunk.data)

    def flush(self, stream: str) -> str:
        """Whatever is left of a stream at its end."""
        return self._decoders[stream].decode(b"", final=True)


class AsyncProcess:
    """A command running inside a sandbox.

    Read its output as it is produced with :meth:`output` (nothing is kept),
    or call :meth:`wait` and then read :attr:`stdout` / :attr:`stderr`
    (everything is kept).  A timeout or a cancellation kills the process
    inside the sandbox.

    Attributes:
        argv: The command as given.
        token: The value of ``JUPYTER_SANDBOX_EXEC`` in its environment (and its children's).
        exit_code: Its exit status, once it ended (``None`` before).
        timed_out: True if it was killed for running past its timeout.
    """

    def __init__(
        self, engine: Engine, container_id: str, exec_id: str, sock: Any, argv: list[str], *, timeout: float | None = None, sandbox: str = ""
    ):
        self.engine = engine
        self.container_id = container_id
        self.exec_id = exec_id
        self.argv = argv
        self.sandbox = sandbox
        self.timeout = timeout
        self.exit_code: int | None = None
        self.timed_out = False
        self.killed = False
        self._sock = sock
        self._started = time.monotonic()
        self.token = secrets.token_hex(8)
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._reading = False
        self._finished = anyio.Event()
        self._stderr_tail = b""
        self._stdout_tail = b""
        self.sandbox_error: SandboxDied | None = None
        """Set when the sandbox itself died under the command (then :meth:`wait` raises it)."""
        self.explain: Callable[[str], str | None] | None = None
        self.advice: str | None = None
        """Known before it runs: what will not work as the command expects (e.g. inner ``-p`` publishes nothing)."""
        self.disk_full: Callable[[str], SandboxError] | None = None
        """Builds the typed error for output saying "no space left on device" (set by the sandbox)."""

    @classmethod
    async def start(
        cls,
        engine: Engine,
        container_id: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        stdin: bytes | Iterable[bytes] | None = None,
        sandbox: str = "",
    ) -> "AsyncProcess":
        """Start ``argv`` (a list, run without a shell) in a running container."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise SandboxError(
                f"A command must be a non-empty list of strings, got {argv!r}", fix='pass e.g. ["ls", "-l"], or shell=True with one string'
            )
        api = engine.client.api
        token = secrets.token_hex(8)

        def open_exec() -> tuple[str, Any]:
            environment = {**(env or {}), TOKEN_VARIABLE: token}
            exec_id = api.exec_create(
                container_id, argv, stdout=True, stderr=True, stdin=stdin is not None, environment=environment, workdir=workdir, user=user or ""
            )["Id"]
            return exec_id, api.exec_start(exec_id, socket=True)

        exec_id, sock = await engine.call(open_exec)
        process = cls(engine, container_id, exec_id, sock, argv, timeout=timeout, sandbox=sandbox)
        process.token = token
        if stdin is not None:
            threading.Thread(target=process._feed_stdin, args=(stdin,), daemon=True).start()
        return process

    @property
    def stdout(self) -> bytes:
        """Everything it wrote to stdout that :meth:`output` did not hand out."""
        return bytes(self._stdout)

    @property
    def stderr(self) -> bytes:
        """Everything it wrote to stderr that :meth:`output` did not hand out."""
        return bytes(self._stderr)

    @property
    def stdout_text(self) -> str:
        """:attr:`stdout` decoded as UTF-8 (bad bytes replaced)."""
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        """:attr:`stderr` decoded as UTF-8 (bad bytes replaced)."""
        return self.stderr.decode("utf-8", errors="replace")

    def _raw_socket(self) -> socket.socket | None:
        return getattr(self._sock, "_sock", None) or (self._sock if isinstance(self._sock, socket.socket) else None)

    def _feed_stdin(self, data: bytes | Iterable[bytes]) -> None:
        raw = self._raw_socket()
        if raw is None:
            return
        try:
            for piece in [data] if isinstance(data, (bytes, bytearray)) else data:
                raw.sendall(piece)
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _frames(self) -> Iterator[Chunk]:
        for stream, data in docker_socket.frames_iter(self._sock, tty=False):
            yield Chunk(STREAM_NAMES.get(stream, "stdout"), data)

    def _close_socket(self) -> None:
        raw = self._raw_socket()
        for close in (lambda: raw.shutdown(socket.SHUT_RDWR) if raw else None, self._sock.close, lambda: raw.close() if raw else None):
            try:
                close()
            except OSError:
                pass

    def _remaining(self) -> float:
        if self.timeout is None:
            return float("inf")
        return max(0.0, self.timeout - (time.monotonic() - self._started))

    async def output(self) -> AsyncGenerator[Chunk, None]:
        """Yield output chunks as the process produces them, until it ends.

        Raises:
            ExecTimeout: If it ran past its timeout (it has been killed).
        """
        if self._reading:
            raise SandboxError(
                "This process's output is already being read.", fix="read it from one place only, or call wait() and use .stdout/.stderr"
            )
        self._reading = True
        completed = False
        stream = iterate_in_thread(self._frames, close=self._close_socket)
        try:
            while True:
                # The deadline scope covers only the wait, never a yield.
                with anyio.move_on_after(self._remaining()) as scope:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        completed = True
                if scope.cancelled_caught:
                    self.timed_out = True
                    break
                if completed:
                    break
                passed = chunk
                if passed.data:
                    if passed.stream == "stderr":
                        self._stderr_tail = (self._stderr_tail + passed.data)[-8192:]
                    else:
                        self._stdout_tail = (self._stdout_tail + passed.data)[-4096:]
                    yield passed
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
                if not completed:
                    await self.kill()
                await self._collect_exit_code()
                if self.exit_code == 128 and RUNSC_GONE in self._stderr_tail:
                    self.sandbox_error = await self._sandbox_death()
            touch(self.container_id)  # a use ends now: idle time counts from here, however long it ran
            self._finished.set()
        if self.timed_out:
            raise self._timeout_error()
        if self.sandbox_error is not None:
            raise self.sandbox_error

    @property
    def error(self) -> SandboxError | None:
        """After a failure that printed "no space left on device", the typed error (:class:`DiskFull`), else None."""
        if self.exit_code in (None, 0) or self.disk_full is None:
            return None
        tail = self._tail_text()
        return self.disk_full(tail) if ENOSPC_TEXT in tail.lower() else None

    def _tail_text(self) -> str:
        return (self._stderr_tail + b"\n" + self._stdout_tail).decode("utf-8", errors="replace")

    @property
    def hint(self) -> str | None:
        """Once it ended: after a failure, the likely cause and fix (from the tail of what it printed), if known;
        else the :attr:`advice`, if any (a command can succeed and still not do what it was meant to)."""
        if self.exit_code is None:
            return None
        if self.exit_code != 0:
            error = self.error
            if error is not None:
                return f"{error.message} How to fix: {error.fix}"
            text = self.explain(self._tail_text()) if self.explain is not None else None
            if text:
                return text
        return self.advice

    def _timeout_error(self) -> ExecTimeout:
        return ExecTimeout(
            f"{' '.join(self.argv)!r} ran longer than its {self.timeout:g} s timeout in sandbox {self.sandbox!r} and was killed.",
            fix="give it more time (timeout=...), or run it in the background",
        )

    async def wait(self) -> int:
        """Wait for the process to end and return its exit code.

        If nobody is reading :meth:`output`, the output is kept in
        :attr:`stdout` and :attr:`stderr`.

        Raises:
            ExecTimeout: If it ran past its timeout (it has been killed).
        """
        if not self._reading:
            async for chunk in self.output():
                (self._stdout if chunk.stream == "stdout" else self._stderr).extend(chunk.data)
        else:
            await self._finished.wait()
            if self.timed_out:
                raise self._timeout_error()
            if self.sandbox_error is not None:
                raise self.sandbox_error
        return self.exit_code if self.exit_code is not None else -1

    async def _sandbox_death(self) -> SandboxDied:
        """Why the sandbox died under this command, read from the engine once it noticed."""
        api = self.engine.client.api
        state: dict[str, Any] = {}
        limit = None

        async def stopped() -> bool:
            nonlocal state, limit
            try:
                attrs = await self.engine.call(api.inspect_container, self.container_id)
            except SandboxError:
                return True
            state, limit = attrs.get("State", {}), attrs.get("HostConfig", {}).get("Memory")
            return not state.get("Running")

        await poll_until(stopped, 5, interval=0.05, most=0.05)
        command = " ".join(self.argv)
        if state.get("OOMKilled"):
            from .spec import format_memory

            return SandboxDied(
                f"Sandbox {self.sandbox!r} was killed by the host for using more than its memory limit "
                f"({format_memory(limit) if limit else 'none set'}) while running {command!r}; it is gone with everything in it.",
                fix="create it with more memory (e.g. memory='2Gi'), or make the command use less; the host was not affected",
            )
        return SandboxDied(
            f"Sandbox {self.sandbox!r} died while running {command!r} (its container exit code: {state.get('ExitCode', 'unknown')}).",
            fix=f"see `jupyter sandbox status {self.sandbox}`; the host's kernel log (dmesg) may say why",
        )

    async def _collect_exit_code(self) -> None:
        api = self.engine.client.api

        async def exited() -> bool:
            try:
                info = await self.engine.call(api.exec_inspect, self.exec_id)
            except SandboxError:
                return True
            if not info.get("Running") and info.get("ExitCode") is not None:
                self.exit_code = int(info["ExitCode"])
                return True
            return False

        if not await poll_until(exited, 5, interval=0.002, most=0.1) or self.exit_code is None:
            self.exit_code = -1

    async def kill(self, grace: float = 2.0) -> None:
        """Stop the process and its descendants inside the sandbox: SIGTERM, then SIGKILL after ``grace`` seconds."""
        self.killed = True
        api = self.engine.client.api

        def signal(name: str) -> None:
            exec_id = api.exec_create(self.container_id, ["/bin/sh", "-c", KILL_SCRIPT, "kill", name, TOKEN_VARIABLE, self.token])["Id"]
            api.exec_start(exec_id)

        try:
            await self.engine.call(signal, "TERM")

            async def ended() -> bool:
                return not (await self.engine.call(api.exec_inspect, self.exec_id)).get("Running")

            if not await poll_until(ended, grace, interval=0.05, most=0.05):
                await self.engine.call(signal, "KILL")
            await self.engine.call(signal, "KILL")  # children that ignored SIGTERM or outlived their parent
        except SandboxError:
            pass  # the sandbox is gone: so is the process
        finally:
            self._close_socket()
