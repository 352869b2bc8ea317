"""Network mode "sandbox" on real sandboxes, real firewall rules and real packets.

Traffic goes only to this machine's own addresses (its interfaces, the product bridge's gateway,
other sandboxes, a network namespace made here) plus one small HTTP request to the Debian mirror
of the apt sources.  Rules for destinations no test may send to (link-local, the metadata address,
private ranges outside our namespace) are checked by reading ``iptables-save``.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator
from urllib.parse import urlsplit

import docker
import pytest
from sandbox_test_support import unique_name

from jupyter_sandbox import firewall
from jupyter_sandbox import network as N
from jupyter_sandbox.doctor import debian_mirror, egress_probe
from jupyter_sandbox.sync import Sandbox

pytestmark = pytest.mark.integration

CONNECT_BOUND = 3  # seconds: a blocked connection is refused or times out within this
LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(16)
while True:
    conn, _ = server.accept()
    conn.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nhi")
    conn.close()
"""  # http.server would first look up its address's name (seconds in a namespace without DNS)


def probe(sandbox: Sandbox, address: str, port: int) -> int:
    """Try one TCP connection from inside a sandbox: 0 connected, 1 refused, 124 timed out."""
    script = f"exec 3<>/dev/tcp/{address}/{port}"
    return sandbox.run(["timeout", str(CONNECT_BOUND), "bash", "-c", script]).wait()


def host_can_connect(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=CONNECT_BOUND):
        return True
    return False


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(bind: str) -> Iterator[int]:
    """An HTTP server on the host (the stand-in for a Jupyter server), on a free port."""
    server = http.server.ThreadingHTTPServer((bind, 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def ipv4_host_addresses() -> list[str]:
    return sorted({a for a in N.host_addresses() if ":" not in a} | {gateway()})


def gateway() -> str:
    attrs = docker.from_env().api.inspect_network(N.NETWORK_NAME)
    return attrs["IPAM"]["Config"][0].get("Gateway") or str(next(ipaddress.ip_network(N.subnet_of(attrs)).hosts()))


@pytest.fixture(scope="module")
def public() -> Iterator[Sandbox]:
    sandbox = Sandbox.create(unique_name("net"), owner="test", use_pool=False)
    try:
        yield sandbox
    finally:
        sandbox.terminate()


@pytest.fixture(scope="module")
def namespace() -> Iterator[dict]:
    """A network namespace with a private 10.x address and two HTTP listeners, routed from the host."""
    tag = os.urandom(2).hex()
    ns, outside, inside = f"net-{tag}", f"nt{tag}a", f"nt{tag}b"
    octet = int(tag[:2], 16) % 200 + 20
    host_ip, ns_ip = f"10.251.{octet}.1", f"10.251.{octet}.2"

    def sh(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    listeners = []
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        sh("ip", "link", "set", inside, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", outside)
        sh("ip", "link", "set", outside, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", inside)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", host_ip)
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        for port in ports:
            listeners.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, ns_ip, str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            for _ in range(100):
                if host_can_connect(ns_ip, port):
                    break
                time.sleep(0.1)
            assert host_can_connect(ns_ip, port), "the namespace's listener does not answer the host"
        yield {"ip": ns_ip, "ports": ports}
    finally:
        for listener in listeners:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "link", "del", outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_reaches_the_debian_mirror(public):
    mirror = debian_mirror()
    assert mirror, "no http Debian mirror in the apt sources"
    process = public.run(egress_probe(mirror))
    output = process.stdout.read()
    assert process.wait() == 0, process.stderr.read()
    assert output.startswith("resolved ") and "HTTP/1.1 200" in output


def test_host_servers_unreachable_on_every_host_address(public):
    with http_server("127.0.0.1") as local_port, http_server("0.0.0.0") as any_port:
        addresses = ipv4_host_addresses()
        assert gateway() in addresses and len(addresses) >= 3
        assert host_can_connect("127.0.0.1", local_port)
        for address in addresses:  # the servers answer the host itself...
            assert host_can_connect(address, any_port), address
        for address in ["127.0.0.1", *addresses]:  # ...and nothing from the sandbox
            for port in (local_port, any_port):
                assert probe(public, address, port) in (1, 124), f"{address}:{port} reachable from the sandbox"


def test_other_sandboxes_unreachable_but_the_host_reaches_them(public):
    with Sandbox.create(unique_name("net"), owner="test", use_pool=False) as other:
        port = 18080
        other.exec(
            [
                "perl",
                "-MIO::Socket::INET",
                "-e",
                f"$s=IO::Socket::INET->new(LocalAddr=>'0.0.0.0:{port}',Listen=>5,ReuseAddr=>1) or die; "
                'while($c=$s->accept){print $c "hi\\n"; close $c}',
            ]
        )
        address = other.status().address
        for _ in range(50):
            if probe(other, "127.0.0.1", port) == 0:
                break
            time.sleep(0.1)
        assert probe(other, "127.0.0.1", port) == 0, "the listener does not run"
        assert host_can_connect(address, port), "host -> sandbox must work (replies pass the firewall)"
        assert probe(public, address, port) in (1, 124)


def test_private_address_in_a_namespace_unreachable(public, namespace):
    assert probe(public, namespace["ip"], namespace["ports"][0]) in (1, 124)


def test_allow_list_admits_exactly_its_entries_and_changes_live(public, namespace):
    allowed, other_port = namespace["ports"]
    bridge_gateway = gateway()
    with http_server("0.0.0.0") as host_port:
        try:
            live = public.set_egress([f"{namespace['ip']}:{allowed}", f"{bridge_gateway}:{host_port}"])
            assert live["egress"] == [f"{namespace['ip']}:{allowed}", f"{bridge_gateway}:{host_port}"]
            assert {r["cidr"] for r in live["resolved"]} == {f"{namespace['ip']}/32", f"{bridge_gateway}/32"}
            assert public.status().egress == live["egress"]
            assert probe(public, namespace["ip"], allowed) == 0
            assert probe(public, bridge_gateway, host_port) == 0  # a host address, when listed
            assert probe(public, namespace["ip"], other_port) in (1, 124)
            mirror_ip = socket.gethostbyname(urlsplit(debian_mirror() or "http://localhost/").hostname or "")
            assert probe(public, mirror_ip, 80) in (1, 124)  # dropped at the host: no packet leaves
        finally:
            public.set_egress("public")
    assert public.status().egress == "public"
    assert probe(public, namespace["ip"], allowed) in (1, 124)


def test_egress_none_blocks_the_mirror(no_leaks):
    mirror_ip = socket.gethostbyname(urlsplit(debian_mirror() or "http://localhost/").hostname or "")
    with Sandbox.create(unique_name("net"), egress="none", owner="test", use_pool=False) as sandbox:
        assert sandbox.status().egress == "none"
        assert probe(sandbox, mirror_ip, 80) in (1, 124)
        chain = firewall.sandbox_chain(sandbox.core.container_id)
        assert f"-A {chain} -j DROP" in firewall.saved(4).splitlines()


def test_link_local_private_and_ipv6_rules_are_installed(public):
    rules = firewall.saved(4).splitlines()
    chain = firewall.sandbox_chain(public.core.container_id)
    for cidr in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        assert f"-A {chain} -d {cidr} -j DROP" in rules
    address = public.status().address
    assert any(line.startswith(f"-A {firewall.EGRESS} -s {address}/32 -m physdev --physdev-in ") and line.endswith(f"-g {chain}") for line in rules)
    assert f"-A DOCKER-USER -i {N.BRIDGE} -j {firewall.EGRESS}" in rules
    assert f"-A INPUT -i {N.BRIDGE} -j {firewall.HOST}" in rules
    assert rules.index(f"-A {firewall.HOST} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN") < rules.index(f"-A {firewall.HOST} -j DROP")
    v6 = firewall.saved(6).splitlines()
    for cidr in ("fc00::/7", "fe80::/10"):
        assert f"-A {firewall.EGRESS} -d {cidr} -j DROP" in v6
    assert f"-A INPUT -i {N.BRIDGE} -j {firewall.HOST}" in v6


def test_resolv_conf_is_the_hosts_upstream_read_only(public):
    text = public.run(["cat", "/etc/resolv.conf"]).stdout.read()
    assert "127.0.0.11" not in text
    assert [line.split()[1] for line in text.splitlines() if line.startswith("nameserver")] == N.host_nameservers()
    assert public.run(["sh", "-c", "echo x >> /etc/resolv.conf"]).wait() != 0


def _rules_of(container_id: str) -> list[str]:
    chain = firewall.sandbox_chain(container_id)
    return [line for line in firewall.saved(4).splitlines() if chain in line]


def test_rules_go_with_the_sandbox(no_leaks):
    N.setup()
    base = sum(1 for line in firewall.saved(4).splitlines() if line.startswith(f"-A {firewall.HOST} ") and " -s " not in line)
    sandbox = Sandbox.create(unique_name("net"), owner="test", use_pool=False)
    container_id = sandbox.core.container_id
    assert len(_rules_of(container_id)) > 5 and firewall.record_of(container_id)
    sandbox.terminate()
    assert _rules_of(container_id) == [] and firewall.record_of(container_id) is None
    assert base == sum(1 for line in firewall.saved(4).splitlines() if line.startswith(f"-A {firewall.HOST} ") and " -s " not in line)


def test_rules_of_a_sandbox_removed_behind_our_back_are_pruned(no_leaks):
    sandbox = Sandbox.create(unique_name("net"), owner="test", use_pool=False)
    container_id = sandbox.core.container_id
    docker.from_env().api.remove_container(container_id, force=True)
    assert _rules_of(container_id)  # the product has not seen it yet
    with Sandbox.create(unique_name("net"), owner="test", use_pool=False):
        assert _rules_of(container_id) == [] and firewall.record_of(container_id) is None
    sandbox.terminate()


def test_setup_is_idempotent():
    N.setup()
    first = firewall.saved(4), firewall.saved(6)
    N.setup()

    def strip(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("#") and not line.startswith(":")]

    assert strip(first[0]) == strip(firewall.saved(4)) and strip(first[1]) == strip(firewall.saved(6))


def test_inner_publish_gets_a_true_hint(docker_sandbox, test_images):
    name = f"pub-{os.getpid()}"
    result = subprocess.run(
        [
            "jupyter",
            "sandbox",
            "docker",
            docker_sandbox.name,
            "--",
            "run",
            "-d",
            "--name",
            name,
            "-p",
            "18081:80",
            test_images["tiny"],
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert result.returncode == 0, result.stderr
        assert "hint:" in result.stderr and "publish nothing" in result.stderr and "--network=host" in result.stderr
        assert probe(docker_sandbox, "127.0.0.1", 18081) == 1  # what the hint says: nothing listens
    finally:
        docker_sandbox.docker("rm", "-f", name).wait()


def test_cli_egress_shows_and_changes_the_policy(public):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["jupyter", "sandbox", "egress", public.name, *args], capture_output=True, text=True, timeout=60)

    assert "egress public" in cli().stdout
    try:
        changed = cli("192.0.2.0/24")  # a documentation range: rules only, no traffic sent
        assert changed.returncode == 0 and "egress 192.0.2.0/24" in changed.stdout
        assert public.status().egress == ["192.0.2.0/24"]
        status = subprocess.run(["jupyter", "sandbox", "status", public.name], capture_output=True, text=True, timeout=60)
        assert "egress: 192.0.2.0/24" in status.stdout and "192.0.2.0/24 -> 192.0.2.0/24" in status.stdout
        bad = cli("not a policy")
        assert bad.returncode == 2 and "egress:" in bad.stderr and "How to fix" in bad.stderr
    finally:
        assert cli("public").returncode == 0


def test_host_network_warns_in_the_cli_and_the_magic(shell, capsys, no_leaks):
    name = unique_name("net-host")
    created = subprocess.run(["jupyter", "sandbox", "create", "--network", "host", "--name", name], capture_output=True, text=True, timeout=120)
    try:
        assert created.returncode == 0, created.stderr
        assert "warning:" in created.stderr and "host's network namespace" in created.stderr
    finally:
        subprocess.run(["jupyter", "sandbox", "rm", name], capture_output=True, timeout=60)
    other = unique_name("net-host")
    shell.run_line_magic("sandbox", f"create --network host --name {other} --progress text")
    shell.run_line_magic("sandbox", f"rm {other}")
    assert "Warning: network 'host' puts the sandbox in the host's network namespace" in capsys.readouterr().err
