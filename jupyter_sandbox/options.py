"""The create options, defined once for the two argparse faces: ``jupyter sandbox create`` and ``%sandbox create``.

Kept apart from :mod:`jupyter_sandbox.cli` so a kernel loading the magics does not import
the CLI (and rich, and its consoles) for them.
"""

from __future__ import annotations

import argparse
from typing import Any

from .spec import DEFAULT_IMAGE, NETWORK_MODES

STARTUP_TIMEOUT_HELP = "seconds the startup may take (default 30, preloaded images included)"


def add_spec_arguments(parser: argparse.ArgumentParser, timeout_help: str = STARTUP_TIMEOUT_HELP) -> None:
    """The spec options, shared by ``create`` (and named as the magics and REST fields are)."""
    parser.add_argument("--docker", action="store_true", help="start a Docker daemon inside the sandbox")
    parser.add_argument("--name", help="unique name (default: a random sb-xxxxxx)")
    parser.add_argument("--image", help=f"host image to run (default: {DEFAULT_IMAGE})")
    parser.add_argument(
        "--network",
        choices=NETWORK_MODES,
        help="sandbox (default: gVisor's own stack, firewalled off the host and LAN), none (loopback only), "
        "or host (the host's network: not isolated)",
    )
    parser.add_argument(
        "--egress",
        metavar="POLICY",
        help="network sandbox only: public (default), none, or allowed destinations "
        "as CIDR or host:port, comma-separated (e.g. 203.0.113.0/24,pypi.org:443)",
    )
    parser.add_argument("--cpu", help="CPU limit, e.g. 1, 0.5 or 500m (default: half the host's CPUs; 'unlimited': none)")
    parser.add_argument("--memory", help="memory limit, e.g. 512Mi or 4Gi (default 4Gi; 'unlimited': none)")
    parser.add_argument("--pids", help="most processes and threads inside, e.g. 512 (the default; 'unlimited': none)")
    parser.add_argument("--env", action="append", metavar="KEY=VALUE", help="environment variable (repeatable)")
    parser.add_argument("--timeout", help=timeout_help)
    parser.add_argument(
        "--disk", help="size of the Docker disk store, e.g. 8Gi (default: half of --memory, or 4Gi without one); it is sandbox memory"
    )
    parser.add_argument("--storage", choices=("overlay2", "vfs"), help="inner dockerd storage driver (default overlay2)")
    parser.add_argument(
        "--image-load",
        action="append",
        dest="images",
        metavar="IMAGE",
        help="host image to load into the sandbox's Docker before it is ready (repeatable)",
    )


SPEC_FIELDS = ("docker", "image", "cpu", "memory", "network", "egress", "env", "timeout", "pids", "disk", "storage", "images")
"""The spec fields :func:`add_spec_arguments` defines (argparse destinations named as the spec's fields)."""
LIMIT_FIELDS = ("ttl", "idle_timeout", "snapshot")
"""The fields :func:`add_limit_arguments` defines."""


def spec_fields(args: argparse.Namespace, *, limits: bool = True) -> dict[str, Any]:
    """The create options a face parsed, as keyword arguments for a spec (``Sandbox.create``, ``SandboxSpec.parse``)."""
    return {field: getattr(args, field) for field in SPEC_FIELDS + (LIMIT_FIELDS if limits else ())}


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The time-limit options of ``create`` (named as the magics' options and the REST fields)."""
    parser.add_argument("--ttl", help="remove the sandbox this long after its creation: seconds, or 30m, 2h, 1d (default: never)")
    parser.add_argument(
        "--idle-timeout",
        help="pause it after this long without use (exec, docker, files, proxied requests); its next use resumes it (default: never)",
    )
    parser.add_argument(
        "--snapshot",
        metavar="TAG",
        help="fork it from a snapshot: the inner daemon, images and running "
        "inner containers restored, under its own name (keeps the snapshot's image and limits)",
    )
