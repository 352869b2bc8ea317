"""One create, from the decision to the ready sandbox: claim a warm-pool member, or boot a new container.

:meth:`AsyncSandbox.start <jupyter_sandbox.sandbox.AsyncSandbox.start>` runs a :class:`Startup`:
it asks :func:`jupyter_sandbox.pool.claim` for a ready member with the same spec and,
if there is none, checks the images, creates and starts the container (or restores a
snapshot into it) and follows the phases its init program reports.  Either way it
reports each phase on the sandbox's event bus and hands the ready container to the
sandbox (:meth:`AsyncSandbox.adopt <jupyter_sandbox.sandbox.AsyncSandbox.adopt>`).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

import anyio
from docker.models.containers import Container
from docker.types import Ulimit

from . import apisocket, egress, pool, trust
from . import labels as L
from . import network as N
from .bootstrap import DISK_PATH, DOCKERD_LOG, MARKER, PRELOADED, InitReport, diagnose, follow_reports, init_command
from .errors import (
    DaemonTimeout,
    DockerdCrashed,
    NetworkNamespaceTrap,
    NoDockerd,
    NotIsolated,
    SandboxError,
    SandboxStartFailed,
    disk_full,
)
from .events import Phase, ProgressEvent, State, image_phase, phases_for
from .locks import host_lock
from .progress import ready_text
from .runtimes import WRAPPER_PATH, needs_shared_pid, release_of
from .spec import host_pids_limit
from .threads import poll_until, run_sync

if TYPE_CHECKING:
    from .sandbox import AsyncSandbox
    from .spec import SandboxSpec

DOCKER_CAPABILITIES = ["ALL"]
"""Docker inside gVisor needs, among others, SYS_ADMIN (mounts) and NET_ADMIN; gVisor confines them."""

SOCKET_CHECK_SECONDS = 10.0
"""How long the host socket may take to answer its first ping once the daemon answers inside."""
SHARED_PID_ENV = "JUPYTER_SANDBOX_SHARED_PID"
"""Tells the init program to give inner containers the sandbox's PID namespace (see bootstrap.py)."""
PIDS_ENV = "JUPYTER_SANDBOX_PIDS"
"""Tells the init program the sandbox's process limit (it writes it to gVisor's pids cgroup)."""

TRAP_TEXT = "cannot run with network enabled in root network namespace"


def _network_trap(error: SandboxError) -> NetworkNamespaceTrap:
    """runsc before 2024-08-07 on kernel >= 6 refuses network 'sandbox' unless run through the netns wrapper."""
    return NetworkNamespaceTrap(
        f"runsc refused network mode 'sandbox' ({error.message}). This runsc decides it runs in the host's network "
        "namespace by whether /proc/sys/net/core/rmem_default exists, which kernels 6.x show in every namespace; "
        f"the runtime for this mode must be the wrapper {WRAPPER_PATH}, which hides that file from runsc.",
        fix="run `bash scripts/setup-host.sh` (installs the wrapper and registers it as runtime 'runsc-sandbox'), or use network='none'",
    )


class Startup:
    """One create of ``sandbox``: a ready warm-pool member claimed, or a new container booted, within
    the spec's timeout; on any failure (cancellation included) whatever was made is removed.

    It reports every phase on the sandbox's event bus, and hands the ready container to the
    sandbox with :meth:`AsyncSandbox.adopt <jupyter_sandbox.sandbox.AsyncSandbox.adopt>`.
    """

    def __init__(self, sandbox: "AsyncSandbox"):
        self.sandbox = sandbox
        self.spec = sandbox.spec
        self.engine = sandbox.engine
        self.name = sandbox.name
        self.started = time.monotonic()
        self._log_tail_at_timeout = ""
        self._preload_sizes: dict[str, int] = {}

    async def run(self) -> None:
        """Claim or boot; on any failure remove whatever was created and raise."""
        self.started = time.monotonic()
        try:
            with anyio.fail_after(self.spec.timeout):
                if not (self.sandbox.use_pool and await self._claim()):
                    await self._boot()
        except TimeoutError:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                self._log_tail_at_timeout = await self._read_log_tail()
            await self._fail_and_clean(self._timeout_error())
        except BaseException as error:  # includes cancellation: never leave a half-made sandbox
            await self._fail_and_clean(error)
        self.sandbox.events.close()

    def publish(
        self, phase: str, state: str, message: str = "", detail: str = "", uptime: float | None = None, elapsed: float | None = None
    ) -> ProgressEvent:
        """Report a phase on the sandbox's event bus (elapsed: since this create began, unless given)."""
        event = ProgressEvent(
            self.name,
            str(phase.value if isinstance(phase, Phase) else phase),
            str(state.value if isinstance(state, State) else state),
            round(time.monotonic() - self.started, 4) if elapsed is None else elapsed,
            message,
            detail,
            uptime=uptime,
        )
        self.sandbox.events.publish(event)
        return event

    def _current_phase(self) -> str:
        done = {e.phase for e in self.sandbox.events.history if e.state != State.STARTED}
        for phase in phases_for(self.spec.docker, self.spec.snapshot is not None):
            if phase.value not in done:
                return phase.value
        return Phase.READY.value

    def _ready(self, **how: Any) -> str:
        """Hand the booted container to the sandbox as ready; the text its "ready" phase says."""
        seconds = time.monotonic() - self.started
        self.sandbox.adopt(self.sandbox.container_id, api_dir=self.sandbox.api_dir, ready_seconds=seconds)
        return ready_text(self.spec.docker, seconds, **how)

    # -- a warm-pool member ---------------------------------------------------------

    async def _claim(self) -> bool:
        """Take a ready pool member (True), replaying its boot as this create's phases."""
        claimed = await pool.claim(self.engine, self.spec, self.sandbox.owner)
        if claimed is None:
            return False
        seconds = time.monotonic() - self.started
        self.sandbox.adopt(claimed.container_id, api_dir=claimed.api_dir, ready_seconds=seconds, from_pool=True)
        self.publish(Phase.IMAGE_CHECK, State.DONE, f"{self.spec.image} (warm pool)")
        self.publish(Phase.SANDBOX_START, State.DONE, f"taken from the warm pool ({claimed.member})")
        if self.spec.snapshot is not None:
            self.publish(Phase.RESTORED, State.DONE, f"pre-restored from snapshot {self.spec.snapshot}")
        for report in claimed.reports:
            if report.state == "done" and report.phase not in (Phase.READY.value, Phase.DAEMON.value):
                self.publish(report.phase, State.DONE, f"pre-booted: {report.message}".rstrip(": "), uptime=report.uptime)
        self.publish(Phase.READY, State.DONE, ready_text(self.spec.docker, seconds, pool=True), elapsed=seconds)
        return True

    # -- a new container --------------------------------------------------------------

    async def _read_log_tail(self) -> str:
        if not (self.sandbox.container_id and self.spec.docker):
            return ""
        try:
            process = await self.sandbox.run(["tail", "-n", "30", DOCKERD_LOG], timeout=4)
        except SandboxError:
            return ""
        return process.stdout_text.rstrip()

    async def _fail_and_clean(self, error: BaseException) -> None:
        with anyio.CancelScope(shield=True):
            last = self.sandbox.events.history[-1] if self.sandbox.events.history else None
            if isinstance(error, SandboxError) and not (last and last.state == State.FAILED):
                self.publish(self._current_phase(), State.FAILED, error.message, error.detail or "")
            elif not isinstance(error, SandboxError) and not (last and last.state == State.FAILED):
                self.publish(self._current_phase(), State.FAILED, "cancelled" if isinstance(error, anyio.get_cancelled_exc_class()) else repr(error))
            if self.sandbox.container_id:
                try:
                    await self.engine.remove(self.sandbox.container_id)
                except SandboxError:
                    pass
            else:
                apisocket.remove_dir(self.sandbox.api_dir)
            self.sandbox.events.close()
        raise error

    def _timeout_error(self) -> DaemonTimeout:
        phase = self._current_phase()
        elapsed = time.monotonic() - self.started
        tail = self._log_tail_at_timeout
        label = Phase(phase).label if phase in Phase._value2member_map_ else phase
        return DaemonTimeout(
            f"Sandbox {self.name!r} was not ready after {elapsed:.1f} s: stuck in phase {phase!r} ({label}).",
            phase=phase,
            elapsed=elapsed,
            log_tail=tail,
            fix=f"raise the timeout (now {self.spec.timeout:g} s: --timeout / timeout=), or read the dockerd log below for why it does not answer",
        )

    async def _boot(self) -> None:
        """Check the images, create and start the container, then follow its init program until ready."""
        spec = self.spec
        self.publish(Phase.IMAGE_CHECK, State.STARTED, spec.image)
        plan = await egress.prepare(self.engine, spec) if spec.network == "sandbox" else None
        image = await self.engine.image(spec.image)
        runtime = await self.engine.runsc_runtime(spec.network)  # cached after the first create
        registered = await self.engine.runtimes()
        size = image.get("Size", 0) / 1e6
        for preload in spec.images:  # a missing one is refused before anything is created
            self._preload_sizes[preload] = (await self.engine.image(preload)).get("Size", 0)
        self.publish(Phase.IMAGE_CHECK, State.DONE, f"{spec.image} ({image.get('Id', '')[7:19]}, {size:.0f} MB)")

        self.publish(Phase.SANDBOX_START, State.STARTED, f"runtime {runtime}")
        container_name = L.POOL_CONTAINER_PREFIX + spec.name if self.sandbox.pool_key else None
        if spec.docker:
            self.sandbox.api_dir = apisocket.make_dir(spec.name)
        options = self._container_options(runtime, plan)
        runtime_path = registered[runtime].get("path", "")
        if spec.docker and await run_sync(lambda: needs_shared_pid(release_of(runtime_path))):
            options["environment"] = {**options.get("environment", {}), SHARED_PID_ENV: "1"}
        container = await self.engine.create_container(spec.name, container_name=container_name, **options)
        assert container.id is not None
        self.sandbox.container_id = container.id  # before any await: a pending cancel lands after this, at the next one
        actual = container.attrs.get("HostConfig", {}).get("Runtime", "")
        if not self.engine.is_runsc(actual, registered):
            raise NotIsolated(
                f"The engine created sandbox {self.name!r} under runtime {actual!r}, not runsc; it was removed.",
                fix="check /etc/docker/daemon.json's default-runtime and runtimes (`jupyter sandbox doctor`)",
            )
        if spec.snapshot is not None:
            await self._restore(container, actual, plan)
            return
        certificates = trust.extra_certificates()
        if certificates:  # the host's extra CAs, appended to the image's bundle by the init program
            await self.engine.call(container.put_archive, "/", trust.archive(certificates))
        try:
            await self.engine.call(container.start)
        except SandboxError as error:
            if TRAP_TEXT in str(error) or WRAPPER_PATH in str(error):
                raise _network_trap(error) from None
            raise SandboxStartFailed(
                f"The engine could not start sandbox {self.name!r}: {error.message}", fix="run `jupyter sandbox doctor` to check the host"
            ) from None
        where = await self._attach_network(container, plan)
        self.publish(Phase.SANDBOX_START, State.DONE, f"container {container.short_id} under {actual}{where}")
        await self._watch_startup(container)

    async def _attach_network(self, container: Container, plan: "egress.Plan | None") -> str:
        """Install a started sandbox's firewall rules (network ``sandbox``); the text saying where it is."""
        if plan is None:
            return ""
        assert container.id is not None
        record = await egress.attach(self.engine, container.id, self.name, plan)
        if record is None:
            return ""
        return f", {record['ip']} on {N.NETWORK_NAME} (egress {egress.describe(record['egress'])})"

    async def _restore(self, container: Container, runtime: str, plan: "egress.Plan | None") -> None:
        """A fork's startup: its snapshot's checkpoint restored into the new container, then its own
        network rules, host socket and a "ready" report in its log (which status reads)."""
        from . import snapshots

        tag = self.spec.snapshot
        assert tag is not None and container.id is not None
        root = (await self.engine.call(self.engine.client.info)).get("DockerRootDir", "/var/lib/docker")
        await run_sync(snapshots.place, tag, os.path.join(root, "containers", container.id))
        self.publish(Phase.SANDBOX_START, State.DONE, f"container {container.short_id} under {runtime}")
        self.publish(Phase.RESTORED, State.STARTED, f"snapshot {tag}")
        started = time.monotonic()
        api: Any = self.engine.client.api  # the restore below needs docker-py's private helpers, not in types-docker

        def restore() -> None:
            # One restore at a time on the host: the engine imports the checkpoint into containerd's
            # content store, and two at once failed with "content sha256:...: already exists" (measured
            # for one snapshot forked twice, and seen with several processes restoring other snapshots).
            with host_lock(os.path.join(snapshots.root(), ".restore.lock")):
                api._raise_for_status(api._post(api._url("/containers/{0}/start", container.id), params={"checkpoint": snapshots.CHECKPOINT}))

        try:
            await self.engine.call(restore)
        except SandboxError as error:
            raise SandboxStartFailed(
                f"The engine could not restore snapshot {tag!r} into sandbox {self.name!r}: {error.message}",
                fix="run `jupyter sandbox doctor` to check the host",
            ) from None
        where = await self._attach_network(container, plan)
        self.publish(Phase.RESTORED, State.DONE, f"snapshot {tag} in {time.monotonic() - started:.2f} s{where}")
        if self.sandbox.api_dir:
            await self.sandbox.open_api()
        # The restored init program's log starts empty in the new container: say ready there, as a boot does.
        what = "Docker" if self.spec.docker else "Sandbox"
        # Its hostname is the source's (restored with its memory): give it its own where it may set it.
        script = (
            "" if not self.spec.docker else snapshots.REBIND_NETNS + "; "
        ) + 'hostname "$2" 2>/dev/null; read -r u _ < /proc/uptime; printf "%s ready done %s %s\\n" "$0" "$u" "$1" > /proc/1/fd/1'
        report = await self.sandbox.run(["sh", "-c", script, MARKER, f"{what} restored from snapshot {tag}", self.name[:63]])
        if report.exit_code != 0:
            raise SandboxStartFailed(
                f"Sandbox {self.name!r} was restored but does not run commands: {report.stderr_text.strip()}", fix="run `jupyter sandbox doctor`"
            )
        self.publish(Phase.READY, State.DONE, self._ready(snapshot=tag), elapsed=self.sandbox.ready_seconds)

    def _container_options(self, runtime: str, plan: "egress.Plan | None" = None) -> dict[str, Any]:
        spec = self.spec
        options: dict[str, Any] = dict(
            image=spec.image,
            command=init_command(spec.docker, spec.disk, spec.storage, len(spec.images)),
            entrypoint=[],
            labels=L.sandbox_labels(spec, self.sandbox.owner, pool_key=self.sandbox.pool_key, api_dir=self.sandbox.api_dir),
            runtime=runtime,
            hostname=spec.name[:63],
            user="0",
            environment={**trust.proxy_environment(), **spec.env} or None,
            detach=True,
            network_mode="host" if spec.network == "host" else ("none" if spec.network == "none" else None),
        )
        if plan is not None:  # the product's firewalled network, and a resolv.conf that works under netstack
            network = plan.container_options()
            options["network_mode"] = network["network_mode"]
            options["mounts"] = [*(options.get("mounts") or []), *network["mounts"]]
        if spec.docker:
            options["cap_add"] = DOCKER_CAPABILITIES
        if self.sandbox.api_dir:
            options["mounts"] = [*(options.get("mounts") or []), *apisocket.mounts(self.sandbox.api_dir)]
        if spec.docker and spec.disk:
            # gVisor mounts it inside the sandbox (its pages are sandbox memory, nothing on the host's disk);
            # the init program puts dockerd's data, /tmp and overlays of the image's directories on it.
            options["tmpfs"] = {DISK_PATH: f"size={spec.disk},mode=0755,exec"}
        if spec.cpu is not None:
            options["nano_cpus"] = int(spec.cpu * 1e9)
        if spec.memory is not None:
            options["mem_limit"] = spec.memory
            options["memswap_limit"] = spec.memory
        if spec.pids is not None:  # enforced inside by gVisor (its pids cgroup, set by the init program, and
            # RLIMIT_NPROC); the host limit is a backstop above what they allow
            options["ulimits"] = [Ulimit(name="nproc", soft=spec.pids, hard=spec.pids)]
            options["pids_limit"] = host_pids_limit(spec.pids)
            options["environment"] = {**spec.env, PIDS_ENV: str(spec.pids)}
        return {k: v for k, v in options.items() if v is not None}

    async def _watch_startup(self, container: Container) -> None:
        """Follow the init program's reports (the container log) until ready or failed.

        The log stream replays from the start, so a stream that ends while the
        container still runs is simply reopened, skipping reports already seen.
        """
        seen = 0
        assert container.id is not None
        while True:
            async with contextlib.aclosing(follow_reports(self.engine.client, self.sandbox.container_id, skip=seen)) as reports:
                async for report in reports:
                    seen += 1
                    self._on_report(report)  # "ready" hands the container to the sandbox
                    if report.phase == Phase.ANSWERING.value and report.state == "done":
                        await self._host_part()
                    if report.state == "failed":
                        raise failure(report, self.spec)
                    if report.phase == Phase.READY.value and report.state == "done":
                        return
            attrs = await self.engine.call(self.engine.client.api.inspect_container, container.id)
            if not attrs.get("State", {}).get("Running"):
                raise await self._exited_during_startup()

    async def _host_part(self) -> None:
        """Between the daemon answering and "ready": load the images asked for, secure the host socket,
        then let the init program say ready (see :data:`~jupyter_sandbox.bootstrap.HOST_READY`), so
        that every observer's "ready" (they read the init program's lines) means the host is done too."""
        if self.spec.images:
            await self._preload()
        if self.sandbox.api_dir:
            await self._secure_api_socket()
            await run_sync(apisocket.mark_host_ready, self.sandbox.api_dir)
        elif self.spec.images:
            touch = await self.sandbox.run(["touch", PRELOADED])
            if touch.exit_code != 0:
                raise SandboxStartFailed(f"Could not mark sandbox {self.name!r}'s images as loaded: {touch.stderr_text.strip()}")

    async def _secure_api_socket(self) -> None:
        """Give the host socket its mode and owner, and check the inner daemon answers on it."""
        path = self.sandbox.api_socket
        if path is None:
            return

        async def answers() -> bool:
            return await run_sync(apisocket.is_socket, path) and await run_sync(apisocket.ping, path)

        if not await poll_until(answers, SOCKET_CHECK_SECONDS, interval=0.05, most=0.05):  # a loaded host answers late, not never
            raise SandboxStartFailed(
                f"The Docker daemon of sandbox {self.name!r} does not answer on its host socket {path} (tried for {SOCKET_CHECK_SECONDS:g} s).",
                fix="check that the runsc runtimes carry --host-uds=create (`jupyter sandbox doctor`)",
            )
        await run_sync(apisocket.secure, path)

    async def _preload(self) -> None:
        """Load the spec's images into the daemon, one progress phase each."""
        from .docker import load_image

        for image in self.spec.images:
            phase = image_phase(image)
            total = self._preload_sizes.get(image, 0)
            self.publish(phase, State.STARTED, f"{image} ({total / 1e6:.0f} MB)")
            progress = {"bytes": 0, "seconds": 0.0}

            def on_progress(sent: int, seconds: float) -> None:  # in the feeding thread: just record
                progress["bytes"], progress["seconds"] = sent, seconds

            process = await load_image(self.sandbox, image, on_progress=on_progress)
            async with anyio.create_task_group() as group:

                async def report() -> None:
                    while True:
                        await anyio.sleep(1.0)
                        sent, seconds = progress["bytes"], progress["seconds"]
                        self.publish(phase, State.STARTED, _rate(image, sent, seconds, total))

                group.start_soon(report)
                code = await process.wait()
                group.cancel_scope.cancel()
            if code != 0:
                if process.error is not None:  # the store holds every image unpacked, plus the tar of the one loading
                    needed = sum(self._preload_sizes.values()) + total
                    raise self._load_failed(
                        phase, disk_full(self.name, self.spec.disk, self.spec.memory, detail=process.error.detail, at_least=needed)
                    )
                error = SandboxStartFailed(
                    f"Loading image {image!r} into sandbox {self.name!r} failed (exit code {code}).",
                    fix="read the output below; `jupyter sandbox logs NAME` shows the dockerd log",
                    detail=(process.stderr_text + process.stdout_text).strip()[-2000:] or None,
                )
                raise self._load_failed(phase, error)
            self.publish(phase, State.DONE, _rate(image, progress["bytes"], progress["seconds"], total, done=True))

    def _load_failed(self, phase: str, error: SandboxError) -> SandboxError:
        self.publish(phase, State.FAILED, error.message, error.detail or "")
        return error

    def _on_report(self, report: InitReport) -> None:
        phase = report.phase
        message = report.message
        if phase == Phase.BOOTED.value:
            kernel = message.replace("kernel", "").strip()
            if kernel and kernel == os.uname().release:
                raise NotIsolated(
                    f"Sandbox {self.name!r} reports the host's kernel {kernel}: it is not running under gVisor.",
                    fix="check the runsc runtime registration (`jupyter sandbox doctor`)",
                )
            message = f"gVisor kernel {kernel}, uptime {report.uptime:.2f} s" if report.uptime is not None else message
        elapsed = None
        if phase == Phase.READY.value and report.state == "done":
            message = self._ready(version=message.removeprefix("Docker").strip() if self.spec.docker else "")
            elapsed = self.sandbox.ready_seconds  # the "ready in" figure and the ready phase's time are one number
        self.publish(phase, report.state, message, report.log_tail, uptime=report.uptime, elapsed=elapsed)

    async def _exited_during_startup(self) -> SandboxError:
        try:
            attrs = await self.engine.call(self.engine.client.api.inspect_container, self.sandbox.container_id)
            state = attrs.get("State", {})
            logs = await self.engine.call(self.engine.client.api.logs, self.sandbox.container_id, tail=20)
        except SandboxError:
            return SandboxStartFailed(f"Sandbox {self.name!r} disappeared while starting (removed from outside?).")
        text = logs.decode("utf-8", errors="replace").strip()
        return SandboxStartFailed(
            f"Sandbox {self.name!r} exited during startup with code {state.get('ExitCode')} ({state.get('Error') or 'no error from the engine'}).",
            fix="check that the image has /bin/sh and that `jupyter sandbox doctor` passes",
            detail=f"Its output:\n{text}" if text else None,
        )


def failure(report: InitReport, spec: "SandboxSpec") -> SandboxError:
    """The typed error for an init program's "failed" report (at startup, or after a daemon restart)."""
    name = spec.name
    if report.phase == Phase.DOCKERD_PRESENT.value:
        return NoDockerd(
            f"Image {spec.image!r} has no dockerd, so Docker cannot run inside sandbox {name!r} ({report.message}).",
            fix="use the Docker-enabled default image, or build one with "
            "`jupyter sandbox image build --docker --offline --tag NAME` (or --base IMAGE when a registry is reachable)",
        )
    if report.phase == Phase.STORAGE.value:
        return SandboxStartFailed(
            f"Could not mount the disk store of sandbox {name!r}: {report.message}",
            fix="use an image with util-linux's mount (the default image has it); the message above says what failed",
        )
    if report.phase == Phase.CGROUPS.value:
        return SandboxStartFailed(
            f"Could not mount a writable devices cgroup in sandbox {name!r}: {report.message}",
            fix="use runsc 20240729 or newer (`bash scripts/setup-host.sh` installs it) and an image with util-linux's mount",
        )
    if "relay" in report.message:
        return SandboxStartFailed(
            f"The inner Docker daemon of sandbox {name!r} answers, but its host socket could not be opened: {report.message}",
            fix="use an image with socat (the default image has it: `jupyter sandbox image build --docker --offline`)",
        )
    code = None
    words = report.message.split()
    if words and words[-1].lstrip("-").isdigit():
        code = int(words[-1])
    label = Phase(report.phase).label.lower() if report.phase in Phase._value2member_map_ else report.phase
    return DockerdCrashed(
        f"dockerd exited with code {code} in sandbox {name!r} while waiting for: {label}.",
        exit_code=code,
        log_tail=report.log_tail,
        fix=diagnose(report.log_tail),
    )


def _rate(image: str, sent: float, seconds: float, total: int, done: bool = False) -> str:
    """A load's progress line: bytes so far (of the image's size) and MB/s."""
    speed = sent / 1e6 / seconds if seconds > 0 else 0.0
    if done:
        return f"{image}: {sent / 1e6:.0f} MB in {seconds:.1f} s ({speed:.0f} MB/s)"
    of = f" of ~{total / 1e6:.0f}" if total else ""
    return f"{image}: {sent / 1e6:.0f}{of} MB, {speed:.0f} MB/s"
