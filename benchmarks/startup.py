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
  floor (docker-py)  the same container made, started and followed through
         docker-py, as ours does: no CLI process start on the host.
  seed   the protocol of shared/seed/docker-in-sandboxes.md around our dockerd:
         the floor's container (disk store, limits) idling, wait 3 s, start
         dockerd (through our init program, so with our flags: overlay2 on the
         store, no iptables, no bridge, the inner runc's filter), wait 2 s,
         check it did not crash, then `test -S` the socket and `docker info`
         once a second.  Only the protocol differs from ours.

The exec and magic-line figures have two kinds of baseline: the docker CLI
(one process start on the host per call) and docker-py (none).
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
import docker

from jupyter_sandbox.bootstrap import DISK_PATH, init_command
from jupyter_sandbox.engine import Engine
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.spec import DEFAULT_IMAGE

FLOOR_DISK = 4 * 2**30
"""The floor mounts the same disk store a default create gets (no memory limit: 4Gi)."""


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
    return [*([f"--cpus={cpu:g}"] if cpu else []), *([f"--memory={memory}"] if memory else []), *([f"--pids-limit={pids}"] if pids else [])]


def floor_container(name: str, image: str) -> list[str]:
    """The floor's container as ``docker run`` flags up to the image: runsc, a create's disk store and default limits."""
    return [
        "--name",
        name,
        "--runtime=runsc",
        "--network=none",
        *default_limits(),
        "--cap-add=ALL",
        f"--tmpfs={DISK_PATH}:size={FLOOR_DISK},mode=0755,exec",
        "--entrypoint=",
        image,
    ]


def floor_command(name: str, image: str) -> list[str]:
    """The floor: a bare ``docker run`` of the init program, with a create's disk store and default limits."""
    return ["docker", "run", "--rm", *floor_container(name, image), *init_command(True, FLOOR_DISK)]


def floor_options(image: str) -> dict[str, Any]:
    """:func:`floor_command`'s container as docker-py ``create_container`` arguments."""
    from jupyter_sandbox.spec import default_limit

    api = Engine.default().client.api
    cpu, memory, pids = default_limit("cpu"), default_limit("memory"), default_limit("pids")
    host_config = api.create_host_config(
        runtime="runsc",
        network_mode="none",
        cap_add=["ALL"],
        auto_remove=False,
        tmpfs={DISK_PATH: f"size={FLOOR_DISK},mode=0755,exec"},
        nano_cpus=int(cpu * 1e9) if cpu else None,
        mem_limit=memory or None,
        pids_limit=pids or None,
    )
    return {"image": image, "entrypoint": "", "command": init_command(True, FLOOR_DISK), "host_config": host_config}


def run_floor_api(image: str, index: int) -> float:
    """The floor through docker-py (create, start, follow the log): no CLI process on the host."""
    name = f"bench-floorpy-{index}"
    remove(name)
    api = Engine.default().client.api
    start = time.monotonic()
    container = api.create_container(name=name, **floor_options(image))["Id"]
    api.start(container)
    elapsed = None
    buffer = b""
    for chunk in api.logs(container, stream=True, follow=True, stdout=True, stderr=False):
        buffer += chunk
        lines = buffer.split(b"\n")
        buffer = lines.pop()
        for line in lines:
            if line.startswith(b"@@jupyter-sandbox ready done"):
                elapsed = time.monotonic() - start
                break
            if b" failed " in line:
                api.remove_container(container, force=True)
                raise RuntimeError(line.decode())
        if elapsed is not None:
            break
    api.remove_container(container, force=True)
    if elapsed is None:
        raise RuntimeError("docker-py floor run ended without a ready line")
    return elapsed


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
    """The seed write-up's protocol (fixed waits, then 1 s polling with socket and `docker info` checks)
    around our dockerd: the floor's container, and dockerd started by our init program (our flags)."""
    name = f"bench-seed-{index}"
    remove(name)
    start = time.monotonic()
    subprocess.run(
        ["docker", "run", "-d", *floor_container(name, image), "sleep", "infinity"],
        check=True,
        capture_output=True,
    )
    time.sleep(3)  # "Worker waits 3 seconds for container initialization"
    subprocess.run(["docker", "exec", name, "which", "dockerd"], check=True, capture_output=True)
    # dockerd as ours starts it: the init program prepares the store and cgroups, then runs dockerd with
    # bootstrap.py's DOCKERD_FLAGS (its own readiness polling only writes reports nobody reads here)
    subprocess.run(["docker", "exec", "-d", name, *init_command(True, FLOOR_DISK)], check=True, capture_output=True)
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
    sandbox = await AsyncSandbox.create(
        name=f"{name_prefix}-{index}", image=image, docker=True, owner="benchmark", network="none", use_pool=False
    )  # the floor's network (benchmarks/network.py compares modes)
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
            sandbox = await AsyncSandbox.create(name=f"bench-pool-{index}", image=image, docker=True, owner="benchmark", network="none")
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

    sandbox = Sandbox.create(name="bench-exec", image=image, docker=True, owner="benchmark", use_pool=False)
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
    sandbox = Sandbox.create(name="bench-magic", image=image, docker=True, owner="benchmark", use_pool=False)
    container = sandbox.core.container_id

    def magic() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_cell_magic("sandbox_docker", sandbox.name, "version --format '{{.Server.Version}}'")

    def cli() -> None:
        subprocess.run(["docker", "exec", container, "docker", "version", "--format", "{{.Server.Version}}"], check=True, capture_output=True)

    api = Engine.default().client.api

    def api_exec() -> None:  # the same inner CLI, without a process start on the host
        exec_id = api.exec_create(container, ["docker", "version", "--format", "{{.Server.Version}}"])["Id"]
        api.exec_start(exec_id)
        assert api.exec_inspect(exec_id)["ExitCode"] == 0

    inner = docker.DockerClient(base_url=f"unix://{sandbox.core.api_socket}")

    def api_version() -> None:  # the answer itself: the inner daemon over the host socket, no process at all
        inner.version()

    try:
        return time_alternately(
            {
                "%%sandbox_docker line": magic,
                "docker exec CLI": cli,
                "docker-py exec": api_exec,
                "docker-py version() over the host socket": api_version,
            },
            runs,
        )
    finally:
        inner.close()
        sandbox.terminate()


def idle_memory(image: str) -> dict[str, float]:
    """Memory of one idle Docker-enabled sandbox: the engine's cgroup figure and runsc processes' RSS."""
    from jupyter_sandbox.sync import Sandbox

    sandbox = Sandbox.create(name="bench-memory", image=image, docker=True, owner="benchmark", use_pool=False)
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
    lines = [f"{'variant':<58}{'median':>9}{'p95':>9}{'min':>9}{'n':>4}"]
    for label, stats in results.items():
        lines.append(f"{label:<58}{stats['median']:>8.3f}s{stats['p95']:>8.3f}s{stats['min']:>8.3f}s{stats['n']:>4}")
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

    timings: dict[str, list[float]] = {"ours": [], "floor": [], "floor (docker-py)": [], "seed protocol": []}

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    anyio.run(run_ours, args.image, 0)  # warm-up, not timed
    for index in range(args.runs):
        timings["ours"].append(anyio.run(run_ours, args.image, index))
        timings["floor"].append(run_floor(args.image, index))
        timings["floor (docker-py)"].append(run_floor_api(args.image, index))
        if index < args.seed_runs:
            timings["seed protocol"].append(run_seed(args.image, index))
        progress(
            f"run {index + 1}/{args.runs}: ours {timings['ours'][-1]:.2f}s floor {timings['floor'][-1]:.2f}s "
            f"floor (docker-py) {timings['floor (docker-py)'][-1]:.2f}s"
        )
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
        "ours/floor (docker-py)": ours / results["floor (docker-py)"]["median"],
        "seed/ours": seed / ours,
        "concurrent/single": results[f"ours, {args.concurrent} concurrent"]["median"] / ours,
        "floor concurrent/single": results[f"floor, {args.concurrent} concurrent"]["median"] / floor,
        "exec ours - docker exec CLI (ms)": 1000 * (overhead["ours"]["median"] - overhead["docker exec CLI"]["median"]),
        "exec ours - docker-py exec (ms)": 1000 * (overhead["ours"]["median"] - overhead["docker-py exec"]["median"]),
        "magic line - docker exec CLI (ms)": 1000 * (magic["%%sandbox_docker line"]["median"] - magic["docker exec CLI"]["median"]),
        "magic line - docker-py exec (ms)": 1000 * (magic["%%sandbox_docker line"]["median"] - magic["docker-py exec"]["median"]),
        "magic line - docker-py version() (ms)": 1000
        * (magic["%%sandbox_docker line"]["median"] - magic["docker-py version() over the host socket"]["median"]),
    }
    print(table(results))
    print()
    print(table({f"exec true: {k}": v for k, v in overhead.items()}))
    print(table({f"docker version: {k}": v for k, v in magic.items()}))
    print()
    for label, value in ratios.items():
        print(f"{label:<40}{value:8.2f}")
    print(f"{'idle sandbox memory, cgroup (MiB)':<40}{memory['cgroup_usage_mib']:8.1f}")
    print(f"{'idle sandbox memory, runsc RSS (MiB)':<40}{memory['runsc_rss_mib']:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"startup": results, "exec": overhead, "magic": magic, "ratios": ratios, "memory": memory}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
