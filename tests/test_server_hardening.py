"""Issue 10 (hardening) on a real Jupyter server process: bad input is a 400 naming the field (never a
500), fuzzed with hypothesis; oversized or unauthenticated bodies are refused before they are read,
with the server's memory measured under three parallel 200 MB POSTs."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FLOOD_BYTES = 200 * 2**20
CHUNK = b"\0" * 65536


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_kib(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` memory figure (VmRSS, VmHWM) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class Server:
    """A ``jupyter server`` process with the extension, on a free port with a known token."""

    def __init__(self, tmp: str, docker_host: str | None):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/sandbox/api/"
        env = dict(os.environ)
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={tmp}",
                "--ServerApp.jpserver_extensions=jupyter_sandbox_server=True",
                "--ServerApp.port_retries=0",
                "--ServerApp.allow_root=True",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(tmp, "server.log"), "wb"),
        )
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.session.get(self.url + "sandboxes", timeout=5).status_code in (200, 503):
                    return
            except requests.ConnectionError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server whose Docker engine is absent: every request is validated, none can create anything."""
    tmp = tmp_path_factory.mktemp("hd-server")
    running = Server(str(tmp), docker_host=f"unix://{tmp}/no-engine.sock")
    yield running
    running.stop()


def flood(port: int, path: str, headers: dict[str, str], chunked: bool = False) -> tuple[int, str]:
    """Send a 200 MB body as fast as the server takes it; returns (bytes sent, the status line, if any)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {FLOOD_BYTES}\r\n\r\n"
    sent = 0
    try:
        sock.sendall(head.encode())
        while sent < FLOOD_BYTES:
            piece = (b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n") if chunked else CHUNK
            sock.sendall(piece)
            sent += len(CHUNK)
    except OSError:
        pass
    status = ""
    try:
        status = sock.recv(4096).decode(errors="replace").split("\r\n", 1)[0]
    except OSError:
        pass
    sock.close()
    return sent, status


def test_oversized_and_unauthenticated_bodies_are_refused_before_being_read(server: Server) -> None:
    path = "/sandbox/api/sandboxes"
    token = {"Authorization": f"token {server.token}"}
    pid = server.process.pid
    baseline = vm_kib(pid, "VmHWM")
    for headers, chunked, expected in (({}, False, "403"), (token, False, "413"), (token, True, "")):
        results: list[tuple[int, str]] = []
        threads = [threading.Thread(target=lambda: results.append(flood(server.port, path, headers, chunked))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(
            f"3 x 200 MB ({'token' if headers else 'no token'}, {'chunked' if chunked else 'Content-Length'}): "
            f"sent before the server closed {[round(r[0] / 2**20, 1) for r in results]} MB, answers {[r[1] for r in results]}"
        )
        assert all(sent < FLOOD_BYTES for sent, _ in results), "the server read a whole 200 MB body"
        assert all(expected in status for _, status in results), results
    grown = (vm_kib(pid, "VmHWM") - baseline) / 1024
    print(f"server peak memory: {baseline / 1024:.0f} MiB before, grew by {grown:.1f} MiB under 9 floods of 200 MB")
    assert grown < 64, f"the server's peak memory grew by {grown:.0f} MiB"
    answer = server.session.post(server.url + "sandboxes", data=json.dumps({"memory": "lots"}), timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "memory"  # still serving, small bodies fine


def test_known_500s_are_400s_naming_the_field(server: Server) -> None:
    answer = server.session.get(server.url + "sandboxes/hd-x/logs", params={"lines": "²"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "lines"
    for depth in (40, 5000, 100000):
        answer = server.session.post(server.url + "sandboxes", data="[" * depth + "]" * depth, timeout=10)
        assert answer.status_code == 400 and answer.json()["field"] == "body", answer.text[:200]
        answer = server.session.post(server.url + "sandboxes/hd-x/exec", data='{"command": ' + "[" * depth + "]" * depth + "}", timeout=10)
        assert answer.status_code == 400 and answer.json()["field"] == "body"
    answer = server.session.post(server.url + "sandboxes", data=json.dumps({"cpu": 10**400}), timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "cpu"
    answer = server.session.post(server.url + "sandboxes", data=json.dumps({"pids": "lots"}), timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "pids"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(["name", "image", "docker", "cpu", "memory", "network", "env", "timeout", "pids", "command"])
BODIES = st.one_of(
    JSON.map(json.dumps),
    st.dictionaries(FIELDS, JSON, max_size=5).map(json.dumps),
    st.integers(1, 3000).map(lambda n: '{"env": ' + '{"a": ' * n + "1" + "}" * n + "}"),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)
ROUTES = st.sampled_from(
    [
        ("POST", "sandboxes"),
        ("POST", "sandboxes/hd-fuzz/exec"),
        ("GET", "sandboxes/hd-fuzz/logs"),
        ("GET", "sandboxes/hd-fuzz/containers"),
        ("DELETE", "sandboxes/hd-fuzz"),
        ("GET", "sandboxes/hd-fuzz"),
    ]
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=ROUTES, body=BODIES, query=st.dictionaries(st.sampled_from(["lines", "all"]), st.text(max_size=8), max_size=2))
def test_fuzzed_requests_never_get_a_500(server: Server, route: tuple[str, str], body: str, query: dict[str, str]) -> None:
    method, path = route
    answer = server.session.request(
        method, server.url + path, params=query, data=body.encode("utf-8", errors="surrogatepass") if method != "GET" else None, timeout=30
    )
    assert answer.status_code < 500 or answer.status_code == 503, (answer.status_code, answer.text[:300])
    if answer.status_code == 400 and answer.headers.get("Content-Type", "").startswith("application/json"):
        error: Any = answer.json()
        if error.get("error") == "bad_spec":
            assert error["field"] and error["message"]


@pytest.mark.integration
def test_a_create_and_an_exec_through_the_streamed_bodies_still_work(tmp_path, no_leaks) -> None:
    from sandbox_test_support import container_exists, unique_name

    real = Server(str(tmp_path), docker_host=None)
    name = unique_name("hd-rest")
    try:
        answer = real.session.post(real.url + "sandboxes", data=json.dumps({"name": name, "pids": 128, "env": {"HD": name}}), timeout=30)
        assert answer.status_code == 202 and answer.json()["spec"]["pids"] == 128
        deadline = time.monotonic() + 120
        while (info := real.session.get(real.url + f"sandboxes/{name}", timeout=30).json())["state"] == "starting":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert info["state"] == "ready", info
        answer = real.session.post(
            real.url + f"sandboxes/{name}/exec",
            timeout=60,
            data=json.dumps({"command": ["sh", "-c", "grep processes /proc/self/limits | tr -s ' ' | cut -d' ' -f4; echo $HD"]}),
        )
        lines = [json.loads(line) for line in answer.text.splitlines()]
        assert "".join(line.get("text", "") for line in lines) == f"128\n{name}\n" and lines[-1] == {"exit_code": 0}
    finally:
        real.session.delete(real.url + f"sandboxes/{name}", timeout=60)
        real.stop()
    assert not container_exists(name)
