"""A sandbox-mode sandbox's place on the network: attach it, firewall it, change its egress policy live.

The glue between the lifecycle and :mod:`~jupyter_sandbox.network` / :mod:`~jupyter_sandbox.firewall`.
The policy a sandbox was created with is in its labels (the spec); labels cannot change on a
running container, so the *live* policy is the firewall's state file for that container
(``/run/jupyter-sandbox/egress/<id>.json``), which the rules are rebuilt from.  Status reads it.
"""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import firewall
from . import network as N
from .errors import NetworkSetupFailed, SpecError
from .spec import parse_egress
from .threads import run_sync

if TYPE_CHECKING:
    from .engine import Engine
    from .spec import SandboxSpec


@dataclass
class Plan:
    """What a sandbox-mode create needs, worked out before its container exists.

    Attributes:
        egress: The policy (``public``, ``none`` or the allow-list as given).
        resolved: For an allow-list, each entry with the address and port it admits.
        servers: The nameservers the sandbox's resolv.conf names (and the rules admit).
    """

    egress: Any
    resolved: list[dict[str, Any]] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)

    def container_options(self) -> dict[str, Any]:
        """Options for the engine's create: the product network and the read-only resolv.conf."""
        from docker.types import Mount

        return {"network_mode": N.NETWORK_NAME, "mounts": [Mount(target="/etc/resolv.conf", source=N.RESOLV_CONF, type="bind", read_only=True)]}


def resolve(egress: Any) -> list[dict[str, Any]]:
    """Resolve an allow-list now (CIDRs as they are, ``host:port`` to every IPv4 address of the host).

    Raises:
        SpecError: If a host name does not resolve.
    """
    if isinstance(egress, str):
        return []
    resolved = []
    for entry in egress:
        if ":" not in entry:
            resolved.append({"entry": entry, "cidr": entry, "port": None})
            continue
        host, _, port = entry.rpartition(":")
        try:
            infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise SpecError(
                "egress", f"{host!r} does not resolve on this host ({error})", fix="check the name, or give its address as a CIDR"
            ) from None
        for address in sorted({info[4][0] for info in infos}):
            resolved.append({"entry": entry, "cidr": f"{address}/32", "port": int(port)})
    return resolved


def describe(egress: Any) -> str:
    """One line for a policy: ``public``, ``none`` or the allow-list joined by commas."""
    return egress if isinstance(egress, str) else ", ".join(egress)


def _prune(engine: "Engine", servers: list[str]) -> None:
    """Drop the rules of sandboxes that are no longer running (removed or killed behind the product's back)."""
    import docker.errors

    stale = []
    for record in firewall.records():
        try:
            running = engine.client.api.inspect_container(record["container"])["State"]["Running"]
        except docker.errors.NotFound:
            running = False
        if not running:
            stale.append(record["container"])
    if stale:
        firewall.remove(stale, servers)


def _setup_host(engine: "Engine") -> list[str]:
    try:
        N.ensure_network(engine.client)
        servers = N.host_nameservers()
        N.write_resolv_conf(servers)
        firewall.ensure_base(servers)
        _prune(engine, servers)
    except (firewall.FirewallError, RuntimeError, OSError) as error:
        raise NetworkSetupFailed(
            f"Could not set up the sandbox network: {error}",
            fix="run `bash scripts/setup-host.sh` as root (it installs iptables and creates the network), or use network='none'",
        ) from None
    return servers


async def prepare(engine: "Engine", spec: "SandboxSpec") -> Plan:
    """Make sure the network, its resolv.conf and its base rules exist, and resolve the policy."""
    servers = await engine.call(_setup_host, engine)
    resolved = await run_sync(resolve, spec.egress)
    return Plan(spec.egress, resolved, servers)


def _bridge_port(sandbox_key: str) -> str:
    """The host-side veth of a container's interface (the bridge port its packets arrive on), or ''.

    Empty too when bridged packets do not pass iptables (no ``br_netfilter``): a ``physdev`` match
    would then never match, and rules fall back to the address alone.
    """
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            if f.read().strip() != "1":
                return ""
    except OSError:
        return ""
    try:
        text = subprocess.run(
            ["nsenter", f"--net={sandbox_key}", "ip", "-j", "link", "show", "eth0"], capture_output=True, text=True, timeout=10
        ).stdout
        index = json.loads(text)[0]["link_index"]
        links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, timeout=10).stdout)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return ""
    return next((link["ifname"] for link in links if link.get("ifindex") == index), "")


def _attach(engine: "Engine", container_id: str, name: str, plan: Plan) -> dict[str, Any] | None:
    attrs = engine.client.api.inspect_container(container_id)
    settings = attrs.get("NetworkSettings") or {}
    address = ((settings.get("Networks") or {}).get(N.NETWORK_NAME) or {}).get("IPAddress", "")
    if not address and not (attrs.get("State") or {}).get("Running"):
        return None  # it already exited (its init program failed at once): no traffic, no rules; startup reports why
    if not address:
        raise NetworkSetupFailed(
            f"Sandbox {name!r} got no address on the {N.NETWORK_NAME!r} network.",
            fix="check `docker network inspect jupyter-sandbox`; `bash scripts/setup-host.sh` recreates it",
        )
    record = {
        "container": container_id,
        "name": name,
        "ip": address,
        "bridge_port": _bridge_port(settings.get("SandboxKey", "")),
        "egress": list(plan.egress) if not isinstance(plan.egress, str) else plan.egress,
        "resolved": plan.resolved,
    }
    try:
        firewall.install(record, plan.servers)
    except firewall.FirewallError as error:
        raise NetworkSetupFailed(
            f"Could not install the firewall rules of sandbox {name!r}: {error}", fix="run `bash scripts/setup-host.sh` as root"
        ) from None
    return record


async def attach(engine: "Engine", container_id: str, name: str, plan: Plan) -> dict[str, Any] | None:
    """Install a started sandbox's rules, keyed by its address and bridge port; returns the record
    (None if the container already exited: its startup failure is reported by the caller's watch)."""
    return await engine.call(_attach, engine, container_id, name, plan)


async def forget(container_ids: list[str]) -> None:
    """Remove the rules of removed sandboxes (nothing happens for ids without rules)."""
    if any(firewall.record_of(cid) for cid in container_ids):
        await run_sync(firewall.remove, container_ids, N.host_nameservers())


async def set_egress(engine: "Engine", spec: "SandboxSpec", container_id: str, egress: Any) -> dict[str, Any]:
    """Change a running sandbox's policy; new connections follow it at once (open ones are kept).

    Raises:
        SpecError: If the policy is wrong, or the sandbox is not in network mode ``sandbox``.
    """
    policy = parse_egress(egress, spec.network)
    if spec.network != "sandbox":
        raise SpecError(
            "egress",
            f"sandbox {spec.name!r} has network {spec.network!r}; egress applies to 'sandbox' only",
            fix="create a sandbox with network='sandbox'",
        )
    record = firewall.record_of(container_id)
    if record is None:
        raise NetworkSetupFailed(
            f"Sandbox {spec.name!r} has no firewall rules (is it running?).",
            fix=f"`jupyter sandbox status {spec.name}`; recreate it if it is stopped",
        )
    plan = Plan(policy, await run_sync(resolve, policy), N.host_nameservers())
    record.update(egress=list(policy) if not isinstance(policy, str) else policy, resolved=plan.resolved)
    await run_sync(firewall.install, record, plan.servers)
    return record


def live(container_id: str) -> dict[str, Any] | None:
    """A sandbox's live policy: ``{"egress": ..., "resolved": [...], "ip": ...}``, or None without rules."""
    record = firewall.record_of(container_id)
    if record is None:
        return None
    return {"egress": record["egress"], "resolved": record.get("resolved", []), "ip": record.get("ip", "")}
