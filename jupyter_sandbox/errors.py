"""One exception family: every error says what happened and how to fix it.

Every face (CLI, magics, REST handlers, Lab panel) shows ``str(error)``, so
the texts here are the product's error messages.  Each error also carries a
stable ``code`` and an ``http_status`` for the server extension.
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """Base of every error jupyter-sandbox raises on purpose.

    Args:
        message: What went wrong, in one or two sentences.
        fix: What the user can do about it.
        detail: Extra text, such as the tail of a daemon log.
    """

    code = "sandbox_error"
    http_status = 500

    def __init__(self, message: str, *, fix: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.detail = detail

    def __str__(self) -> str:
        text = self.message
        if self.fix:
            text += f"\nHow to fix: {self.fix}"
        if self.detail:
            text += f"\n{self.detail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data (used by the REST API and ``--json``)."""
        data: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.fix:
            data["fix"] = self.fix
        if self.detail:
            data["detail"] = self.detail
        return data


class SpecError(SandboxError, ValueError):
    """A sandbox specification field has a value we cannot use.

    Args:
        field: The name of the field (``name``, ``cpu``, ``memory``...).
        message: What is wrong with the value.
        fix: An example of a valid value.
    """

    code = "bad_spec"
    http_status = 400

    def __init__(self, field: str, message: str, *, fix: str | None = None):
        super().__init__(f"{field}: {message}", fix=fix)
        self.field = field


class EngineUnavailable(SandboxError):
    """The host Docker engine cannot be reached."""

    code = "engine_unavailable"
    http_status = 503


class RuntimeNotRegistered(SandboxError):
    """The engine has no runsc runtime we could use."""

    code = "runtime_not_registered"
    http_status = 503


class NotIsolated(SandboxError):
    """A container claimed to be a sandbox does not run under runsc."""

    code = "not_isolated"
    http_status = 500


class ImageNotFound(SandboxError):
    """The sandbox image is not in the host engine."""

    code = "image_not_found"
    http_status = 404


class InnerContainerNotFound(SandboxError):
    """A container named in a sandbox's own Docker daemon does not exist there."""

    code = "inner_container_not_found"
    http_status = 404


class ImageExists(SandboxError):
    """The host engine already has an image of the name a copy out of a sandbox would take."""

    code = "image_exists"
    http_status = 409


class NoDockerd(SandboxError):
    """``docker=True`` was asked for an image that has no ``dockerd``."""

    code = "no_dockerd"
    http_status = 400


class NetworkNamespaceTrap(SandboxError):
    """runsc refused ``--network=sandbox``: the runtime of that mode is not the netns wrapper this runsc needs."""

    code = "network_namespace_trap"
    http_status = 503


class NetworkSetupFailed(SandboxError):
    """The product's network, resolv.conf or firewall rules for network ``sandbox`` could not be set up."""

    code = "network_setup_failed"
    http_status = 503


class NetworkNotAllowed(SandboxError):
    """This Jupyter server does not allow the network mode asked for (``SandboxManager.allowed_networks``)."""

    code = "network_not_allowed"
    http_status = 403
    field = "network"


class SandboxStartFailed(SandboxError):
    """The engine refused to start the sandbox container."""

    code = "start_failed"
    http_status = 500


class DockerdCrashed(SandboxError):
    """The Docker daemon inside the sandbox exited.

    Args:
        exit_code: dockerd's exit status.
        log_tail: The last lines of its log.
    """

    code = "dockerd_crashed"
    http_status = 500

    def __init__(self, message: str, *, exit_code: int | None, log_tail: str, fix: str | None = None):
        detail = f"Last lines of the dockerd log:\n{log_tail}" if log_tail else None
        super().__init__(message, fix=fix, detail=detail)
        self.exit_code = exit_code
        self.log_tail = log_tail


class DaemonTimeout(SandboxError):
    """The sandbox did not become ready in time.

    Args:
        phase: The phase it was stuck in.
        elapsed: Seconds since the create started.
        log_tail: The last lines of the dockerd log, if any.
    """

    code = "daemon_timeout"
    http_status = 504

    def __init__(self, message: str, *, phase: str, elapsed: float, log_tail: str = "", fix: str | None = None):
        detail = f"Last lines of the dockerd log:\n{log_tail}" if log_tail else None
        super().__init__(message, fix=fix, detail=detail)
        self.phase = phase
        self.elapsed = elapsed
        self.log_tail = log_tail


class SandboxNotFound(SandboxError):
    """No sandbox of that name exists in the engine."""

    code = "not_found"
    http_status = 404


class SandboxExists(SandboxError):
    """A sandbox of that name already exists."""

    code = "exists"
    http_status = 409


class SandboxNotRunning(SandboxError):
    """The sandbox is stopped, gone or failed, so it cannot run commands."""

    code = "not_running"
    http_status = 409


class SandboxDied(SandboxNotRunning):
    """The whole sandbox died while a command ran in it (for example killed for exceeding its memory limit)."""

    code = "sandbox_died"


class TerminalsDisabled(SandboxError):
    """The Jupyter server runs without terminals, so it cannot open a shell in a sandbox."""

    code = "terminals_disabled"
    http_status = 403


class DockerNotEnabled(SandboxError):
    """A Docker command was asked of a sandbox created without ``docker=True``."""

    code = "docker_not_enabled"
    http_status = 409


class ExecTimeout(SandboxError):
    """A command inside the sandbox ran longer than its timeout and was killed."""

    code = "exec_timeout"
    http_status = 504


class NetworkUnavailable(SandboxError):
    """A command needs a network the sandbox does not have."""

    code = "network_unavailable"
    http_status = 409


class ImageBuildFailed(SandboxError):
    """Building a sandbox image failed."""

    code = "image_build_failed"
    http_status = 500


class PortUnreachable(SandboxError):
    """Nothing answers on a sandbox port the proxy was asked for."""

    code = "port_unreachable"
    http_status = 502


class UnsafeLink(SandboxError):
    """A download would create a symbolic link on this machine pointing outside what was downloaded."""

    code = "unsafe_link"
    http_status = 400


class PathNotFound(SandboxError):
    """A file or folder named inside a sandbox does not exist there."""

    code = "path_not_found"
    http_status = 404


class PathExists(SandboxError):
    """A new file, folder or rename target inside a sandbox is already taken."""

    code = "path_exists"
    http_status = 409


class WrongPathType(SandboxError):
    """A path inside a sandbox is a folder where a file was needed, or the other way round."""

    code = "wrong_type"
    http_status = 400


class SkippedLinksWarning(UserWarning):
    """A download left out symbolic links that pointed outside the downloaded tree (listed in the message)."""


class DiskFull(SandboxError):
    """A write inside the sandbox failed with "no space left on device": its disk store is full.

    Args:
        disk: The store's size in bytes (``None`` when the sandbox has none).
    """

    code = "disk_full"
    http_status = 507

    def __init__(self, message: str, *, disk: int | None = None, fix: str | None = None, detail: str | None = None):
        super().__init__(message, fix=fix, detail=detail)
        self.disk = disk


ENOSPC_TEXT = "no space left on device"


def disk_full(sandbox: str, disk: int | None, memory: int | None = None, detail: str | None = None, at_least: int = 0) -> DiskFull:
    """The error for a sandbox whose disk store (of ``disk`` bytes) is full, with the fix.

    Args:
        at_least: Bytes the store needs, when known (the fix then suggests at least that).
    """
    from .spec import format_memory

    size = format_memory(disk) if disk else None
    if size and disk:
        message = f'The sandbox\'s disk ({size}) is full: a write in sandbox {sandbox!r} failed with "no space left on device".'
        bigger = format_memory(-(-max(disk * 2, at_least) // 2**30) * 2**30 if at_least > disk * 2 else disk * 2)
        fix = (
            f"remove files or images inside (`docker image prune -a`, `docker system prune`), or create the sandbox "
            f"with a larger disk (disk='{bigger}', --disk {bigger})" + (", raising memory with it: the store is sandbox memory" if memory else "")
        )
    else:
        message = f'The sandbox {sandbox!r} ran out of space: a write failed with "no space left on device".'
        fix = "remove files inside, or give the sandbox more memory (its root filesystem writes are memory)"
    return DiskFull(message, disk=disk, fix=fix, detail=detail)


class SandboxExpired(SandboxNotFound):
    """The sandbox's ttl ran out: it was removed when a face or a use next looked at it."""

    code = "expired"
    http_status = 410
