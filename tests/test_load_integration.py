"""Load on real sandboxes: 8 Docker-enabled sandboxes at once, 50 concurrent execs, then nothing left:
the same containers, volumes, networks, firewall rules, file descriptors and threads as before.  Big and binary output."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

import anyio
import pytest
from sandbox_test_support import run_resources

from jupyter_sandbox import firewall
from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.sync import call

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def process_resources() -> dict[str, int]:
    """What a leak in this process would grow: its descriptors and threads (counts: fewer is fine,
    idle workers of earlier tests expire)."""
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count()}


def settled(baseline: dict[str, int], seconds: float = 30) -> dict[str, int]:
    """Resources once idle worker threads and pooled connections have wound down (bounded wait)."""
    deadline = time.monotonic() + seconds
    while True:
        now = process_resources()
        if all(now[k] <= baseline[k] for k in baseline) or time.monotonic() > deadline:
            return now
        time.sleep(0.25)


def firewall_rules_of(container_ids: list[str]) -> list[str]:
    """The host's firewall rules and records of these sandboxes (network "sandbox", the default: each
    sandbox's rules go with it); other processes' sandboxes come and go meanwhile, so never a count."""
    chains = [firewall.sandbox_chain(container_id) for container_id in container_ids]
    rules = [line for family in (4, 6) for line in firewall.saved(family).splitlines() if any(c in line for c in chains)]
    return rules + [f"record of {c[:12]}" for c in container_ids if firewall.record_of(c) is not None]


async def burst(count: int, execs: int, made: list[str]) -> list[int]:
    """``count`` sandboxes (their container ids appended to ``made``), ``execs`` execs across them."""
    sandboxes: list[AsyncSandbox] = []

    async def create(i: int) -> None:
        sandbox = await AsyncSandbox.create(name=f"load-{os.getpid()}-{i}", docker=True, owner="test", timeout=180, use_pool=False)
        sandboxes.append(sandbox)
        made.append(sandbox.container_id)

    codes: list[int] = []

    async def run(i: int) -> None:
        sandbox = sandboxes[i % len(sandboxes)]
        process = await (sandbox.docker.ps() if i % 2 else sandbox.exec(["sh", "-c", f"echo {i}; ls / > /dev/null"]))
        codes.append(await process.wait())

    try:
        async with anyio.create_task_group() as group:
            for i in range(count):
                group.start_soon(create, i)
        async with anyio.create_task_group() as group:
            for i in range(execs):
                group.start_soon(run, i)
    finally:
        with anyio.CancelScope(shield=True):
            for sandbox in sandboxes:
                await sandbox.terminate()
    assert len(sandboxes) == count
    return codes


def test_eight_sandboxes_fifty_execs_and_nothing_left(engine_client, no_leaks):
    call(burst, 1, 50, [])  # warm-up: fills thread pools and the engine connection pool to this concurrency
    baseline = settled(process_resources(), seconds=15)
    engine_before = run_resources(engine_client)
    made: list[str] = []
    codes = call(burst, 8, 50, made)
    assert codes == [0] * 50
    assert len(made) == 8
    assert run_resources(engine_client) == engine_before, "this run's containers, volumes and networks are not as before"
    assert firewall_rules_of(made) == [], "the sandboxes' firewall rules outlived them"
    after = settled(baseline)
    print(f"\nresources before {baseline}\nresources after  {after}")
    grown = {k: (baseline[k], after[k]) for k in baseline if after[k] > baseline[k]}
    assert not grown, f"leaked (before, after): {grown}"


def test_ten_megabytes_stream_through_without_being_held(docker_sandbox):
    size = 10 * 1024 * 1024
    process = docker_sandbox.exec(["head", "-c", str(size), "/dev/zero"])
    tracemalloc.start()
    total = 0
    for chunk in process.iter_chunks():
        total += len(chunk.data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert process.wait() == 0 and total == size
    assert process.core.stdout == b"", "streamed output must not be kept"
    assert peak < size / 4, f"peak traced memory {peak} bytes while streaming {size}"


def test_binary_and_invalid_utf8_output_never_breaks_decoding(docker_sandbox):
    process = docker_sandbox.exec(["sh", "-c", "head -c 300000 /dev/urandom; printf '\\377\\376 tail\\n'"])
    text = "".join(text for _, text in process.iter_output())
    assert process.wait() == 0 and text.endswith("\ufffd\ufffd tail\n")
    raw = docker_sandbox.exec(["head", "-c", "65536", "/dev/urandom"])
    assert sum(len(c.data) for c in raw.iter_chunks()) == 65536
