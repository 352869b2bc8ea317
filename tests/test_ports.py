"""The pure parts of jupyter_sandbox.ports: /proc/net/tcp parsing, proxy URLs, port numbers, addresses."""

from __future__ import annotations

import pytest

from jupyter_sandbox.errors import NetworkUnavailable, SpecError
from jupyter_sandbox.ports import check_port, parse_listening, sandbox_address, server_base_url, url

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 94 1 0 0 0 0 -1
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 95 1 0 0 0 0 -1
   2: 0200A8C0:1F90 0100A8C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 96 1 0 0 0 0 -1
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue
  66: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000
  67: 00000000000000000000000001000000:2329 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_listening_ports_from_proc_net_tcp() -> None:
    ports = {p.port: p for p in parse_listening([TCP, TCP6])}
    assert set(ports) == {0x2328, 0x1F90, 0x1F91, 0x2329}  # the established connection is not a listener
    assert ports[9000].addresses == ("127.0.0.1",) and not ports[9000].reachable
    assert ports[8080].addresses == ("0.0.0.0",) and ports[8080].reachable
    assert ports[8081].addresses == ("::",) and ports[8081].reachable
    assert ports[9001].addresses == ("::1",) and not ports[9001].reachable
    assert parse_listening(["garbage", ""]) == []


def test_urls_use_the_servers_base_url() -> None:
    assert url("web", 8000, base_url="/") == "/sandbox/proxy/web/8000/"
    assert url("web", 8000, "a/b?c=1", base_url="/user/x") == "/user/x/sandbox/proxy/web/8000/a/b?c=1"
    assert server_base_url({"JUPYTER_SANDBOX_BASE_URL": "/hub/u/"}) == "/hub/u/"
    assert server_base_url({"JUPYTER_SERVER_URL": "http://127.0.0.1:8888/lab-base"}) == "/lab-base/"
    assert server_base_url({}) == "/"


@pytest.mark.parametrize("bad", [0, 65536, -1, "80a", "", None, True, 8.5])
def test_bad_ports_name_the_field(bad: object) -> None:
    with pytest.raises(SpecError) as caught:
        check_port(bad)
    assert caught.value.field == "port"


def test_addresses_by_network_mode() -> None:
    with pytest.raises(NetworkUnavailable, match="ports need network 'sandbox'"):
        sandbox_address("none", {}, "x")
    assert sandbox_address("host", {}, "x") == "127.0.0.1"
    on_loopback = {"NetworkSettings": {"Networks": {"n": {"IPAddress": "127.0.0.5", "Gateway": "127.0.0.1"}}}}
    assert sandbox_address("sandbox", on_loopback, "x") == "127.0.0.5"
    off_host = {"NetworkSettings": {"Networks": {"n": {"IPAddress": "198.51.100.7", "Gateway": "198.51.100.1"}}}}
    with pytest.raises(NetworkUnavailable, match="routed off the machine"):
        sandbox_address("sandbox", off_host, "x")
    with pytest.raises(NetworkUnavailable, match="no network address"):
        sandbox_address("sandbox", {"NetworkSettings": {"Networks": {}}}, "x")
