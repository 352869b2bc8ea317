"""Where the time goes when several sandboxes start at once: a per-phase host timeline.

    python benchmarks/concurrency.py            # 4 at once, 3 rounds of ours and of the floor

For each round it starts N creates at once (and, alternating, N floor runs: a bare
`docker run --runtime=runsc` of the same init program on the same disk store), and
records when each phase ended, in host seconds since the round began. It prints the
median over sandboxes and rounds per phase, for ours and for the floor, and the
difference: the phases where ours falls behind are where the extra time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import anyio  # noqa: E402
from startup import floor_command  # noqa: E402

from jupyter_sandbox.events import DOCKER_PHASES  # noqa: E402
from jupyter_sandbox.sandbox import AsyncSandbox  # noqa: E402
from jupyter_sandbox.spec import DEFAULT_IMAGE  # noqa: E402

PREFIX = f"st-conc-{os.getpid()}"


async def ours(count: int, round_: int) -> list[dict[str, float]]:
    """``count`` creates at once; per sandbox, the host seconds (since the round began) each phase ended."""
    start = time.monotonic()
    timelines: list[dict[str, float]] = [{} for _ in range(count)]

    async def one(i: int) -> None:
        def note(event) -> None:
            if event.state == "done":
                timelines[i].setdefault(event.phase, time.monotonic() - start)

        sandbox = await AsyncSandbox.create(
            name=f"{PREFIX}-{round_}-{i}", docker=True, owner="benchmark", network="none", use_pool=False, on_event=note
        )  # as the floor
        await sandbox.terminate()

    async with anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(one, i)
    return timelines


def floor(count: int, round_: int) -> list[dict[str, float]]:
    """``count`` bare floor runs at once, with the same per-phase record (from the init program's lines)."""
    start = time.monotonic()
    timelines: list[dict[str, float]] = [{} for _ in range(count)]

    def one(i: int) -> None:
        name = f"{PREFIX}-floor-{round_}-{i}"
        process = subprocess.Popen(floor_command(name, DEFAULT_IMAGE), stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            words = line.split()
            if len(words) >= 3 and words[0] == "@@jupyter-sandbox" and words[2] == "done":
                timelines[i].setdefault(words[1], time.monotonic() - start)
                if words[1] == "ready":
                    break
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        process.wait()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timelines


def medians(timelines: list[dict[str, float]]) -> dict[str, float]:
    """Per phase, the median over sandboxes of when it ended."""
    phases = [p.value for p in DOCKER_PHASES]
    return {p: statistics.median([t[p] for t in timelines if p in t]) for p in phases if any(p in t for t in timelines)}


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the timeline table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    mine: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    singles: list[dict[str, float]] = []
    bare_singles: list[dict[str, float]] = []
    for round_ in range(args.rounds):
        singles += anyio.run(ours, 1, 100 + round_)
        bare_singles += floor(1, 100 + round_)
        mine += anyio.run(ours, args.count, round_)
        bare += floor(args.count, round_)
    columns = {
        "ours x1": medians(singles),
        "floor x1": medians(bare_singles),
        f"ours x{args.count}": medians(mine),
        f"floor x{args.count}": medians(bare),
    }
    print(f"{'phase ended (s since start)':<28}" + "".join(f"{label:>11}" for label in columns))
    for phase in [p.value for p in DOCKER_PHASES]:
        cells = [column.get(phase) for column in columns.values()]
        print(f"{phase:<28}" + "".join(f"{v:10.2f}s" if v is not None else f"{'-':>11}" for v in cells))
    ready = [column.get("ready") for column in columns.values()]
    if all(ready):
        print(f"\nready, {args.count} at once / one: ours {ready[2] / ready[0]:.2f}x, floor {ready[3] / ready[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
