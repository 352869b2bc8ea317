"""``sandbox.docker``: the Docker CLI of a sandbox's own daemon, as streamed processes."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .errors import DockerNotEnabled, SandboxError
from .files import iterate_file, tar_stream
from .process import AsyncProcess

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox

NETWORK_ERRORS = ("dial tcp", "no such host", "network is unreachable", "no route to host",
                  "i/o timeout", "temporary failure in name resolution", "connection refused")


def to_flags(options: dict[str, Any]) -> list[str]:
    """Turn keyword options into CLI flags.

    ``network="host"`` gives ``--network=host``; ``rm=True`` gives ``--rm``;
    ``False``/``None`` are left out; a list repeats the flag; a dict gives
    ``KEY=VALUE`` per item (``env={"A": "1"}`` gives ``--env=A=1``).
    """
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-") if len(key) > 1 else "-" + key
        if value is None or value is False:
            continue
        if value is True:
            flags.append(flag)
        elif isinstance(value, dict):
            flags.extend(f"{flag}={k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            flags.extend(f"{flag}={item}" for item in value)
        else:
            flags.append(f"{flag}={value}")
    return flags


def explain_failure(argv: list[str], stderr: str, network: str) -> str | None:
    """A hint for a failed docker command, from what it printed, or None."""
    text = stderr.lower()
    verb = argv[1] if len(argv) > 1 else ""
    if any(marker in text for marker in NETWORK_ERRORS) and verb in ("pull", "run", "build", "compose", "push", "create"):
        if network == "none":
            return ("This sandbox has network 'none' (loopback only), so its Docker daemon cannot reach a registry. "
                    "Copy images in from the host with sandbox.docker.load(IMAGE) (`jupyter sandbox load NAME IMAGE`), "
                    "or create the sandbox with network='host'.")
        return ("The Docker daemon in the sandbox could not reach the registry (no network route or DNS from this host). "
                "Copy images in from the host with sandbox.docker.load(IMAGE) instead.")
    if "cannot connect to the docker daemon" in text:
        return ("The sandbox's Docker daemon is not running (it exited or was killed). Restart it with "
                "sandbox.restart_daemon(), `jupyter sandbox restart-daemon NAME` or `%sandbox restart-daemon`; "
                "inner containers stopped with it and come back only if started with --restart=always.")
    if "'compose' is not a docker command" in text or "unknown command \"compose\"" in text:
        return ("This image has no Docker Compose v2 plugin. The default image has it; "
                "build one with `jupyter sandbox image build --docker --offline`.")
    if "error executing setns process" in text:
        return ("gVisor cannot join a nested PID namespace, so `docker exec` into an inner container only works when "
                "that container shares the sandbox's PID namespace: start it with --pid=host "
                "(sandbox.docker.run(..., exec_ready=True) does it), then exec works.")
    if "unable to find image" in text or "pull access denied" in text or "no such image" in text:
        return "The image is not in the sandbox's daemon. Load it from the host with sandbox.docker.load(IMAGE)."
    return None


EXEC_READY = {"pid": "host"}
"""What an inner container must share with the sandbox for ``docker exec`` into it to work under gVisor:
its PID namespace (gVisor cannot setns into a nested one; the other namespaces do not matter)."""


class AsyncDocker:
    """The Docker CLI inside a sandbox.  Each call starts ``docker ...`` in the
    sandbox and returns the running :class:`~jupyter_sandbox.process.AsyncProcess`;
    the first call waits for the daemon to be ready.

    Calling the object itself runs any docker command: ``await sb.docker("info")``.
    """

    def __init__(self, sandbox: "AsyncSandbox"):
        self._sandbox = sandbox

    async def __call__(self, *args: str, stdin: bytes | Iterable[bytes] | None = None, timeout: float | None = None,
                       workdir: str | None = None) -> AsyncProcess:
        """Run ``docker ARGS...`` in the sandbox (arguments are passed as argv, never through a shell)."""
        sandbox = self._sandbox
        if not sandbox.spec.docker:
            raise DockerNotEnabled(f"Sandbox {sandbox.name!r} was created without Docker inside.",
                                   fix="create one with docker=True (`%sandbox create --docker`, `jupyter sandbox create --docker`)")
        for arg in args:
            if not isinstance(arg, str):
                raise SandboxError(f"Docker arguments must be strings, got {arg!r}", fix="convert it with str()")
        await sandbox.wait_ready()
        argv = ["docker", *args]
        process = await sandbox.exec(argv, stdin=stdin, timeout=timeout, workdir=workdir)
        process.explain = lambda stderr: explain_failure(argv, stderr, sandbox.spec.network)
        return process

    async def run(self, image: str, *command: str, exec_ready: bool = False, timeout: float | None = None,
                  **options: Any) -> AsyncProcess:
        """``docker run [OPTIONS] IMAGE [COMMAND...]``; options as keywords (``rm=True, network="host"``).

        Args:
            exec_ready: Share the sandbox's PID namespace (``--pid=host``) so
                ``docker exec`` into this container works under gVisor.
        """
        if exec_ready:
            options = {**EXEC_READY, **options}
        return await self("run", *to_flags(options), image, *command, timeout=timeout)

    async def pull(self, image: str, timeout: float | None = None) -> AsyncProcess:
        """``docker pull IMAGE`` (needs a network; see :meth:`load` for offline use)."""
        return await self("pull", image, timeout=timeout)

    async def ps(self, all: bool = False, **options: Any) -> AsyncProcess:
        """``docker ps`` of the sandbox's own daemon."""
        return await self("ps", *to_flags({"all": all, **options}))

    async def images(self, **options: Any) -> AsyncProcess:
        """``docker images`` of the sandbox's own daemon."""
        return await self("images", *to_flags(options))

    async def exec(self, container: str, *command: str, **options: Any) -> AsyncProcess:
        """``docker exec [OPTIONS] CONTAINER COMMAND...`` into an inner container."""
        return await self("exec", *to_flags(options), container, *command)

    async def logs(self, container: str, **options: Any) -> AsyncProcess:
        """``docker logs [OPTIONS] CONTAINER`` (``follow=True`` streams)."""
        return await self("logs", *to_flags(options), container)

    async def build(self, context: str | os.PathLike[str], tag: str | None = None, *, dockerfile: str | None = None,
                    timeout: float | None = None, **options: Any) -> AsyncProcess:
        """``docker build`` with a *local* directory as context, streamed into the sandbox.

        The directory is sent as a tar on the build's stdin (``docker build -``),
        so nothing is left behind in the sandbox but the image.

        Args:
            context: A directory on this machine.
            tag: ``-t`` for the image.
            dockerfile: Path of the Dockerfile inside the context.
        """
        path = os.fspath(context)
        if not os.path.isdir(path):
            raise SandboxError(f"Build context {path!r} is not a directory on this machine.",
                               fix="pass the folder that holds the Dockerfile")
        flags = to_flags({"tag": tag, "file": dockerfile, **options})
        return await self("build", *flags, "-", stdin=iterate_file(tar_stream(path, None)), timeout=timeout)

    async def compose(self, *args: str, project_dir: str | os.PathLike[str] | None = None,
                      timeout: float | None = None) -> AsyncProcess:
        """``docker compose ARGS...``; ``project_dir`` (a local folder) is copied into the sandbox first."""
        if project_dir is None:
            return await self("compose", *args, timeout=timeout)
        local = os.fspath(project_dir)
        if not os.path.isdir(local):
            raise SandboxError(f"Compose project {local!r} is not a directory on this machine.",
                               fix="pass the folder that holds compose.yaml")
        remote = "/root/compose/" + (os.path.basename(os.path.abspath(local)) or "project")
        await self._sandbox.files.upload(local, remote)
        return await self("compose", "--project-directory", remote, *args, timeout=timeout, workdir=remote)

    async def load(self, image: str, timeout: float | None = None,
                   on_progress: Callable[[int, float], None] | None = None) -> AsyncProcess:
        """Copy an image from the host engine into the sandbox's daemon (``docker save | docker load``).

        Args:
            on_progress: Called with (bytes sent, seconds) from the thread feeding the copy.

        Raises:
            ImageNotFound: If the host engine does not have it.
        """
        await self._sandbox.wait_ready()
        return await load_image(self._sandbox, image, timeout=timeout, on_progress=on_progress)


async def load_image(sandbox: "AsyncSandbox", image: str, *, timeout: float | None = None,
                     on_progress: Callable[[int, float], None] | None = None) -> AsyncProcess:
    """Start copying a host image into a sandbox's daemon, without waiting for the sandbox to be ready.

    The one transport every load goes through (``load()`` and the images
    preloaded during startup): today ``docker save`` streamed into ``docker load``
    run in the sandbox.

    Args:
        on_progress: Called with (bytes sent so far, seconds since the start), in the feeding thread.

    Raises:
        ImageNotFound: If the host engine does not have the image.
    """
    if not sandbox.spec.docker:
        raise DockerNotEnabled(f"Sandbox {sandbox.name!r} was created without Docker inside.",
                               fix="create one with docker=True (`%sandbox create --docker`, `jupyter sandbox create --docker`)")
    engine = sandbox.engine
    await engine.image(image)
    started = time.monotonic()

    def chunks() -> Iterator[bytes]:  # runs in the stdin thread, off the event loop
        sent = 0
        for chunk in engine.client.api.get_image(image):
            yield chunk
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, time.monotonic() - started)

    process = await sandbox.exec(["docker", "load"], stdin=chunks(), timeout=timeout)
    argv = ["docker", "load"]
    process.explain = lambda stderr: explain_failure(argv, stderr, sandbox.spec.network)
    return process
