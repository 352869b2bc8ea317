"""Engine labels: where sandbox state is kept, so every face sees the same sandboxes.

Labels are fixed at a create; the little that changes later is kept beside them, keyed by
container id: a claimed pool member's owner (:mod:`jupyter_sandbox.ownership`), the last use
(:mod:`jupyter_sandbox.lifecycle`) and a live egress policy (:mod:`jupyter_sandbox.egress`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from typing import Iterable, Mapping

from .spec import SandboxSpec

PREFIX = "io.jupyter.sandbox."
MANAGED = PREFIX + "managed"
NAME = PREFIX + "name"
SPEC = PREFIX + "spec"
DOCKER = PREFIX + "docker"
OWNER = PREFIX + "owner"
OWNER_HOST = PREFIX + "owner.host"
OWNER_PID = PREFIX + "owner.pid"
OWNER_STARTED = PREFIX + "owner.started"
OWNER_KERNEL = PREFIX + "owner.kernel"
"""The id of the Jupyter kernel that created a sandbox (owner ``kernel``): the server maps it to its notebook."""
RUN = PREFIX + "run"
"""The :data:`RUN_ENV` id of the process tree that created a sandbox (its volumes carry it too)."""
SERVER = PREFIX + "server"
POOL = PREFIX + "pool"
POOL_KEY = PREFIX + "pool.key"
CREATED = PREFIX + "created"
API_DIR = PREFIX + "api.dir"
"""The host directory holding the sandbox's Docker API socket (see apisocket.py)."""
EXPIRES = PREFIX + "expires"
"""Unix time (created + ttl) after which any face that looks at the sandbox removes it."""

CONTAINER_PREFIX = "jupyter-sandbox-"
POOL_CONTAINER_PREFIX = "jupyter-sandbox--pool-"
"""Pool members' container names; no user name can produce it (names start with a letter or digit)."""
SERVER_ENV = "JUPYTER_SANDBOX_SERVER_ID"
"""Set by the server extension; kernels and terminals it starts inherit it."""
RUN_ENV = "JUPYTER_SANDBOX_RUN_ID"
"""Set by whoever wants to find everything a process tree made (the test suite does): every
sandbox, and every volume of one, created by a process that inherits it carries it as :data:`RUN`."""
VOLUME_LABELS = (MANAGED, NAME, OWNER, OWNER_HOST, OWNER_PID, OWNER_STARTED, SERVER, RUN)
"""The container labels its volumes carry: whose they are (the spec, pool and expiry stay on the container)."""


def container_name(name: str) -> str:
    """The engine's container name of a sandbox."""
    return CONTAINER_PREFIX + name


def name_of(container_name: str, labels: Mapping[str, str]) -> str:
    """A sandbox's name: its container name without the prefix (a claimed pool member was renamed)."""
    container_name = container_name.lstrip("/")
    if container_name.startswith(CONTAINER_PREFIX) and not container_name.startswith(POOL_CONTAINER_PREFIX):
        return container_name[len(CONTAINER_PREFIX) :]
    return labels.get(NAME, container_name)


def visible_to(labels: Mapping[str, str], server_id: str | None) -> bool:
    """Whether a Jupyter server may see and touch a sandbox.

    A sandbox made by a server, or by a kernel or terminal it started, carries
    that server's id; other servers neither list nor touch it.  Sandboxes made
    outside any server (a plain shell's CLI, a script) belong to the user and
    every server of the host shows them.
    """
    owner_server = labels.get(SERVER, "")
    return not owner_server or not server_id or owner_server == server_id


def in_pool(container_name: str) -> bool:
    """Whether a container is a warm-pool member still waiting to be claimed."""
    return container_name.lstrip("/").startswith(POOL_CONTAINER_PREFIX)


def _process_start_time(pid: int) -> str:
    """The kernel's start time of a process (clock ticks), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def kernel_id() -> str:
    """This process's Jupyter kernel id (from ipykernel's connection file ``kernel-<id>.json``), or ''.

    Only an ipykernel process has one; elsewhere ipykernel is not even imported.
    """
    if "ipykernel" not in sys.modules:
        return ""
    try:
        from ipykernel.connect import get_connection_file

        found = re.fullmatch(r"kernel-(.+)\.json", os.path.basename(get_connection_file()))
    except Exception:  # no running kernel app (ipykernel imported outside a kernel)
        return ""
    return found.group(1) if found else ""


def owner_labels(owner: str) -> dict[str, str]:
    """Labels that record who created a sandbox (a kind such as ``cli``, ``kernel``, ``server``).

    A kernel's (owner ``kernel`` or ``kernel-kept``) carry its kernel id too (:data:`OWNER_KERNEL`).
    """
    pid = os.getpid()
    labels = {
        OWNER: owner,
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(pid),
        OWNER_STARTED: _process_start_time(pid),
    }
    kernel = kernel_id() if owner.startswith("kernel") else ""
    if kernel:
        labels[OWNER_KERNEL] = kernel
    server = os.environ.get(SERVER_ENV)
    if server:
        labels[SERVER] = server
    run = os.environ.get(RUN_ENV)
    if run:
        labels[RUN] = run
    return labels


def volume_labels(container_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels of a sandbox container's volumes: the container's ownership labels, so that a
    volume left behind names the sandbox and process it came from (and a leak check can find it)."""
    return {key: container_labels[key] for key in VOLUME_LABELS if key in container_labels}


def spec_label(spec: SandboxSpec) -> str:
    """The spec as stored in a label: the env's *names* only, never its values.

    Labels are shown by ``docker ps --format``, events and every inspect, and are
    copied around by tools; the values live only in the container's environment.
    """
    data = spec.to_dict()
    data["env"] = sorted(spec.env)
    return json.dumps(data, sort_keys=True)


def sandbox_labels(spec: SandboxSpec, owner: str, *, pool_key: str | None = None, api_dir: str | None = None) -> dict[str, str]:
    """All labels of a new sandbox container (``api_dir``: its host socket directory)."""
    labels = {
        MANAGED: "1",
        NAME: spec.name,
        SPEC: spec_label(spec),
        DOCKER: "1" if spec.docker else "0",
        CREATED: f"{time.time():.3f}",
        **owner_labels(owner),
    }
    if api_dir:
        labels[API_DIR] = api_dir
    if spec.ttl is not None:
        labels[EXPIRES] = f"{float(labels[CREATED]) + spec.ttl:.3f}"
    if pool_key:
        labels[POOL] = "1"
        labels[POOL_KEY] = pool_key
    return labels


def spec_from_labels(labels: Mapping[str, str], environment: Iterable[str] | None = None) -> SandboxSpec:
    """Rebuild the spec a sandbox was created with from its labels.

    Args:
        labels: The container's labels.
        environment: The container's ``Config.Env`` (``KEY=VALUE`` strings), where the env
            values are read from; without it they read as empty strings.
    """
    data = json.loads(labels.get(SPEC, "{}") or "{}")
    data.setdefault("name", labels.get(NAME, "unknown"))
    env = data.get("env") or {}
    if not isinstance(env, Mapping):  # names only (see spec_label)
        values = dict(item.partition("=")[::2] for item in environment or ())
        env = {key: values.get(key, "") for key in env}
    data["env"] = dict(env)  # a spec's env is a mapping, also when there were no names ([])
    if isinstance(data.get("egress"), list):
        data["egress"] = tuple(data["egress"])
    known = SandboxSpec.__dataclass_fields__
    return SandboxSpec(**{key: value for key, value in data.items() if key in known})


def owner_alive(labels: Mapping[str, str]) -> bool | None:
    """Whether the process that owns a sandbox still runs.

    Returns ``None`` when it cannot be told here (another host, or an owner
    such as ``cli`` whose sandboxes belong to the user, not to a process).
    """
    if labels.get(OWNER) not in ("kernel", "server", "pool", "test", "doctor"):
        return None
    if labels.get(OWNER_HOST) != socket.gethostname():
        return None
    try:
        pid = int(labels.get(OWNER_PID, ""))
    except ValueError:
        return None
    started = _process_start_time(pid)
    return bool(started) and started == labels.get(OWNER_STARTED, started)
