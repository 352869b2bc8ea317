"""The host's docker CLI pointed at a sandbox's inner daemon through its host socket.

A :class:`HostProcess` is a ``docker -H unix://<socket> ...`` process on the
host that looks like an :class:`~jupyter_sandbox.process.AsyncProcess`: output
streamed as produced, an exit code, a timeout, and a kill that stops the CLI
(an attached ``docker run`` passes the signal on to its container, as it does
in a terminal).  No exec into the sandbox, no process inside gVisor: one CLI
start on the host.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import threading
from typing import Any, Callable, Iterable, Iterator

from .engine import Engine
from .errors import SandboxError
from .process import AsyncProcess, Chunk
from .threads import poll_until, run_sync

PLUGIN_DIRS = (
    "~/.docker/cli-plugins",
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
"""Where the docker CLI looks for its plugins (``docker compose`` is ``docker-compose`` in one of them)."""
CLIENT_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def docker_cli() -> str | None:
    """The host's docker CLI, if it has one."""
    return shutil.which("docker")


def has_plugin(name: str) -> bool:
    """Whether the host's docker CLI has the plugin ``name`` (``compose``, ``buildx``)."""
    return any(os.path.isfile(os.path.join(os.path.expanduser(folder), "docker-" + name)) for folder in PLUGIN_DIRS)


def environment(socket_path: str) -> dict[str, str]:
    """This process's environment with the docker client aimed at ``socket_path``."""
    env = {key: value for key, value in os.environ.items() if key not in CLIENT_VARIABLES}
    env["DOCKER_HOST"] = "unix://" + socket_path
    return env


class HostProcess(AsyncProcess):
    """A docker CLI process on the host, talking to a sandbox's daemon (see the module docstring)."""

    def __init__(
        self, engine: Engine, container_id: str, popen: "subprocess.Popen[bytes]", argv: list[str], *, timeout: float | None = None, sandbox: str = ""
    ):
        super().__init__(engine, container_id, "", None, argv, timeout=timeout, sandbox=sandbox)
        self.popen = popen
        self._pipes_closed = threading.Event()
        self._notes_read, self._notes_write = os.pipe()

    def note(self, text: str) -> None:
        """Add text to the process's stderr stream, between its own output (from any thread)."""
        try:
            os.write(self._notes_write, text.encode())
        except OSError:
            pass

    @classmethod
    async def start_cli(
        cls,
        engine: Engine,
        container_id: str,
        socket_path: str | None,
        argv: list[str],
        *,
        stdin: bytes | Iterable[bytes] | Callable[["HostProcess"], Iterable[bytes]] | None = None,
        timeout: float | None = None,
        sandbox: str = "",
    ) -> "HostProcess":
        """Start ``argv`` (``["docker", ...]``) on the host with ``DOCKER_HOST`` set to the socket.

        Args:
            socket_path: The sandbox's socket; None talks to the host engine as this process would.
            stdin: Bytes or an iterable of chunks fed to its stdin (from a thread), or a
                function of the process returning that iterable (which may call :meth:`note`
                to add progress lines to its stderr).
        """
        binary = docker_cli()
        if binary is None:
            raise SandboxError(
                "The host has no docker CLI to talk to the sandbox's daemon.",
                fix="install Debian's docker-cli or docker.io (scripts/setup-host.sh does)",
            )

        def spawn() -> "subprocess.Popen[bytes]":
            return subprocess.Popen(
                [binary, *argv[1:]],
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment(socket_path) if socket_path else None,
                start_new_session=True,
            )

        try:
            popen = await run_sync(spawn)
        except OSError as error:
            raise SandboxError(f"Cannot start the host's docker CLI: {error}", fix="check /usr/bin/docker") from None
        process = cls(engine, container_id, popen, argv, timeout=timeout, sandbox=sandbox)
        if stdin is not None:
            data = stdin(process) if callable(stdin) else stdin
            threading.Thread(target=process._feed_stdin, args=(data,), daemon=True).start()
        return process

    def _feed_stdin(self, data: bytes | Iterable[bytes]) -> None:
        pipe = self.popen.stdin
        assert pipe is not None
        try:
            for piece in [data] if isinstance(data, (bytes, bytearray)) else data:
                pipe.write(piece)
        except (OSError, ValueError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass
            os.close(self._notes_write)  # ends the notes stream

    def _frames(self) -> Iterator[Chunk]:
        streams: dict[Any, str] = {self.popen.stdout: "stdout", self.popen.stderr: "stderr"}
        if self.popen.stdin is not None:  # a feeder may add notes; without one, nobody writes them
            streams[self._notes_read] = "stderr"
        else:
            os.close(self._notes_write)
        try:
            yield from self._read(streams)
        finally:  # here, not elsewhere: only this thread reads the pipes
            for pipe in streams:
                os.close(pipe) if isinstance(pipe, int) else pipe.close()
            if self.popen.stdin is None:
                os.close(self._notes_read)

    def _read(self, streams: dict[Any, str]) -> Iterator[Chunk]:
        with selectors.DefaultSelector() as selector:
            for pipe in streams:
                selector.register(pipe, selectors.EVENT_READ)
            while selector.get_map():
                if self._pipes_closed.is_set():
                    return
                for key, _ in selector.select(timeout=0.5):
                    data = os.read(key.fd, 1 << 16)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    yield Chunk(streams[key.fileobj], data)

    def _close_socket(self) -> None:
        self._pipes_closed.set()

    async def _collect_exit_code(self) -> None:
        code = await run_sync(self.popen.wait)
        self.exit_code = code if code >= 0 else 128 - code  # killed by a signal: 128 + its number, as a shell says

    async def kill(self, grace: float = 2.0) -> None:
        """Stop the CLI: SIGTERM (an attached ``docker run`` passes it to its container), SIGKILL after ``grace`` s."""
        self.killed = True
        if self.popen.poll() is not None:
            return
        self._send(signal.SIGTERM)

        async def ended() -> bool:
            return self.popen.poll() is not None

        if not await poll_until(ended, grace, interval=0.02, most=0.02):
            self._send(signal.SIGKILL)

    def _send(self, number: int) -> None:
        try:
            os.killpg(self.popen.pid, number)
        except (ProcessLookupError, PermissionError):
            pass
