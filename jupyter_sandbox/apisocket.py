"""A sandbox's inner Docker daemon on a host socket: its directory, its modes, closing and reaping.

Every Docker-enabled sandbox gets its own host directory (``<root>/<name>-<id>``,
mode 0700, in a root of mode 0711), bind-mounted at
:data:`~jupyter_sandbox.bootstrap.API_DIR` inside.  runsc's ``--host-uds=create``
lets the sandbox *create* a socket there (never connect to a host socket), and
the init program offers the inner daemon's API on it (see
:mod:`jupyter_sandbox.bootstrap`).  The host side then owns the socket: it
sets its mode to 0600 and its owner to this process's user, so only that user
(root, or the service running the product) can open it.

The directory's path is kept in the container's labels (:data:`~jupyter_sandbox.labels.API_DIR`),
so any process finds it; it is removed with the container (:meth:`Engine.remove`),
and :func:`reap` removes those whose container vanished some other way.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import stat
import time
from typing import TYPE_CHECKING, Any, Mapping

from . import labels as L
from .bootstrap import API_DIR, HOST_READY
from .errors import SandboxError

if TYPE_CHECKING:
    from .engine import Engine

ROOT_ENV = "JUPYTER_SANDBOX_SOCKETS"
DEFAULT_ROOT = "/run/jupyter-sandbox/sockets"
SOCKET_NAME = "docker.sock"
REAP_AFTER = 120.0
"""Seconds a directory without a container is left alone (its sandbox may be between mkdir and create)."""
MAX_SOCKET_PATH = 107
"""The longest path a Unix socket can have (``sun_path`` holds 108 bytes with the NUL)."""


def root() -> str:
    """The folder holding every sandbox's socket directory (``$JUPYTER_SANDBOX_SOCKETS`` or the default)."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def make_dir(name: str) -> str:
    """Create a new sandbox's socket directory (0700, in a 0711 root owned by this user) and return its path.

    Raises:
        SandboxError: If it cannot be made (not root, or a path too long for a socket).
    """
    base = root()
    path = os.path.join(base, f"{name[:24]}-{secrets.token_hex(4)}")
    if len(os.path.join(path, SOCKET_NAME)) > MAX_SOCKET_PATH:
        raise SandboxError(f"The socket path under {base!r} is too long for a Unix socket.", fix=f"set {ROOT_ENV} to a shorter folder")
    try:
        parent = os.path.dirname(base)
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o711, exist_ok=True)
        os.makedirs(base, mode=0o711, exist_ok=True)
        os.chmod(base, 0o711)
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # whatever the umask
    except OSError as error:
        raise SandboxError(
            f"Cannot make the sandbox's socket directory {path!r}: {error.strerror}.",
            fix=f"run jupyter-sandbox as root (the socket runsc creates is root's), and check that {base!r} can be written",
        ) from None
    return path


def mark_host_ready(path: str) -> None:
    """Leave the marker that lets the sandbox's init program say ready (the host's part is done)."""
    with open(os.path.join(path, HOST_READY), "w"):
        pass


def mounts(path: str) -> list[Any]:
    """The container's bind mount of its socket directory."""
    from docker.types import Mount

    return [Mount(target=API_DIR, source=path, type="bind")]


def dir_of(labels: Mapping[str, str]) -> str | None:
    """A sandbox's socket directory from its container labels (None: it has none)."""
    return labels.get(L.API_DIR) or None


def socket_of(labels: Mapping[str, str]) -> str | None:
    """The host path of a sandbox's socket from its container labels (None: it has none)."""
    folder = dir_of(labels)
    return os.path.join(folder, SOCKET_NAME) if folder else None


def remove_dir(path: str | None) -> None:
    """Remove a socket directory (only ever one directly inside :func:`root`)."""
    if path and os.path.dirname(os.path.normpath(path)) == os.path.normpath(root()):
        shutil.rmtree(path, ignore_errors=True)


def secure(socket_path: str) -> None:
    """Make the socket 0600 and owned by this process's user (it appears with the inner docker group's gid)."""
    os.chown(socket_path, os.geteuid(), os.getegid())
    os.chmod(socket_path, 0o600)


def is_socket(path: str) -> bool:
    """Whether ``path`` exists and is a Unix socket."""
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    """Whether a Docker daemon answers ``/_ping`` on the socket (a raw HTTP request, no client library)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(socket_path)
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                piece = conn.recv(4096)
                if not piece:
                    break
                answer += piece
            return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]
    except OSError:
        return False


async def reap(engine: "Engine", *, min_age: float = REAP_AFTER) -> list[str]:
    """Remove the socket directories whose container no longer exists; returns their paths.

    Directories younger than ``min_age`` seconds are kept: their sandbox may be being created.
    """
    base = root()
    try:
        entries = [os.path.join(base, entry) for entry in os.listdir(base)]
    except OSError:
        return []
    containers = await engine.call(lambda: engine.client.api.containers(all=True, filters={"label": L.API_DIR}))
    used = {os.path.normpath(c.get("Labels", {}).get(L.API_DIR, "")) for c in containers}
    removed = []
    now = time.time()
    for path in entries:
        try:
            young = now - os.lstat(path).st_mtime < min_age
        except OSError:
            continue
        if os.path.normpath(path) in used or young or not os.path.isdir(path):
            continue
        remove_dir(path)
        removed.append(path)
    return removed
