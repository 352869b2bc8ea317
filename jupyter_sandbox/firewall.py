"""The host firewall that keeps sandbox-mode sandboxes off the host, the LAN and each other.

Rules live in the host's ``iptables``/``ip6tables`` (filter table), in chains this module owns,
scoped to the product's bridge (:data:`jupyter_sandbox.network.BRIDGE`):

- ``DOCKER-USER`` (ip6tables: ``FORWARD``) jumps ``-i jsb0`` to ``JUPYTER-SANDBOX-EGRESS``: replies
  pass, sandbox-to-sandbox is dropped, then each sandbox is sent (``-g``) by its source address *and*
  the bridge port it really arrived on (so a sandbox that forges another's address matches nothing)
  to its own policy chain ``JSB-<container id>``; anything else is dropped.
- ``INPUT`` jumps ``-i jsb0`` to ``JUPYTER-SANDBOX-HOST``: replies pass (the host may connect to a
  sandbox), allow-list sandboxes get their own chain, DNS to a host-local nameserver passes, every
  other new connection to any host address (gateway, interfaces) is dropped.
- A policy chain: ``public`` accepts DNS to the configured nameservers, drops private, link-local,
  loopback, multicast and reserved ranges, and returns (Docker's own rules then forward it);
  ``none`` drops everything; an allow-list accepts DNS, its entries, and drops the rest.

The rules are rebuilt, all at once (``iptables-restore --noflush``, one transaction per table),
from small JSON files in :data:`RULES_DIR`, one per sandbox, under a host-wide lock: installing is
idempotent, a sandbox's rules go with its file, and a live policy change rewrites one file.

Why ``subprocess`` and not a Python binding: the host may run iptables-nft or iptables-legacy
(Docker drives whichever ``iptables`` is installed), and no well-kept Python binding speaks both
(python-iptables is legacy-only; the nftables bindings cannot see legacy rules).  The binaries are
what Docker itself uses, so our rules land in the same backend as its ``DOCKER-USER`` chain.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from typing import Any

from .locks import host_lock
from .network import BRIDGE, STATE_DIR, host_addresses

RULES_DIR = os.path.join(STATE_DIR, "egress")
LOCK_PATH = os.path.join(STATE_DIR, "firewall.lock")
EGRESS = "JUPYTER-SANDBOX-EGRESS"
HOST = "JUPYTER-SANDBOX-HOST"
SANDBOX_CHAIN_PREFIX = "JSB-"
BLOCKED_V4 = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
"""Destinations a ``public`` sandbox never reaches: private, shared, link-local (metadata), loopback, multicast, reserved."""
BLOCKED_V6 = ["fc00::/7", "fe80::/10", "::1/128", "ff00::/8"]
COMMENT = ["-m", "comment", "--comment", "jupyter-sandbox"]


class FirewallError(RuntimeError):
    """iptables refused a change (the message has its stderr)."""


def sandbox_chain(container_id: str) -> str:
    """The policy chain of one sandbox (chain names are limited to 28 characters)."""
    return SANDBOX_CHAIN_PREFIX + container_id[:12]


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise FirewallError(
            f"{argv[0]} is not installed: sandbox mode needs the host firewall (`bash scripts/setup-host.sh` installs the iptables package)"
        ) from None
    if result.returncode != 0:
        raise FirewallError(f"{' '.join(argv[:3])} failed: {result.stderr.strip()}\n{stdin or ''}".strip())
    return result.stdout


def saved(family: int = 4) -> str:
    """``iptables-save -t filter`` (or ``ip6tables-save``) output: the rules as installed."""
    return _run(["iptables-save" if family == 4 else "ip6tables-save", "-t", "filter"])


def _chains(text: str) -> set[str]:
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}


# -- what the rules should be ----------------------------------------------------------------


def _dns(servers: list[str], target: str) -> list[str]:
    return [f"-d {s}/32 -p {proto} -m {proto} --dport 53 -j {target}" for s in servers for proto in ("udp", "tcp")]


def policy_rules(record: dict[str, Any], servers: list[str]) -> list[str]:
    """The rules of one sandbox's policy chain (without ``-A CHAIN``)."""
    egress = record["egress"]
    if egress == "none":
        return ["-j DROP"]
    rules = _dns(servers, "ACCEPT")
    if egress == "public":
        return rules + [f"-d {cidr} -j DROP" for cidr in BLOCKED_V4] + ["-j RETURN"]
    for item in record.get("resolved", []):
        if item.get("port"):
            rules += [f"-d {item['cidr']} -p {p} -m {p} --dport {item['port']} -j ACCEPT" for p in ("tcp", "udp")]
        else:
            rules.append(f"-d {item['cidr']} -j ACCEPT")
    return rules + ["-j DROP"]


def _dispatch(record: dict[str, Any], target: str) -> str:
    port = f" -m physdev --physdev-in {record['bridge_port']}" if record.get("bridge_port") else ""
    return f"-s {record['ip']}/32{port} -g {target}"


def _script_v4(records: list[dict[str, Any]], servers: list[str], current: str) -> str:
    have = _chains(current)
    local = set(host_addresses())
    lines = ["*filter"]
    wanted = [EGRESS, HOST] + [sandbox_chain(r["container"]) for r in records]
    stale = sorted(c for c in have if c.startswith(SANDBOX_CHAIN_PREFIX) and c not in wanted)
    lines += [f":{chain} - [0:0]" for chain in wanted if chain not in have]
    lines += [f"-F {chain}" for chain in wanted + stale]
    lines += [f"-X {chain}" for chain in stale]
    lines += [f"-A {EGRESS} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN", f"-A {EGRESS} -o {BRIDGE} -j DROP"]
    for record in records:
        chain = sandbox_chain(record["container"])
        lines.append(f"-A {EGRESS} {_dispatch(record, chain)}")
        lines += [f"-A {chain} {rule}" for rule in policy_rules(record, servers)]
    lines.append(f"-A {EGRESS} -j DROP")
    lines.append(f"-A {HOST} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
    for record in records:
        if record["egress"] != "public":
            lines.append(f"-A {HOST} {_dispatch(record, sandbox_chain(record['container']))}")
    lines += [f"-A {HOST} {rule}" for rule in _dns([s for s in servers if s in local], "ACCEPT")]
    lines.append(f"-A {HOST} -j DROP")
    parent = "DOCKER-USER" if "DOCKER-USER" in have else "FORWARD"
    lines += _jumps(current, [(parent, EGRESS), ("INPUT", HOST)])
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _script_v6(current: str) -> str:
    have = _chains(current)
    lines = ["*filter"] + [f":{chain} - [0:0]" for chain in (EGRESS, HOST) if chain not in have]
    lines += [f"-F {EGRESS}", f"-F {HOST}"]
    for chain in (EGRESS, HOST):
        lines.append(f"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
        lines += [f"-A {chain} -d {cidr} -j DROP" for cidr in BLOCKED_V6]
        lines.append(f"-A {chain} -j DROP")  # the product network is IPv4-only: no IPv6 from it at all
    parent = "DOCKER-USER" if "DOCKER-USER" in have else "FORWARD"
    lines += _jumps(current, [(parent, EGRESS), ("INPUT", HOST)])
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _jumps(current: str, pairs: list[tuple[str, str]]) -> list[str]:
    lines = []
    for parent, chain in pairs:
        if f"-A {parent} -i {BRIDGE} -j {chain}" not in current.splitlines():
            lines.append(f"-I {parent} 1 -i {BRIDGE} -j {chain}")
    return lines


# -- installing ---------------------------------------------------------------------------


def records() -> list[dict[str, Any]]:
    """The state of every sandbox's installed rules."""
    return _records()


def _records() -> list[dict[str, Any]]:
    records = []
    for entry in sorted(os.listdir(RULES_DIR)) if os.path.isdir(RULES_DIR) else []:
        if entry.endswith(".json"):
            try:
                with open(os.path.join(RULES_DIR, entry)) as f:
                    records.append(json.load(f))
            except (OSError, ValueError):
                continue
    return records


def _sync(servers: list[str]) -> None:
    _run(["iptables-restore", "-w", "--noflush"], _script_v4(_records(), servers, saved(4)))
    _run(["ip6tables-restore", "-w", "--noflush"], _script_v6(saved(6)))


def ensure_base(servers: list[str]) -> None:
    """Install (or repair) the bridge's chains and jumps; existing sandboxes' rules are kept."""
    with host_lock(LOCK_PATH):
        _sync(servers)


def record_path(container_id: str) -> str:
    """The state file of one sandbox's rules."""
    return os.path.join(RULES_DIR, container_id + ".json")


def install(record: dict[str, Any], servers: list[str]) -> None:
    """Install or replace one sandbox's rules.

    Args:
        record: ``container`` (id), ``name``, ``ip``, ``bridge_port`` (its veth on the host, or
            empty), ``egress`` (``public``, ``none`` or the list as given) and ``resolved``
            (``[{"entry", "cidr", "port"}]`` for a list).
        servers: The nameservers sandboxes may query.
    """
    with host_lock(LOCK_PATH):
        os.makedirs(RULES_DIR, exist_ok=True)
        path = record_path(record["container"])
        for other in _records():  # an address is given out again after its sandbox went: the new one wins
            if other["ip"] == record["ip"] and other["container"] != record["container"]:
                _forget(other["container"])
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        _sync(servers)


def _forget(container_id: str) -> bool:
    try:
        os.remove(record_path(container_id))
        return True
    except FileNotFoundError:
        return False


def remove(container_ids: list[str], servers: list[str]) -> None:
    """Remove the rules of sandboxes (unknown ids are ignored)."""
    with host_lock(LOCK_PATH):
        if any([_forget(cid) for cid in container_ids]):
            _sync(servers)


def keep_only(container_ids: set[str], servers: list[str]) -> None:
    """Remove the rules of every sandbox not in ``container_ids`` (those removed behind the product's back)."""
    with host_lock(LOCK_PATH):
        gone = [r["container"] for r in _records() if r["container"] not in container_ids]
        if gone:
            for cid in gone:
                _forget(cid)
            _sync(servers)


def record_of(container_id: str) -> dict[str, Any] | None:
    """The installed rules' state of a sandbox, or None."""
    try:
        with open(record_path(container_id)) as f:
            record: dict[str, Any] = json.load(f)
            return record
    except (OSError, ValueError):
        return None


def remove_all() -> None:
    """Remove every rule, chain and jump this module installed (with the product's network)."""
    with host_lock(LOCK_PATH):
        for family, restore in ((4, "iptables-restore"), (6, "ip6tables-restore")):
            current = saved(family)
            have = _chains(current)
            lines = ["*filter"]
            lines += [
                f"-D {line[3:]}"
                for line in current.splitlines()
                if line.startswith("-A ") and f"-i {BRIDGE} -j " in line and (EGRESS in line or HOST in line)
            ]
            ours = [c for c in have if c in (EGRESS, HOST) or c.startswith(SANDBOX_CHAIN_PREFIX)]
            lines += [f"-F {c}" for c in ours] + [f"-X {c}" for c in ours] + ["COMMIT"]
            _run([restore, "-w", "--noflush"], "\n".join(lines) + "\n")
        for record in _records():
            _forget(record["container"])


def rule_count() -> int:
    """How many rules (v4 and v6 filter tables, every chain) the host has: for leak checks."""
    return sum(1 for family in (4, 6) for line in saved(family).splitlines() if line.startswith("-A "))


def is_blocked_v4(address: str) -> bool:
    """Whether a ``public`` sandbox's chain drops this IPv4 destination (what the rules above say)."""
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(cidr) for cidr in BLOCKED_V4)
