"""Event latency: a create's phase event, from the moment the server made it to a subscriber reading it.

A Jupyter server with the extension runs in a subprocess; each round creates a
Docker-enabled sandbox (network "none") through the REST API, waits for ready
and removes it, with exactly one subscriber connected:

  bus     jupyter-server's event bus, ``/api/events/subscribe`` (what the Lab panel uses),
          our schema's ``kind: event`` emissions
  socket  the former bespoke websocket ``/sandbox/api/events`` (``type: event``
          messages), measured only when the server still has it

Rounds take turns between the routes so machine noise hits them alike, and only
one route is connected per round (the bus skips its work when nobody listens,
so neither route pays for the other).  A phase's latency is the subscriber's
clock at arrival minus the event's ``time`` (set by the server process when it
made the event; same host, same clock).

    python benchmarks/events.py                   # 4 rounds per route, ~2 minutes
    python benchmarks/events.py --rounds 6 --json benchmarks/results/events.json
    python benchmarks/events.py --server-path /tmp/old   # the server from another tree, e.g.
                                                         # git archive de65ec6 | tar -x -C /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import websocket  # websocket-client

SCHEMA_ID = "https://events.jupyter.org/jupyter_sandbox/sandbox/v1"
ROUTES = {"bus": "/api/events/subscribe", "socket": "/sandbox/api/events"}
READY_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A Jupyter server with the extension on 127.0.0.1 (its code from ``path``, default this tree)."""

    def __init__(self, path: str | None):
        self.token, self.port = secrets.token_hex(16), free_port()
        self.root = tempfile.mkdtemp(prefix="ev-bench-")
        here = str(pathlib.Path(__file__).resolve().parent.parent)
        tree = path or here
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tree, os.path.join(tree, "server_ext")])}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--allow-root",
                "--no-browser",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                "--ServerApp.jpserver_extensions=jupyter_sandbox_server=True",
                f"--ServerApp.root_dir={self.root}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "server.log"), "wb"),
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/sandbox/api/sandboxes")
                return
            except OSError:
                time.sleep(0.2)
        self.process.kill()
        raise SystemExit("the Jupyter server did not start (see its log in " + self.root + ")")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
        return json.loads(text) if text else None

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}?token={self.token}"

    def stop(self) -> None:
        self.process.terminate()  # the server removes the sandboxes it created
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def as_event(route: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """The progress event a message carries, if any."""
    if route == "bus":
        return message.get("event") if message.get("schema_id") == SCHEMA_ID and message.get("kind") == "event" else None
    return message.get("event") if message.get("type") == "event" else None


def as_ready(route: str, message: dict[str, Any], name: str) -> bool:
    """Whether a message says ``name`` is ready (or failed: the round ends either way)."""
    if route == "bus" and message.get("schema_id") != SCHEMA_ID:
        return False
    kind = message.get("kind") if route == "bus" else message.get("type")
    info = message.get("sandbox") or {}
    return kind == "sandbox" and info.get("name") == name and info.get("state") in ("ready", "failed")


def available(server: Server, route: str) -> bool:
    """Whether the server has the route (older trees emit nothing on the bus, newer ones have no bespoke websocket)."""
    if route == "bus":
        try:
            return server.request("GET", "/sandbox/api/watch").get("schema_id") == SCHEMA_ID
        except urllib.error.HTTPError:
            return False
    try:
        websocket.create_connection(server.ws_url(ROUTES[route]), timeout=10).close()
        return True
    except websocket.WebSocketBadStatusException:
        return False


def one_round(server: Server, route: str) -> list[float]:
    """Create, wait for ready and remove one sandbox with one subscriber on ``route``; latency of each phase event."""
    connection = websocket.create_connection(server.ws_url(ROUTES[route]), timeout=READY_TIMEOUT)
    name = f"ev-bench-{os.getpid()}-{secrets.token_hex(2)}"
    latencies: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                text = connection.recv()
            except Exception:
                return
            arrived = time.time()
            message = json.loads(text)
            event = as_event(route, message)
            if event is not None and event["sandbox"] == name:
                latencies.append(arrived - event["time"])
            if as_ready(route, message, name):
                done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if route == "bus":
        time.sleep(0.2)  # the bus adds its listener in open(), after the handshake answered
    try:
        server.request("POST", "/sandbox/api/sandboxes", {"name": name, "docker": True, "network": "none"})
        if not done.wait(READY_TIMEOUT):
            raise SystemExit(f"{name} was not ready after {READY_TIMEOUT:.0f} s")
    finally:
        done.set()
        connection.close()
        try:
            server.request("DELETE", f"/sandbox/api/sandboxes/{name}")
        except urllib.error.HTTPError:
            pass
    return latencies


def summary(values: list[float]) -> dict[str, float]:
    """Median, p90 and max in milliseconds."""
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "n": len(ordered),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print one line per route."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="creates per route (default 4)")
    parser.add_argument("--server-path", help="run the server's code from this checkout (default: this tree)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    server = Server(args.server_path)
    try:
        routes = [route for route in ROUTES if available(server, route)]
        latencies: dict[str, list[float]] = {route: [] for route in routes}
        for _ in range(args.rounds):
            for route in routes:
                latencies[route].extend(one_round(server, route))
    finally:
        server.stop()
    results = {route: summary(values) for route, values in latencies.items() if values}
    for route, figures in results.items():
        print(
            f"{route:7} {ROUTES[route]:24} median {figures['median_ms']:7.3f} ms  p90 {figures['p90_ms']:7.3f} ms  "
            f"max {figures['max_ms']:8.3f} ms  ({figures['n']} phase events)"
        )
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"rounds": args.rounds, "routes": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
