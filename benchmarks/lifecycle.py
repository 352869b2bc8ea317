"""Pause and resume of a Docker-enabled sandbox, and what the auto-resume check costs, in one run.

One Docker-enabled sandbox (never from the pool) with an inner ``sleep`` container:

  pause / resume   ``sb.pause()`` and ``sb.resume()`` (the engine's pause/unpause under runsc)
  exec running     ``sb.exec(["true"]).wait()`` on a running sandbox (includes the one inspect of ensure_running)
  exec paused      the same on a paused sandbox: resumed by the exec itself
  inspect          the engine inspect ensure_running adds to every use
  inner docker ps  ``sb.docker.ps()`` right after a resume (the inner daemon answering again)

Each row takes turns with the others so noise on the (shared) machine hits them alike;
it prints medians and the check's cost as a fraction of an exec.

    python benchmarks/lifecycle.py                   # 10 rounds
    python benchmarks/lifecycle.py --runs 20 --json benchmarks/results/lifecycle.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from startup import summary  # noqa: E402

from jupyter_sandbox import lifecycle  # noqa: E402
from jupyter_sandbox.sync import Sandbox  # noqa: E402

TINY = "jupyter-sandbox/tiny"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    lifecycle.add_notice_listener(lambda notice: None)  # the exec-on-paused rows would print a line each
    times: dict[str, list[float]] = {k: [] for k in ("pause", "resume", "exec running", "exec paused", "inspect", "inner docker ps after resume")}
    sb = Sandbox.create(f"bench-lc-{os.getpid()}", docker=True, owner="benchmark", use_pool=False)
    try:
        assert sb.docker.load(TINY).wait() == 0
        assert sb.docker.run(TINY, "sleep", "3600", detach=True, network="none").wait() == 0
        api, cid = sb.core.engine.client.api, sb.core.container_id

        def timed(label: str, function) -> None:
            start = time.monotonic()
            function()
            times[label].append(time.monotonic() - start)

        for _ in range(args.runs):
            timed("exec running", lambda: sb.exec(["true"]).wait())
            timed("inspect", lambda: api.inspect_container(cid))
            timed("pause", sb.pause)
            timed("resume", sb.resume)
            timed("inner docker ps after resume", lambda: sb.docker.ps().wait())
            sb.pause()
            timed("exec paused", lambda: sb.exec(["true"]).wait())
    finally:
        sb.terminate()
    results = {label: summary(values) for label, values in times.items()}
    for label, data in results.items():
        print(f"{label:30s} median {data['median'] * 1000:7.1f} ms   p95 {data['p95'] * 1000:7.1f} ms   (n={data['n']})")
    check = results["inspect"]["median"] / results["exec running"]["median"]
    print(f"the auto-resume check (one inspect) is {check:.1%} of an exec on a running sandbox")
    print(f"an exec on a paused sandbox takes {results['exec paused']['median'] / results['exec running']['median']:.2f}x one on a running sandbox")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "results": results, "check_fraction_of_exec": check}, f, indent=2)


if __name__ == "__main__":
    main()
