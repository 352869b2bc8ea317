"""Forks against cold creates, in one run: what a user waits on to get a sandbox with images in it.

    python benchmarks/snapshot.py                  # 3 rounds, carrying the default image
    python benchmarks/snapshot.py --runs 5 --carry IMAGE --json out.json

Variants, interleaved round by round so a noisy machine slows them alike:
  cold create                  ``Sandbox.create(docker=True)`` (network sandbox, default limits)
  fork, empty snapshot         ``Sandbox.create(snapshot=TAG)`` of a snapshot of a fresh such sandbox
  cold create + load IMAGE     ``Sandbox.create(docker=True, images=[IMAGE])``
  fork carrying IMAGE          a fork of a snapshot taken after that load

Also printed once: each snapshot's time and size against its sandbox's memory use (the engine's
cgroup), and the goal ratio of the issue: a fork ready in under 0.7x a cold create.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import summary, table  # noqa: E402

from jupyter_sandbox import Sandbox  # noqa: E402
from jupyter_sandbox.spec import DEFAULT_IMAGE  # noqa: E402

GOAL = 0.7


def memory_of(sandbox: Sandbox) -> int:
    """Bytes the engine's memory cgroup charges the sandbox (cgroup v1 or v2), 0 if unknown."""
    cid = sandbox.core.container_id
    for path in (f"/sys/fs/cgroup/memory/docker/{cid}/memory.usage_in_bytes", f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.current"):
        try:
            with open(path) as f:
                return int(f.read())
        except OSError:
            continue
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--carry", default=DEFAULT_IMAGE, help=f"the image a carrying snapshot holds (default {DEFAULT_IMAGE})")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    stamp = f"{os.getpid()}-{int(time.time())}"
    tags = {"empty": f"bench-empty-{stamp}", "carry": f"bench-carry-{stamp}"}
    made: list[Sandbox] = []
    snapshots: dict[str, dict[str, Any]] = {}
    try:
        for kind, images in (("empty", []), ("carry", [args.carry])):
            source = Sandbox.create(f"bench-src-{kind}-{stamp}", docker=True, images=images, owner="benchmark", use_pool=False)
            made.append(source)
            memory = memory_of(source)
            snap = source.snapshot(tags[kind])
            snapshots[kind] = {"seconds": snap.seconds, "bytes": snap.size, "sandbox_memory": memory}
            source.terminate()
        variants = {
            "cold create": {"docker": True},
            "fork, empty snapshot": {"snapshot": tags["empty"]},
            f"cold create + load {args.carry}": {"docker": True, "images": [args.carry]},
            f"fork carrying {args.carry}": {"snapshot": tags["carry"]},
        }
        timings: dict[str, list[float]] = {label: [] for label in variants}
        for round_ in range(args.runs):  # interleaved; only the create is timed, not the removal
            for number, (label, fields) in enumerate(variants.items()):
                started = time.monotonic()
                sandbox = Sandbox.create(f"bench-{round_}-{number}-{stamp}", owner="benchmark", use_pool=False, **fields)
                timings[label].append(time.monotonic() - started)
                sandbox.terminate()
        results = {label: summary(values) for label, values in timings.items()}
    finally:
        for sandbox in made:
            sandbox.terminate()
        for tag in tags.values():
            try:
                Sandbox.remove_snapshot(tag)
            except Exception:  # noqa: BLE001 - best effort
                pass
    print(table(results))
    labels = list(results)
    cold, fork_empty, cold_load, fork_carry = (results[label]["median"] for label in labels)
    print("\nsnapshots:")
    for kind, data in snapshots.items():
        print(f"  {kind:<6} {data['seconds']:.2f} s, {data['bytes'] / 1e6:.0f} MB on disk (sandbox memory {data['sandbox_memory'] / 1e6:.0f} MB)")
    ratios = {"fork_empty/cold": fork_empty / cold, "fork_carry/cold": fork_carry / cold, "fork_carry/cold_plus_load": fork_carry / cold_load}
    print("\n" + "   ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + f"   (goal: forks under {GOAL:g}x a cold create)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "snapshots": snapshots, "ratios": ratios}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
