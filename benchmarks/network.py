"""Create-to-ready in network mode "sandbox" against network mode "none", in the same run.

Sandbox mode adds the product network's attach, the firewall rules (one iptables-restore per table)
and gVisor's netstack setup; this prints how much that costs as a ratio to an offline sandbox
measured alternately in the same process, so a noisy machine slows both alike.

    python benchmarks/network.py                # 8 runs each, Docker inside
    python benchmarks/network.py --runs 3 --no-docker --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import anyio

from jupyter_sandbox.sandbox import AsyncSandbox
from jupyter_sandbox.spec import DEFAULT_IMAGE

sys.path.insert(0, os.path.dirname(__file__))
from startup import summary, table  # noqa: E402


async def create_ready(image: str, docker: bool, network: str, name: str) -> float:
    """Seconds from the create call until the sandbox is ready (its daemon answering, with Docker)."""
    start = time.monotonic()
    sandbox = await AsyncSandbox.create(name=name, image=image, docker=docker, network=network, owner="benchmark", use_pool=False)
    elapsed = time.monotonic() - start
    await sandbox.terminate()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--runs", type=int, default=8, help="runs of each mode (default 8)")
    parser.add_argument("--no-docker", action="store_true", help="sandboxes without a Docker daemon inside")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    docker = not args.no_docker
    tag = f"bench-net-{os.getpid()}"

    anyio.run(create_ready, args.image, docker, "sandbox", f"{tag}-warm")  # warm-up: network, rules, caches
    timings: dict[str, list[float]] = {"network sandbox": [], "network none": []}
    for index in range(args.runs):
        order = ("sandbox", "none") if index % 2 == 0 else ("none", "sandbox")  # alternate who goes first
        for network in order:
            timings[f"network {network}"].append(anyio.run(create_ready, args.image, docker, network, f"{tag}-{network}-{index}"))
        print(
            f"run {index + 1}/{args.runs}: sandbox {timings['network sandbox'][-1]:.2f}s none {timings['network none'][-1]:.2f}s",
            file=sys.stderr,
            flush=True,
        )
    results = {label: summary(values) for label, values in timings.items()}
    ratio = results["network sandbox"]["median"] / results["network none"]["median"]
    print(table(results))
    print(f"\nratio sandbox/none (median, {'Docker inside' if docker else 'no Docker'}): {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "ratio sandbox/none": ratio, "docker": docker}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
