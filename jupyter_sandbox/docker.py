"""``sandbox.docker``: the Docker CLI of a sandbox's own daemon, as streamed processes."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from . import compose as compose_rewrite
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
                    "or create the sandbox with network='sandbox' (the default).")
        if network == "sandbox":
            return ("The Docker daemon in the sandbox could not reach the registry: the sandbox's egress policy may not "
                    "admit it (`jupyter sandbox egress NAME` shows it), or this host has no route or DNS to it. "
                    "Copy images in from the host with sandbox.docker.load(IMAGE) instead.")
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
        return ("gVisor before 2025-07 cannot join a nested PID namespace, so `docker exec` only works into inner "
                "containers that share the sandbox's. Every container the sandbox's daemon creates does, unless it "
                "was given another one (--pid=container:NAME): drop that option, or use --pid=host.")
    if "unable to find image" in text or "pull access denied" in text or "no such image" in text:
        return "The image is not in the sandbox's daemon. Load it from the host with sandbox.docker.load(IMAGE)."
    return None



NOTED_COMPOSE_COMMANDS = ("up", "run", "create", "config")
"""Compose commands before which the rewrite's notes are printed (not every exec, logs or down)."""
PUBLISH_ADVICE = (
    "`-p`/`ports:` publish nothing inside a sandbox on this runsc: the inner dockerd runs without iptables "
    "(gVisor 20240729's netstack lacks what Docker's port mapping needs), so {what} is not listening. "
    "Run it with --network=host (compose: `network_mode: host`): its ports are then the sandbox's own, "
    "at localhost:PORT inside the sandbox.")
NAMES_ADVICE = (
    "Containers on inner networks cannot find each other by name inside a sandbox on this runsc (no embedded DNS "
    "without iptables), so {what}. Run them with --network=host (compose: `network_mode: host` on every service) "
    "and connect to localhost:PORT instead of the service name.")
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

    async def __call__(self, *args: str, stdin: bytes | Iterable[bytes] | None = None, timeout: float | None = None,
                       workdir: str | None = None, preface: str = "", advice: str | None = None) -> AsyncProcess:
        """Run ``docker ARGS...`` in the sandbox (arguments are passed as argv, never through a shell).

        Args:
            preface: Lines printed to the command's stderr before it starts (notes for the user).
            advice: Shown with the result even when the command succeeds (what will not work as meant);
                by default :func:`advise_run` of a ``run``/``create``.
        """
        sandbox = self._sandbox
        if not sandbox.spec.docker:
            raise DockerNotEnabled(f"Sandbox {sandbox.name!r} was created without Docker inside.",
                                   fix="create one with docker=True (`%sandbox create --docker`, `jupyter sandbox create --docker`)")
        for arg in args:
            if not isinstance(arg, str):
                raise SandboxError(f"Docker arguments must be strings, got {arg!r}", fix="convert it with str()")
        await sandbox.wait_ready()
        argv = ["docker", *args]
        command = ["sh", "-c", 'printf "%s\\n" "$1" >&2; shift; exec "$@"', "sh", preface, *argv] if preface else argv
        process = await sandbox.exec(command, stdin=stdin, timeout=timeout, workdir=workdir)
        generic = process.explain  # e.g. a failed fork: the sandbox's pids limit
        process.explain = lambda stderr: explain_failure(argv, stderr, sandbox.spec.network) or (generic(stderr) if generic else None)
        if advice is None and args and args[0] in ("run", "create"):
            advice = advise_run(list(args[1:]))
        process.advice = advice
        return process

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
                      timeout: float | None = None, rewrite: bool = True) -> AsyncProcess:
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
            raise SandboxError(f"Compose project {local!r} is not a directory on this machine.",
                               fix="pass the folder that holds compose.yaml")
        remote = "/root/compose/" + (os.path.basename(os.path.abspath(local)) or "project")
        await self._sandbox.files.upload(local, remote)
        base = ["compose", "--project-directory", remote]
        rewritten = await self._rewritten(base) if rewrite else None
        if rewritten is None:  # as written: say what will not work as meant
            project = compose_project(local) if args and args[0] in ("up", "run", "create", "start") else None
            return await self(*base, *args, timeout=timeout, workdir=remote,
                              advice=advise_compose(project) if project else None)
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

    async def load(self, image: str, timeout: float | None = None) -> AsyncProcess:
        """Copy an image from the host engine into the sandbox's daemon (``docker save | docker load``).

        Raises:
            ImageNotFound: If the host engine does not have it.
        """
        engine = self._sandbox.engine
        await engine.image(image)

        def chunks() -> Iterator[bytes]:  # runs in the stdin thread, off the event loop
            yield from engine.client.api.get_image(image)

        return await self("load", stdin=chunks(), timeout=timeout)

