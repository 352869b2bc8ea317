"""Docker-enabled sandbox images: built offline with debootstrap, or from a base with a Dockerfile.

Our machines reach no container registry, only Debian's mirror, so the
offline route builds the whole root filesystem with ``debootstrap`` and
imports it.  Debian bookworm's dockerd (20.10) starts fastest inside gVisor,
but bookworm has no Compose v2 package: the offline bookworm build adds the
``docker compose`` and ``docker buildx`` CLI plugins from trixie's packages
(static Go binaries, unpacked, not installed with their dependencies).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from typing import Callable, Mapping

from rich.console import Console
from rich.text import Text

from .engine import Engine, translated
from .errors import ImageBuildFailed

IMAGE_LABEL = "io.jupyter.sandbox.image"
RECIPE_LABEL = IMAGE_LABEL + ".recipe"
"""The recipe an image was built from (:func:`recipe`); ``image build --if-missing`` rebuilds on a mismatch."""
PACKAGES = {
    # perl (in every Debian image) relays the inner daemon's API to the host socket, socat where there is no perl (see bootstrap.py).
    "bookworm": ["docker.io", "ca-certificates", "iproute2", "procps", "util-linux", "socat"],
    "trixie": ["docker.io", "docker-cli", "docker-compose", "docker-buildx", "ca-certificates", "iproute2", "procps", "util-linux", "socat"],
}
PLUGIN_SUITE = "trixie"
PLUGIN_PACKAGES = ["docker-compose", "docker-buildx"]
RECIPE_VERSION = 2
"""Raise when the build steps change in a way the package lists do not show."""
TRIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt/archives", "var/lib/apt/lists"]


def recipe(suite: str) -> str:
    """A short fingerprint of what an offline build of ``suite`` puts in the image."""
    data = json.dumps([RECIPE_VERSION, PACKAGES.get(suite), PLUGIN_SUITE, PLUGIN_PACKAGES, TRIM], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (never a hard-coded host)."""
    candidates = []
    for folder, names in (("/etc/apt/sources.list.d", None), ("/etc/apt", ["sources.list"])):
        try:
            entries = names or sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                with open(os.path.join(folder, entry)) as f:
                    text = f.read()
            except OSError:
                continue
            for line in text.splitlines():
                words = line.split()
                if not words or words[0].startswith("#"):
                    continue
                for word in words:
                    if word.startswith(("http://", "https://")) and "security" not in word and "debian" in word:
                        candidates.append(word.rstrip("/"))
    return candidates[0] if candidates else "http://deb.debian.org/debian"


class _Steps:
    """Prints build steps with their duration, and streams command output."""

    def __init__(self, console: Console):
        self.console = console

    def run(self, title: str, argv: list[str], **options: object) -> None:
        self.console.print(f"[bold]▶ {title}[/]")
        start = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)  # type: ignore[call-overload]
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            if not line.startswith(("I: Retrieving", "I: Validating")):
                self.console.print(Text("  " + line.rstrip(), style="dim"))
        if process.wait() != 0:
            raise ImageBuildFailed(
                f"{title} failed (exit code {process.returncode}).",
                fix="read the output above; the Debian mirror must be reachable",
                detail="\n".join(tail),
            )
        self.console.print(f"  [green]✔[/] {title} in {time.monotonic() - start:.1f} s")


def build_offline_rootfs(root: str, suite: str, steps: _Steps) -> None:
    """debootstrap a Docker-enabled Debian into ``root`` (and add Compose/buildx plugins on bookworm)."""
    if suite not in PACKAGES:
        raise ImageBuildFailed(f"Suite {suite!r} is not supported for offline builds.", fix=f"use one of {', '.join(PACKAGES)}")
    if shutil.which("debootstrap") is None:
        raise ImageBuildFailed("debootstrap is not installed.", fix="apt-get install debootstrap (scripts/setup-host.sh does it)")
    if os.geteuid() != 0:
        raise ImageBuildFailed("Offline image builds need root (debootstrap and chroot).", fix="run it as root or with sudo")
    mirror = debian_mirror()
    steps.run(
        f"debootstrap {suite} from {mirror}", ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES[suite]), suite, root, mirror]
    )
    if suite == "bookworm":
        sources = os.path.join(root, "etc/apt/jupyter-sandbox-plugins.list")
        with open(sources, "w") as f:
            f.write(f"deb {mirror} {PLUGIN_SUITE} main\n")
        options = ["-o", "Dir::Etc::sourcelist=/etc/apt/jupyter-sandbox-plugins.list", "-o", "Dir::Etc::sourceparts=-"]
        steps.run(
            f"fetch Compose v2 and buildx plugins from {PLUGIN_SUITE}",
            [
                "chroot",
                root,
                "sh",
                "-c",
                f"apt-get update -qq {' '.join(options)} && cd /tmp && apt-get download {' '.join(options)} " + " ".join(PLUGIN_PACKAGES),
            ],
        )
        for deb in sorted(os.listdir(os.path.join(root, "tmp"))):
            if deb.endswith(".deb"):
                steps.run(f"unpack {deb}", ["dpkg-deb", "-x", os.path.join(root, "tmp", deb), root])
                os.remove(os.path.join(root, "tmp", deb))
        os.remove(sources)
    for relative in TRIM:
        path = os.path.join(root, relative)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path, exist_ok=True)


def import_rootfs(root: str, tag: str, labels: Mapping[str, str], engine: Engine) -> str:
    """Import a root filesystem folder as an image (``tar | docker import``); returns the image id."""
    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    changes = ['CMD ["/bin/bash"]', "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    changes += [f'LABEL {key}="{value}"' for key, value in labels.items()]
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", root, "-c", "."], stdout=subprocess.PIPE)
    try:
        with translated():
            result = engine.client.api.import_image(src=tar.stdout, repository=repository, tag=version, changes=changes, stream_src=True)
    finally:
        tar.wait()
    return str(result)


def busybox_image(tag: str, files: Mapping[str, str] | None = None, engine: Engine | None = None) -> None:
    """A ~2 MB image of the host's busybox-static, plus optional executable scripts.

    For offline demos and tests (for example an image whose ``dockerd`` is a
    script that fails on purpose).  Needs Debian's ``busybox-static``.

    Args:
        tag: Image tag.
        files: Extra files by absolute path: text content, made executable.
    """
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        raise ImageBuildFailed("busybox is not installed on this machine.", fix="apt-get install busybox-static")
    engine = engine or Engine.default()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in (
            "sh",
            "echo",
            "cat",
            "sleep",
            "ls",
            "true",
            "false",
            "env",
            "id",
            "uname",
            "wc",
            "head",
            "tail",
            "sed",
            "grep",
            "kill",
            "ps",
            "mkdir",
            "rm",
            "dd",
            "seq",
            "yes",
            "printf",
            "hostname",
            "top",
            "du",
            "mount",
            "umount",
            "touch",
            "cp",
            "mv",
            "ln",
            "chmod",
            "test",
            "[",
            "sort",
            "tr",
            "cut",
        ):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for folder in ("tmp", "proc", "sys", "dev", "etc", "root", "run"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        for path, content in (files or {}).items():
            data = content.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    with translated():
        engine.client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=version, changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]'])


def dockerfile_for(base: str) -> str:
    """A Dockerfile adding Docker engine, CLI, Compose v2 and buildx to a Debian or Ubuntu base."""
    return f"""FROM {base}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends docker.io ca-certificates iproute2 procps util-linux socat \\
 && (apt-get install -y --no-install-recommends docker-compose-v2 || apt-get install -y --no-install-recommends docker-compose) \\
 && (apt-get install -y --no-install-recommends docker-buildx || apt-get install -y --no-install-recommends docker-buildx-plugin || true) \\
 && rm -rf /var/lib/apt/lists/*
LABEL {IMAGE_LABEL}="docker"
"""


def build_from_base(base: str, tag: str, engine: Engine, echo: Callable[[str], None]) -> None:
    """Build ``tag`` from ``base`` with :func:`dockerfile_for`, streaming the build log."""
    dockerfile = dockerfile_for(base).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    buffer.seek(0)
    with translated():
        for item in engine.client.api.build(fileobj=buffer, custom_context=True, tag=tag, decode=True, rm=True):
            if "stream" in item:
                echo(item["stream"].rstrip("\n"))
            if "error" in item:
                raise ImageBuildFailed(
                    f"Building {tag} from {base} failed: {item['error'].strip()}",
                    fix="without a registry, use --offline (builds the base with debootstrap)",
                )


def build_image(
    *,
    tag: str,
    docker: bool,
    base: str | None,
    offline: bool,
    suite: str = "bookworm",
    if_missing: bool = False,
    console: Console | None = None,
    engine: Engine | None = None,
) -> int:
    """Build a sandbox image (the ``jupyter sandbox image build`` command); returns an exit code."""
    console = console or Console(stderr=True)
    engine = engine or Engine.default()
    if not docker:
        raise ImageBuildFailed("Only Docker-enabled images are built here.", fix="add --docker")
    with translated():
        found = [image for image in engine.client.images.list(name=tag.split(":")[0]) if tag in (image.tags or [])]
    if found and if_missing:
        built_from = (found[0].labels or {}).get(RECIPE_LABEL)
        if not offline or built_from == recipe(suite):
            console.print(f"[green]✔[/] image {tag} present")
            return 0
        console.print(f"image {tag} was built from recipe {built_from or 'unknown'}, now {recipe(suite)}: rebuilding")
    start = time.monotonic()
    if offline:
        root = tempfile.mkdtemp(prefix="jupyter-sandbox-rootfs-", dir="/var/tmp")
        try:
            build_offline_rootfs(root, suite, _Steps(console))
            console.print(f"[bold]▶ import {tag}[/]")
            import_rootfs(root, tag, {IMAGE_LABEL: "docker", IMAGE_LABEL + ".suite": suite, RECIPE_LABEL: recipe(suite)}, engine)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    elif base:
        build_from_base(base, tag, engine, lambda line: console.print(Text("  " + line, style="dim")))
    else:
        raise ImageBuildFailed("Say where the image comes from.", fix="add --offline (debootstrap) or --base IMAGE (Dockerfile)")
    console.print(f"[green]✔[/] built {tag} in {time.monotonic() - start:.0f} s")
    return 0
