"""Host preflight: every prerequisite of a Docker-enabled sandbox, each with its fix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from . import snapshots
from .errors import SandboxError
from .progress import ready_text
from .runtimes import WANTED_RUNTIMES, network_of, runtime_for

MIN_RUNSC = 20240729
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
        return Check(
            "runsc installed",
            False,
            f"runsc {date} is older than {MIN_RUNSC}: dockerd inside dies with 'Devices cgroup isn't mounted'",
            "install runsc from bookworm-backports: " + SETUP,
        )
    return Check("runsc installed", True, f"runsc {date}")


def debian_mirror() -> str | None:
    """The Debian mirror this host's apt sources use (the one egress probe doctor and the tests may send), or None."""
    import glob
    from urllib.parse import urlsplit

    uris: list[str] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            uris += [word for line in f if line.startswith("URIs:") for word in line.split()[1:]]
    if os.path.exists("/etc/apt/sources.list"):
        with open("/etc/apt/sources.list") as f:
            uris += [w for line in f if line.startswith("deb ") for w in line.split() if w.startswith("http")]
    for uri in uris:
        if "security" not in uri and urlsplit(uri).scheme == "http":
            return uri.rstrip("/") + "/"
    return None


def egress_probe(url: str) -> list[str]:
    """A bash command (run inside a sandbox) that resolves the mirror and sends it one small HTTP request.

    It prints ``resolved ADDRESS`` and then the status line; no curl or wget needed (the image has bash).
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port, path = parts.hostname or "", parts.port or 80, parts.path or "/"
    script = (
        f'getent ahostsv4 {host} | head -1 | sed "s/ .*//; s/^/resolved /" | grep . || exit 3; '
        f"exec 3<>/dev/tcp/{host}/{port} || exit 4; "
        f'printf "HEAD {path} HTTP/1.1\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n" >&3; '
        "head -1 <&3"
    )
    return ["timeout", "20", "bash", "-c", script]


def check_sandbox_network(image: str) -> Check:
    """A real network-'sandbox' sandbox starts on the product's network and reaches the Debian mirror."""
    from .sync import Sandbox

    name = "network 'sandbox' (default)"
    mirror = debian_mirror()
    try:
        sandbox = Sandbox.create(image=image, network="sandbox", owner="doctor", timeout=60, use_pool=False)
    except SandboxError as error:
        return Check(name, False, f"a sandbox-mode sandbox did not start: {error.message}", error.fix or SETUP)
    try:
        ready = ready_text(False, sandbox.ready_seconds or 0.0)
        if mirror is None:
            return Check(name, True, f"{ready}; egress not probed (no http Debian mirror in the apt sources)")
        process = sandbox.run(egress_probe(mirror))
        output = process.stdout.read().strip()
        code = process.wait()
        if code == 3:
            return Check(
                name,
                False,
                f"{ready} but cannot resolve {mirror}",
                "check the nameservers in /run/jupyter-sandbox/resolv.conf (copied from the host's "
                "/etc/resolv.conf) and that the firewall admits DNS to them: `bash scripts/setup-host.sh`",
            )
        if code != 0 or " 2" not in output and " 3" not in output:
            return Check(
                name,
                False,
                f"{ready} but no HTTP answer from {mirror} (exit {code}: {output!r})",
                "check that the host forwards and masquerades the jupyter-sandbox bridge "
                "(sysctl net.ipv4.ip_forward=1, Docker's iptables on) and `bash scripts/setup-host.sh`",
            )
        status = output.splitlines()[-1]
        return Check(name, True, f"{ready}; reached {mirror} ({status})")
    finally:
        sandbox.terminate()


def check_host_uds(registered: dict[str, dict[str, Any]]) -> Check:
    """The runsc runtimes let a sandbox create (and only create) its daemon's socket on the host."""
    chosen = {name for network in ("none", "host", "sandbox") if (name := runtime_for(network, registered)) is not None}
    runsc = {name: registered[name] for name in chosen}  # the runtimes sandboxes are created with
    wrong = sorted(name for name, runtime in runsc.items() if "--host-uds=create" not in (runtime.get("runtimeArgs") or []))
    if wrong or not runsc:
        return Check(
            "host socket (--host-uds=create)",
            False,
            f"missing on {', '.join(wrong)}" if wrong else "no runsc runtime",
            "sandboxes cannot offer their daemon on a host socket: " + SETUP,
        )
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
        missing = [str(registered[n].get("path")) for n in names if not os.path.exists(str(registered[n].get("path")))]
        if missing:
            checks.append(
                Check(
                    f"runsc runtime for network '{network}'",
                    False,
                    f"registered as {', '.join(names)}, but {', '.join(missing)} does not exist",
                    SETUP,
                    required=network != "host",
                )
            )
            continue
        checks.append(
            Check(
                f"runsc runtime for network '{network}'",
                bool(names),
                f"registered as {', '.join(names)}" if names else "not registered",
                f"{SETUP}, or merge {wanted} into /etc/docker/daemon.json and SIGHUP dockerd",
                required=network != "host",
            )
        )
    checks.append(check_host_uds(registered))
    experimental = call(engine.call, snapshots.experimental, engine)
    checks.append(
        Check(
            "snapshots (engine experimental mode)",
            experimental,
            "on: sandboxes can be snapshotted and forked" if experimental else "off: `snapshot` and `create --snapshot` fail until it is on",
            "run `JUPYTER_SANDBOX_RESTART_ENGINE=1 bash scripts/setup-host.sh` (restarts dockerd, which stops running containers)",
            required=False,
        )
    )
    try:
        call(engine.image, DEFAULT_IMAGE)
        checks.append(Check("default image", True, DEFAULT_IMAGE))
    except SandboxError as error:
        checks.append(Check("default image", False, error.message, error.fix or ""))
        return checks
    if all(c.ok for c in checks if c.required):
        try:
            sandbox = Sandbox.create(docker=True, network="none", owner="doctor", timeout=60, use_pool=False)
            seconds = sandbox.ready_seconds or 0.0
            sandbox.terminate()
            checks.append(Check("Docker-enabled sandbox", True, f"created, dockerd answered in {seconds:.2f} s, removed"))
        except SandboxError as error:
            checks.append(Check("Docker-enabled sandbox", False, error.message, error.fix or ""))
        checks.append(check_sandbox_network(DEFAULT_IMAGE))
    return checks
