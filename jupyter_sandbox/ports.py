"""Ports of a sandbox: where they are reached from the host, which are listening, and their Jupyter URL.

A sandbox with network ``sandbox`` has its own address on a bridge network
of the host engine (read from the engine, whatever network it is on); the
Jupyter server extension proxies ``<base_url>sandbox/proxy/<name>/<port>/``
to that address.  A ``host``-network sandbox shares the host's stack, so its
ports are the host's loopback ports.  A ``none``-network sandbox has only its
own loopback: nothing outside can reach its ports.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from typing import Any, Iterable, Mapping
from urllib.parse import quote, urlparse

from .errors import NetworkUnavailable, SpecError

PROXY_PREFIX = "sandbox/proxy"
"""The proxy's routes live under ``<base_url>sandbox/proxy/``."""
BASE_URL_ENV = "JUPYTER_SANDBOX_BASE_URL"
"""Set by the server extension to its ``base_url``; kernels and terminals it starts inherit it."""
SERVER_URL_ENV = "JUPYTER_SERVER_URL"
"""The Jupyter server's full URL, base_url included, where a launcher sets it (used when the above is not set)."""
PROC_NET_FILES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN_STATE = "0A"


@dataclasses.dataclass(frozen=True)
class ListeningPort:
    """A TCP port something listens on inside a sandbox.

    Attributes:
        port: The port number.
        addresses: The local addresses it is bound to (``0.0.0.0``, ``::``, ``127.0.0.1``...).
        reachable: Whether a connection from outside the sandbox can reach it
            (bound to a wildcard or a non-loopback address).
    """

    port: int
    addresses: tuple[str, ...]
    reachable: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"port": self.port, "addresses": list(self.addresses), "reachable": self.reachable}


def check_port(port: Any) -> int:
    """A TCP port number from 1 to 65535 (a :class:`SpecError` naming ``port`` otherwise)."""
    try:
        number = int(port)
    except (TypeError, ValueError):
        number = 0
    if isinstance(port, bool) or not 0 < number < 65536 or str(number) != str(port).strip():
        raise SpecError("port", f"must be a TCP port number from 1 to 65535, got {port!r}", fix="use e.g. 8000")
    return number


def proxy_path(name: str, port: int, path: str = "") -> str:
    """The proxy route of a sandbox port relative to the server's base URL: ``sandbox/proxy/NAME/PORT/PATH``."""
    return f"{PROXY_PREFIX}/{quote(name, safe='')}/{check_port(port)}/{path.lstrip('/')}"


def server_base_url(environ: Mapping[str, str] | None = None) -> str:
    """The Jupyter server's base URL as this process knows it (``/`` when it does not).

    From ``JUPYTER_SANDBOX_BASE_URL`` (our server extension sets it), else the
    path of ``JUPYTER_SERVER_URL`` (jupyter-server sets it for its kernels).
    """
    environ = os.environ if environ is None else environ
    base = environ.get(BASE_URL_ENV) or urlparse(environ.get(SERVER_URL_ENV, "")).path or "/"
    return base if base.endswith("/") else base + "/"


def url(name: str, port: int, path: str = "", *, base_url: str | None = None) -> str:
    """The URL of a sandbox port through the Jupyter server, as a path on the server (``/sandbox/proxy/...``).

    Args:
        base_url: The server's base URL; by default :func:`server_base_url`.
    """
    base = base_url if base_url is not None else server_base_url()
    if not base.endswith("/"):
        base += "/"
    return base + proxy_path(name, port, path)


def sandbox_address(network: str, attrs: Mapping[str, Any], name: str) -> str:
    """Where the host reaches a sandbox's ports, from its network mode and the engine's inspect data.

    Raises:
        NetworkUnavailable: For a ``none``-network sandbox, or one the engine gave no address.
    """
    if network == "none":
        raise NetworkUnavailable(
            f"Sandbox {name!r} has network 'none' (loopback only), so none of its ports can be opened from outside.",
            fix="ports need network 'sandbox': create it with network='sandbox' (--network sandbox)",
        )
    if network == "host":
        return "127.0.0.1"
    networks = [e for e in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).values() if e]
    for address, gateway in [(e.get("IPAddress"), e.get("Gateway")) for e in networks] + [
        (e.get("GlobalIPv6Address"), e.get("IPv6Gateway")) for e in networks
    ]:
        if address:
            if gateway and not is_local_address(gateway):
                raise NetworkUnavailable(
                    f"The bridge of sandbox {name!r}'s network (gateway {gateway}) is missing on this host, so its "
                    f"address {address} would be routed off the machine; its ports are not opened.",
                    fix="restart the Docker engine so it recreates its bridges, then create the sandbox again",
                )
            return str(address)
    raise NetworkUnavailable(f"Sandbox {name!r} has no network address (is it running?).", fix=f"`jupyter sandbox status {name}` shows its state")


def is_local_address(address: str) -> bool:
    """Whether an address belongs to one of this host's interfaces (a socket can be bound to it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def _decode_address(hex_address: str) -> str:
    """A ``/proc/net/tcp{,6}`` address (32-bit words in host byte order, little-endian here) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def parse_listening(texts: Iterable[str]) -> list[ListeningPort]:
    """The listening TCP ports in the contents of ``/proc/net/tcp`` and ``/proc/net/tcp6``, by port number."""
    bound: dict[int, set[str]] = {}
    for text in texts:
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 4 or fields[3] != LISTEN_STATE or ":" not in fields[1]:
                continue
            hex_address, hex_port = fields[1].rsplit(":", 1)
            try:
                bound.setdefault(int(hex_port, 16), set()).add(_decode_address(hex_address))
            except ValueError:
                continue
    return [
        ListeningPort(port, tuple(sorted(addresses)), any(not ipaddress.ip_address(a).is_loopback for a in addresses))
        for port, addresses in sorted(bound.items())
    ]
