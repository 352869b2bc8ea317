"""``sandbox.docker``: the Docker CLI of a sandbox's own daemon, as streamed processes.

Commands go to the inner daemon's API on its host socket (see
:mod:`jupyter_sandbox.apisocket`), run by the host's docker CLI
(:mod:`jupyter_sandbox.hostcli`).  They take the older path, the docker CLI
started inside the sandbox through the engine's exec, where that is needed:
a CLI plugin the host lacks (``compose``, ``buildx``), a working directory
inside the sandbox, or a sandbox without a host socket.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import docker.errors as docker_errors

from . import compose as compose_rewrite
from . import hostcli, imagecache
from .errors import DockerNotEnabled, ImageExists, ImageNotFound, InnerContainerNotFound, SandboxError, SpecError
from .files import iterate_file, tar_stream
from .hostcli import HostProcess
from .process import AsyncProcess
from .threads import run_sync

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox

NETWORK_ERRORS = (
    "dial tcp",
    "no such host",
    "network is unreachable",
    "no route to host",
    "i/o timeout",
    "temporary failure in name resolution",
    "connection refused",
)


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
            return (
                "This sandbox has network 'none' (loopback only), so its Docker daemon cannot reach a registry. "
                "Copy images in from the host with sandbox.docker.load(IMAGE) (`jupyter sandbox load NAME IMAGE`), "
                "or create the sandbox with network='sandbox' (the default)."
            )
        if network == "sandbox":
            return (
                "The Docker daemon in the sandbox could not reach the registry: the sandbox's egress policy may not "
                "admit it (`jupyter sandbox egress NAME` shows it), or this host has no route or DNS to it. "
                "Copy images in from the host with sandbox.docker.load(IMAGE) instead."
            )
        return (
            "The Docker daemon in the sandbox could not reach the registry (no network route or DNS from this host). "
            "Copy images in from the host with sandbox.docker.load(IMAGE) instead."
        )
    # Through the host socket, a dead daemon behind a live relay resets the connection instead.
    if "cannot connect to the docker daemon" in text or (
        "error during connect" in text and ("connection reset by peer" in text or text.rstrip().endswith("eof"))
    ):
        return (
            "The sandbox's Docker daemon is not running (it exited or was killed). Restart it with "
            "sandbox.restart_daemon(), `jupyter sandbox restart-daemon NAME` or `%sandbox restart-daemon`; "
            "inner containers stopped with it and come back only if started with --restart=always."
        )
    if "'compose' is not a docker command" in text or 'unknown command "compose"' in text:
        return (
            "This image has no Docker Compose v2 plugin. The default image has it; build one with `jupyter sandbox image build --docker --offline`."
        )
    if "error executing setns process" in text:
        return (
            "gVisor before 2025-07 cannot join a nested PID namespace, so `docker exec` only works into inner "
            "containers that share the sandbox's. Every container the sandbox's daemon creates does, unless it "
            "was given another one (--pid=container:NAME): drop that option, or use --pid=host."
        )
    if "unable to find image" in text or "pull access denied" in text or "no such image" in text:
        return "The image is not in the sandbox's daemon. Load it from the host with sandbox.docker.load(IMAGE)."
    unknown = re.search(r"unknown command:? \"?(?:docker )?([\w-]+)|'([\w-]+)' is not a docker command", text)
    if unknown:
        typed = unknown.group(1) or unknown.group(2)
        close = difflib.get_close_matches(typed, DOCKER_COMMANDS, n=3, cutoff=0.6)
        if close:
            return f"`docker {typed}` is not a docker command. Did you mean {' or '.join(f'`docker {c}`' for c in close)}?"
    return None


DOCKER_COMMANDS = (
    "attach",
    "build",
    "builder",
    "buildx",
    "commit",
    "compose",
    "config",
    "container",
    "context",
    "cp",
    "create",
    "diff",
    "events",
    "exec",
    "export",
    "history",
    "image",
    "images",
    "import",
    "info",
    "inspect",
    "kill",
    "load",
    "login",
    "logout",
    "logs",
    "manifest",
    "network",
    "node",
    "pause",
    "plugin",
    "port",
    "ps",
    "pull",
    "push",
    "rename",
    "restart",
    "rm",
    "rmi",
    "run",
    "save",
    "search",
    "secret",
    "service",
    "stack",
    "start",
    "stats",
    "stop",
    "swarm",
    "system",
    "tag",
    "top",
    "trust",
    "unpause",
    "update",
    "version",
    "volume",
    "wait",
)
"""The docker CLI's commands, for "did you mean" on a typo."""


NOTED_COMPOSE_COMMANDS = ("up", "run", "create", "config")
"""Compose commands before which the rewrite's notes are printed (not every exec, logs or down)."""
PUBLISH_ADVICE = (
    "`-p`/`ports:` publish nothing inside a sandbox on this runsc: the inner dockerd runs without iptables "
    "(gVisor 20240729's netstack lacks what Docker's port mapping needs), so {what} is not listening. "
    "Run it with --network=host (compose: `network_mode: host`): its ports are then the sandbox's own, "
    "at localhost:PORT inside the sandbox."
)
NAMES_ADVICE = (
    "Containers on inner networks cannot find each other by name inside a sandbox on this runsc (no embedded DNS "
    "without iptables), so {what}. Run them with --network=host (compose: `network_mode: host` on every service) "
    "and connect to localhost:PORT instead of the service name."
)
INNER_SHARED_NETWORKS = ("host", "none", "default", "bridge")


def _flag_values(args: list[str], *names: str) -> list[str]:
    """The values of a docker flag (``--network x``, ``--network=x``, ``-p 80:80``...) among its arguments."""
    values = []
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                values.append(args[index + 1])
            elif arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
            elif len(name) == 2 and arg.startswith(name) and not arg.startswith("--") and len(arg) > 2:
                values.append(arg[2:])
    return values


def advise_run(args: list[str]) -> str | None:
    """Advice for ``docker run/create ARGS`` whose networking cannot work as meant inside a sandbox, or None."""
    networks = _flag_values(args, "--network", "--net")
    if any(n == "host" for n in networks):
        return None
    published = _flag_values(args, "-p", "--publish") + [a for a in args if a in ("-P", "--publish-all")]
    if published:
        return PUBLISH_ADVICE.format(what="the published port " + ", ".join(published))
    custom = [n for n in networks if n not in INNER_SHARED_NETWORKS and not n.startswith("container:")]
    if custom:
        return NAMES_ADVICE.format(what=f"containers on network {custom[0]!r} reach each other only by IP")
    return None


def advise_compose(project: dict[str, Any]) -> str | None:
    """Advice for a compose project (its parsed YAML) whose services use ``ports:`` or talk by name, or None."""
    services = project.get("services") or {}
    if not isinstance(services, dict):
        return None
    not_host = [name for name, svc in services.items() if (svc or {}).get("network_mode") != "host"]
    published = [name for name in not_host if (services[name] or {}).get("ports")]
    if published:
        return PUBLISH_ADVICE.format(what="`ports:` of " + ", ".join(published))
    if len(services) > 1 and not_host:
        return NAMES_ADVICE.format(what=f"{', '.join(not_host)} cannot reach the other services by their names")
    return None


def compose_project(directory: str) -> dict[str, Any] | None:
    """The parsed compose file of a local project folder, or None if there is none or it does not parse."""
    import yaml

    for name in ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            try:
                with open(path) as f:
                    data = yaml.safe_load(f)
            except (OSError, yaml.YAMLError):
                return None
            return data if isinstance(data, dict) else None
    return None


class AsyncDocker:
    """The Docker CLI inside a sandbox.  Each call starts ``docker ...`` in the
    sandbox and returns the running :class:`~jupyter_sandbox.process.AsyncProcess`;
    the first call waits for the daemon to be ready.

    Calling the object itself runs any docker command: ``await sb.docker("info")``.
    """

    def __init__(self, sandbox: "AsyncSandbox"):
        self._sandbox = sandbox
        self._client: Any = None

    @property
    def socket(self) -> str | None:
        """The host path of the inner daemon's API socket (None: this sandbox has none)."""
        return self._sandbox.api_socket

    @property
    def client(self) -> Any:
        """A docker-py client for the inner daemon, over its host socket (made on first use).

        Calls on it go straight to the daemon: they do not resume a paused sandbox
        (they would wait for it), so call ``sandbox.resume()`` first if it may be paused.

        Raises:
            DockerNotEnabled: If the sandbox has no Docker daemon.
            SandboxError: If it has no host socket.
        """
        self._check_enabled()
        if self._client is None:
            import docker as docker_py

            path = self._sandbox._api_socket_or_raise()
            self._client = docker_py.DockerClient(base_url="unix://" + path, timeout=120)
        return self._client

    def close(self) -> None:
        """Close :attr:`client`'s connections, if it was made."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def direct(self, args: tuple[str, ...] | list[str]) -> bool:
        """Whether ``docker ARGS`` runs with the host's CLI over the socket (else inside, through exec)."""
        if self.socket is None or hostcli.docker_cli() is None:
            return False
        verb = next((arg for arg in args if not arg.startswith("-")), "")
        return verb not in PLUGINS or hostcli.has_plugin(verb)

    async def _image_layers(self) -> list[list[str]]:
        """The layers (diff ids, base first) of every image the sandbox's daemon has ([] when it cannot say)."""

        def collect() -> list[list[str]]:
            api = self.client.api
            found = []
            for summary in api.images():
                try:
                    found.append(list((api.inspect_image(summary["Id"]).get("RootFS") or {}).get("Layers") or []))
                except docker_errors.NotFound:  # removed meanwhile
                    continue
            return found

        try:
            return await run_sync(collect)
        except (docker_errors.DockerException, SandboxError):
            return []

    async def _image_id(self, image: str) -> str | None:
        """The id of the sandbox daemon's image called ``image``, if it has one (None also when it cannot say)."""
        try:
            found = await run_sync(self.client.api.inspect_image, image)
        except (docker_errors.DockerException, SandboxError):  # not there, or no socket now: copy as usual
            return None
        return str(found.get("Id") or "") or None

    def _check_enabled(self) -> None:
        if not self._sandbox.spec.docker:
            raise DockerNotEnabled(
                f"Sandbox {self._sandbox.name!r} was created without Docker inside.",
                fix="create one with docker=True (`%sandbox create --docker`, `jupyter sandbox create --docker`)",
            )

    async def __call__(
        self,
        *args: str,
        stdin: bytes | Iterable[bytes] | None = None,
        timeout: float | None = None,
        workdir: str | None = None,
        preface: str = "",
        advice: str | None = None,
    ) -> AsyncProcess:
        """Run ``docker ARGS...`` in the sandbox (arguments are passed as argv, never through a shell).

        Args:
            preface: Lines printed to the command's stderr before it starts (notes for the user).
            advice: Shown with the result even when the command succeeds (what will not work as meant);
                by default :func:`advise_run` of a ``run``/``create``.
        """
        sandbox = self._sandbox
        self._check_enabled()
        for arg in args:
            if not isinstance(arg, str):
                raise SandboxError(f"Docker arguments must be strings, got {arg!r}", fix="convert it with str()")
        await sandbox.wait_ready()
        argv = ["docker", *args]
        process: AsyncProcess
        if workdir is None and not preface and self.direct(args):
            process = await HostProcess.start_cli(
                sandbox.engine, sandbox.container_id, self.socket, argv, stdin=stdin, timeout=timeout, sandbox=sandbox.name
            )
        else:
            command = ["sh", "-c", 'printf "%s\\n" "$1" >&2; shift; exec "$@"', "sh", preface, *argv] if preface else argv
            process = await sandbox.exec(command, stdin=stdin, timeout=timeout, workdir=workdir)
        process.disk_full = sandbox.disk_full_error  # over the socket too: the store is the sandbox's
        generic = process.explain  # e.g. a failed fork: the sandbox's pids limit
        explain = self._explainer(argv)
        process.explain = lambda stderr: explain(stderr) or (generic(stderr) if generic else None)
        if advice is None and args and args[0] in ("run", "create"):
            advice = advise_run(list(args[1:]))
        process.advice = advice
        return process

    def _explainer(self, argv: list[str]) -> Callable[[str], str | None]:
        def explain(stderr: str) -> str | None:
            path = self.socket
            if path and path in stderr and "cannot connect" in stderr.lower() and not os.path.exists(path):
                return (
                    f"The host socket of sandbox {self._sandbox.name!r} is closed (sandbox.close_api()); its daemon "
                    "still runs. Open it again with sandbox.open_api()."
                )
            return explain_failure(argv, stderr, self._sandbox.spec.network)

        return explain

    async def run(self, image: str, *command: str, timeout: float | None = None, **options: Any) -> AsyncProcess:
        """``docker run [OPTIONS] IMAGE [COMMAND...]``; options as keywords (``rm=True, network="host"``).

        ``docker exec`` into the container works however it was started (see the init program's
        shared PID namespace in :mod:`jupyter_sandbox.bootstrap`).
        """
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

    async def stop(self, container: str, timeout: int = 10) -> None:
        """Stop an inner container (SIGTERM, then SIGKILL after ``timeout`` seconds), through :attr:`client`.

        Raises:
            InnerContainerNotFound: If the daemon has no such container.
        """
        await self._container_call("stop", container, lambda api: api.stop(container, timeout=timeout))

    async def remove(self, container: str, force: bool = False) -> None:
        """Remove an inner container (``force``: a running one too), through :attr:`client`.

        Raises:
            InnerContainerNotFound: If the daemon has no such container.
        """
        await self._container_call("rm", container, lambda api: api.remove_container(container, force=force))

    async def _container_call(self, verb: str, container: str, call: Callable[[Any], Any]) -> None:
        await self._sandbox.wait_ready()  # resumes a paused sandbox: the client's calls would wait for it
        api = self.client.api
        name = self._sandbox.name
        try:
            await run_sync(call, api)
        except docker_errors.NotFound:
            raise InnerContainerNotFound(
                f"Sandbox {name!r} has no container {container!r}.", fix=f"`jupyter sandbox docker {name} -- ps -a` lists its containers"
            ) from None
        except docker_errors.APIError as error:
            raise SandboxError(
                f"`docker {verb} {container}` failed in sandbox {name!r}: {error.explanation}",
                fix=f"look at its dockerd log (`jupyter sandbox logs {name}`)",
            ) from None

    async def build(
        self, context: str | os.PathLike[str], tag: str | None = None, *, dockerfile: str | None = None, timeout: float | None = None, **options: Any
    ) -> AsyncProcess:
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
            raise SandboxError(f"Build context {path!r} is not a directory on this machine.", fix="pass the folder that holds the Dockerfile")
        flags = to_flags({"tag": tag, "file": dockerfile, **options})
        return await self("build", *flags, "-", stdin=iterate_file(tar_stream(path, None)), timeout=timeout)

    async def compose(
        self, *args: str, project_dir: str | os.PathLike[str] | None = None, timeout: float | None = None, rewrite: bool = True
    ) -> AsyncProcess:
        """``docker compose ARGS...``; ``project_dir`` (a local folder) is copied into the sandbox first.

        Args:
            rewrite: Run the project as rewritten by :func:`jupyter_sandbox.compose.rewrite`
                (services on the sandbox's network stack, reaching each other by name), so
                compose files work as written; the changes are printed to stderr first.
                ``False`` runs the file exactly as written.

        Raises:
            ComposeNotSupported: If the project cannot run on one shared network stack.
        """
        if project_dir is None:
            return await self("compose", *args, timeout=timeout)
        local = os.fspath(project_dir)
        if not os.path.isdir(local):
            raise SandboxError(f"Compose project {local!r} is not a directory on this machine.", fix="pass the folder that holds compose.yaml")
        remote = "/root/compose/" + (os.path.basename(os.path.abspath(local)) or "project")
        await self._sandbox.files.upload(local, remote)
        base = ["compose", "--project-directory", remote]
        rewritten = await self._rewritten(base) if rewrite else None
        if rewritten is None:  # as written: say what will not work as meant
            project = compose_project(local) if args and args[0] in ("up", "run", "create", "start") else None
            return await self(*base, *args, timeout=timeout, workdir=remote, advice=advise_compose(project) if project else None)
        target = f"{remote}/{compose_rewrite.REWRITTEN_FILE}"
        await self._sandbox.files.write(target, rewritten.to_json())
        verb = next((arg for arg in args if not arg.startswith("-")), "")
        shown = rewritten.notes if verb in NOTED_COMPOSE_COMMANDS else []
        notes = "\n".join(f"jupyter-sandbox: {note}" for note in shown)
        return await self(*base, "-f", target, *args, timeout=timeout, workdir=remote, preface=notes)

    async def _rewritten(self, base: list[str]) -> compose_rewrite.Rewrite | None:
        """The project rewritten for the sandbox, or None when compose cannot read it (it then says why itself)."""
        config = await self(*base, "config", "--format", "json", timeout=60)
        if await config.wait() != 0:
            return None
        try:
            project = json.loads(config.stdout_text)
        except ValueError:
            return None
        return compose_rewrite.rewrite(project)

    async def load(self, image: str, timeout: float | None = None, on_progress: Callable[[int, float], None] | None = None) -> AsyncProcess:
        """Copy an image from the host engine into the sandbox's daemon, streamed, with progress on stderr.

        The host engine's ``docker save`` stream (docker-py ``get_image``) is fed
        to ``docker load`` on the sandbox's socket, and kept on the host as the
        image's saved copy: later loads of the same image read that copy instead
        of saving it again, and send only the layers the sandbox's daemon lacks
        (:mod:`jupyter_sandbox.imagecache`).  An image the daemon already has
        under that name, with the same id, is not copied at all.  Progress (MB
        and MB/s) is written to stderr when the copy takes more than a second.

        Args:
            on_progress: Called with (bytes sent, seconds) from the thread feeding the copy.

        Raises:
            ImageNotFound: If the host engine does not have it.
        """
        await self._sandbox.wait_ready()
        return await load_image(self._sandbox, image, timeout=timeout, on_progress=on_progress)

    async def save(
        self,
        image: str,
        timeout: float | None = None,
        *,
        tag: str | None = None,
        replace: bool = False,
        on_progress: Callable[[int, float], None] | None = None,
    ) -> AsyncProcess:
        """Copy an image from the sandbox's daemon into the host engine (the reverse of :meth:`load`),
        streamed (``docker load`` on the host; no temporary file).

        Args:
            image: The image in the sandbox.
            tag: Its name on the host (default: the same as inside); the sandbox's daemon gets that
                tag too, since the copy carries the tags it is saved under.
            replace: Take the tag even if the host engine has an image of that name (never by default:
                the host's image would lose its name).
            on_progress: Called with (bytes sent, seconds) from the thread feeding the copy.

        Raises:
            ImageNotFound: If the sandbox's daemon does not have it.
            ImageExists: If the host has an image of that name and ``replace`` is not set.
        """
        self._check_enabled()
        await self._sandbox.wait_ready()
        client = self.client
        api = client.api
        target = tag or image
        host = self._sandbox.engine.client.api

        def prepare() -> None:
            try:
                api.inspect_image(image)
            except docker_errors.ImageNotFound:
                raise ImageNotFound(
                    f"Image {image!r} is not in sandbox {self._sandbox.name!r}'s daemon.", fix="`docker images` in the sandbox lists what it has"
                ) from None
            if not replace:
                try:
                    host.inspect_image(target)
                except docker_errors.ImageNotFound:
                    pass
                else:
                    raise ImageExists(
                        f"The host engine already has an image named {target!r}; the copy would take its name.",
                        fix="give the copy another name (--tag / tag=), or replace it (--replace / replace=True)",
                    )
            if target != image:
                repository, _, version = target.rpartition(":") if ":" in target.rsplit("/", 1)[-1] else (target, "", "")
                try:
                    api.tag(image, repository, version or None)
                except docker_errors.APIError as error:
                    raise SpecError("tag", f"{target!r} is not a usable image name ({error.explanation})", fix="use e.g. 'myapp:1'") from None

        await run_sync(prepare)
        return await self._copy(
            lambda: api.get_image(target, chunk_size=COPY_CHUNK),
            None,
            f"{target} from sandbox {self._sandbox.name} to the host",
            timeout,
            on_progress,
        )

    async def _copy(
        self,
        source: Callable[[], Iterable[bytes]],
        target_socket: str | None,
        what: str,
        timeout: float | None,
        on_progress: Callable[[int, float], None] | None = None,
    ) -> AsyncProcess:
        """``docker load`` on a socket (None: the host engine), fed from ``source``, noting progress.

        Does not wait for the sandbox to be ready: callers do (or, preloading during startup, know
        its daemon answers).
        """
        sandbox = self._sandbox

        def counted(process: HostProcess) -> Iterator[bytes]:  # runs in the stdin thread
            meter = CopyMeter(what, process.note)
            for chunk in source():
                meter.add(len(chunk))
                if on_progress is not None:
                    on_progress(meter.bytes, time.monotonic() - meter.started)
                yield chunk
            meter.finish()

        argv = ["docker", "load"]
        process = await HostProcess.start_cli(
            sandbox.engine, sandbox.container_id, target_socket, argv, stdin=counted, timeout=timeout, sandbox=sandbox.name
        )
        process.explain = self._explainer(argv)
        if target_socket is not None:  # into the sandbox: a full disk store is its DiskFull
            process.disk_full = sandbox.disk_full_error
        return process


COPY_CHUNK = 1 << 20
"""Bytes per read of an image stream."""
PROGRESS_EVERY = 2.0
"""Seconds between two progress lines of an image copy."""
PLUGINS = ("compose", "buildx")
"""docker CLI plugins the sandbox's image has; they run on the host only if the host's CLI has them too."""


class CopyMeter:
    """Counts an image copy and reports its progress (MB, MB/s) every few seconds once it has taken one."""

    def __init__(self, what: str, write: Callable[[str], None]):
        self.what = what
        self.write = write
        self.bytes = 0
        self.started = time.monotonic()
        self._last = self.started - PROGRESS_EVERY

    def add(self, count: int) -> None:
        """Count ``count`` more bytes; report if due."""
        self.bytes += count
        now = time.monotonic()
        if now - self.started >= 1.0 and now - self._last >= PROGRESS_EVERY:
            self._last = now
            self.write(f"copying {self.what}: {self.line(now)}\n")

    def line(self, now: float | None = None) -> str:
        """``123.4 MB, 45.6 MB/s``."""
        elapsed = max((now or time.monotonic()) - self.started, 1e-6)
        return f"{self.bytes / 1e6:.1f} MB, {self.bytes / 1e6 / elapsed:.1f} MB/s"

    def finish(self) -> None:
        """Report the total if the copy took over a second."""
        elapsed = time.monotonic() - self.started
        if elapsed >= 1.0:
            self.write(f"copied {self.what}: {self.line()} in {elapsed:.1f} s\n")


async def load_image(
    sandbox: "AsyncSandbox", image: str, *, timeout: float | None = None, on_progress: Callable[[int, float], None] | None = None
) -> AsyncProcess:
    """Start copying a host image into a sandbox's daemon, without waiting for the sandbox to be ready.

    The one path every load takes (``load()`` and the images preloaded during
    startup): the host's saved copy of the image, or else the host engine's
    ``docker save`` stream (kept as that copy on the way), fed to ``docker load``
    on the sandbox's host socket, or, for a sandbox without one, to ``docker
    load`` run inside it through exec.  Over the socket, a saved copy goes
    without the layers the sandbox's daemon has (empty files in their place,
    which its ``docker load`` never opens), and an image it already has (same
    name, same id) is not copied: the process only confirms it.

    Args:
        on_progress: Called with (bytes sent so far, seconds since the start), in the feeding thread.

    Raises:
        ImageNotFound: If the host engine does not have the image.
    """
    docker = sandbox.docker
    docker._check_enabled()
    engine = sandbox.engine
    found = await engine.image(image)
    image_id = str(found.get("Id") or "")
    saved = imagecache.lookup(image_id, image) if image_id else None

    thin: Iterable[bytes] | None = None  # the saved copy without the layers the sandbox has (set below)

    def source() -> Iterable[bytes]:  # runs in the stdin thread, off the event loop
        if thin is not None:
            return thin
        if saved is not None:
            try:
                return imagecache.read(saved)
            except OSError:  # removed since: save it again
                pass
        stream: Iterable[bytes] = engine.client.api.get_image(image, chunk_size=COPY_CHUNK)
        return imagecache.keep(stream, image_id, image, expected=found.get("Size")) if image_id else stream

    if docker.direct(["load"]):
        if image_id and await docker._image_id(image) == image_id:  # already there, under that name: nothing to copy
            argv = ["docker", "image", "inspect", "--format", f"Loaded image: {image} (already in the sandbox: nothing copied)", image]
            return await HostProcess.start_cli(engine, sandbox.container_id, docker.socket, argv, timeout=timeout, sandbox=sandbox.name)
        what = f"{image} into sandbox {sandbox.name}"
        if saved is not None:  # only the layers the sandbox's daemon lacks
            chains = imagecache.layer_chains(await docker._image_layers())
            try:
                thin, left_out = await run_sync(imagecache.without_layers, saved, chains)
            except OSError:  # removed since: save it again
                pass
            else:
                what += f" (the host's saved copy{f', without {left_out / 1e6:.1f} MB of layers it has' if left_out else ''})"
        return await docker._copy(source, docker.socket, what, timeout, on_progress=on_progress)
    started = time.monotonic()

    def chunks() -> Iterator[bytes]:
        sent = 0
        for chunk in source():
            yield chunk
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, time.monotonic() - started)

    argv = ["docker", "load"]
    process = await sandbox.exec(argv, stdin=chunks(), timeout=timeout)
    process.explain = docker._explainer(argv)
    return process
