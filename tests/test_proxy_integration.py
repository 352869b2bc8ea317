"""Ports of a real network-'sandbox' sandbox served through a real Jupyter server (pytest-jupyter).

One Docker-enabled sandbox (fresh, never from a pool) for the module: an inner
busybox ``httpd`` with ``--network=host`` serves a page, a 50 MB file and a CGI
that counts the bytes it is sent; a websocket echo (core Perl, run straight in
the sandbox) answers on another port; a listener bound to 127.0.0.1 only stands
for a server the proxy cannot reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from IPython.utils.capture import capture_output
from sandbox_test_support import server_config, unique_name
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_sandbox import labels as L
from jupyter_sandbox.errors import SpecError
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.sync import Sandbox, call

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.integration

PAGE = "hello from an inner container\n"
BIG_MB = 50
UPLOAD_MB = 20
HTTP_PORT, WS_PORT, LOOPBACK_PORT, CLOSED_PORT = 8080, 8765, 9000, 8099
COUNT_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n"
LOOPBACK_LISTENER = (
    "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => "
    f"{LOOPBACK_PORT}, Listen => 5, ReuseAddr => 1) or die $!; sleep 900"
)


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """Enable the extension in the test server."""
    return server_config()


def wait_listening(sandbox: Sandbox, *ports: int, timeout: float = 60) -> None:
    """Wait until every port listens inside the sandbox."""
    deadline = time.monotonic() + timeout
    while not set(ports) <= {p.port for p in sandbox.listening_ports()}:
        assert time.monotonic() < deadline, f"ports {ports} never listened"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def web_sandbox(test_images: dict[str, str]) -> Iterator[Sandbox]:
    """A network-'sandbox' sandbox serving HTTP (inner container), a websocket echo and a loopback-only port."""
    core = call(AsyncSandbox.create, name=unique_name("px-web"), docker=True, network="sandbox", memory="1Gi", owner="test", use_pool=False)
    sandbox = Sandbox(core)
    try:
        assert sandbox.docker.load(test_images["tiny"]).wait() == 0
        setup = sandbox.run(
            [
                "sh",
                "-c",
                f"mkdir -p /root/www/cgi-bin && printf '{PAGE}' > /root/www/index.html && "
                f"dd if=/dev/zero of=/root/www/big bs=1M count={BIG_MB} 2>/dev/null",
            ]
        )
        assert setup.exit_code == 0, setup.stderr.read()
        sandbox.files.write("/root/www/cgi-bin/count", COUNT_CGI)
        sandbox.files.write("/root/ws_echo.pl", (Path(__file__).parent / "data" / "ws_echo.pl").read_text())
        assert sandbox.run(["chmod", "+x", "/root/www/cgi-bin/count"]).exit_code == 0
        web = sandbox.docker.run(
            test_images["tiny"],
            "busybox",
            "httpd",
            "-f",
            "-p",
            str(HTTP_PORT),
            "-h",
            "/www",
            detach=True,
            network="host",
            volume="/root/www:/www",
            name="web",
        )
        assert web.wait() == 0, web.stderr.read()
        echo = sandbox.exec(["perl", "/root/ws_echo.pl", str(WS_PORT)])
        loopback = sandbox.exec(["perl", "-e", LOOPBACK_LISTENER])
        wait_listening(sandbox, HTTP_PORT, WS_PORT, LOOPBACK_PORT)
        yield sandbox
        echo.kill()
        loopback.kill()
    finally:
        sandbox.terminate()


def rss_bytes() -> int:
    """This process's resident memory (the test server runs in it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextlib.asynccontextmanager
async def rss_growth() -> AsyncIterator[list[int]]:
    """Samples this process's RSS every 5 ms inside the block; yields ``[largest growth in bytes]``."""
    before, growth = rss_bytes(), [0]

    async def sample() -> None:
        while True:
            growth[0] = max(growth[0], rss_bytes() - before)
            await asyncio.sleep(0.005)

    sampler = asyncio.ensure_future(sample())
    try:
        yield growth
    finally:
        sampler.cancel()
        growth[0] = max(growth[0], rss_bytes() - before)


async def expect_error(jp_fetch: Any, status: int, *parts: str, **kwargs: Any) -> str:
    """A request that must fail with ``status``; returns its body as text."""
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*parts, **kwargs)
    body = caught.value.response.body.decode() if caught.value.response else ""
    assert caught.value.code == status, body
    return body


async def test_inner_container_page_with_a_token_and_403_without(jp_fetch: Any, web_sandbox: Sandbox) -> None:
    name = web_sandbox.name
    response = await jp_fetch("sandbox", "proxy", name, str(HTTP_PORT), "index.html")
    assert response.code == 200
    assert response.body.decode() == PAGE
    assert "sandbox" in response.headers["Content-Security-Policy"]  # the page gets an origin of its own
    body = await expect_error(jp_fetch, 403, "sandbox", "proxy", name, str(HTTP_PORT), "index.html", headers={"Authorization": ""})
    assert PAGE not in body and "token" in body
    # The port root without its slash redirects to it, under the server's base URL.
    response = await jp_fetch("sandbox", "proxy", name, str(HTTP_PORT), follow_redirects=False, raise_error=False)
    assert response.code == 302
    assert response.headers["Location"].endswith(f"/sandbox/proxy/{name}/{HTTP_PORT}/")


async def test_websocket_echo_through_the_proxy(jp_ws_fetch: Any, jp_http_port: int, jp_base_url: str, web_sandbox: Sandbox) -> None:
    ws = await jp_ws_fetch("sandbox", "proxy", web_sandbox.name, str(WS_PORT), "echo")
    try:
        for message in ["hello", "x" * 70000, b"\x00\x01binary"]:
            await ws.write_message(message, binary=isinstance(message, bytes))
            assert await ws.read_message() == message
    finally:
        ws.close()
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}sandbox/proxy/{web_sandbox.name}/{WS_PORT}/echo"
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(HTTPRequest(url))  # no token
    assert caught.value.code == 403


async def test_50_mb_download_streams_with_bounded_server_memory(jp_fetch: Any, web_sandbox: Sandbox) -> None:
    received = [0]

    def on_chunk(chunk: bytes) -> None:
        received[0] += len(chunk)

    started = time.monotonic()
    async with rss_growth() as growth:
        response = await jp_fetch("sandbox", "proxy", web_sandbox.name, str(HTTP_PORT), "big", streaming_callback=on_chunk, request_timeout=600)
    seconds = time.monotonic() - started
    grew = growth[0]
    print(f"{BIG_MB} MB in {seconds:.2f} s; server process RSS grew by {grew / 2**20:.1f} MiB at most")
    assert response.code == 200
    assert received[0] == BIG_MB * 2**20
    assert grew < 20 * 2**20, f"RSS grew by {grew / 2**20:.1f} MiB while {BIG_MB} MB went through"


async def test_20_mb_upload_streams_to_the_sandbox(jp_fetch: Any, web_sandbox: Sandbox) -> None:
    chunk = b"u" * 2**20

    async def produce(write: Any) -> None:
        for _ in range(UPLOAD_MB):
            await write(chunk)

    async with rss_growth() as growth:
        response = await jp_fetch(
            "sandbox",
            "proxy",
            web_sandbox.name,
            str(HTTP_PORT),
            "cgi-bin",
            "count",
            method="POST",
            body_producer=produce,
            headers={"Content-Length": str(UPLOAD_MB * 2**20)},
            request_timeout=600,
        )
    grew = growth[0]
    print(f"{UPLOAD_MB} MB upload: server process RSS grew by {grew / 2**20:.1f} MiB at most")
    assert response.code == 200
    assert int(response.body.decode().strip()) == UPLOAD_MB * 2**20
    assert grew < 12 * 2**20, f"RSS grew by {grew / 2**20:.1f} MiB while {UPLOAD_MB} MB went up"


async def test_ports_are_listed_with_their_urls(jp_fetch: Any, jp_base_url: str, web_sandbox: Sandbox) -> None:
    response = await jp_fetch("sandbox", "api", "sandboxes", web_sandbox.name, "ports")
    ports = {p["port"]: p for p in json.loads(response.body)}
    assert ports[HTTP_PORT]["reachable"] is True
    assert ports[HTTP_PORT]["url"] == f"{jp_base_url}sandbox/proxy/{web_sandbox.name}/{HTTP_PORT}/"
    assert ports[LOOPBACK_PORT] == {**ports[LOOPBACK_PORT], "reachable": False, "addresses": ["127.0.0.1"]}


async def test_closed_and_loopback_ports_are_502_saying_why(jp_fetch: Any, web_sandbox: Sandbox) -> None:
    body = await expect_error(jp_fetch, 502, "sandbox", "proxy", web_sandbox.name, str(CLOSED_PORT), "index.html")
    assert f"Nothing listens on port {CLOSED_PORT}" in body and str(HTTP_PORT) in body
    body = await expect_error(jp_fetch, 502, "sandbox", "proxy", web_sandbox.name, str(LOOPBACK_PORT), "index.html")
    assert "listens only on 127.0.0.1" in body and "0.0.0.0" in body


async def test_unknown_none_mode_and_other_servers_sandboxes(
    jp_fetch: Any, jp_serverapp: Any, test_images: dict[str, str], monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> None:
    body = await expect_error(jp_fetch, 404, "sandbox", "proxy", unique_name("px-nope"), "80", "index.html")
    assert "No sandbox named" in body
    offline = await AsyncSandbox.create(name=unique_name("px-none"), image=test_images["tiny"], network="none", owner="test", use_pool=False)
    server_id = os.environ[L.SERVER_ENV]
    monkeypatch.setenv(L.SERVER_ENV, "another-host:1:feed")
    foreign = await AsyncSandbox.create(name=unique_name("px-other"), image=test_images["tiny"], network="none", owner="test", use_pool=False)
    monkeypatch.setenv(L.SERVER_ENV, server_id)
    try:
        body = await expect_error(jp_fetch, 409, "sandbox", "proxy", offline.name, "80", "index.html")
        assert "network 'none'" in body and "ports need network 'sandbox'" in body
        error = json.loads(await expect_error(jp_fetch, 409, "sandbox", "api", "sandboxes", offline.name, "ports"))
        assert error["error"] == "network_unavailable"
        await expect_error(jp_fetch, 404, "sandbox", "proxy", foreign.name, "80", "index.html")
    finally:
        await offline.terminate()
        await foreign.terminate()
    body = await expect_error(jp_fetch, 404, "sandbox", "proxy", offline.name, "80", "index.html")
    assert "No sandbox named" in body


def test_expose_magic_shows_a_clickable_link(shell: Any, web_sandbox: Sandbox) -> None:
    name = web_sandbox.name
    with capture_output() as captured:
        shell.run_line_magic("sandbox", f"expose {name} {HTTP_PORT}")
        shell.run_line_magic("sandbox", f"expose {name} {LOOPBACK_PORT}")
    link = f"/sandbox/proxy/{name}/{HTTP_PORT}/"
    assert link == web_sandbox.url(HTTP_PORT)
    reachable, loopback = (output.data for output in captured.outputs)
    assert f'<a href="{link}" target="_blank"' in reachable["text/html"]
    assert reachable["text/plain"] == f"{name}:{HTTP_PORT} -> {link}"
    assert "listens only on 127.0.0.1" in loopback["text/plain"]
    with pytest.raises(SpecError, match="port"):
        shell.run_line_magic("sandbox", f"expose {name} 70000")


async def test_a_page_continues_under_a_capability_path_in_an_origin_of_its_own(
    jp_fetch: Any, jp_http_port: int, jp_base_url: str, web_sandbox: Sandbox
) -> None:
    name = web_sandbox.name
    # A browser loading the port as a page is sent on to the capability path ...
    response = await jp_fetch(
        "sandbox", "proxy", name, str(HTTP_PORT), "index.html", follow_redirects=False, raise_error=False, headers={"Sec-Fetch-Mode": "navigate"}
    )
    assert response.code == 302
    location = response.headers["Location"]
    prefix = f"{jp_base_url}sandbox/proxy/{name}/{HTTP_PORT}/~"
    assert location.startswith(prefix) and location.endswith("/index.html")
    capability = location[len(prefix) :].split("/", 1)[0]
    assert len(capability) == 32
    # ... where the page and its own requests need no Jupyter token or cookie (a sandboxed page sends none) ...
    parts = ("sandbox", "proxy", name, str(HTTP_PORT), f"~{capability}", "index.html")
    response = await jp_fetch(*parts, headers={"Authorization": ""})
    assert response.body.decode() == PAGE
    assert response.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    preflight = await jp_fetch(
        *parts,
        method="OPTIONS",
        headers={"Authorization": "", "Origin": "null", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.code == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    # ... and a capability admits only the port and sandbox it was made for.
    with pytest.raises(HTTPClientError) as caught:
        await websocket_connect(
            HTTPRequest(f"ws://127.0.0.1:{jp_http_port}{jp_base_url}sandbox/proxy/{name}/{WS_PORT}/~{capability}/echo", headers={"Origin": "null"})
        )
    assert caught.value.code == 403
    forged = "0" * 32
    body = await expect_error(jp_fetch, 403, "sandbox", "proxy", name, str(HTTP_PORT), f"~{forged}", "index.html", headers={"Authorization": ""})
    assert "no longer valid" in body
    await expect_error(jp_fetch, 403, "sandbox", "proxy", name, str(WS_PORT), f"~{capability}", "index.html", headers={"Authorization": ""})


async def test_a_page_websocket_from_its_own_origin_through_its_capability(
    jp_fetch: Any, jp_http_port: int, jp_base_url: str, web_sandbox: Sandbox
) -> None:
    response = await jp_fetch(
        "sandbox", "proxy", web_sandbox.name, str(WS_PORT), "", follow_redirects=False, raise_error=False, headers={"Sec-Fetch-Mode": "navigate"}
    )
    path = response.headers["Location"]
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{jp_http_port}{path}echo", headers={"Origin": "null"}))
    try:
        await ws.write_message("from a sandboxed page")
        assert await ws.read_message() == "from a sandboxed page"
    finally:
        ws.close()
    with pytest.raises(HTTPClientError) as caught:  # a page has no token: without the capability it is refused
        await websocket_connect(
            HTTPRequest(f"ws://127.0.0.1:{jp_http_port}{jp_base_url}sandbox/proxy/{web_sandbox.name}/{WS_PORT}/echo", headers={"Origin": "null"})
        )
    assert caught.value.code == 403
