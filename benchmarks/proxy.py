"""The port proxy against a direct connection to the sandbox's address, in the same run.

One Docker-enabled sandbox with network "sandbox" serves, from an inner busybox
``httpd`` (``--network=host``), a 1 KB page and a large file; a websocket echo
(core Perl, tests/data/ws_echo.pl) runs in it too.  A Jupyter server with the
extension runs in a subprocess.  Each measurement takes turns between the two
routes so machine noise hits them alike, then prints medians and ratios:

  latency     GET of the 1 KB page, a new connection each time (the proxy opens a
              new one to the sandbox per request as well)
  throughput  download of the large file, read in 64 KiB pieces
  websocket   round trip of a 16-byte message on an open websocket

    python benchmarks/proxy.py                  # 50 GETs, 3 downloads of 100 MB, 200 round trips
    python benchmarks/proxy.py --json out.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import websocket  # websocket-client
from startup import summary, time_alternately

from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.sync import Sandbox, call

HERE = pathlib.Path(__file__).resolve().parent
ECHO = HERE.parent / "tests" / "data" / "ws_echo.pl"
HTTP_PORT, WS_PORT = 8000, 8765
TINY = "jupyter-sandbox/tiny"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(token: str) -> tuple[subprocess.Popen[bytes], int]:
    """A Jupyter server with the extension, answering on 127.0.0.1."""
    port = free_port()
    root = tempfile.mkdtemp(prefix="proxy-bench-")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--allow-root",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={token}",
            "--ServerApp.jpserver_extensions=jupyter_sandbox_server=True",
            f"--ServerApp.root_dir={root}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(root, "server.log"), "wb"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if get("127.0.0.1", port, "/api/status", {"Authorization": f"token {token}"})[0] == 200:
                return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the Jupyter server did not start (see its log in " + root + ")")


def get(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    sink: Callable[[bytes], None] | None = None,
) -> tuple[int, int]:
    """One GET on a new connection; returns (status, bytes read)."""
    connection = http.client.HTTPConnection(host, port, timeout=120)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        size = 0
        while chunk := response.read(65536):
            size += len(chunk)
            if sink:
                sink(chunk)
        return response.status, size
    finally:
        connection.close()


def prepare_sandbox(big_mb: int) -> Sandbox:
    """The sandbox with its web server and websocket echo listening."""
    sandbox = Sandbox(
        call(
            AsyncSandbox.create, name=f"bench-proxy-{secrets.token_hex(3)}", docker=True, network="sandbox", memory="2Gi", owner="api", use_pool=False
        )
    )
    assert sandbox.docker.load(TINY).wait() == 0
    setup = sandbox.run(
        [
            "sh",
            "-c",
            f"mkdir -p /root/www && head -c 1024 /dev/zero > /root/www/small && dd if=/dev/zero of=/root/www/big bs=1M count={big_mb} 2>/dev/null",
        ]
    )
    assert setup.exit_code == 0, setup.stderr.read()
    sandbox.files.write("/root/ws_echo.pl", ECHO.read_text())
    web = sandbox.docker.run(TINY, "busybox", "httpd", "-f", "-p", str(HTTP_PORT), "-h", "/www", detach=True, network="host", volume="/root/www:/www")
    assert web.wait() == 0, web.stderr.read()
    sandbox.exec(["perl", "/root/ws_echo.pl", str(WS_PORT)])
    deadline = time.monotonic() + 60
    while not {HTTP_PORT, WS_PORT} <= {p.port for p in sandbox.listening_ports()}:
        assert time.monotonic() < deadline, "the servers in the sandbox never listened"
        time.sleep(0.2)
    return sandbox


def ws_round_trips(url: str, headers: list[str], count: int) -> list[float]:
    """Round-trip times of ``count`` small messages on one websocket."""
    ws = websocket.create_connection(url, header=headers, timeout=60, http_no_proxy=["*"])
    try:
        times = []
        for _ in range(count):
            start = time.monotonic()
            ws.send("0123456789abcdef")
            assert ws.recv() == "0123456789abcdef"
            times.append(time.monotonic() - start)
        return times
    finally:
        ws.close()


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gets", type=int, default=50, help="GETs of the 1 KB page per route (default 50)")
    parser.add_argument("--downloads", type=int, default=3, help="downloads of the large file per route (default 3)")
    parser.add_argument("--big-mb", type=int, default=100, help="size of the large file in MB (default 100)")
    parser.add_argument("--round-trips", type=int, default=200, help="websocket round trips per route (default 200)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    token = secrets.token_hex(16)
    auth = {"Authorization": f"token {token}"}
    server, server_port = start_server(token)
    sandbox = prepare_sandbox(args.big_mb)
    try:
        address = sandbox.address()
        prefix = f"/sandbox/proxy/{sandbox.name}/"

        def fetch(host: str, port: int, path: str, headers: dict[str, str], size: int) -> Callable[[], None]:
            def run() -> None:
                status, got = get(host, port, path, headers)
                assert (status, got) == (200, size), (status, got)

            return run

        routes = {"direct": (address, HTTP_PORT, "/", {}), "proxy": ("127.0.0.1", server_port, f"{prefix}{HTTP_PORT}/", auth)}
        for host, port, path, headers in routes.values():  # warm both routes once
            fetch(host, port, path + "small", headers, 1024)()
        latency = time_alternately({label: fetch(h, p, path + "small", hd, 1024) for label, (h, p, path, hd) in routes.items()}, args.gets)
        big = args.big_mb * 2**20
        downloads = time_alternately({label: fetch(h, p, path + "big", hd, big) for label, (h, p, path, hd) in routes.items()}, args.downloads)
        rtts: dict[str, list[float]] = {"direct": [], "proxy": []}
        for _ in range(2):  # two rounds each, alternating
            rtts["direct"] += ws_round_trips(f"ws://{address}:{WS_PORT}/", [], args.round_trips // 2)
            rtts["proxy"] += ws_round_trips(
                f"ws://127.0.0.1:{server_port}{prefix}{WS_PORT}/", [f"Authorization: token {token}"], args.round_trips // 2
            )
        websocket_rtt = {label: summary(values) for label, values in rtts.items()}
    finally:
        sandbox.terminate()
        server.terminate()
        server.wait(30)

    throughput = {label: {"MB/s median": big / 2**20 / s["median"], "MB/s best": big / 2**20 / s["min"]} for label, s in downloads.items()}
    results: dict[str, Any] = {
        "latency_1kb_get": latency,
        "download": downloads,
        "download_throughput": throughput,
        "websocket_round_trip": websocket_rtt,
        "ratios": {
            "latency proxy/direct": latency["proxy"]["median"] / latency["direct"]["median"],
            "latency added ms": 1000 * (latency["proxy"]["median"] - latency["direct"]["median"]),
            "throughput proxy/direct": throughput["proxy"]["MB/s median"] / throughput["direct"]["MB/s median"],
            "websocket rtt proxy/direct": websocket_rtt["proxy"]["median"] / websocket_rtt["direct"]["median"],
            "websocket rtt added ms": 1000 * (websocket_rtt["proxy"]["median"] - websocket_rtt["direct"]["median"]),
        },
    }
    print(
        f"GET 1 KB (n={args.gets}):        direct {1000 * latency['direct']['median']:.2f} ms, "
        f"proxy {1000 * latency['proxy']['median']:.2f} ms (p95 {1000 * latency['proxy']['p95']:.2f} ms)"
    )
    print(
        f"download {args.big_mb} MB (n={args.downloads}): direct {throughput['direct']['MB/s median']:.0f} MB/s, "
        f"proxy {throughput['proxy']['MB/s median']:.0f} MB/s"
    )
    print(
        f"websocket round trip (n={args.round_trips}): direct {1000 * websocket_rtt['direct']['median']:.3f} ms, "
        f"proxy {1000 * websocket_rtt['proxy']['median']:.3f} ms"
    )
    for label, value in results["ratios"].items():
        print(f"  {label}: {value:.2f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
