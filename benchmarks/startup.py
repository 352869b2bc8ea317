"""Time to a ready Docker daemon: jupyter-sandbox against the machine's floor and the seed's protocol.

Runs the variants interleaved in one process, so a noisy machine slows them
alike, and prints median, p95 and min per variant with the ratios.

    python benchmarks/startup.py                 # 10 runs each (seed protocol: 5)
    python benchmarks/startup.py --runs 3 --json out.json
    python benchmarks/startup.py --pool          # also create-from-pool

Variants:
  ours   AsyncSandbox.create(docker=True, network="none") until its daemon answers (the floor's
         network; benchmarks/network.py measures network "sandbox" against "none").
  floor  a bare `docker run --runtime=runsc` of the same image running the
         same init program (a shell loop polling every 10 ms) on the same
         disk store, timed until it prints that the daemon answered: no
         orchestration at all.
  seed   the protocol of shared/seed/docker-in-sandboxes.md: start the
         sandbox, wait 3 s, start dockerd, wait 2 s, check it did not crash,
         then `test -S` the socket and `docker info` once a second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import anyio

from jupyter_sandbox.bootstrap import DISK_PATH, init_command
from jupyter_sandbox.engine import Engine
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.spec import DEFAULT_IMAGE

FLOOR_DISK = 4 * 2**30
"""The floor mounts the same disk store a default create gets (no memory limit: 4Gi)."""
SEED_SETUP = ("umount -a -t cgroup 2>/dev/null; mount -t cgroup -o devices devices /sys/fs/cgroup/devices; "
              "mkdir -p /var/run /var/log/jupyter-sandbox")


def summary(values: list[float]) -> dict[str, float]:
    """Median, p95 and min of a list of seconds."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p95": p95, "min": ordered[0], "n": len(ordered)}


def remove(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def default_limits() -> list[str]:
    """``docker run`` flags for the limits a create gets by default (1 CPU here costs dockerd's start ~0.25 s)."""
    from jupyter_sandbox.spec import default_limit

    cpu, memory, pids = default_limit("cpu"), default_limit("memory"), default_limit("pids")
    return [*([f"--cpus={cpu:g}"] if cpu else []), *([f"--memory={memory}"] if memory else []),
            *([f"--pids-limit={pids}"] if pids else [])]


def floor_command(name: str, image: str) -> list[str]:
    """The floor: a bare ``docker run`` of the init program, with a create's disk store and default limits."""
    return ["docker", "run", "--rm", "--name", name, "--runtime=runsc", "--network=none", *default_limits(),
            "--cap-add=ALL", f"--tmpfs={DISK_PATH}:size={FLOOR_DISK},mode=0755,exec",
            "--entrypoint=", image, *init_command(True, FLOOR_DISK)]


def run_floor(image: str, index: int) -> float:
    """A bare docker run of the init program, timed until it reports the daemon ready (same default limits)."""
    name = f"bench-floor-{index}"
    remove(name)
    start = time.monotonic()
    process = subprocess.Popen(floor_command(name, image), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("@@jupyter-sandbox ready done"):
            elapsed = time.monotonic() - start
            break
        if " failed " in line:
            raise RuntimeError(line)
    else:
        raise RuntimeError("floor run ended without a ready line")
    remove(name)
    process.wait()
    return elapsed


def run_seed(image: str, index: int) -> float:
    """The seed write-up's protocol: fixed waits, then 1 s polling with socket and `docker info` checks."""
    name = f"bench-seed-{index}"
    remove(name)
    start = time.monotonic()
    subprocess.run(["docker", "run", "-d", "--name", name, "--runtime=runsc", "--network=none", "--cap-add=ALL",
                    "--entrypoint=", image, "sleep", "infinity"], check=True, capture_output=True)
    time.sleep(3)  # "Worker waits 3 seconds for container initialization"
    subprocess.run(["docker", "exec", name, "which", "dockerd"], check=True, capture_output=True)
    subprocess.run(["docker", "exec", name, "sh", "-c", SEED_SETUP], check=True, capture_output=True)
    subprocess.run(["docker", "exec", "-d", name, "sh", "-c",
                    "dockerd --iptables=false --ip6tables=false --bridge=none > /var/log/jupyter-sandbox/dockerd.log 2>&1"],
                   check=True, capture_output=True)
    time.sleep(2)  # "Waits 2 seconds for initial daemon startup"
    subprocess.run(["docker", "exec", name, "pgrep", "dockerd"], check=True, capture_output=True)
    while time.monotonic() - start < 60:
        socket = subprocess.run(["docker", "exec", name, "test", "-S", "/var/run/docker.sock"], capture_output=True, timeout=2)
        if socket.returncode == 0:
            try:
                info = subprocess.run(["docker", "exec", name, "docker", "info"], capture_output=True, timeout=3)
                if info.returncode == 0:
                    elapsed = time.monotonic() - start
                    remove(name)
                    return elapsed
            except subprocess.TimeoutExpired:
                pass
        time.sleep(1)  # "If timeout/failure, waits 1s and retry"
    remove(name)
    raise RuntimeError("seed protocol: daemon not ready after 60 s")


async def run_ours(image: str, index: int, name_prefix: str = "bench-ours") -> float:
    """Our create, until the daemon answers."""
    start = time.monotonic()
    sandbox = await AsyncSandbox.create(name=f"{name_prefix}-{index}", image=image, docker=True, owner="benchmark",
                                        network="none", use_pool=False)  # the floor's network (benchmarks/network.py compares modes)
    elapsed = time.monotonic() - start
    await sandbox.terminate()
    return elapsed


async def run_concurrent(image: str, count: int) -> list[float]:
    """``count`` creates at once; each one's own seconds to ready."""
    results: list[float] = []

    async def one(i: int) -> None:
        results.append(await run_ours(image, i, "bench-conc"))

    async with anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(one, i)
    return results


async def pool_runs(image: str, runs: int) -> list[float]:
    """Creates served by a warm pool of one; waits (untimed) for the refill before each."""
    from jupyter_sandbox.pool import WarmPool
    from jupyter_sandbox.spec import SandboxSpec

    pool = WarmPool([SandboxSpec.parse("template", image=image, docker=True, network="none")], size=1)
    times: list[float] = []
    async with anyio.create_task_group() as group:
        await group.start(pool.run)
        for index in range(runs):
            while pool.created < index + 1:
                await anyio.sleep(0.05)
            start = time.monotonic()
            sandbox = await AsyncSandbox.create(name=f"bench-pool-{index}", image=image, docker=True, owner="benchmark",
                                                network="none")
            times.append(time.monotonic() - start)
            assert sandbox.from_pool, "the pool had no ready member"
            await sandbox.terminate()
        group.cancel_scope.cancel()
    return times


def floor_concurrent(image: str, count: int) -> list[float]:
    """``count`` bare floor runs at once: what the machine itself allows under the same load."""
    import threading

    results: list[float] = []
    threads = [threading.Thread(target=lambda i=i: results.append(run_floor(image, 100 + i))) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def time_alternately(functions: dict[str, Callable[[], None]], runs: int) -> dict[str, dict[str, float]]:
    """Time each function ``runs`` times, taking turns so noise hits them alike; summaries by label."""
    timings: dict[str, list[float]] = {label: [] for label in functions}
    for _ in range(runs):
        for label, function in functions.items():
            start = time.monotonic()
            function()
            timings[label].append(time.monotonic() - start)
    return {label: summary(values) for label, values in timings.items()}


def exec_overhead(image: str, runs: int) -> dict[str, Any]:
    """``sandbox.exec(["true"])`` against a raw ``docker exec`` of the same sandbox."""
    from jupyter_sandbox.sync import Sandbox

    sandbox = Sandbox.create(name="bench-exec", image=image, docker=True, owner="benchmark")
    api = Engine.default().client.api
    container = sandbox.core.container_id

    def ours() -> None:
        sandbox.exec(["true"]).wait()

    def cli() -> None:
        subprocess.run(["docker", "exec", container, "true"], check=True)

    def api_call() -> None:
        exec_id = api.exec_create(container, ["true"])["Id"]
        api.exec_start(exec_id)
        api.exec_inspect(exec_id)

    try:
        return time_alternately({"ours": ours, "docker exec CLI": cli, "docker-py exec": api_call}, runs)
    finally:
        sandbox.terminate()


def magic_overhead(image: str, runs: int) -> dict[str, Any]:
    """One ``%%sandbox_docker`` line (``docker version``) in a real IPython shell against a raw ``docker exec``."""
    import contextlib
    import io

    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_sandbox.sync import Sandbox

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_sandbox")
    sandbox = Sandbox.create(name="bench-magic", image=image, docker=True, owner="benchmark")
    container = sandbox.core.container_id

    def magic() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_cell_magic("sandbox_docker", sandbox.name, "version --format '{{.Server.Version}}'")

    def cli() -> None:
        subprocess.run(["docker", "exec", container, "docker", "version", "--format", "{{.Server.Version}}"],
                       check=True, capture_output=True)

    try:
        return time_alternately({"%%sandbox_docker line": magic, "docker exec CLI": cli}, runs)
    finally:
        sandbox.terminate()


def idle_memory(image: str) -> dict[str, float]:
    """Memory of one idle Docker-enabled sandbox: the engine's cgroup figure and runsc processes' RSS."""
    from jupyter_sandbox.sync import Sandbox

    sandbox = Sandbox.create(name="bench-memory", image=image, docker=True, owner="benchmark")
    try:
        time.sleep(3)  # let dockerd settle into idle before measuring (measurement, not readiness)
        stats = Engine.default().client.api.stats(sandbox.core.container_id, stream=False)
        usage = stats.get("memory_stats", {}).get("usage", 0)
        container = sandbox.core.container_id
        rss_kb = 0
        ps = subprocess.run(["ps", "-eo", "rss=,args="], capture_output=True, text=True).stdout
        for line in ps.splitlines():
            rss, _, args = line.strip().partition(" ")
            if "runsc" in args and container in args:
                rss_kb += int(rss)
        return {"cgroup_usage_mib": usage / 2**20, "runsc_rss_mib": rss_kb / 1024}
    finally:
        sandbox.terminate()


def table(results: dict[str, dict[str, float]]) -> str:
    """The printed table."""
    lines = [f"{'variant':<40}{'median':>9}{'p95':>9}{'min':>9}{'n':>4}"]
    for label, stats in results.items():
        lines.append(f"{label:<40}{stats['median']:>8.3f}s{stats['p95']:>8.3f}s{stats['min']:>8.3f}s{stats['n']:>4}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--runs", type=int, default=10, help="sequential runs of ours and floor (default 10)")
    parser.add_argument("--seed-runs", type=int, default=5, help="runs of the seed protocol (default 5; each takes 6 s+)")
    parser.add_argument("--concurrent", type=int, default=4, help="sandboxes created at once (default 4)")
    parser.add_argument("--exec-runs", type=int, default=50, help="exec overhead samples (default 50)")
    parser.add_argument("--pool", action="store_true", help="also measure create-from-pool")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    timings: dict[str, list[float]] = {"ours": [], "floor": [], "seed protocol": []}
    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    anyio.run(run_ours, args.image, 0)  # warm-up, not timed
    for index in range(args.runs):
        timings["ours"].append(anyio.run(run_ours, args.image, index))
        timings["floor"].append(run_floor(args.image, index))
        if index < args.seed_runs:
            timings["seed protocol"].append(run_seed(args.image, index))
        progress(f"run {index + 1}/{args.runs}: ours {timings['ours'][-1]:.2f}s floor {timings['floor'][-1]:.2f}s")
    concurrent = anyio.run(run_concurrent, args.image, args.concurrent)
    results = {label: summary(values) for label, values in timings.items() if values}
    results[f"ours, {args.concurrent} concurrent"] = summary(concurrent)
    results[f"floor, {args.concurrent} concurrent"] = summary(floor_concurrent(args.image, args.concurrent))
    if args.pool:
        results["ours, from warm pool"] = summary(anyio.run(pool_runs, args.image, args.runs))
    overhead = exec_overhead(args.image, args.exec_runs)
    magic = magic_overhead(args.image, args.exec_runs)
    memory = idle_memory(args.image)

    ours, floor, seed = results["ours"]["median"], results["floor"]["median"], results["seed protocol"]["median"]
    ratios = {
        "ours/floor": ours / floor,
        "seed/ours": seed / ours,
        "concurrent/single": results[f"ours, {args.concurrent} concurrent"]["median"] / ours,
        "floor concurrent/single": results[f"floor, {args.concurrent} concurrent"]["median"] / floor,
        "exec ours - docker exec CLI (ms)": 1000 * (overhead["ours"]["median"] - overhead["docker exec CLI"]["median"]),
        "exec ours - docker-py exec (ms)": 1000 * (overhead["ours"]["median"] - overhead["docker-py exec"]["median"]),
        "magic line - docker exec CLI (ms)": 1000 * (magic["%%sandbox_docker line"]["median"] - magic["docker exec CLI"]["median"]),
    }
    print(table(results))
    print()
    print(table({f"exec true: {k}": v for k, v in overhead.items()}))
    print(table({f"docker version: {k}": v for k, v in magic.items()}))
    print()
    for label, value in ratios.items():
        print(f"{label:<36}{value:8.2f}")
    print(f"{'idle sandbox memory, cgroup (MiB)':<36}{memory['cgroup_usage_mib']:8.1f}")
    print(f"{'idle sandbox memory, runsc RSS (MiB)':<36}{memory['runsc_rss_mib']:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"startup": results, "exec": overhead, "magic": magic, "ratios": ratios, "memory": memory}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
