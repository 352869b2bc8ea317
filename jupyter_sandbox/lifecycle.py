"""Pause and resume, time limits (``ttl``, ``idle_timeout``) and the notices that say what happened.

Where each thing lives, so that limits hold with no Jupyter process running:

- **ttl**: the deadline (created + ttl) is a label (``io.jupyter.sandbox.expires``),
  fixed at creation.  Every face enforces it when it next looks: listing,
  status, attaching by name and every use remove a sandbox past its deadline
  and say so.
- **idle_timeout**: labels cannot change, so the last use is recorded on the
  host: each use through the product (exec, docker command, file transfer,
  proxied request, resume) sets the modification time of a marker file,
  ``<state dir>/activity/<container id>`` (``/run/jupyter-sandbox`` for root,
  else ``$TMPDIR/jupyter-sandbox-<uid>``; ``$JUPYTER_SANDBOX_STATE_DIR``
  overrides it).  The last activity is the latest of that marker, the
  container's start and its creation.  Listing, status and the server's
  watcher (periodically) pause a ready sandbox idle for longer than its
  timeout, unless a use is still going on (:func:`in_use`).  Uses by other hosts or users (another state dir) are not seen:
  such a sandbox may be paused while in use there, and resumes on its next use.
- **paused**: the engine's ``docker pause`` (runsc freezes the sandbox's tasks;
  memory, the inner daemon and inner containers are kept).  Any use resumes it
  (``AsyncSandbox.ensure_running``, in :mod:`jupyter_sandbox.pausing`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from typing import Any, Callable, Mapping

from . import labels as L

log = logging.getLogger(__name__)

STATE_DIR_ENV = "JUPYTER_SANDBOX_STATE_DIR"
RESUMED, PAUSED, EXPIRED, IDLE_PAUSED = "resumed", "paused", "expired", "idle-paused"


@dataclasses.dataclass(frozen=True)
class Notice:
    """Something the product did to a sandbox on its own, that the user must be told about.

    Attributes:
        sandbox: The sandbox's name.
        action: ``resumed`` (a use found it paused), ``idle-paused`` or ``expired`` (removed).
        message: One line for the user.
        time: Unix time it happened.
    """

    sandbox: str
    action: str
    message: str
    time: float = dataclasses.field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return dataclasses.asdict(self)


NoticeListener = Callable[[Notice], None]
_listeners: list[NoticeListener] = []


def add_notice_listener(callback: NoticeListener) -> Callable[[], None]:
    """Send every notice of this process to ``callback`` (instead of stderr); returns an unsubscribe function.

    Listeners are called on the core's event-loop thread and must not block.
    """
    _listeners.append(callback)
    return lambda: _listeners.remove(callback) if callback in _listeners else None


def notify(notice: Notice) -> None:
    """Tell the user: to the listeners if any (the server, a face), else one line on stderr."""
    log.info("%s", notice.message)
    if not _listeners:
        print(f"jupyter-sandbox: {notice.message}", file=sys.stderr, flush=True)
        return
    for callback in list(_listeners):
        try:
            callback(notice)
        except Exception:  # one broken listener must not stop the others
            log.exception("jupyter-sandbox notice listener failed")


# -- time limits -----------------------------------------------------------------


def expires_at(labels: Mapping[str, str]) -> float | None:
    """The Unix time a sandbox's ttl runs out (from its labels), or None if it has none."""
    try:
        return float(labels[L.EXPIRES]) if labels.get(L.EXPIRES) else None
    except ValueError:
        return None


def limits_of(labels: Mapping[str, str]) -> tuple[float | None, float | None]:
    """``(ttl, idle_timeout)`` in seconds as recorded in the spec label (None: no limit)."""
    try:
        data = json.loads(labels.get(L.SPEC, "{}") or "{}")
    except ValueError:
        return None, None

    def number(key: str) -> float | None:
        value = data.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return number("ttl"), number("idle_timeout")


def expired(labels: Mapping[str, str], now: float | None = None) -> bool:
    """Whether a sandbox's ttl has run out."""
    deadline = expires_at(labels)
    return deadline is not None and (now or time.time()) >= deadline


def expired_message(name: str, labels: Mapping[str, str], now: float | None = None) -> str:
    """What to tell the user about a sandbox removed for its ttl."""
    from .spec import format_duration

    ttl, _ = limits_of(labels)
    deadline = expires_at(labels) or 0.0
    late = max(0.0, (now or time.time()) - deadline)
    return (
        f"removed sandbox {name}: its ttl of {format_duration(ttl)} ran out "
        f"{format_duration(late)} ago (at {time.strftime('%H:%M:%S', time.localtime(deadline))})"
    )


# -- activity ----------------------------------------------------------------------


def state_dir() -> str:
    """The host folder of the product's own markers (see the module's docstring)."""
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return configured
    if os.geteuid() == 0:
        return "/run/jupyter-sandbox"
    return os.path.join(tempfile.gettempdir(), f"jupyter-sandbox-{os.geteuid()}")


def _marker(container_id: str) -> str:
    return os.path.join(state_dir(), "activity", container_id)


def touch(container_id: str) -> None:
    """Record a use of a sandbox now (best effort: a read-only state dir only loses idle tracking)."""
    if not container_id:
        return
    path = _marker(container_id)
    try:
        os.utime(path)
    except FileNotFoundError:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a"):
                pass
        except OSError as error:
            log.debug("cannot record activity of %s: %s", container_id[:12], error)
    except OSError as error:
        log.debug("cannot record activity of %s: %s", container_id[:12], error)


def marked_activity(container_id: str) -> float | None:
    """The last use recorded by :func:`touch` on this host, if any."""
    try:
        return os.stat(_marker(container_id)).st_mtime
    except OSError:
        return None


def forget(container_id: str) -> None:
    """Remove a sandbox's marker (it was removed)."""
    try:
        os.unlink(_marker(container_id))
    except OSError:
        pass


def prune(present: set[str], grace: float = 60.0) -> None:
    """Remove the markers and claim records (:mod:`jupyter_sandbox.ownership`) of containers that no
    longer exist (removed outside the product).

    Args:
        present: The ids of every container the engine has now.
        grace: Files touched this recently are kept (their container may be newer than ``present``).
    """
    now = time.time()
    for folder in ("activity", "claims"):
        try:
            entries = list(os.scandir(os.path.join(state_dir(), folder)))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.name.split(".")[0] not in present and now - entry.stat().st_mtime > grace:
                    os.unlink(entry.path)
            except OSError:
                continue


def last_activity(attrs: Mapping[str, Any]) -> float | None:
    """A sandbox's last use: the latest of its marker, its container's start and its creation."""
    from .status import parse_engine_time

    labels = (attrs.get("Config") or {}).get("Labels") or {}
    candidates = [marked_activity(attrs.get("Id", "")), parse_engine_time((attrs.get("State") or {}).get("StartedAt"))]
    try:
        candidates.append(float(labels.get(L.CREATED) or 0) or None)
    except ValueError:
        pass
    known = [c for c in candidates if c is not None]
    return max(known) if known else None


def idle_for(attrs: Mapping[str, Any], now: float | None = None) -> tuple[float | None, float]:
    """``(idle_timeout, seconds idle)`` of a sandbox (timeout None: it has none)."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    _, idle_timeout = limits_of(labels)
    last = last_activity(attrs)
    return idle_timeout, max(0.0, (now or time.time()) - last) if last is not None else 0.0


def in_use(attrs: Mapping[str, Any]) -> bool:
    """Whether a use is going on right now, however long ago it began.

    A command running inside through the engine (its exec is listed in the
    inspect data: commands, file transfers, docker commands run inside), or a
    docker client on this host aimed at the sandbox's daemon socket (a process
    whose environment has ``DOCKER_HOST=unix://<its socket>``: the product's
    own docker commands and image copies, and commands run after
    ``eval "$(jupyter sandbox env NAME)"``).  Such a sandbox is never idle.
    """
    if attrs.get("ExecIDs"):
        return True
    from .apisocket import socket_of

    path = socket_of((attrs.get("Config") or {}).get("Labels") or {})
    if not path:
        return False
    needle = f"\0DOCKER_HOST=unix://{path}\0".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if needle in b"\0" + environ.read() + b"\0":
                    return True
        except OSError:
            continue  # gone, or not ours to read
    return False


def is_paused(attrs: Mapping[str, Any]) -> bool:
    """Whether the engine holds the sandbox paused."""
    return bool((attrs.get("State") or {}).get("Paused"))
