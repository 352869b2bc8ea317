"""Docker *inside* a sandbox against the same work on the host, all measured in one run.

    python benchmarks/inner.py                  # ~5 minutes; 5 runs each
    python benchmarks/inner.py --runs 3 --json benchmarks/results/inner.json

Prints median, p95 and min per variant, and the ratios the product is held to:

  run     inner `docker run --rm IMAGE true` of the default image (through the API,
          `sb.docker.run`) against `docker run --rm --runtime=runsc` and `--runtime=runc`
          of the same image on the host.
  load    `sb.docker.load(IMAGE)` against a host `docker load -i` of the same image's tar.
          The image is a one-layer copy of the default image with a unique layer, made
          for this run, so both loads really write it (a host load of layers the engine
          already has only hashes them; the sandbox's is removed before each load, and
          from the second load on it comes from the host's saved copy). Also timed apart,
          to see where load time goes: the host's `docker save`, an exec stream alone
          (`cat > /dev/null` fed the tar) and the inner `docker load -i` of the tar
          copied inside.
  build   a small `docker build --no-cache` (FROM the busybox test image, COPY, RUN)
          inside against the host's classic builder.
  create  `create(docker=True)` until ready against the floor (benchmarks/startup.py's
          bare `docker run --runtime=runsc` of the init program on the same disk store).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from startup import run_floor, run_ours, table, time_alternately  # noqa: E402

from jupyter_sandbox import imagecache  # noqa: E402
from jupyter_sandbox.spec import DEFAULT_IMAGE  # noqa: E402
from jupyter_sandbox.sync import Sandbox, call  # noqa: E402

TINY = "jupyter-sandbox/tiny"
UNIQUE = "jupyter-sandbox-bench/load"
PREFIX = f"st-bench-{os.getpid()}"
"""Names of this run's sandboxes and floor containers."""


def docker(*args: str, **options: Any) -> subprocess.CompletedProcess:
    """The host's docker CLI; raises on failure."""
    return subprocess.run(["docker", *args], check=True, capture_output=True, **options)


def unique_image(base: str) -> str:
    """A one-layer copy of ``base`` plus a random file, so no engine has its layer yet."""
    container = docker("create", base, "true").stdout.decode().strip()
    tag = f"{UNIQUE}:{os.urandom(4).hex()}"
    try:
        export = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
        imported = subprocess.Popen(["docker", "import", "-", tag], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert export.stdout is not None and imported.stdin is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as source, tarfile.open(fileobj=imported.stdin, mode="w|") as target:
            for member in source:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
            marker = os.urandom(16).hex().encode()
            info = tarfile.TarInfo("bench-marker")
            info.size = len(marker)
            target.addfile(info, io.BytesIO(marker))
        imported.stdin.close()
        if export.wait() or imported.wait():
            raise RuntimeError("could not make the benchmark image")
    finally:
        docker("rm", "-f", container)
    return tag


def run_variants(sandbox: Sandbox, image: str, runs: int) -> dict[str, dict[str, float]]:
    """Inner docker run against host runsc and runc."""

    def inner() -> None:
        process = sandbox.docker.run(image, "true", rm=True, network="none")
        if process.wait() != 0:
            raise RuntimeError(process.stderr.read())

    def host(runtime: str) -> Callable[[], None]:
        return lambda: docker("run", "--rm", f"--runtime={runtime}", "--network=none", "--entrypoint=", image, "true")

    return time_alternately(
        {"inner docker run --rm (ours)": inner, "host docker run --rm, runsc": host("runsc"), "host docker run --rm, runc": host("runc")}, runs
    )


def load_variants(sandbox: Sandbox, runs: int) -> tuple[dict[str, dict[str, float]], int]:
    """Load throughput, inner against host, and the parts of the inner path."""
    image = unique_image(DEFAULT_IMAGE)
    folder = tempfile.mkdtemp(prefix="bench-load-")
    tar = os.path.join(folder, "image.tar")
    image_id = ""
    try:
        docker("save", "-o", tar, image)
        size = os.path.getsize(tar)
        image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image], check=True, capture_output=True, text=True).stdout.strip()

        def inner_rmi() -> None:
            sandbox.docker("rmi", "-f", image).wait()
            sandbox.docker("image", "prune", "-f").wait()

        def inner() -> None:
            process = sandbox.docker.load(image)
            if process.wait() != 0:
                raise RuntimeError(process.stderr.read())
            inner_rmi()  # (its time counts; it is small next to the load)

        def host() -> None:
            docker("rmi", "-f", image)
            docker("load", "-i", tar)

        def save() -> None:
            with open(os.devnull, "wb") as sink:
                subprocess.run(["docker", "save", image], stdout=sink, check=True)

        def stream() -> None:
            with open(tar, "rb") as source:
                chunks = iter(lambda: source.read(1 << 20), b"")
                process = sandbox.exec(["sh", "-c", "cat > /dev/null"], stdin=chunks)
                if process.wait() != 0:
                    raise RuntimeError(process.stderr.read())

        copied = "/tmp/bench-image.tar"
        with open(tar, "rb") as source:
            sandbox.exec(["sh", "-c", f"cat > {copied}"], stdin=iter(lambda: source.read(1 << 20), b"")).wait()

        def inside_file() -> None:
            process = sandbox.docker("load", "-i", copied)
            if process.wait() != 0:
                raise RuntimeError(process.stderr.read())
            inner_rmi()

        timings = time_alternately(
            {
                "inner load (sb.docker.load)": inner,
                "host docker load -i": host,
                "  part: host docker save > /dev/null": save,
                "  part: exec stream into cat > /dev/null": stream,
                "  part: inner docker load -i (tar inside)": inside_file,
            },
            runs,
        )
        sandbox.run(["rm", "-f", copied])
        return timings, size
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
        subprocess.run(["rm", "-rf", folder])
        if image_id:  # the host's saved copy of this one-off image
            with contextlib.suppress(OSError):
                os.unlink(imagecache.path_for(image_id, image))


def build_variants(sandbox: Sandbox, runs: int) -> dict[str, dict[str, float]]:
    """A small classic-builder build, inside and on the host."""
    context = tempfile.mkdtemp(prefix="bench-build-")
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write(f"FROM {TINY}\nCOPY data /data\nRUN sh -c 'wc -c /data > /size && echo built'\n")
    with open(os.path.join(context, "data"), "wb") as f:
        f.write(os.urandom(1 << 20))
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}

    def inner() -> None:
        process = sandbox.docker.build(context, tag="bench-build:inner", no_cache=True, network="host")
        if process.wait() != 0:
            raise RuntimeError(process.stderr.read())

    def host() -> None:
        docker("build", "--no-cache", "--network=host", "-t", "bench-build:host", context, env=env)

    try:
        return time_alternately({"inner docker build (ours)": inner, "host docker build (classic)": host}, runs)
    finally:
        subprocess.run(["docker", "rmi", "-f", "bench-build:host"], capture_output=True)
        subprocess.run(["rm", "-rf", context])


def create_variants(runs: int) -> dict[str, dict[str, float]]:
    """Create to ready against the floor, alternating."""
    index = iter(range(10**6))
    return time_alternately(
        {
            "create(docker=True) to ready (ours)": lambda: call(run_ours, DEFAULT_IMAGE, next(index), PREFIX),
            "floor (bare docker run, same store)": lambda: run_floor(DEFAULT_IMAGE, f"{PREFIX}-{next(index)}"),
        },
        runs,
    )


def ratio(results: dict[str, dict[str, float]], a: str, b: str) -> float:
    """Median of ``a`` over median of ``b``."""
    return results[a]["median"] / results[b]["median"]


def main(argv: list[str] | None = None) -> int:
    """Run every part and print (and optionally save) the table and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each variant (default 5)")
    parser.add_argument("--json", help="also save the figures to this file")
    args = parser.parse_args(argv)

    started = time.monotonic()
    results: dict[str, dict[str, float]] = {}
    preload: list[Any] = []
    with Sandbox.create(
        f"{PREFIX}-inner", docker=True, images=[DEFAULT_IMAGE, TINY], timeout=600, owner="benchmark", on_event=preload.append, use_pool=False
    ) as sandbox:
        results.update(run_variants(sandbox, DEFAULT_IMAGE, args.runs))
        loads, size = load_variants(sandbox, args.runs)
        results.update(loads)
        results.update(build_variants(sandbox, args.runs))
    results.update(create_variants(args.runs))

    mb = size / 1e6
    inner_load, host_load = results["inner load (sb.docker.load)"], results["host docker load -i"]
    ratios = {
        "inner run / host runsc run": ratio(results, "inner docker run --rm (ours)", "host docker run --rm, runsc"),
        "inner run / host runc run": ratio(results, "inner docker run --rm (ours)", "host docker run --rm, runc"),
        "load throughput, inner / host": host_load["median"] / inner_load["median"],
        "inner build / host build": ratio(results, "inner docker build (ours)", "host docker build (classic)"),
        "create to ready / floor": ratio(results, "create(docker=True) to ready (ours)", "floor (bare docker run, same store)"),
    }
    print(table(results))
    print(f"\nload: a {mb:.0f} MB image tar; inner {mb / inner_load['median']:.0f} MB/s, host {mb / host_load['median']:.0f} MB/s")
    done = [e for e in preload if e.phase.startswith("load:") and e.state == "done"]
    for event in done:
        print(f"preloaded during startup: {event.message}")
    print()
    for label, value in ratios.items():
        print(f"{label:<34}{value:>6.2f}x")
    print(f"\n({time.monotonic() - started:.0f} s in all)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "results": results,
                    "ratios": ratios,
                    "load_tar_bytes": size,
                    "preloads": [e.message for e in done],
                    "when": time.strftime("%Y-%m-%d %H:%M"),
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
