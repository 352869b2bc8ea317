"""The inner dockerd's log: which of its lines are expected under gVisor, and why they are harmless.

A sandbox's dockerd runs on gVisor's kernel without iptables, AppArmor, cgroup controllers
or the storage drivers a full Linux host offers, so it warns about each at every start.
:data:`HARMLESS` lists those lines once, for every face: the Lab panel dims them (the
server sends the list with the log), ``jupyter sandbox logs`` dims them on a terminal.
"""

from __future__ import annotations

from typing import NamedTuple


class HarmlessLine(NamedTuple):
    """A dockerd log line that is expected in a sandbox.

    Attributes:
        match: Text the line contains (compared case-insensitively; plain text, not a pattern,
            so that Python and the panel's TypeScript read it the same way).
        why: One sentence saying why it does no harm.
    """

    match: str
    why: str


HARMLESS: list[HarmlessLine] = [
    HarmlessLine(
        "failed to load plugin",
        "containerd tries every storage plugin; the sandbox uses overlay2, the others (devmapper, btrfs, zfs, aufs) are not needed",
    ),
    HarmlessLine("skip loading plugin", "containerd skips storage plugins this filesystem does not support; overlay2 is used"),
    HarmlessLine("could not use snapshotter", "an unused containerd snapshotter (overlay2 is used)"),
    HarmlessLine("could not get the overlay mount", "gVisor does not show the overlay mount the way Linux does; overlay2 still works"),
    HarmlessLine("containerd config version", "the Debian containerd's built-in config format; it works as is"),
    HarmlessLine("root key limit", "gVisor has no /proc/sys/kernel/keys; the key quota does not apply"),
    HarmlessLine("threads limit", "gVisor has no /proc/sys/kernel/threads-max; the sandbox's pids limit applies"),
    HarmlessLine(
        "does not support cgroup", "limits are enforced on the whole sandbox by the host (its cpu, memory and pids), not per inner container"
    ),
    HarmlessLine("does not support swap", "limits are enforced on the whole sandbox by the host, not per inner container"),
    HarmlessLine("cgroup in mounts", "gVisor mounts no cgroup controllers for the inner daemon; the sandbox's own limits apply to everything in it"),
    HarmlessLine("loading cgroup for", "no cgroup controllers inside gVisor: per-container stats are unavailable, the container runs normally"),
    HarmlessLine("cleaning up after shim disconnected", "said each time an inner container exits under gVisor"),
    HarmlessLine("cleanup warnings", "the shim's own log of an inner container that exited, passed on as a warning"),
    HarmlessLine("iptables", "the inner dockerd runs without iptables (gVisor's netstack lacks what Docker needs): use --network=host for ports"),
    HarmlessLine("apparmor", "there is no AppArmor inside gVisor; gVisor itself is the isolation"),
    HarmlessLine("not registered, fallback to default scheme", "gRPC's own startup chatter"),
]
"""Expected dockerd log lines in a sandbox, checked in order (the first match explains a line)."""


def harmless(line: str) -> str | None:
    """Why a dockerd log line is expected in a sandbox, or None for a line worth reading."""
    lower = line.lower()
    for entry in HARMLESS:
        if entry.match in lower:
            return entry.why
    return None


def notes() -> list[dict[str, str]]:
    """:data:`HARMLESS` as JSON-ready data (``match``, ``why``), for the REST API."""
    return [entry._asdict() for entry in HARMLESS]
