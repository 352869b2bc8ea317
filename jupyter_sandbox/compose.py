"""Compose projects as users write them, rewritten into what works inside a sandbox on this runsc.

Inside gVisor 20240729 the inner dockerd runs without iptables, so inner bridge
networks carry no traffic between containers, have no embedded DNS, and ``ports:``
publishes nothing.  What does work is the sandbox's own network stack
(``network_mode: host``).  :func:`rewrite` turns the project's normalised model
(``docker compose config --format json``, run inside the sandbox so ``.env``
files and variables resolve there) into an equivalent on that stack:

* every service gets ``network_mode: host`` (``none`` is kept) and loses its
  ``networks``, ``hostname``, ``links`` and ``mac_address`` (they need a network of its own);
* every service name (and network alias) resolves to ``127.0.0.1`` through ``extra_hosts``,
  so services reach each other by name on the port they listen on;
* builds run on that stack too (``build.network: host``: BuildKit's default bridge does not exist);
* ``ports:`` are dropped: a service is reachable inside the sandbox on its own
  (target) port, and from Jupyter through the sandbox's port proxy.

Two services listening on the same port cannot share one network stack: that
is refused with both names.  Every change is listed in :attr:`Rewrite.notes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import SandboxError

REWRITTEN_FILE = ".jupyter-sandbox-compose.json"
"""The rewritten project, written next to the user's compose file inside the sandbox."""

_NEEDS_OWN_NETWORK = ("networks", "hostname", "links", "mac_address", "dns", "dns_search")


class ComposeNotSupported(SandboxError):
    """A compose project asks for something one shared network stack cannot give."""

    code = "compose_not_supported"
    http_status = 400


@dataclass
class Rewrite:
    """A project rewritten for the sandbox's network stack.

    Attributes:
        project: The rewritten model, ready for ``docker compose -f``.
        notes: One line per change, for the user.
    """

    project: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """The model as a compose file; ``$`` doubled, since compose interpolates the file again."""
        return json.dumps(_escape(self.project), indent=2, sort_keys=True)


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [_escape(item) for item in value]
    if isinstance(value, dict):
        return {key: _escape(item) for key, item in value.items()}
    return value


def _aliases(service: dict[str, Any]) -> list[str]:
    networks = service.get("networks") or {}
    if not isinstance(networks, dict):
        return []
    return [alias for config in networks.values() if isinstance(config, dict) for alias in config.get("aliases") or []]


def rewrite(project: dict[str, Any]) -> Rewrite:
    """Rewrite a normalised compose model for the sandbox's own network stack.

    Raises:
        ComposeNotSupported: If two services would listen on the same port.
    """
    services: dict[str, dict[str, Any]] = {name: dict(spec) for name, spec in (project.get("services") or {}).items()}
    names = sorted({*services, *(alias for spec in services.values() for alias in _aliases(spec))})
    notes: list[str] = []
    listeners: dict[tuple[int, str], str] = {}
    for name, spec in sorted(services.items()):
        mode = spec.get("network_mode")
        if mode == "none":
            continue
        if mode != "host":
            spec["network_mode"] = "host"
            dropped = [key for key in _NEEDS_OWN_NETWORK if key in spec and key != "networks"]
            notes.append(
                f"service {name}: runs on the sandbox's network stack (network_mode: host)" + (f", without {', '.join(dropped)}" if dropped else "")
            )
        for key in _NEEDS_OWN_NETWORK:
            spec.pop(key, None)
        build = spec.get("build")
        if isinstance(build, dict) and not build.get("network"):
            spec["build"] = {**build, "network": "host"}  # BuildKit's default, "bridge", does not exist inside
        others = [other for other in names if other != name]
        if others:
            hosts = spec.get("extra_hosts") or []
            if isinstance(hosts, dict):
                hosts = [f"{host}:{address}" for host, address in hosts.items()]
            spec["extra_hosts"] = [*hosts, *(f"{other}:127.0.0.1" for other in others)]
        for port in spec.pop("ports", None) or []:
            target, protocol = int(port.get("target", 0)), port.get("protocol", "tcp")
            published = port.get("published")
            where = f"127.0.0.1:{target}" + (f" (not {published})" if published and str(published) != str(target) else "")
            notes.append(
                f"service {name}: port {published or target}->{target}/{protocol} is not published "
                f"(this runsc publishes nothing); it listens on the sandbox's {where}, "
                f"which Jupyter serves through sb.url({target})"
            )
            owner = listeners.setdefault((target, protocol), name)
            if owner != name:
                raise ComposeNotSupported(
                    f"Services {owner!r} and {name!r} both listen on port {target}/{protocol}, and inside a sandbox "
                    "all services share one network stack.",
                    fix="make one of them listen on another port (its command or environment), or run them in two sandboxes",
                )
    rewritten = {key: value for key, value in project.items() if key != "networks"}
    rewritten["services"] = services
    return Rewrite(rewritten, notes)
