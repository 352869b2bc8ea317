"""The product's own Docker network for ``network="sandbox"``, and the resolv.conf its sandboxes get.

Sandbox-mode sandboxes live on one bridge network the product owns (:data:`NETWORK_NAME`, bridge
interface :data:`BRIDGE`, inter-container traffic off, a subnet that clashes with nothing on the
host).  :mod:`jupyter_sandbox.firewall` confines what they reach.  On a user-defined network Docker
writes ``nameserver 127.0.0.11`` into containers, which under gVisor's own network stack is the
sandbox's own loopback (PLATFORM.md), so each sandbox gets a read-only bind of
:data:`RESOLV_CONF` holding the host's real upstream nameservers instead.

This module has no third-party imports at module level: ``scripts/setup-host.sh`` runs
``python3 -m jupyter_sandbox.network`` before the package is installed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from typing import Any, Iterable

NETWORK_NAME = "jupyter-sandbox"
BRIDGE = "jsb0"
"""The bridge interface on the host; the firewall rules are scoped to it."""
NETWORK_LABEL = "io.jupyter.sandbox.network"
STATE_DIR = "/run/jupyter-sandbox"
"""Product-owned runtime state (cleared at boot, like the firewall rules it goes with)."""
RESOLV_CONF = os.path.join(STATE_DIR, "resolv.conf")
HOST_RESOLV_CONF = ("/run/systemd/resolve/resolv.conf", "/etc/resolv.conf")
"""Where the host's upstream nameservers are read (systemd-resolved's upstream list first)."""
SUBNET_CANDIDATES = ["172.29.16.0/20", "172.29.32.0/20", "172.30.16.0/20", "10.213.16.0/20", "10.214.16.0/20", "192.168.213.0/24"]
OPTIONS = {
    "com.docker.network.bridge.name": BRIDGE,
    "com.docker.network.bridge.enable_icc": "false",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
}


def host_nameservers(paths: Iterable[str] = HOST_RESOLV_CONF) -> list[str]:
    """The host's IPv4 upstream nameservers (loopback stub resolvers skipped: a sandbox cannot use those)."""
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        servers = []
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                try:
                    address = ipaddress.ip_address(words[1])
                except ValueError:
                    continue
                if address.version == 4 and not address.is_loopback:
                    servers.append(str(address))
        if servers:
            return servers
    return []


def write_resolv_conf(servers: list[str], path: str = RESOLV_CONF) -> str:
    """Write the sandboxes' resolv.conf (only when its text changes); returns its path."""
    text = "# written by jupyter-sandbox: the host's upstream nameservers\n" + "".join(f"nameserver {s}\n" for s in servers)
    try:
        with open(path) as f:
            if f.read() == text:
                return path
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)
    return path


def host_addresses() -> list[str]:
    """Every address of this host's interfaces (``ip -j addr``), IPv4 and IPv6."""
    try:
        data = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, timeout=10).stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    return [a["local"] for link in data for a in link.get("addr_info", []) if a.get("local")]


def _used_networks(docker_subnets: Iterable[str]) -> list[ipaddress.IPv4Network]:
    used = [ipaddress.ip_network(s, strict=False) for s in docker_subnets if ":" not in s]
    try:
        routes = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True, timeout=10).stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        routes = []
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default":
            used.append(ipaddress.ip_network(dst, strict=False))
    for address in host_addresses():
        if ":" not in address:
            used.append(ipaddress.ip_network(address))
    return used  # type: ignore[return-value]


def pick_subnet(docker_subnets: Iterable[str]) -> str:
    """The first candidate subnet that overlaps no route, host address or Docker network."""
    used = _used_networks(docker_subnets)
    for candidate in SUBNET_CANDIDATES:
        net = ipaddress.ip_network(candidate)
        if not any(net.overlaps(other) for other in used):
            return candidate
    raise RuntimeError(f"every candidate subnet for the {NETWORK_NAME!r} network clashes with this host's networks: {', '.join(SUBNET_CANDIDATES)}")


def ensure_network(client: Any) -> dict[str, Any]:
    """Create the product's network if missing (idempotent, safe against a concurrent create); returns its attrs.

    Args:
        client: A docker-py ``DockerClient``.
    """
    import docker.errors
    from docker.types import IPAMConfig, IPAMPool

    try:
        attrs: dict[str, Any] = client.api.inspect_network(NETWORK_NAME)
        return attrs
    except docker.errors.NotFound:
        pass
    subnets = [c.get("Subnet", "") for n in client.api.networks() for c in ((n.get("IPAM") or {}).get("Config") or [])]
    subnet = pick_subnet(subnets)
    try:
        client.api.create_network(
            NETWORK_NAME,
            driver="bridge",
            options=OPTIONS,
            check_duplicate=True,
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]),
            labels={NETWORK_LABEL: "1"},
        )
    except docker.errors.APIError as error:
        if error.status_code != 409 and "already exists" not in str(error):
            raise
    attrs = client.api.inspect_network(NETWORK_NAME)
    return attrs


def ensure_network_cli() -> str:
    """:func:`ensure_network` through the ``docker`` CLI (for ``setup-host.sh``, before docker-py is installed)."""

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)

    found = docker("network", "inspect", NETWORK_NAME, "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}")
    if found.returncode == 0:
        return found.stdout.strip()
    ids = docker("network", "ls", "-q").stdout.split()
    subnets = docker("network", "inspect", *ids, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}").stdout.split()
    subnet = pick_subnet(subnets)
    options = [f"--opt={k}={v}" for k, v in OPTIONS.items()]
    made = docker("network", "create", "--driver=bridge", f"--subnet={subnet}", f"--label={NETWORK_LABEL}=1", *options, NETWORK_NAME)
    if made.returncode != 0 and "already exists" not in made.stderr:
        raise RuntimeError(f"docker network create {NETWORK_NAME} failed: {made.stderr.strip()}")
    return subnet


def subnet_of(attrs: dict[str, Any]) -> str:
    """The IPv4 subnet of a network's attrs."""
    for config in (attrs.get("IPAM") or {}).get("Config") or []:
        if ":" not in config.get("Subnet", ":"):
            subnet: str = config["Subnet"]
            return subnet
    return ""


def setup(client: Any = None) -> str:
    """Everything the host needs for sandbox mode: the network, the resolv.conf, the firewall's base rules."""
    from . import firewall

    if client is None:
        try:
            import docker
        except ImportError:  # setup-host.sh, before the package and its dependencies are installed
            subnet = ensure_network_cli()
        else:
            subnet = subnet_of(ensure_network(docker.from_env()))
    else:
        subnet = subnet_of(ensure_network(client))
    servers = host_nameservers()
    write_resolv_conf(servers)
    firewall.ensure_base(servers)
    return f"network {NETWORK_NAME} ({subnet}, bridge {BRIDGE}), nameservers {', '.join(servers) or 'none'}"


def teardown() -> None:
    """Remove the network, its base firewall rules and the resolv.conf (only when no sandbox uses it)."""
    from . import firewall

    removed = subprocess.run(["docker", "network", "rm", NETWORK_NAME], capture_output=True, text=True, timeout=60)
    if removed.returncode != 0 and "not found" not in removed.stderr:  # sandboxes still on it keep their rules
        raise RuntimeError(f"cannot remove network {NETWORK_NAME}: {removed.stderr.strip()} (remove its sandboxes first)")
    firewall.remove_all()
    try:
        os.remove(RESOLV_CONF)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    # python3 -m jupyter_sandbox.network [--remove]
    if sys.argv[1:] == ["--remove"]:
        teardown()
        print("removed")
    else:
        print(setup())
