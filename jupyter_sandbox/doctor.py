"""Host preflight: every prerequisite of a Docker-enabled sandbox, each with its fix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from .errors import SandboxError
from .runtimes import WANTED_RUNTIMES, network_of, runtime_for

MIN_RUNSC = 20240729
TRAP_FIXED = 20240801
SETUP = "run `bash scripts/setup-host.sh` (installs and configures everything)"


@dataclass
class Check:
    """One doctor line.

    Attributes:
        name: What was checked.
        ok: Whether it passed.
        detail: What was found.
        fix: What to do when it failed.
        required: False for checks that only inform (they never fail the doctor).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def runsc_date(binary: str = "runsc") -> int | None:
    """The release date of the installed runsc (e.g. 20240729), or None if it is missing."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(20\d{6})", text)
    return int(match.group(1)) if match else 0


def check_runsc() -> Check:
    """runsc is installed and new enough for dockerd inside it."""
    date = runsc_date()
    if date is None:
        return Check("runsc installed", False, "runsc is not on PATH", SETUP)
    if date < MIN_RUNSC:
        return Check("runsc installed", False, f"runsc {date} is older than {MIN_RUNSC}: dockerd inside dies with "
                     "'Devices cgroup isn't mounted'", "install runsc from bookworm-backports: " + SETUP)
    return Check("runsc installed", True, f"runsc {date}")


def check_network_trap() -> Check:
    """Informs whether network mode 'sandbox' can work with this runsc and kernel."""
    date = runsc_date() or 0
    major = int(re.match(r"(\d+)", os.uname().release).group(1))  # type: ignore[union-attr]
    if date and date < TRAP_FIXED and major >= 6:
        return Check("network mode 'sandbox'", False, f"runsc {date} on kernel {os.uname().release} refuses it "
                     "('cannot run with network enabled in root network namespace'); 'none' and 'host' work",
                     "use network 'none' or 'host', or a runsc from 2024-08 or later", required=False)
    return Check("network mode 'sandbox'", True, "expected to work", required=False)


def check_host_uds(registered: dict) -> Check:
    """The runsc runtimes let a sandbox create (and only create) its daemon's socket on the host."""
    chosen = {runtime_for(network, registered) for network in ("none", "host", "sandbox")} - {None}
    runsc = {name: registered[name] for name in chosen}  # the runtimes sandboxes are created with
    wrong = sorted(name for name, runtime in runsc.items()
                   if "--host-uds=create" not in (runtime.get("runtimeArgs") or []))
    if wrong or not runsc:
        return Check("host socket (--host-uds=create)", False,
                     f"missing on {', '.join(wrong)}" if wrong else "no runsc runtime",
                     "sandboxes cannot offer their daemon on a host socket: " + SETUP)
    return Check("host socket (--host-uds=create)", True, f"on {', '.join(sorted(runsc))}")


def run_checks() -> list[Check]:
    """Run every check; the last one creates and removes a real Docker-enabled sandbox."""
    from .engine import Engine
    from .spec import DEFAULT_IMAGE
    from .sync import Sandbox, call

    checks = [check_runsc()]
    engine = Engine.default()
    try:
        call(engine.ping)
        version = call(engine.call, lambda: engine.client.version())
        checks.append(Check("Docker engine reachable", True, f"dockerd {version.get('Version')}"))
    except SandboxError as error:
        checks.append(Check("Docker engine reachable", False, error.message, error.fix or SETUP))
        return checks
    registered = call(engine.runtimes)
    for network in ("none", "host", "sandbox"):
        names = [n for n, r in registered.items() if network_of(r) == network]
        wanted = {n: r for n, r in WANTED_RUNTIMES.items() if network_of(r) == network}
        checks.append(Check(f"runsc runtime for network '{network}'", bool(names),
                            f"registered as {', '.join(names)}" if names else "not registered",
                            f"{SETUP}, or merge {wanted} into /etc/docker/daemon.json and SIGHUP dockerd",
                            required=network != "sandbox"))
    checks.append(check_network_trap())
    checks.append(check_host_uds(registered))
    try:
        call(engine.image, DEFAULT_IMAGE)
        checks.append(Check("default image", True, DEFAULT_IMAGE))
    except SandboxError as error:
        checks.append(Check("default image", False, error.message, error.fix or ""))
        return checks
    if all(c.ok for c in checks if c.required):
        try:
            sandbox = Sandbox.create(docker=True, owner="doctor", timeout=60)
            seconds = sandbox.ready_seconds or 0.0
            sandbox.terminate()
            checks.append(Check("Docker-enabled sandbox", True, f"created, dockerd answered in {seconds:.2f} s, removed"))
        except SandboxError as error:
            checks.append(Check("Docker-enabled sandbox", False, error.message, error.fix or ""))
    return checks
