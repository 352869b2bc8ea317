"""The direct line to a sandbox's daemon (its API on a host socket) against local Docker, in one run.

Runs the variants interleaved, so a noisy machine slows them alike, and
prints median, p95 and min per variant, then the ratios the issue set goals for:

    python benchmarks/direct.py                      # 15 line runs, 2 loads each
    python benchmarks/direct.py --runs 5 --load-runs 1 --json out.json

Lines (each a whole command, from start to its output; every variant runs WARMUP times untimed first):
  %%sandbox_docker docker version / docker ps   one magic line in a real IPython shell,
                                                which runs the host's docker CLI on the sandbox's socket
  host docker version / docker ps               the host's docker CLI on the host engine (the goal's baseline)
  exec path docker version                      what a line cost before: the docker CLI started inside
                                                the sandbox through `docker exec`
  docker-py version() on the socket             one API call from this process, no CLI start

Loads: ``sb.docker.load(IMAGE)`` (the host's saved copy of the image, or with the cache off
the host engine's save stream, into the sandbox's ``docker load`` through the socket) against
the host's own ``docker load -i`` of the image's tar (the goal's baseline) and ``docker save IMAGE
| docker load``, in the same run. The host already has the layers, so its loads skip most of the
writing: the sandbox's load is timed like that too (layers present) and new to it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import summary, table, time_alternately  # noqa: E402

from jupyter_sandbox.spec import DEFAULT_IMAGE  # noqa: E402

LINE_GOAL = 2.0
"""A magic line may take at most this many times the host CLI's time."""
WARMUP = 3
"""Untimed rounds of every line variant before the timed ones (a new sandbox's first answers are
slower: its daemon and gVisor's caches are still warming; measured 36 ms for ``/version`` in the
first 15 calls, 23 ms in the next 15, 17.5 ms after)."""
LOAD_GOAL = 0.7
"""A load into a sandbox should reach at least this share of the host's throughput."""


def image_bytes(image: str) -> int:
    """The size of an image's ``docker save`` stream (what a load moves)."""
    saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    assert saved.stdout is not None
    total = 0
    while chunk := saved.stdout.read(1 << 20):
        total += len(chunk)
    saved.wait()
    return total


def lines(sandbox: Any, runs: int) -> dict[str, dict[str, float]]:
    """Time one docker command as a magic line, on the host engine, through exec, and as a docker-py call."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_sandbox")
    with contextlib.redirect_stdout(io.StringIO()):
        shell.run_line_magic("sandbox", f"use {sandbox.name}")  # the kernel's current sandbox, as in a notebook
    container = sandbox.core.container_id
    client = sandbox.docker.client

    def magic(command: str) -> Any:
        def run() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                shell.run_cell_magic("sandbox_docker", "", command)
            assert shell.user_ns["_exit_code"] == 0

        return run

    def host(*argv: str) -> Any:
        return lambda: subprocess.run(["docker", *argv], check=True, capture_output=True)

    variants = {
        "%%sandbox_docker docker version": magic("docker version"),
        "host docker version": host("version"),
        "%%sandbox_docker docker ps": magic("docker ps"),
        "host docker ps": host("ps"),
        "exec path docker version": host("exec", container, "docker", "version"),
        "docker-py version() on the socket": lambda: client.version(),
    }
    for _ in range(WARMUP):  # untimed, every variant alike: a sandbox answers slower in its first seconds
        for function in variants.values():
            function()
    return time_alternately(variants, runs)


def loads(sandbox: Any, image: str, runs: int) -> dict[str, dict[str, float]]:
    """Time loading ``image`` into the sandbox against the host's own loads of it.

    The host engine already has the image's layers, so its loads read the stream and write
    little.  A load into the sandbox is timed: when the sandbox has the image already (not
    copied), with its layers there under another name (the host's saved copy of the image goes
    without them, :mod:`jupyter_sandbox.imagecache`), the same with the cache off (the host
    engine saves the whole image again each time, as every load did before), and new to it
    (the whole saved copy, every layer written by its daemon).
    """
    from jupyter_sandbox import imagecache

    keeper = "bench-keep:1"  # a second name inside that keeps the layers when the image's own name is removed

    def inside(*argv: str) -> None:
        process = sandbox.docker(*argv)
        assert process.wait() == 0, process.stderr.read()

    def ours() -> None:
        process = sandbox.docker.load(image)
        assert process.wait() == 0, process.stderr.read()

    def timed_after(prepare: Callable[[], None], label: str, cache: bool = True) -> Callable[[], None]:
        def run() -> None:
            prepare()  # untimed
            if not cache:
                os.environ[imagecache.SIZE_ENV] = "0"
            try:
                start = time.monotonic()
                ours()
                timings.setdefault(label, []).append(time.monotonic() - start)
            finally:
                os.environ.pop(imagecache.SIZE_ENV, None)

        return run

    def untag() -> None:
        inside("rmi", image)

    def remove_all() -> None:
        inside("rmi", image, keeper)

    def keep_layers() -> None:
        inside("tag", image, keeper)

    with tempfile.TemporaryDirectory() as folder:
        tar = os.path.join(folder, "image.tar")
        subprocess.run(["docker", "save", "-o", tar, image], check=True)  # the baseline: a load of the image's tar
        ours()  # untimed: makes the saved copy
        keep_layers()
        timings: dict[str, list[float]] = {}

        def new_to_the_sandbox() -> None:
            timed_after(remove_all, "sb.docker.load, new to the sandbox")()
            keep_layers()

        time_alternately(
            {
                "new": new_to_the_sandbox,
                "present": timed_after(untag, "sb.docker.load, layers present"),
                "present, cache off": timed_after(untag, "sb.docker.load, layers present, cache off", cache=False),
                "there": timed_after(lambda: None, "sb.docker.load, image already there (nothing copied)"),
            },
            runs,
        )
        results = {label: summary(values) for label, values in timings.items()}

        def host_tar() -> None:
            subprocess.run(["docker", "load", "-i", tar], check=True, capture_output=True)

        def host_pipe() -> None:
            subprocess.run(f"docker save {image} | docker load", shell=True, check=True, capture_output=True)

        host = {"host docker load -i TAR (layers present)": host_tar, "host docker save | docker load (layers present)": host_pipe}
        results.update(time_alternately(host, runs))
        inside("rmi", keeper)
    return results


def new_layers(sandbox: Any, base: str, runs: int) -> dict[str, dict[str, float]]:
    """Time a load of layers neither side has: the host engine's ``docker load -i`` of a tar
    against ``sb.docker.load`` of the same image, each after removing the image from its daemon.

    The image is ``base``'s filesystem imported as one new layer (``docker export | docker
    import``), removed from the host before each host load so that its layer is written again.
    """
    from jupyter_sandbox import imagecache

    tag = f"jupyter-sandbox-bench/new-layers:{os.getpid()}"
    container = subprocess.run(["docker", "create", base, "true"], check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(f"docker export {container} | docker import - {tag}", shell=True, check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True)
    timings: dict[str, list[float]] = {}

    def timed(label: str, argv: list[str] | None = None) -> None:
        start = time.monotonic()
        if argv is not None:
            subprocess.run(argv, check=True, capture_output=True)
        else:
            process = sandbox.docker.load(tag)
            assert process.wait() == 0, process.stderr.read()
        timings.setdefault(label, []).append(time.monotonic() - start)

    with tempfile.TemporaryDirectory() as folder:
        tar = os.path.join(folder, "image.tar")
        subprocess.run(["docker", "save", "-o", tar, tag], check=True)
        image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], check=True, capture_output=True, text=True).stdout.strip()
        try:
            for _ in range(runs):
                subprocess.run(["docker", "rmi", tag], check=True, capture_output=True)  # untimed: its layer goes with it
                timed("host docker load -i TAR, every layer new", ["docker", "load", "-i", tar])
                sandbox.docker("rmi", tag).wait()  # untimed (fails the first time: nothing to remove)
                timed("sb.docker.load, every layer new (same image)")
        finally:
            sandbox.docker("rmi", tag).wait()
            subprocess.run(["docker", "rmi", tag], capture_output=True)
            with contextlib.suppress(OSError):
                os.unlink(imagecache.path_for(image_id, tag))
    return {label: summary(values) for label, values in timings.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the sandbox's image")
    parser.add_argument("--load-image", default=DEFAULT_IMAGE, help=f"the image to load (default {DEFAULT_IMAGE})")
    parser.add_argument("--runs", type=int, default=15, help="runs of each line (default 15)")
    parser.add_argument("--load-runs", type=int, default=2, help="loads of each kind (default 2)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    from jupyter_sandbox.sync import Sandbox

    sandbox = Sandbox.start(Sandbox.prepare(f"uds-bench-{os.getpid()}", image=args.image, docker=True, owner="benchmark", use_pool=False))
    try:
        line_results = lines(sandbox, args.runs)
        size = image_bytes(args.load_image)
        load_results = loads(sandbox, args.load_image, args.load_runs) if args.load_runs else {}
        if args.load_runs:
            load_results.update(new_layers(sandbox, args.load_image, args.load_runs))
    finally:
        sandbox.terminate()

    print(table({**line_results, **load_results}))
    ratios = {
        "version line / host": line_results["%%sandbox_docker docker version"]["median"] / line_results["host docker version"]["median"],
        "ps line / host": line_results["%%sandbox_docker docker ps"]["median"] / line_results["host docker ps"]["median"],
        "exec path version / host": line_results["exec path docker version"]["median"] / line_results["host docker version"]["median"],
    }
    print(f"\nline ratios (goal: at most {LINE_GOAL:g}x the host's docker CLI on the host engine):")
    for label, ratio in ratios.items():
        print(f"  {label:<28}{ratio:>6.2f}x")
    throughput: dict[str, float] = {}
    if load_results:
        throughput = {label: size / 1e6 / stats["median"] for label, stats in load_results.items()}
        host_rate = throughput["host docker load -i TAR (layers present)"]
        for label in ("image already there (nothing copied)", "layers present", "layers present, cache off", "new to the sandbox"):
            ratios[f"load throughput / host, {label}"] = throughput[f"sb.docker.load, {label}"] / host_rate
        ratios["load throughput / host, every layer new on both sides"] = (
            load_results["host docker load -i TAR, every layer new"]["median"]
            / load_results["sb.docker.load, every layer new (same image)"]["median"]
        )
        print(f"\nload of {args.load_image} ({size / 1e6:.0f} MB), goal: at least {LOAD_GOAL:g}x the host's throughput:")
        for label, value in throughput.items():
            print(f"  {label:<54}{value:>9.1f} MB/s")
        for label in ("image already there (nothing copied)", "layers present", "layers present, cache off", "new to the sandbox"):
            print(f"  {'ratio, ' + label:<54}{ratios['load throughput / host, ' + label]:>7.2f}x")
        print(f"  {'ratio, every layer new on both sides':<54}{ratios['load throughput / host, every layer new on both sides']:>7.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "results": {**line_results, **load_results},
                    "ratios": ratios,
                    "load_mb_per_s": throughput,
                    "load_bytes": size,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
