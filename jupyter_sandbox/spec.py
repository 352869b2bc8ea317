"""SandboxSpec: what a sandbox should be, parsed and validated before anything is created."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .errors import SpecError

DEFAULT_IMAGE = "jupyter-sandbox/docker:bookworm"
"""The Docker-enabled image ``scripts/install.sh`` builds offline."""

DEFAULT_DAEMON_TIMEOUT = 30.0
NETWORK_MODES = ("sandbox", "none", "host")
DEFAULT_NETWORK = "sandbox"
EGRESS_MODES = ("public", "none")
HOST_NETWORK_WARNING = (
    "network 'host' puts the sandbox in the host's network namespace: code inside reaches every "
    "service on the host's loopback (the Jupyter server included), the cloud metadata address and the "
    "whole LAN. Use network 'sandbox' (the default) unless you need exactly that."
)
HOSTNAME_PATTERN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TIMEOUT = 3600.0
MAX_LIFETIME = 30 * 24 * 3600.0
"""The longest ``ttl`` or ``idle_timeout`` accepted (30 days): anything longer is a typo."""
MIN_LIFETIME = 1.0
MIN_MEMORY = 6 * 1024**2
MIN_DOCKER_MEMORY = 128 * 1024**2
MIN_PIDS = 16
MIN_DOCKER_PIDS = 64
MAX_PIDS = 1 << 22
UNLIMITED = "unlimited"
"""The value that asks for no limit on ``cpu``, ``memory`` or ``pids`` (leaving one out gives the default)."""

DEFAULT_MEMORY = "4Gi"
"""Default memory limit.  The runtimes keep a sandbox's root-filesystem writes in its memory
(``--overlay2=root:memory``), and with Docker inside that includes every image loaded or built
(the default image alone is 576 MB, and vfs copies it per inner container), so the default leaves
room for a few images; it is capped at the host's memory."""
DEFAULT_PIDS = 512
"""Default limit on processes (and threads) inside a sandbox; see :func:`host_pids_limit`."""
DEFAULT_ENV = {
    "cpu": "JUPYTER_SANDBOX_DEFAULT_CPU",
    "memory": "JUPYTER_SANDBOX_DEFAULT_MEMORY",
    "pids": "JUPYTER_SANDBOX_DEFAULT_PIDS",
}
"""Environment variables that change the default limits (a value, or ``unlimited``)."""
STORAGE_DRIVERS = ("overlay2", "vfs")
DISK_HEADROOM = 128 * 1024**2
"""Memory a Docker-enabled sandbox keeps besides its disk store: dockerd, the processes, gVisor itself."""
DEFAULT_DISK_UNLIMITED = 4 * 1024**3
"""The disk store's size when no memory limit is set (PLATFORM.md's recipe; pages are used only as it fills)."""
MIN_DISK = 64 * 1024**2
MAX_IMAGES = 20

_MEMORY_UNITS = {
    "": 1,
    "k": 1024,
    "ki": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "ti": 1024**4,
    "tib": 1024**4,
}
_MEMORY_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def new_name() -> str:
    """A fresh random sandbox name such as ``sb-3f9a1c``."""
    return f"sb-{secrets.token_hex(3)}"


def parse_name(value: Any) -> str:
    """Check a sandbox name and return it.

    Raises:
        SpecError: If the name is empty, too long or has characters Docker
            does not accept in a container name.
    """
    if not isinstance(value, str):
        raise SpecError("name", f"must be a string, not {type(value).__name__}", fix="use e.g. 'demo'")
    if not value:
        raise SpecError("name", "must not be empty", fix="use e.g. 'demo', or leave it out for a random name")
    if len(value) > 63:
        raise SpecError("name", f"is {len(value)} characters long; the limit is 63", fix="use a shorter name")
    if not NAME_PATTERN.match(value):
        raise SpecError(
            "name",
            f"{value!r} has characters that are not allowed",
            fix="use letters, digits, '_', '.' and '-', starting with a letter or digit (e.g. 'my-sandbox')",
        )
    return value


def parse_cpu(value: Any) -> float | None:
    """Parse a CPU count such as ``1``, ``"1.5"`` or ``"500m"`` (millicores).

    Raises:
        SpecError: If it is not a positive number no larger than the host's CPU count.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SpecError("cpu", "must be a number of CPUs, not a boolean", fix="use e.g. 1 or 0.5")
    try:
        if isinstance(value, str) and value.strip().endswith("m"):
            cpus = float(value.strip()[:-1]) / 1000
        else:
            cpus = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SpecError("cpu", f"{value!r} is not a number", fix="use e.g. 1, 0.5 or '500m'") from None
    host_cpus = os.cpu_count() or 1
    if not cpus > 0 or cpus != cpus:
        raise SpecError("cpu", f"must be more than 0, got {value!r}", fix="use e.g. 1 or 0.5")
    if cpus > host_cpus:
        raise SpecError("cpu", f"{cpus:g} is more than this host's {host_cpus} CPUs", fix=f"use at most {host_cpus}")
    if cpus < 0.01:
        raise SpecError("cpu", f"{cpus:g} is below the smallest share (0.01)", fix="use e.g. 0.5")
    return cpus


def parse_memory(value: Any) -> int | None:
    """Parse a memory size such as ``"512Mi"``, ``"4Gi"``, ``"1G"`` or a byte count.

    ``K``/``M``/``G``/``T`` and ``Ki``/``Mi``/``Gi``/``Ti`` are all powers of
    1024, as Docker reads them.

    Raises:
        SpecError: If the text is not a size or is below Docker's 6 MiB minimum.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SpecError("memory", "must be a size, not a boolean", fix="use e.g. '512Mi' or '4Gi'")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise SpecError("memory", f"{value!r} is not a size", fix="use e.g. '512Mi' or '4Gi'")
        size = int(value)
    elif isinstance(value, str):
        match = _MEMORY_PATTERN.match(value)
        if not match:
            raise SpecError("memory", f"{value!r} is not a size", fix="use a number and a unit, e.g. '512Mi' or '4Gi'")
        number, unit = match.groups()
        if unit.lower() not in _MEMORY_UNITS:
            raise SpecError(
                "memory",
                f"{value!r} has an unknown unit {unit!r}",
                fix="use Ki, Mi, Gi or Ti (e.g. '512Mi', '4Gi')",
            )
        size = int(float(number) * _MEMORY_UNITS[unit.lower()])
    else:
        raise SpecError("memory", f"must be a size, not {type(value).__name__}", fix="use e.g. '512Mi'")
    if size < MIN_MEMORY:
        raise SpecError("memory", f"{value!r} is below Docker's minimum of 6Mi", fix="use e.g. '512Mi'")
    host = host_memory()
    if host and size > host:
        raise SpecError(
            "memory",
            f"{value!r} is more than this host's {format_memory(host - host % 2**20)} of memory",
            fix=f"use at most {format_memory(host - host % 2**30) or '1Gi'}",
        )
    return size


def parse_pids(value: Any) -> int | None:
    """Parse a process limit: a whole number of processes and threads allowed inside a sandbox.

    Raises:
        SpecError: If it is not a whole number from 16 to 4194304.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise SpecError("pids", f"must be a whole number, not {value!r}", fix="use e.g. 512")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise SpecError("pids", f"{value!r} is not a whole number", fix=f"use e.g. 512, or {UNLIMITED!r}")
        value = text
    try:
        pids = int(value)
    except (TypeError, ValueError, OverflowError):
        raise SpecError("pids", f"must be a whole number, not {type(value).__name__}", fix="use e.g. 512") from None
    if not MIN_PIDS <= pids <= MAX_PIDS:
        raise SpecError("pids", f"must be from {MIN_PIDS} to {MAX_PIDS}, got {value!r}", fix="use e.g. 512")
    return pids


def host_pids_limit(pids: int) -> int:
    """The host PIDs a sandbox with a ``pids`` limit may hold: the container's ``pids_limit``.

    Under gVisor's systrap platform each address space inside is a stub process on the host,
    with its own stub thread, and released stubs are kept for reuse rather than killed
    (``subprocessPool`` in gVisor), so a sandbox holds about two host PIDs per process it
    ever ran *at once* (measured: 200 inner ``sleep``s held 412 host PIDs, still held after
    they exited), plus about 40 for runsc itself.  ``pids`` is enforced inside (gVisor's pids
    cgroup and RLIMIT_NPROC), where a fork fails cleanly with EAGAIN; this host limit is a
    backstop above it (were it reached, runsc could not make a stub and the sandbox would die).
    """
    return 3 * pids + 256


_LIMIT_PARSERS: dict[str, Any] = {}


def default_limit(field_name: str) -> Any:
    """The default of a limit (``cpu``, ``memory`` or ``pids``) as the parser returns it.

    Taken from ``JUPYTER_SANDBOX_DEFAULT_<FIELD>`` when set (``unlimited`` gives ``None``),
    else built in: half the host's CPUs (at least 1), :data:`DEFAULT_MEMORY` capped at the
    host's memory, :data:`DEFAULT_PIDS`.

    Raises:
        SpecError: If the environment variable holds a bad value, naming it.
    """
    variable = DEFAULT_ENV[field_name]
    raw = os.environ.get(variable, "").strip()
    if raw:
        if raw.lower() == UNLIMITED:
            return None
        try:
            return _LIMIT_PARSERS[field_name](raw)
        except SpecError as error:
            raise SpecError(
                field_name,
                f"the default in ${variable} is wrong: {error.message.split(': ', 1)[-1]}",
                fix=f"set {variable} to a valid value or to {UNLIMITED!r} ({error.fix})",
            ) from None
    if field_name == "cpu":
        return float(max(1, (os.cpu_count() or 1) // 2))
    if field_name == "memory":
        host = host_memory()
        memory = parse_memory(DEFAULT_MEMORY) or 0
        return min(memory, host - host % 2**20) if host else memory
    return DEFAULT_PIDS


def parse_limit(field_name: str, value: Any) -> Any:
    """Parse a ``cpu``, ``memory`` or ``pids`` value from user input.

    Left out (``None`` or ``""``) gives :func:`default_limit`; ``"unlimited"`` gives ``None``
    (no limit); anything else goes through :func:`parse_cpu`, :func:`parse_memory` or
    :func:`parse_pids`.
    """
    if value is None or value == "":
        return default_limit(field_name)
    if isinstance(value, str) and value.strip().lower() == UNLIMITED:
        return None
    return _LIMIT_PARSERS[field_name](value)


def host_memory() -> int | None:
    """The host's total memory in bytes (from /proc/meminfo), if it can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


_LIMIT_PARSERS.update(cpu=parse_cpu, memory=parse_memory, pids=parse_pids)


def parse_network(value: Any) -> str:
    """Check a network mode (``sandbox``, the default; ``none``; ``host``)."""
    if value is None or value == "":
        return DEFAULT_NETWORK
    if not isinstance(value, str) or value not in NETWORK_MODES:
        raise SpecError(
            "network",
            f"{value!r} is not a network mode",
            fix="use 'sandbox' (gVisor's own stack on the product's firewalled network, the default), "
            "'none' (loopback only) or 'host' (the host's network, not isolated)",
        )
    return value


EGRESS_FIX = "use 'public', 'none', or a list such as ['203.0.113.0/24', 'pypi.org:443']"


def parse_egress_entry(entry: Any) -> str:
    """Check one allow-list entry: an IPv4 address or CIDR, or ``host:port``."""
    if not isinstance(entry, str) or not entry.strip():
        raise SpecError("egress", f"{entry!r} is not a destination", fix=EGRESS_FIX)
    entry = entry.strip()
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        network = None
    if network is not None:
        if network.version != 4:
            raise SpecError("egress", f"{entry!r} is IPv6; the sandbox network is IPv4-only", fix=EGRESS_FIX)
        return str(network)
    host, sep, port = entry.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError("egress", f"{entry!r} is neither a CIDR nor host:port (port 1-65535)", fix=EGRESS_FIX)
    if not HOSTNAME_PATTERN.match(host):
        raise SpecError("egress", f"{host!r} in {entry!r} is not a host name or IPv4 address", fix=EGRESS_FIX)
    return f"{host.lower()}:{int(port)}"


def parse_egress(value: Any, network: str = DEFAULT_NETWORK) -> "str | tuple[str, ...]":
    """Check an egress policy: ``public`` (default), ``none``, or a list of destinations.

    A string other than ``public``/``none`` is read as a comma-separated list (as the CLI and
    magics pass it).  A policy other than ``public`` applies to network ``sandbox`` only.
    """
    if value is None or value == "":
        policy: str | tuple[str, ...] = "public"
    elif isinstance(value, str) and value.strip() in EGRESS_MODES:
        policy = value.strip()
    elif isinstance(value, (str, list, tuple)):
        items = value.split(",") if isinstance(value, str) else list(value)
        policy = tuple(dict.fromkeys(parse_egress_entry(item) for item in items))
        if not policy:
            raise SpecError("egress", "the allow-list is empty", fix="use egress='none' to allow nothing")
    else:
        raise SpecError("egress", f"must be 'public', 'none' or a list, not {type(value).__name__}", fix=EGRESS_FIX)
    if policy != "public" and network != "sandbox":
        raise SpecError(
            "egress",
            f"applies to network 'sandbox' only (this sandbox has network {network!r})",
            fix="use network='sandbox' with an egress policy, or leave egress out",
        )
    return policy


def parse_timeout(value: Any, field_name: str = "timeout") -> float:
    """Parse a timeout in seconds (more than 0, at most an hour)."""
    if value is None or value == "":
        return DEFAULT_DAEMON_TIMEOUT
    if isinstance(value, bool):
        raise SpecError(field_name, "must be a number of seconds, not a boolean", fix="use e.g. 30")
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SpecError(field_name, f"{value!r} is not a number of seconds", fix="use e.g. 30") from None
    if not 0 < seconds <= MAX_TIMEOUT:
        raise SpecError(field_name, f"must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {value!r}", fix="use e.g. 30")
    return seconds


_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, field_name: str) -> float | None:
    """Parse a time limit (``ttl``, ``idle_timeout``): seconds, or text such as ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``.

    ``None`` or ``""`` means no limit.

    Raises:
        SpecError: If it is not a duration, not positive, below 1 s or above 30 days.
    """
    if value is None or value == "":
        return None
    example = "use e.g. 3600, '30m' or '2h'"
    if isinstance(value, bool):
        raise SpecError(field_name, "must be a duration, not a boolean", fix=example)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_PATTERN.match(value.lower())
        if not match:
            raise SpecError(field_name, f"{value!r} is not a duration (negative or without a known unit?)", fix=example + " (units s, m, h, d)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise SpecError(field_name, f"must be a duration, not {type(value).__name__}", fix=example)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise SpecError(field_name, f"{value!r} is not a duration", fix=example)
    if seconds < MIN_LIFETIME:
        raise SpecError(field_name, f"must be at least {MIN_LIFETIME:g} second, got {value!r}", fix=example + ", or leave it out for no limit")
    if seconds > MAX_LIFETIME:
        raise SpecError(field_name, f"{value!r} is more than the 30-day maximum", fix=example + ", or leave it out for no limit")
    return seconds


def format_duration(seconds: float | None) -> str:
    """A duration as ``45s``, ``5m``, ``2h30m``, ``3d`` (``-`` for none)."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m" + (f"{seconds % 60:02d}s" if seconds % 60 else "")
    if seconds < 86400:
        return f"{seconds // 3600}h" + (f"{seconds % 3600 // 60:02d}m" if seconds % 3600 // 60 else "")
    return f"{seconds // 86400}d" + (f"{seconds % 86400 // 3600}h" if seconds % 86400 // 3600 else "")


def parse_env(value: Any) -> dict[str, str]:
    """Check environment variables (a mapping or ``KEY=VALUE`` strings)."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        pairs: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise SpecError("env", f"{item!r} is not KEY=VALUE", fix="use e.g. 'DEBUG=1'")
            key, _, val = item.partition("=")
            pairs[key] = val
        value = pairs
    if not isinstance(value, Mapping):
        raise SpecError("env", f"must be a mapping, not {type(value).__name__}", fix="use e.g. {'DEBUG': '1'}")
    env = {}
    for key, val in value.items():
        if not isinstance(key, str) or not ENV_KEY_PATTERN.match(key):
            raise SpecError("env", f"{key!r} is not a variable name", fix="use letters, digits and '_', e.g. 'DEBUG'")
        if not isinstance(val, (str, int, float)) or isinstance(val, bool) or "\0" in str(val):
            raise SpecError("env", f"value of {key} must be text without NUL bytes", fix="use e.g. '1'")
        env[key] = str(val)
    return env


def parse_image(value: Any) -> str:
    """Check an image reference is a non-empty string without whitespace."""
    if value is None or value == "":
        return DEFAULT_IMAGE
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise SpecError("image", f"{value!r} is not an image reference", fix=f"use e.g. {DEFAULT_IMAGE!r}")
    return value


def parse_size(value: Any, field_name: str) -> int | None:
    """Parse a size such as ``"8Gi"``, ``"512Mi"`` or a byte count (units as :func:`parse_memory`'s)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SpecError(field_name, "must be a size, not a boolean", fix="use e.g. '2Gi'")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise SpecError(field_name, f"{value!r} is not a size", fix="use e.g. '2Gi'")
        return int(value)
    if not isinstance(value, str):
        raise SpecError(field_name, f"must be a size, not {type(value).__name__}", fix="use e.g. '2Gi'")
    match = _MEMORY_PATTERN.match(value)
    if not match:
        raise SpecError(field_name, f"{value!r} is not a size", fix="use a number and a unit, e.g. '512Mi' or '2Gi'")
    number, unit = match.groups()
    if unit.lower() not in _MEMORY_UNITS:
        raise SpecError(field_name, f"{value!r} has an unknown unit {unit!r}", fix="use Ki, Mi, Gi or Ti (e.g. '2Gi')")
    return int(float(number) * _MEMORY_UNITS[unit.lower()])


def parse_storage(value: Any) -> str:
    """Check the inner dockerd's storage driver: ``overlay2`` (the default) or ``vfs``."""
    if value is None or value == "":
        return "overlay2"
    if value not in STORAGE_DRIVERS:
        raise SpecError(
            "storage",
            f"{value!r} is not a storage choice",
            fix="use 'overlay2' (the default: fast, on the sandbox's disk store) or 'vfs' (the old driver: "
            "every container copies its whole image, ~10x slower; only to compare or to work around an overlay2 problem)",
        )
    return str(value)


def parse_images(value: Any) -> tuple[str, ...]:
    """Check the host images to load into the sandbox's daemon during startup."""
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SpecError("images", f"must be a list of image names, not {type(value).__name__}", fix="use e.g. ['jupyter-sandbox/tiny']")
    if len(value) > MAX_IMAGES:
        raise SpecError("images", f"lists {len(value)} images; the limit is {MAX_IMAGES}", fix="load the rest later with load()")
    images: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or any(c.isspace() for c in item):
            raise SpecError("images", f"{item!r} is not an image reference", fix="use e.g. 'jupyter-sandbox/tiny'")
        if item not in images:
            images.append(item)
    return tuple(images)


def default_disk(memory: int | None) -> int:
    """The disk store's size when a create gives none: half the memory limit, or 4 GiB without one.

    The store is a tmpfs inside the sandbox, so its pages are sandbox memory:
    half leaves the other half for dockerd, containers and processes (and never
    less than :data:`DISK_HEADROOM`).
    """
    if memory is None:
        return DEFAULT_DISK_UNLIMITED
    return max(MIN_DISK, min(memory // 2, memory - DISK_HEADROOM) // 2**20 * 2**20)


def parse_disk(value: Any, *, memory: int | None, docker: bool) -> int | None:
    """Check the size of a Docker-enabled sandbox's disk store against its memory limit.

    Returns ``None`` for a sandbox without Docker (its root filesystem writes
    are sandbox memory, bounded by ``memory``).

    Raises:
        SpecError: If it is not a size, is below 64Mi, is given without
            Docker, or does not leave 128Mi of ``memory`` for everything else.
    """
    size = parse_size(value, "disk")
    if not docker:
        if size is not None:
            raise SpecError(
                "disk",
                "bounds the disk store of a sandbox with Docker inside; this one has none",
                fix="add docker=True (--docker), or leave disk out: a plain sandbox's writes are memory, bounded by memory=",
            )
        return None
    if size is None:
        size = default_disk(memory)
        if memory is not None and size + DISK_HEADROOM > memory:
            raise SpecError(
                "memory",
                f"{format_memory(memory)} leaves no room for the disk store of a sandbox with Docker inside "
                f"(at least {format_memory(MIN_DISK)} of store plus {format_memory(DISK_HEADROOM)} for everything else)",
                fix=f"use at least {format_memory(MIN_DISK + DISK_HEADROOM)} (e.g. '1Gi')",
            )
    if size < MIN_DISK:
        raise SpecError("disk", f"{format_memory(size)} is below the smallest store of 64Mi", fix="use e.g. '2Gi'")
    if memory is not None and size + DISK_HEADROOM > memory:
        most = memory - DISK_HEADROOM
        raise SpecError(
            "disk",
            f"{format_memory(size)} does not fit in memory {format_memory(memory)}: the disk store is sandbox memory, "
            f"and dockerd, containers and processes need at least {format_memory(DISK_HEADROOM)} besides",
            fix=f"raise memory to at least {format_memory(_round_up_mi(size + DISK_HEADROOM))}, or lower disk to at most "
            + (f"{format_memory(most // 2**20 * 2**20)}" if most >= MIN_DISK else "nothing: this memory is too small for a disk store"),
        )
    host = host_memory()
    if host and size > host:
        raise SpecError(
            "disk",
            f"{format_memory(size)} is more than this host's memory ({format_memory(host - host % 2**20)}); the disk store is memory",
            fix=f"use at most {format_memory(host - host % 2**30) or '1Gi'}",
        )
    return size


def _round_up_mi(size: int) -> int:
    return -(-size // 2**20) * 2**20


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox should be.  Build one with :meth:`parse` to validate it.

    Attributes:
        name: Unique name; also the suffix of the container name.
        image: Host engine image the sandbox runs.
        docker: Start a Docker daemon inside the sandbox.
        cpu: CPU limit (``None``: no limit).
        memory: Memory limit in bytes (``None``: no limit).
        network: ``sandbox`` (default), ``none`` or ``host``.
        egress: For network ``sandbox``: ``public``, ``none`` or a tuple of allowed destinations.
        pids: Most processes and threads inside (``None``: no limit).
        env: Environment variables of every process in the sandbox.
        timeout: Seconds the whole startup may take (the daemon timeout), preloaded images included.
        disk: Bytes of the Docker-enabled sandbox's disk store (a tmpfs holding the inner
            dockerd's data, /tmp and the writes to the image's directories); ``None`` without Docker.
        storage: The inner dockerd's storage driver: ``overlay2`` or ``vfs``.
        images: Host images loaded into the sandbox's daemon before it is ready.
        ttl: Seconds after its creation when it is removed (``None``: never).
        idle_timeout: Seconds without use (exec, docker command, file transfer,
            proxied request) after which it is paused (``None``: never).
        snapshot: The tag of the snapshot a fork is restored from (``None``: a fresh boot).
    """

    name: str
    image: str = DEFAULT_IMAGE
    docker: bool = False
    cpu: float | None = None
    memory: int | None = None
    network: str = DEFAULT_NETWORK
    egress: "str | tuple[str, ...]" = "public"
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_DAEMON_TIMEOUT
    pids: int | None = None
    disk: int | None = None
    storage: str = "overlay2"
    images: tuple[str, ...] = ()
    ttl: float | None = None
    idle_timeout: float | None = None
    snapshot: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, tuple):  # a list, as read back from JSON labels
            object.__setattr__(self, "images", tuple(self.images))

    @classmethod
    def parse(
        cls,
        name: Any = None,
        *,
        image: Any = None,
        docker: Any = False,
        cpu: Any = None,
        memory: Any = None,
        network: Any = None,
        egress: Any = None,
        env: Any = None,
        timeout: Any = None,
        pids: Any = None,
        disk: Any = None,
        storage: Any = None,
        images: Any = None,
        ttl: Any = None,
        idle_timeout: Any = None,
        snapshot: Any = None,
    ) -> "SandboxSpec":
        """Validate loose user input (strings from a CLI, JSON from REST) into a spec.

        ``cpu``, ``memory`` and ``pids`` left out get their defaults (:func:`default_limit`);
        ``"unlimited"`` asks for no limit.

        With ``snapshot``, the spec is a fork's: the snapshot's own (image, Docker, limits, network,
        env), with this name, timeout, time limits and (network ``sandbox``) egress policy; giving
        any other field is an error (see :func:`jupyter_sandbox.snapshots.fork_spec`).

        Raises:
            SpecError: Naming the first field that is wrong and how to fix it.
            SnapshotNotFound: If ``snapshot`` names no snapshot.
        """
        if snapshot is not None:
            from .snapshots import fork_spec

            fixed = dict(image=image, cpu=cpu, memory=memory, network=network, env=env, pids=pids, disk=disk, storage=storage, images=images)
            return fork_spec(
                snapshot,
                name=None if name is None else parse_name(name),
                docker=docker,
                egress=egress,
                timeout=timeout,
                ttl=ttl,
                idle_timeout=idle_timeout,
                given=[key for key, value in fixed.items() if value not in (None, "", [], (), {})],
            )
        if not isinstance(docker, bool):
            raise SpecError("docker", f"must be true or false, not {docker!r}", fix="use docker=True")
        spec = cls(
            name=new_name() if name is None else parse_name(name),
            image=parse_image(image),
            docker=docker,
            cpu=parse_limit("cpu", cpu),
            memory=parse_limit("memory", memory),
            network=parse_network(network),
            egress=parse_egress(egress, parse_network(network)),
            env=parse_env(env),
            timeout=parse_timeout(timeout),
            pids=parse_limit("pids", pids),
            ttl=parse_duration(ttl, "ttl"),
            idle_timeout=parse_duration(idle_timeout, "idle_timeout"),
        )
        if docker and spec.memory is not None and spec.memory < MIN_DOCKER_MEMORY:
            raise SpecError("memory", "a sandbox with Docker inside needs at least 128Mi", fix="use e.g. '512Mi'")
        if docker and spec.network == "host":
            raise SpecError(
                "network",
                "'host' cannot be combined with docker=True: a Docker daemon needs NET_ADMIN, and on the host's "
                "network stack it would reconfigure the host itself (dockerd deletes the host's docker0 bridge at start)",
                fix="use network='sandbox' (the default: the internet, without the host), or 'none'",
            )
        if docker and spec.pids is not None and spec.pids < MIN_DOCKER_PIDS:
            raise SpecError("pids", f"a sandbox with Docker inside needs at least {MIN_DOCKER_PIDS}", fix="use e.g. 512")
        return spec._with_storage(disk, storage, images)  # after the limits: the default disk follows the memory

    @classmethod
    def from_dict(cls, data: Any) -> "SandboxSpec":
        """Validate a JSON object (such as a REST body); unknown fields are refused."""
        if not isinstance(data, Mapping):
            raise SpecError("body", f"must be a JSON object, not {type(data).__name__}", fix='send e.g. {"name": "demo", "docker": true}')
        allowed = {
            "name",
            "image",
            "docker",
            "cpu",
            "memory",
            "network",
            "egress",
            "env",
            "timeout",
            "pids",
            "disk",
            "storage",
            "images",
            "ttl",
            "idle_timeout",
            "snapshot",
        }
        for key in data:
            if key not in allowed:
                raise SpecError(
                    str(key) or "body",
                    "is not a known field" if key else "has a field with an empty name",
                    fix=f"use only {', '.join(sorted(allowed))}",
                )
        return cls.parse(**data)

    def _with_storage(self, disk: Any, storage: Any, images: Any) -> "SandboxSpec":
        from dataclasses import replace

        driver = parse_storage(storage)
        loads = parse_images(images)
        if loads and not self.docker:
            raise SpecError("images", "are loaded into the sandbox's Docker daemon; this sandbox has none", fix="add docker=True (--docker)")
        if driver != "overlay2" and not self.docker:
            raise SpecError("storage", "is the inner dockerd's storage driver; this sandbox has no Docker inside", fix="add docker=True (--docker)")
        return replace(self, disk=parse_disk(disk, memory=self.memory, docker=self.docker), storage=driver, images=loads)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data."""
        data = asdict(self)
        data["images"] = list(self.images)
        return data

    @property
    def disk_text(self) -> str | None:
        """The disk store's size in the largest whole binary unit, e.g. ``2Gi``."""
        return format_memory(self.disk)

    @property
    def warnings(self) -> list[str]:
        """What every face shows before creating (network ``host`` is not isolated)."""
        return [HOST_NETWORK_WARNING] if self.network == "host" else []

    @property
    def memory_text(self) -> str | None:
        """The memory limit in the largest whole binary unit, e.g. ``512Mi``."""
        return format_memory(self.memory)


def format_memory(size: int | None) -> str | None:
    """Format a byte count as ``512Mi``/``4Gi`` (or plain bytes)."""
    if size is None:
        return None
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
