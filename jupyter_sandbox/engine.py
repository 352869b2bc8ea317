"""The host Docker engine: docker-py kept off the event loop, its errors made readable."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any, Callable, Iterator, ParamSpec, TypeVar

import anyio
import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import Mount

from . import labels
from .errors import (
    EngineUnavailable,
    ImageNotFound,
    NotIsolated,
    RuntimeNotRegistered,
    SandboxError,
    SandboxExists,
)
from .runtimes import WANTED_RUNTIMES, declared_network, is_gvisor, network_of, runtime_for, version_text
from .spec import DEFAULT_IMAGE
from .threads import run_sync

T = TypeVar("T")
P = ParamSpec("P")

RUNTIME_ENV = "JUPYTER_SANDBOX_RUNTIME"
"""Names the registered runtime every create uses (it must still be gVisor, for the asked network mode)."""

ENGINE_FIX = (
    "start the Docker engine (`bash scripts/setup-host.sh` does it, or `sudo systemctl start docker`) "
    "and check that DOCKER_HOST, if set, points at it"
)


def explain(error: BaseException) -> SandboxError:
    """Turn a docker-py or connection error into a :class:`SandboxError` a user can act on."""
    if isinstance(error, SandboxError):
        return error
    if isinstance(error, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)):
        return EngineUnavailable(f"Cannot reach the Docker engine: {error}", fix=ENGINE_FIX)
    if isinstance(error, docker.errors.APIError):
        text = error.explanation or str(error)
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return SandboxError(f"The Docker engine refused the request: {text}")
    if isinstance(error, docker.errors.DockerException):
        return EngineUnavailable(f"Cannot reach the Docker engine: {error}", fix=ENGINE_FIX)
    return SandboxError(f"Unexpected error talking to the Docker engine: {error!r}")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise docker-py and connection errors as :class:`SandboxError`."""
    try:
        yield
    except SandboxError:
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException, ConnectionError) as error:
        raise explain(error) from error


class Engine:
    """The host's Docker engine, as jupyter-sandbox uses it.

    Every method is async and runs docker-py in a worker thread.  One engine
    per process is usually enough: see :meth:`default`.

    Args:
        client: A docker-py client; by default one from the environment
            (``DOCKER_HOST`` or the local socket).
    """

    _default: "Engine | None" = None
    _default_lock = threading.Lock()

    def __init__(self, client: docker.DockerClient | None = None):
        self._client = client
        self._client_lock = threading.Lock()
        self._runtimes: tuple[float, dict[str, dict[str, Any]]] | None = None

    @classmethod
    def default(cls) -> "Engine":
        """The process-wide engine (created on first use)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    @property
    def client(self) -> docker.DockerClient:
        """The docker-py client (connects on first use; blocking)."""
        with self._client_lock:
            if self._client is None:
                with translated():
                    self._client = docker.DockerClient.from_env(max_pool_size=64, timeout=120)
            return self._client

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking docker-py call in a thread, translating its errors."""

        def run() -> T:
            with translated():
                return function(*args, **kwargs)

        return await run_sync(run)

    async def ping(self) -> None:
        """Raise :class:`EngineUnavailable` unless the engine answers."""
        await self.call(lambda: self.client.ping())

    async def runtimes(self, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """The runtimes the engine has registered (``docker info``'s ``Runtimes``), cached for 30 s."""
        now = time.monotonic()
        if fresh or self._runtimes is None or now - self._runtimes[0] > 30:
            info = await self.call(lambda: self.client.info())
            self._runtimes = (now, dict(info.get("Runtimes") or {}))
        return self._runtimes[1]

    async def runsc_runtime(self, network: str) -> str:
        """The registered runsc runtime to use for a network mode.

        Raises:
            RuntimeNotRegistered: If the engine has none, saying how to register it.
        """
        registered = await self.runtimes()
        forced = os.environ.get(RUNTIME_ENV, "").strip()
        if forced:
            return await run_sync(self._forced_runtime, forced, network, await self.runtimes(fresh=True))
        name = await run_sync(runtime_for, network, registered)
        if name is None:
            registered = await self.runtimes(fresh=True)
            name = await run_sync(runtime_for, network, registered)
        if name is None:
            impostors = [
                n
                for n, r in registered.items()
                if declared_network(r) == network and "runsc" in str(r.get("path", "")) and not is_gvisor(str(r.get("path", "")))
            ]
            if impostors:
                raise not_gvisor(impostors[0], registered[impostors[0]])
            wanted = {n: r for n, r in WANTED_RUNTIMES.items() if declared_network(r) == network}
            have = ", ".join(sorted(registered)) or "none"
            raise RuntimeNotRegistered(
                f"The Docker engine has no runsc runtime for network mode {network!r} (it has: {have}), and a sandbox never runs without gVisor.",
                fix="run `bash scripts/setup-host.sh`, or merge "
                + json.dumps({"runtimes": wanted})
                + " into /etc/docker/daemon.json and send dockerd SIGHUP",
            )
        return name

    def _forced_runtime(self, name: str, network: str, registered: dict[str, dict[str, Any]]) -> str:
        if name not in registered:
            raise RuntimeNotRegistered(
                f"${RUNTIME_ENV} names runtime {name!r}, which the Docker engine does not have (it has: {', '.join(sorted(registered)) or 'none'}).",
                fix=f"unset {RUNTIME_ENV}, or register that runtime in /etc/docker/daemon.json",
            )
        if network_of(registered[name]) is None:
            raise not_gvisor(name, registered[name])
        if declared_network(registered[name]) != network:
            raise RuntimeNotRegistered(
                f"${RUNTIME_ENV} names runtime {name!r}, which gives network mode {declared_network(registered[name])!r}, not {network!r}.",
                fix=f"unset {RUNTIME_ENV} or ask for network={declared_network(registered[name])!r}",
            )
        return name

    def is_runsc(self, runtime_name: str, registered: dict[str, dict[str, Any]]) -> bool:
        """Whether a runtime name is a registered runtime whose binary says it is gVisor's runsc."""
        return runtime_name in registered and network_of(registered[runtime_name]) is not None

    async def image(self, reference: str) -> dict[str, Any]:
        """Inspect a host image.

        Raises:
            ImageNotFound: With how to build or load it.
        """
        try:
            return await self.call(lambda: self.client.api.inspect_image(reference))
        except SandboxError as error:
            if isinstance(error.__cause__, docker.errors.ImageNotFound):
                raise image_not_found(reference) from None
            raise

    async def find(self, name: str) -> Container | None:
        """The container of the sandbox called ``name``, if any."""

        def get() -> Container | None:
            try:
                container = self.client.containers.get(labels.container_name(name))
            except docker.errors.NotFound:
                return None
            return container if container.labels.get(labels.MANAGED) == "1" else None

        return await self.call(get)

    async def containers(self) -> list[Container]:
        """Every container jupyter-sandbox manages, running or not."""
        return await self.call(lambda: self.client.containers.list(all=True, filters={"label": f"{labels.MANAGED}=1"}, ignore_removed=True))

    async def create_container(self, name: str, *, container_name: str | None = None, **options: Any) -> Container:
        """Create (not start) a container, turning a name clash into :class:`SandboxExists`.

        Not cancellable: a cancel would abandon the engine's call half-way and lose the id of a
        container that still appears, so it waits for the answer and lands at the caller's next
        checkpoint, when the caller knows the id and can remove the container.
        """

        def create() -> Container:
            try:
                volumes = self._labelled_volumes(options)
                return self.client.containers.create(name=container_name or labels.container_name(name), **volumes)
            except docker.errors.ImageNotFound:
                raise image_not_found(options.get("image", "")) from None
            except docker.errors.APIError as error:
                if error.status_code == 409:
                    raise SandboxExists(
                        f"A sandbox named {name!r} already exists.",
                        fix=f"choose another name, or remove it first with `jupyter sandbox rm {name}`",
                    ) from None
                raise

        with anyio.CancelScope(shield=True):
            container = await self.call(create)
        return container

    def _labelled_volumes(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with the image's declared volumes (``VOLUME`` in its Dockerfile) mounted as
        anonymous volumes that carry the sandbox's ownership labels: the engine would make them
        anyway, unlabelled, and a volume left behind could then not be traced to its sandbox.
        Paths already mounted (a bind, the disk store's tmpfs) are left to those mounts, as the engine does."""
        image = options.get("image")
        if not image:
            return options
        declared = (self.client.api.inspect_image(image).get("Config") or {}).get("Volumes") or {}
        taken = {mount["Target"] for mount in options.get("mounts") or []} | set(options.get("tmpfs") or {})
        wanted = [path for path in sorted(declared) if path not in taken]
        if not wanted:
            return options
        volume_labels = labels.volume_labels(options.get("labels") or {})
        mounts = [Mount(target=path, source=None, type="volume", labels=volume_labels) for path in wanted]
        return {**options, "mounts": [*(options.get("mounts") or []), *mounts]}

    async def rename(self, container_id: str, new_name: str) -> bool:
        """Rename a container; False if the name is taken or the container is gone (atomic in the engine)."""

        def rename() -> bool:
            try:
                self.client.api.rename(container_id, new_name)
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as error:
                if error.status_code == 409:
                    return False
                raise

        return await self.call(rename)

    async def remove(self, container_id: str) -> bool:
        """Remove a container, its anonymous volumes, its API socket directory and its claim record; False if it was already gone."""
        from . import apisocket

        def remove() -> bool:
            folder = None
            try:
                attrs = self.client.api.inspect_container(container_id)
                folder = apisocket.dir_of(attrs["Config"].get("Labels") or {})
                if (attrs.get("State") or {}).get("Paused"):  # paused under runsc: dockerd's 10 s kill timeout; unpaused, 0.2 s
                    with contextlib.suppress(docker.errors.APIError):  # resumed meanwhile: the removal goes on
                        self.client.api.unpause(container_id)
                self.client.api.remove_container(container_id, force=True, v=True)
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as error:
                if "already in progress" in str(error) or error.status_code == 409:
                    return self._wait_removed(container_id)
                raise
            finally:
                apisocket.remove_dir(folder)

        existed = await self.call(remove)
        from . import ownership
        from .egress import forget
        from .status import forget_ready

        ownership.forget(container_id)  # a claimed pool member's claim record
        forget_ready(container_id)
        await forget([container_id])  # its firewall rules go with it (network "sandbox")
        return existed

    def _wait_removed(self, container_id: str) -> bool:
        try:
            self.client.api.wait(container_id, condition="removed", timeout=30)
        except (docker.errors.NotFound, docker.errors.APIError, requests.exceptions.RequestException):
            pass
        return True


def not_gvisor(name: str, runtime: dict[str, Any]) -> NotIsolated:
    """The error for a runtime whose binary does not say it is gVisor (whatever its file is called)."""
    path = str(runtime.get("path", ""))
    said = version_text(path) or "nothing (it did not run or failed)"
    return NotIsolated(
        f"Runtime {name!r} ({path}) is not gVisor: `{path} --version` says {said!r}, not 'runsc version ...'. "
        "A sandbox never runs without gVisor, so nothing was created.",
        fix="point that runtime at runsc (or a wrapper that execs it) in /etc/docker/daemon.json, or run `bash scripts/setup-host.sh`",
    )


def image_not_found(reference: str) -> ImageNotFound:
    """The error for a sandbox image missing from the host engine."""
    if reference == DEFAULT_IMAGE or reference.startswith("jupyter-sandbox/"):
        fix = f"build it with `jupyter sandbox image build --docker --offline --tag {reference}` (scripts/install.sh does this)"
    else:
        fix = (
            f"pull or load it into the host engine (`docker pull {reference}` or `docker load`), "
            f"or build a Docker-enabled one with `jupyter sandbox image build --docker --base {reference} --tag NAME`"
        )
    return ImageNotFound(f"Image {reference!r} is not in the host Docker engine.", fix=fix)
